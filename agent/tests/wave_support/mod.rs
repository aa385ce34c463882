//! A scripted fake data plane for the event, lease and wave tests: it
//! accepts every Apply, streams the events the test sends, and lists fixed
//! leases.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bootwave_proto::v1::dataplane_control_server::{DataplaneControl, DataplaneControlServer};
use bootwave_proto::v1::{self, boot_event, tftp_event};
use tokio::sync::{broadcast, oneshot};
use tonic::{Request, Response, Status};

/// A fake data plane serving on a unix socket until dropped.
pub struct FakePlane {
    pub endpoint: String,
    pub socket: PathBuf,
    events: broadcast::Sender<v1::BootEvent>,
    killed: tokio::sync::watch::Sender<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Clone)]
struct Service {
    events: broadcast::Sender<v1::BootEvent>,
    leases: Arc<Vec<v1::Lease>>,
    killed: tokio::sync::watch::Receiver<bool>,
    generation: Arc<Mutex<u64>>,
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl DataplaneControl for Service {
    async fn apply(
        &self,
        request: Request<v1::ApplyRequest>,
    ) -> Result<Response<v1::ApplyReply>, Status> {
        let generation = request.into_inner().generation;
        *self.generation.lock().unwrap() = generation;
        Ok(Response::new(v1::ApplyReply {
            generation,
            ..Default::default()
        }))
    }

    async fn status(
        &self,
        _request: Request<v1::DataplaneStatusRequest>,
    ) -> Result<Response<v1::DataplaneStatusReply>, Status> {
        Ok(Response::new(v1::DataplaneStatusReply {
            generation: *self.generation.lock().unwrap(),
            shards: 1,
            backend: "fake".into(),
            ..Default::default()
        }))
    }

    type WatchEventsStream = Stream<v1::BootEvent>;

    async fn watch_events(
        &self,
        _request: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let mut rx = self.events.subscribe();
        let mut killed = self.killed.clone();
        let (tx, out) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    e = rx.recv() => match e {
                        Ok(e) => if tx.send(Ok(e)).await.is_err() { return },
                        Err(_) => return,
                    },
                    _ = killed.changed() => {
                        let _ = tx.send(Err(Status::unavailable("killed"))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }

    async fn list_leases(
        &self,
        request: Request<v1::ListLeasesRequest>,
    ) -> Result<Response<v1::ListLeasesReply>, Status> {
        let r = request.into_inner();
        let leases = self
            .leases
            .iter()
            .filter(|l| r.mac.is_empty() || l.mac == r.mac)
            .filter(|l| r.subnet.is_empty() || l.address.starts_with("10.0.0."))
            .cloned()
            .collect();
        Ok(Response::new(v1::ListLeasesReply {
            leases,
            errors: vec![],
        }))
    }
}

impl FakePlane {
    /// Serves on `socket` with `leases`.
    pub async fn start(socket: &Path, leases: Vec<v1::Lease>) -> Self {
        let (events, _) = broadcast::channel(65_536);
        let (killed, killed_rx) = tokio::sync::watch::channel(false);
        let service = Service {
            killed: killed_rx,
            events: events.clone(),
            leases: Arc::new(leases),
            generation: Arc::default(),
        };
        let _ = std::fs::remove_file(socket);
        let listener = tokio::net::UnixListener::bind(socket).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(DataplaneControlServer::new(service))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            endpoint: format!("unix:{}", socket.display()),
            socket: socket.to_owned(),
            events,
            killed,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Waits (at most 5 s) until the agent follows this plane's events.
    pub async fn wait_for_follower(&self) {
        for _ in 0..250 {
            if self.events.receiver_count() > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the agent never subscribed to {}", self.endpoint);
    }

    /// Streams `event` (time stamped now) to every subscriber.
    pub fn emit(&self, mut event: v1::BootEvent) {
        event.time_unix_us = 1_700_000_000_000_000;
        self.events.send(event).unwrap();
    }

    /// Stops serving at once, like a killed data plane (open streams
    /// break).
    pub async fn kill(mut self) {
        self.killed.send_replace(true);
        drop(self.stop.take());
        let task = self.task.take().unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        let _ = std::fs::remove_file(&self.socket);
    }
}

pub fn lease(mac: &str, address: &str) -> v1::Lease {
    v1::Lease {
        mac: mac.into(),
        address: address.into(),
        state: "bound".into(),
        expires_unix_s: 1_700_000_600,
        shard: 0,
        dataplane: String::new(),
    }
}

pub fn dhcp(mac: &str, reply: &str, user_class: &str, file: &str) -> v1::BootEvent {
    v1::BootEvent {
        mac: mac.into(),
        client: "10.0.0.5".into(),
        kind: Some(boot_event::Kind::Dhcp(v1::DhcpEvent {
            message: "REQUEST".into(),
            reply: reply.into(),
            arch: Some(7),
            user_class: user_class.into(),
            ipxe_encap: !user_class.is_empty(),
            filename: file.into(),
            address: "10.0.0.5".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub fn tftp(mac: &str, kind: tftp_event::Kind, file: &str) -> v1::BootEvent {
    v1::BootEvent {
        mac: mac.into(),
        client: "10.0.0.5:2000".into(),
        kind: Some(boot_event::Kind::Tftp(v1::TftpEvent {
            kind: kind.into(),
            file: file.into(),
            size: 4096,
            bytes: 4096,
            error: if kind == tftp_event::Kind::Failed {
                "timed out".into()
            } else {
                String::new()
            },
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The guide's boot flow of one host: firmware DHCP, ipxe.efi, iPXE DHCP,
/// the script, refind.conf and refind_x64.efi.
pub fn boot_flow(mac: &str) -> Vec<v1::BootEvent> {
    use tftp_event::Kind::{Completed, Started};
    let mut events = vec![dhcp(mac, "ACK", "", "ipxe.efi")];
    events.extend([
        tftp(mac, Started, "ipxe.efi"),
        tftp(mac, Completed, "ipxe.efi"),
    ]);
    events.push(dhcp(mac, "ACK", "iPXE", "refind.pxe"));
    for f in ["refind.pxe", "refind.conf", "refind_x64.efi"] {
        events.extend([tftp(mac, Started, f), tftp(mac, Completed, f)]);
    }
    events
}

pub fn labelled_host(i: u8, label: &str) -> v1::Host {
    let mut h = v1::Host {
        mac: format!("02:00:00:00:01:{i:02x}"),
        hostname: format!("node{i}"),
        ..Default::default()
    };
    h.labels.insert("rack".into(), label.into());
    h
}
