//! What the agent sends to a data plane: the full state first, then deltas
//! on top of the acknowledged generation, and the full state again when a
//! data plane refuses a delta.
#![allow(clippy::unwrap_used)]

mod agent_support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use agent_support::*;
use bootwave_proto::v1::{self, dataplane_control_server as dcs};
use tonic::{Request, Response, Status};

/// One `Apply` as received.
#[derive(Debug, Clone, PartialEq)]
struct Received {
    generation: u64,
    /// `None`: a full state; `Some(base)`: a delta on `base`.
    delta_base: Option<u64>,
    /// Hosts carried (all of them for a full state, the put ones for a
    /// delta).
    hosts: usize,
}

#[derive(Default)]
struct Recorder {
    received: Mutex<Vec<Received>>,
    in_force: Mutex<u64>,
    /// History of the generation in force.
    history: Mutex<String>,
    /// Refuse the next delta with ABORTED (as after a restart).
    refuse_next_delta: Mutex<bool>,
}

struct Fake(Arc<Recorder>);

#[tonic::async_trait]
impl dcs::DataplaneControl for Fake {
    async fn apply(
        &self,
        request: Request<v1::ApplyRequest>,
    ) -> Result<Response<v1::ApplyReply>, Status> {
        let r = request.into_inner();
        let received = match (&r.full, &r.delta) {
            (Some(full), None) => Received {
                generation: r.generation,
                delta_base: None,
                hosts: full.hosts.len(),
            },
            (None, Some(delta)) => Received {
                generation: r.generation,
                delta_base: Some(r.base_generation),
                hosts: delta.put_hosts.len(),
            },
            _ => return Err(Status::invalid_argument("full or delta")),
        };
        self.0.received.lock().unwrap().push(received.clone());
        let mut in_force = self.0.in_force.lock().unwrap();
        if let Some(base) = received.delta_base {
            let refuse = std::mem::take(&mut *self.0.refuse_next_delta.lock().unwrap());
            if refuse || base != *in_force || r.history != *self.0.history.lock().unwrap() {
                return Err(Status::aborted("base is not in force"));
            }
        }
        *in_force = r.generation;
        self.0.history.lock().unwrap().clone_from(&r.history);
        Ok(Response::new(v1::ApplyReply {
            generation: r.generation,
            history: r.history,
        }))
    }

    async fn status(
        &self,
        _request: Request<v1::DataplaneStatusRequest>,
    ) -> Result<Response<v1::DataplaneStatusReply>, Status> {
        Ok(Response::new(v1::DataplaneStatusReply {
            generation: *self.0.in_force.lock().unwrap(),
            shards: 1,
            backend: "fake".into(),
            pools: Vec::new(),
            history: self.0.history.lock().unwrap().clone(),
            applied_unix_ms: 0,
        }))
    }

    type WatchEventsStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::BootEvent, Status>> + Send>>;

    async fn watch_events(
        &self,
        _request: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }

    async fn list_leases(
        &self,
        _request: Request<v1::ListLeasesRequest>,
    ) -> Result<Response<v1::ListLeasesReply>, Status> {
        Ok(Response::new(v1::ListLeasesReply::default()))
    }
}

fn serve_fake(socket: &Path) -> Arc<Recorder> {
    let recorder = Arc::new(Recorder::default());
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let service = dcs::DataplaneControlServer::new(Fake(recorder.clone()));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    recorder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_push_is_full_and_later_ones_are_deltas() {
    let (dir, state, socket) = temp();
    let dp_socket = dir.path().join("dp.sock");
    let recorder = serve_fake(&dp_socket);
    let agent = start_agent(
        &state,
        &socket,
        vec![format!("unix:{}", dp_socket.display())],
    )
    .await;
    let mut c = client(&agent.endpoint).await;
    c.put_subnet(v1::PutSubnetRequest {
        subnet: Some(subnet()),
    })
    .await
    .unwrap();
    for (i, ip) in ["10.0.0.5", "10.0.0.6"].iter().enumerate() {
        let r = c
            .put_host(v1::PutHostRequest {
                host: Some(host(&format!("02:00:00:00:00:0{}", i + 1), ip)),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.lagging.is_empty(), "{:?}", r.lagging);
    }
    // The data plane loses its state: the next delta is refused and the
    // agent sends everything again within the same call.
    *recorder.refuse_next_delta.lock().unwrap() = true;
    let r = c
        .put_host(v1::PutHostRequest {
            host: Some(host("02:00:00:00:00:03", "10.0.0.7")),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.lagging.is_empty(), "{:?}", r.lagging);
    let received = recorder.received.lock().unwrap().clone();
    let wanted = [
        (1, None, 0),
        (2, Some(1), 1),
        (3, Some(2), 1),
        (4, Some(3), 1),
        (4, None, 3),
    ];
    let got: Vec<_> = received
        .iter()
        .map(|r| (r.generation, r.delta_base, r.hosts))
        .collect();
    assert_eq!(got, wanted);
    agent.stop().await;
}
