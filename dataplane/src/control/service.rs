//! The `DataplaneControl` handlers: translate and delegate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bootwave_proto::convert::{Delta, State};
use bootwave_proto::v1::dataplane_control_server::{DataplaneControl, DataplaneControlServer};
use bootwave_proto::v1::{
    ApplyReply, ApplyRequest, BootEvent, DataplaneStatusReply, DataplaneStatusRequest,
    ListLeasesReply, ListLeasesRequest, WatchEventsRequest,
};
use bootwave_protocol::config::Config;
use tokio::sync::{Mutex, oneshot};
use tonic::{Request, Response, Status};

use super::{ApplyFn, StatusFn};

/// The handlers of `DataplaneControl`.
pub struct ControlService {
    local: Config,
    apply: ApplyFn,
    status: StatusFn,
    generation: Arc<AtomicU64>,
    /// The state in force (the base of the next delta); the lock
    /// serialises applies so generations are recorded in call order.
    applying: Mutex<Option<State>>,
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
        }
    }
}

#[tonic::async_trait]
impl DataplaneControl for ControlService {
    async fn apply(&self, request: Request<ApplyRequest>) -> Result<Response<ApplyReply>, Status> {
        let request = request.into_inner();
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
        tracing::info!(generation = request.generation, "applied desired state");
        Ok(Response::new(ApplyReply {
            generation: request.generation,
        }))
    }

    async fn status(
        &self,
        _request: Request<DataplaneStatusRequest>,
    ) -> Result<Response<DataplaneStatusReply>, Status> {
        let status = (self.status)();
        Ok(Response::new(DataplaneStatusReply {
            generation: self.generation.load(Ordering::Acquire),
            shards: status.shards,
            backend: status.backend,
        }))
    }

    type WatchEventsStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<BootEvent, Status>> + Send>>;

    async fn watch_events(
        &self,
        _request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        Err(Status::unimplemented("boot events are not served yet"))
    }

    async fn list_leases(
        &self,
        _request: Request<ListLeasesRequest>,
    ) -> Result<Response<ListLeasesReply>, Status> {
        Err(Status::unimplemented("lease listing is not served yet"))
    }
}

/// Serves until `shutdown` fires (or its sender is dropped).
pub(super) async fn run(
    service: ControlService,
    listener: std::os::unix::net::UnixListener,
    shutdown: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("control socket: {e}");
            return;
        }
    };
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let result = tonic::transport::Server::builder()
        .add_service(DataplaneControlServer::new(service))
        .serve_with_incoming_shutdown(incoming, async {
            let _ = shutdown.await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!("control server: {e}");
    }
}
