//! What the agent sends to a data plane: the full state first, then deltas
//! on top of the acknowledged generation, and the full state again when a
//! data plane refuses a delta; two agents on one data plane: the one that
//! never fed it takes it over, the other reports it lagging.
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
            http_port: 0,
            unsaved: false,
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

/// Polls `agent`'s status until its view of the one data plane holds
/// `history`; returns that view.
async fn await_seen_history(
    c: &mut v1::bootwave_service_client::BootwaveServiceClient<tonic::transport::Channel>,
    history: &str,
) -> v1::DataplaneInfo {
    for _ in 0..200 {
        let status = c.status(v1::StatusRequest {}).await.unwrap().into_inner();
        if let Some(info) = status.dataplanes.into_iter().find(|d| d.history == history) {
            return info;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the agent never saw history {history} on its data plane");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_takes_a_data_plane_over_and_the_first_reports_it_lagging() {
    let (dir, state_a, socket_a) = temp();
    let dp_socket = dir.path().join("dp.sock");
    let recorder = serve_fake(&dp_socket);
    let dataplanes = vec![format!("unix:{}", dp_socket.display())];
    let agent_a = start_agent(&state_a, &socket_a, dataplanes.clone()).await;
    let mut a = client(&agent_a.endpoint).await;
    a.put_subnet(v1::PutSubnetRequest {
        subnet: Some(subnet()),
    })
    .await
    .unwrap();
    let r = a
        .put_host(v1::PutHostRequest {
            host: Some(host("02:00:00:00:00:01", "10.0.0.5")),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.lagging.is_empty(), "{:?}", r.lagging);
    let history_a = a
        .status(v1::StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .history;

    // A second agent, its own state: it never fed this data plane, so its
    // first change replaces the state there in full.
    let agent_b = start_agent(
        &dir.path().join("state-b"),
        &dir.path().join("agent-b.sock"),
        dataplanes,
    )
    .await;
    let mut b = client(&agent_b.endpoint).await;
    let r = b
        .put_subnet(v1::PutSubnetRequest {
            subnet: Some(subnet()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.lagging.is_empty(), "{:?}", r.lagging);
    let history_b = recorder.history.lock().unwrap().clone();
    assert_ne!(history_b, history_a, "two state directories, two histories");
    let last = recorder.received.lock().unwrap().last().cloned().unwrap();
    assert_eq!((last.generation, last.delta_base), (1, None), "a full push");

    // The first agent sees another history in force (its resync) and does
    // not push it back: every change of its own reports the data plane
    // lagging.
    let info = await_seen_history(&mut a, &history_b).await;
    assert!(info.error.contains("taken over"), "{info:?}");
    let pushes = recorder.received.lock().unwrap().len();
    let r = a
        .put_host(v1::PutHostRequest {
            host: Some(host("02:00:00:00:00:02", "10.0.0.6")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.lagging.len(), 1, "{r:?}");
    assert!(r.lagging[0].error.contains("taken over"), "{r:?}");
    assert_eq!(recorder.received.lock().unwrap().len(), pushes, "no push");
    assert_eq!(*recorder.history.lock().unwrap(), history_b);

    // The second agent goes on with deltas on its own generation.
    let r = b
        .put_host(v1::PutHostRequest {
            host: Some(host("02:00:00:00:00:03", "10.0.0.7")),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.lagging.is_empty(), "{:?}", r.lagging);
    let last = recorder.received.lock().unwrap().last().cloned().unwrap();
    assert_eq!((last.generation, last.delta_base), (2, Some(1)));
    agent_b.stop().await;
    agent_a.stop().await;
}
