//! The `DataplaneControl` handlers: translate and delegate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bootwave_proto::convert::{Delta, State};
use bootwave_proto::v1::dataplane_control_server::{DataplaneControl, DataplaneControlServer};
use bootwave_proto::v1::{
    ApplyReply, ApplyRequest, DataplaneStatusReply, DataplaneStatusRequest, ListLeasesReply,
    ListLeasesRequest, PoolUsage, WatchEventsRequest,
};
use bootwave_protocol::config::Config;
use tokio::sync::{Mutex, oneshot, watch};
use tonic::{Request, Response, Status};

use super::leases::{self, Filter};
use super::watch::{EventStream, parse_macs, stream};
use super::{ApplyFn, Observe, StatusFn};
use crate::runtime::dhcp::unix_now;

/// How long a stopping server waits for its clients to close.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The handlers of `DataplaneControl`.
pub struct ControlService {
    local: Config,
    apply: ApplyFn,
    status: StatusFn,
    generation: Arc<AtomicU64>,
    /// The state in force (the base of the next delta); the lock
    /// serialises applies so generations are recorded in call order.
    applying: Mutex<Option<State>>,
    /// The shards' events and lease mirrors.
    observe: Observe,
    /// Turns true when the server stops, ending every event stream.
    stop: watch::Receiver<bool>,
}

impl std::fmt::Debug for ControlService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlService")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl ControlService {
    /// Handlers that build configurations on top of `local`.
    pub fn new(
        local: Config,
        apply: ApplyFn,
        status: StatusFn,
        generation: Arc<AtomicU64>,
    ) -> Self {
        Self {
            local,
            apply,
            status,
            generation,
            applying: Mutex::new(None),
            observe: Observe::default(),
            stop: watch::channel(false).1,
        }
    }

    /// Serves the events and leases of `observe`; event streams end when
    /// `stop` turns true (or its sender is dropped).
    pub fn observing(mut self, observe: Observe, stop: watch::Receiver<bool>) -> Self {
        self.observe = observe;
        self.stop = stop;
        self
    }
}

#[tonic::async_trait]
impl DataplaneControl for ControlService {
    async fn apply(&self, request: Request<ApplyRequest>) -> Result<Response<ApplyReply>, Status> {
        let request = request.into_inner();
        let started = std::time::Instant::now();
        let mut applied = self.applying.lock().await;
        let state = match (request.full, request.delta) {
            (Some(full), None) => State::try_from(full).map_err(|e| e.within("full"))?,
            (None, Some(delta)) => {
                let delta = Delta::try_from(delta).map_err(|e| e.within("delta"))?;
                let in_force = self.generation.load(Ordering::Acquire);
                let base = applied
                    .as_ref()
                    .filter(|_| in_force == request.base_generation)
                    .ok_or_else(|| {
                        Status::aborted(format!(
                            "delta on generation {} but {in_force} is in force: send the full state",
                            request.base_generation
                        ))
                    })?;
                let mut state = State::clone(base);
                delta.apply_to(&mut state);
                state
            }
            (Some(_), Some(_)) => {
                return Err(Status::invalid_argument(
                    "delta: give either `full` or `delta`, not both",
                ));
            }
            (None, None) => return Err(Status::invalid_argument("full: missing")),
        };
        let config = state.to_config_with(&self.local)?;
        (self.apply)(config, request.generation).map_err(|e| {
            tracing::warn!(generation = request.generation, "apply refused: {e}");
            Status::failed_precondition(format!("apply refused: {e}"))
        })?;
        *applied = Some(state);
        self.generation.store(request.generation, Ordering::Release);
        tracing::info!(
            generation = request.generation,
            elapsed_ms = started.elapsed().as_millis(),
            "applied desired state"
        );
        Ok(Response::new(ApplyReply {
            generation: request.generation,
        }))
    }

    async fn status(
        &self,
        _request: Request<DataplaneStatusRequest>,
    ) -> Result<Response<DataplaneStatusReply>, Status> {
        let status = (self.status)();
        let pools = self
            .observe
            .leases
            .iter()
            .flat_map(|mirror| {
                let shard = mirror.shard();
                mirror.pools().into_iter().map(move |u| PoolUsage {
                    subnet: u.network.to_string(),
                    shard,
                    size: u.size,
                    free: u.free(),
                    offered: u.offered,
                    bound: u.bound,
                    quarantined: u.quarantined,
                })
            })
            .collect();
        Ok(Response::new(DataplaneStatusReply {
            generation: self.generation.load(Ordering::Acquire),
            shards: status.shards,
            backend: status.backend,
            pools,
        }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let macs = parse_macs(&request.into_inner().macs)?;
        let events = self.observe.events.subscribe();
        Ok(Response::new(stream(events, macs, self.stop.clone())))
    }

    async fn list_leases(
        &self,
        request: Request<ListLeasesRequest>,
    ) -> Result<Response<ListLeasesReply>, Status> {
        let filter = Filter::parse(request.get_ref())?;
        Ok(Response::new(ListLeasesReply {
            leases: leases::list(&self.observe.leases, filter, unix_now()),
            errors: Vec::new(),
        }))
    }
}

/// Serves until `shutdown` fires (or its sender is dropped); then tells
/// the event streams to end (`stopping`) and gives clients [`STOP_GRACE`]
/// to close their connections before dropping them, so a stuck client
/// cannot hold the data plane's exit.
pub(super) async fn run(
    service: ControlService,
    listener: std::os::unix::net::UnixListener,
    shutdown: oneshot::Receiver<()>,
    stopping: watch::Sender<bool>,
) {
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("control socket: {e}");
            return;
        }
    };
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let mut stopped = stopping.subscribe();
    let serve = tonic::transport::Server::builder()
        .add_service(
            DataplaneControlServer::new(service)
                .max_decoding_message_size(bootwave_proto::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(bootwave_proto::MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = shutdown.await;
            let _ = stopping.send(true);
        });
    let grace = async move {
        // Only once the stop was asked for; the sender lives inside the
        // server future, so an error here means the server is gone.
        if stopped.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(STOP_GRACE).await;
    };
    let result = tokio::select! {
        result = serve => result,
        () = grace => {
            tracing::warn!("control: clients still connected {STOP_GRACE:?} after stop; closing");
            return;
        }
    };
    if let Err(e) = result {
        tracing::error!("control server: {e}");
    }
}
