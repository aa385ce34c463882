//! The `DataplaneControl` handlers: translate and delegate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bootwave_proto::convert::State;
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
    /// Serialises applies so generations are recorded in call order.
    applying: Mutex<()>,
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
            applying: Mutex::new(()),
        }
    }
}

#[tonic::async_trait]
impl DataplaneControl for ControlService {
    async fn apply(&self, request: Request<ApplyRequest>) -> Result<Response<ApplyReply>, Status> {
        let request = request.into_inner();
        let full = request
            .full
            .ok_or_else(|| Status::invalid_argument("full: missing"))?;
        let state = State::try_from(full).map_err(|e| e.within("full"))?;
        let config = state.to_config_with(&self.local)?;
        let _guard = self.applying.lock().await;
        (self.apply)(config, request.generation).map_err(|e| {
            tracing::warn!(generation = request.generation, "apply refused: {e}");
            Status::failed_precondition(format!("apply refused: {e}"))
        })?;
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
