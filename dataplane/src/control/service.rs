//! The `DataplaneControl` handlers: translate and delegate.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
use super::persist::{self, Applied};
use super::watch::{EventStream, parse_macs, stream};
use super::{ApplyFn, Endpoint, InForce, Observe, Origin, StatusFn, lock};
use crate::runtime::dhcp::unix_now;

/// The wall clock in ms since the Unix epoch.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long a stopping server waits for its clients to close.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The handlers of `DataplaneControl`.
pub struct ControlService {
    local: Config,
    apply: ApplyFn,
    status: StatusFn,
    /// Where applied states are persisted, if anywhere.
    persist: Option<PathBuf>,
    /// Where the state in force comes from, for `Status` without waiting
    /// on an apply.
    in_force: InForce,
    /// The pushed state in force (the base of the next delta); the lock
    /// serialises applies so generations are recorded in call order.
    applying: Arc<Mutex<Option<Applied>>>,
    /// The state in force failed to save and is not on disk yet; a task of
    /// [`run`] saves it again every [`SAVE_RETRY`] until it is.
    unsaved: Arc<AtomicBool>,
    /// The shards' events and lease mirrors.
    observe: Observe,
    /// Turns true when the server stops, ending every event stream.
    stop: watch::Receiver<bool>,
}

impl std::fmt::Debug for ControlService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlService")
            .field("in_force", &self.in_force)
            .finish_non_exhaustive()
    }
}

impl ControlService {
    /// Handlers of `endpoint`, recording what is in force in `in_force`.
    pub fn new(endpoint: Endpoint, in_force: InForce) -> Self {
        Self {
            local: endpoint.local,
            apply: endpoint.apply,
            status: endpoint.status,
            persist: endpoint.persist,
            in_force,
            applying: Arc::new(Mutex::new(endpoint.in_force)),
            unsaved: Arc::new(AtomicBool::new(false)),
            observe: endpoint.observe,
            stop: watch::channel(false).1,
        }
    }

    /// Ends event streams when `stop` turns true (or its sender is
    /// dropped).
    pub fn observing(mut self, stop: watch::Receiver<bool>) -> Self {
        self.stop = stop;
        self
    }
}

/// The state a request asks for, given what is in force.
fn requested(request: ApplyRequest, in_force: Option<&Applied>) -> Result<State, Status> {
    match (request.full, request.delta) {
        (Some(full), None) => Ok(State::try_from(full).map_err(|e| e.within("full"))?),
        (None, Some(delta)) => {
            let delta = Delta::try_from(delta).map_err(|e| e.within("delta"))?;
            let base = in_force
                .filter(|a| {
                    a.origin.history == request.history
                        && a.origin.generation == request.base_generation
                })
                .ok_or_else(|| {
                    let held = in_force.map_or_else(
                        || "no pushed state is in force".to_owned(),
                        |a| {
                            format!(
                                "generation {} of history {} is in force",
                                a.origin.generation, a.origin.history
                            )
                        },
                    );
                    Status::aborted(format!(
                        "delta on generation {} of history {}, but {held}: send the full state",
                        request.base_generation, request.history
                    ))
                })?;
            let mut state = State::clone(&base.state);
            delta.apply_to(&mut state);
            Ok(state)
        }
        (Some(_), Some(_)) => Err(Status::invalid_argument(
            "delta: give either `full` or `delta`, not both",
        )),
        (None, None) => Err(Status::invalid_argument("full: missing")),
    }
}

/// Logs what a full state of `next` does to the history in force.
fn log_succession(before: Option<&Origin>, next: &Origin) {
    let Some(before) = before else {
        tracing::info!(history = %next.history, generation = next.generation, "control: first pushed state");
        return;
    };
    if before.history != next.history {
        tracing::warn!(
            history = %next.history,
            generation = next.generation,
            replaced_history = %before.history,
            replaced_generation = before.generation,
            "control: another agent history takes over this data plane (a second agent, or an agent whose state was wiped or replaced)"
        );
    } else if next.generation < before.generation {
        tracing::warn!(
            history = %next.history,
            generation = next.generation,
            replaced_generation = before.generation,
            "control: the agent rolled its history back (its state was restored from an older copy)"
        );
    }
}

#[tonic::async_trait]
impl DataplaneControl for ControlService {
    async fn apply(&self, request: Request<ApplyRequest>) -> Result<Response<ApplyReply>, Status> {
        let request = request.into_inner();
        if request.generation == 0 {
            return Err(Status::invalid_argument("generation: must be at least 1"));
        }
        let started = std::time::Instant::now();
        let mut applied = self.applying.lock().await;
        let full = request.full.is_some();
        let origin = Origin {
            history: request.history.clone(),
            generation: request.generation,
            applied_unix_ms: unix_ms(),
        };
        let state = requested(request, applied.as_ref())?;
        let config = state.to_config_with(&self.local)?;
        (self.apply)(config, &origin).map_err(|e| {
            tracing::warn!(generation = origin.generation, "apply refused: {e}");
            Status::failed_precondition(format!("apply refused: {e}"))
        })?;
        if full {
            log_succession(applied.as_ref().map(|a| &a.origin), &origin);
        }
        let persisted = match &self.persist {
            Some(dir) => persist::save(dir, &origin, &state).map_err(|e| {
                tracing::error!(
                    generation = origin.generation,
                    "control: state in force but not persisted: {e}"
                );
                Status::internal(format!("applied but not persisted: {e}"))
            }),
            None => Ok(()),
        };
        *lock(&self.in_force) = Some(origin.clone());
        *applied = Some(Applied {
            origin: origin.clone(),
            state,
        });
        self.unsaved.store(persisted.is_err(), Ordering::Relaxed);
        persisted?;
        tracing::info!(
            generation = origin.generation,
            history = %origin.history,
            elapsed_ms = started.elapsed().as_millis(),
            "applied desired state"
        );
        Ok(Response::new(ApplyReply {
            generation: origin.generation,
            history: origin.history,
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
        let origin = lock(&self.in_force).clone().unwrap_or_default();
        Ok(Response::new(DataplaneStatusReply {
            generation: origin.generation,
            shards: status.shards,
            backend: status.backend,
            pools,
            history: origin.history,
            applied_unix_ms: origin.applied_unix_ms,
            http_port: status.http_port.map_or(0, u32::from),
            unsaved: self.unsaved.load(Ordering::Relaxed),
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
/// How often a state whose save failed is saved again.
pub(crate) const SAVE_RETRY: Duration = Duration::from_secs(2);

/// Saves the state in force again, every [`SAVE_RETRY`], while `unsaved`
/// says its last save failed (a full or read-only disk): a state the agent
/// pushed must reach the disk, or a restart with the agent away would
/// serve an older one. Failures are logged at most once a minute.
async fn save_again(dir: PathBuf, applying: Arc<Mutex<Option<Applied>>>, unsaved: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(SAVE_RETRY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut logged: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        if !unsaved.load(Ordering::Relaxed) {
            continue;
        }
        let applied = applying.lock().await;
        let Some(applied) = applied.as_ref() else {
            continue;
        };
        match persist::save(&dir, &applied.origin, &applied.state) {
            Ok(()) => {
                unsaved.store(false, Ordering::Relaxed);
                tracing::info!(
                    generation = applied.origin.generation,
                    "control: state in force saved after a failed save"
                );
            }
            Err(e) => {
                if logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    logged = Some(std::time::Instant::now());
                    tracing::warn!(
                        generation = applied.origin.generation,
                        "control: state in force still not saved (retried every {SAVE_RETRY:?}): {e}"
                    );
                }
            }
        }
    }
}

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
    if let Some(dir) = service.persist.clone() {
        let retry = save_again(
            dir,
            Arc::clone(&service.applying),
            Arc::clone(&service.unsaved),
        );
        // Ends with the runtime, when the server stops.
        tokio::spawn(retry);
    }
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
