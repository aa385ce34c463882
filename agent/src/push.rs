//! Pushing the desired state to the data planes.
//!
//! Generations are numbered within one history: the random id the agent's
//! state database was created with ([`Store::history`]). What a data plane
//! gets is decided by [`plan`] from what it holds (history, generation):
//! nothing when it holds this agent's newest generation; a delta on top of
//! the generation it acknowledged when the agent still holds that state;
//! else the full state — when it holds nothing, an older generation, a
//! higher one (the agent's state was restored from an older copy) or
//! another history it was never fed by this agent (a wiped state
//! directory, or a data plane moved from another agent). A data plane that
//! this agent fed and that now holds another history was taken over by
//! another agent: it is not fought over but reported lagging, until this
//! agent restarts. A data plane refusing a delta with `ABORTED` gets the
//! full state. Pushes to one data plane are serialised and always of the
//! newest state. A background task asks every data plane what it holds and
//! re-syncs those that differ.

use std::sync::Arc;
use std::time::Duration;

use bootwave_proto::convert::{Delta, State};
use bootwave_proto::v1::dataplane_control_client::DataplaneControlClient;
use bootwave_proto::v1::{self, ApplyRequest, DataplaneStatusRequest};
use futures_util::future::join_all;
use tokio::sync::Mutex;
use tonic::transport::Channel;

use crate::store::{Snapshot, Store};

/// How long one Apply or Status call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The data planes this agent feeds.
#[derive(Debug)]
pub struct Dataplanes {
    planes: Vec<Plane>,
    /// Time from the start of a push to the last acknowledgement.
    latency: crate::metrics::PushLatency,
}

#[derive(Debug)]
struct Plane {
    endpoint: String,
    client: DataplaneControlClient<Channel>,
    /// What is known about it; the lock also serialises pushes.
    seen: Mutex<Seen>,
}

#[derive(Debug, Default, Clone)]
struct Seen {
    acked: u64,
    /// The history of generation `acked` ("" when unknown, or a data plane
    /// older than histories).
    history: String,
    /// Whether this agent's history was acknowledged by it since the agent
    /// started.
    fed: bool,
    /// The state of generation `acked`, when this agent sent it (the base
    /// of the next delta).
    base: Option<Arc<State>>,
    reachable: bool,
    error: Option<String>,
    shards: u32,
    backend: String,
    pools: Vec<v1::PoolUsage>,
    /// Its `[http] port` (0: off or not known yet).
    http_port: u32,
    /// Its state in force failed to save (it retries), as of the last check.
    unsaved: bool,
}

impl Dataplanes {
    /// Lazily connected clients for `endpoints` (`unix:/path` or
    /// `http://host:port`).
    pub fn new(endpoints: &[String]) -> Result<Self, bootwave_proto::channel::ChannelError> {
        let planes = endpoints
            .iter()
            .map(|endpoint| {
                let channel = bootwave_proto::channel::connect_lazy(endpoint)?;
                Ok(Plane {
                    endpoint: endpoint.clone(),
                    client: DataplaneControlClient::new(channel)
                        .max_decoding_message_size(bootwave_proto::MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(bootwave_proto::MAX_MESSAGE_BYTES),
                    seen: Mutex::new(Seen::default()),
                })
            })
            .collect::<Result<_, _>>()?;
        let latency = crate::metrics::PushLatency::default();
        Ok(Self { planes, latency })
    }

    /// Pushes the newest state to every data plane that has not
    /// acknowledged `generation` yet; returns those that still have not.
    pub async fn push(&self, store: &Store, generation: u64) -> Vec<v1::DataplaneLag> {
        let started = std::time::Instant::now();
        let pushes = self.planes.iter().map(|p| p.push(store, generation));
        let lagging: Vec<_> = join_all(pushes).await.into_iter().flatten().collect();
        if !self.planes.is_empty() {
            self.latency.record(started.elapsed(), lagging.is_empty());
        }
        lagging
    }

    /// Push latency, for the metrics endpoint.
    pub fn latency(&self) -> &crate::metrics::PushLatency {
        &self.latency
    }

    /// Every data plane's endpoint and what is known of it, without
    /// waiting: `None` while a push to it holds its lock.
    pub fn try_info(&self) -> Vec<(String, Option<v1::DataplaneInfo>)> {
        let view = |p: &Plane| {
            let info = p.seen.try_lock().ok().map(|seen| v1::DataplaneInfo {
                endpoint: p.endpoint.clone(),
                acked_generation: seen.acked,
                reachable: seen.reachable,
                error: seen.error.clone().unwrap_or_default(),
                shards: seen.shards,
                backend: seen.backend.clone(),
                pools: seen.pools.clone(),
                history: seen.history.clone(),
                http_port: seen.http_port,
                unsaved: seen.unsaved,
            });
            (p.endpoint.clone(), info)
        };
        self.planes.iter().map(view).collect()
    }

    /// Every data plane's endpoint and a client to it.
    pub fn clients(&self) -> Vec<(String, DataplaneControlClient<Channel>)> {
        let each = |p: &Plane| (p.endpoint.clone(), p.client.clone());
        self.planes.iter().map(each).collect()
    }

    /// What is known of every data plane.
    pub async fn info(&self) -> Vec<v1::DataplaneInfo> {
        let mut out = Vec::with_capacity(self.planes.len());
        for p in &self.planes {
            let seen = p.seen.lock().await.clone();
            out.push(v1::DataplaneInfo {
                endpoint: p.endpoint.clone(),
                acked_generation: seen.acked,
                reachable: seen.reachable,
                error: seen.error.unwrap_or_default(),
                shards: seen.shards,
                backend: seen.backend,
                pools: seen.pools,
                history: seen.history,
                http_port: seen.http_port,
                unsaved: seen.unsaved,
            });
        }
        out
    }

    /// Checks every data plane and re-syncs those behind, every `interval`,
    /// until the task is dropped.
    pub async fn resync_forever(self: Arc<Self>, store: Arc<Store>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let checks = self.planes.iter().map(|p| p.resync(&store));
            join_all(checks).await;
        }
    }
}

/// What a data plane holds, as far as the agent knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held<'a> {
    /// The history of its generation ("" for none, or a data plane that
    /// does not report histories).
    pub history: &'a str,
    /// Its generation (0: none pushed).
    pub generation: u64,
    /// The generation whose state the agent still holds as a delta base,
    /// if any.
    pub base: Option<u64>,
    /// Whether it acknowledged this agent's history before.
    pub fed: bool,
}

/// What to send a data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing: the agent has no state yet, or the data plane holds its
    /// newest generation.
    Nothing,
    /// The changes on top of generation `base` of this history.
    Delta {
        /// The generation the data plane holds.
        base: u64,
    },
    /// The full state.
    Full(Reason),
    /// Nothing, and report it lagging: another agent's history took it
    /// over after this agent fed it.
    TakenOver,
}

/// Why a data plane gets the full state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It holds no pushed state.
    Empty,
    /// It holds an older generation whose state the agent no longer has.
    Behind,
    /// It holds a higher generation of this history: the agent's state was
    /// restored from an older copy.
    Ahead,
    /// It holds another history that never was this agent's (a wiped or
    /// new state directory, or a data plane another agent fed).
    OtherHistory,
}

/// Decides what a data plane holding `held` gets when the agent's state is
/// generation `generation` of history `history` (see the [module
/// docs](self)).
pub fn plan(history: &str, generation: u64, held: &Held<'_>) -> Plan {
    if generation == 0 {
        return Plan::Nothing;
    }
    if held.generation == 0 {
        return Plan::Full(Reason::Empty);
    }
    // A data plane that reports no history (older than histories) is
    // compared by generation alone.
    let same = held.history == history || held.history.is_empty();
    if !same {
        return if held.fed {
            Plan::TakenOver
        } else {
            Plan::Full(Reason::OtherHistory)
        };
    }
    match held.generation.cmp(&generation) {
        std::cmp::Ordering::Equal => Plan::Nothing,
        std::cmp::Ordering::Greater => Plan::Full(Reason::Ahead),
        std::cmp::Ordering::Less if held.base == Some(held.generation) => Plan::Delta {
            base: held.generation,
        },
        std::cmp::Ordering::Less => Plan::Full(Reason::Behind),
    }
}

impl Plane {
    async fn push(&self, store: &Store, generation: u64) -> Option<v1::DataplaneLag> {
        let mut seen = self.seen.lock().await;
        let snapshot = store.snapshot();
        let held = Held {
            history: &seen.history,
            generation: seen.acked,
            base: seen.base.as_ref().map(|_| seen.acked),
            fed: seen.fed,
        };
        let plan = plan(store.history(), snapshot.generation, &held);
        let mut result = match plan {
            Plan::Nothing => return None,
            Plan::TakenOver => {
                let error = self.mark_taken_over(&mut seen);
                return Some(v1::DataplaneLag {
                    endpoint: self.endpoint.clone(),
                    error,
                });
            }
            Plan::Delta { .. } => self.send(&mut seen, store.history(), &snapshot, true).await,
            Plan::Full(reason) => {
                if reason != Reason::Empty && reason != Reason::Behind {
                    tracing::warn!(
                        endpoint = %self.endpoint,
                        held_history = %seen.history,
                        held_generation = seen.acked,
                        ?reason,
                        "sending the full state of generation {} of history {}",
                        snapshot.generation,
                        store.history()
                    );
                }
                self.send(&mut seen, store.history(), &snapshot, false)
                    .await
            }
        };
        if matches!(&result, Err(status) if status.code() == tonic::Code::Aborted) {
            tracing::info!(endpoint = %self.endpoint, "delta refused; sending the full state");
            result = self
                .send(&mut seen, store.history(), &snapshot, false)
                .await;
        }
        match result {
            Ok((acked, history)) => {
                seen.acked = acked;
                seen.fed |= history == store.history();
                seen.history = history;
                seen.base = (acked == snapshot.generation).then(|| snapshot.state.clone());
                seen.reachable = true;
                seen.error = None;
                tracing::info!(endpoint = %self.endpoint, generation = seen.acked, "data plane in sync");
                None
            }
            Err(status) => {
                let error = format!("{}: {}", code_name(status.code()), status.message());
                tracing::warn!(endpoint = %self.endpoint, generation, "push failed: {error}");
                seen.reachable = status.code() != tonic::Code::Unavailable;
                seen.error = Some(error.clone());
                Some(v1::DataplaneLag {
                    endpoint: self.endpoint.clone(),
                    error,
                })
            }
        }
    }

    /// Sends `snapshot` of `history`: as a delta from the acknowledged
    /// state when `delta` is allowed and that state is known, else in full.
    /// Returns the generation and history acknowledged.
    async fn send(
        &self,
        seen: &mut Seen,
        history: &str,
        snapshot: &Snapshot,
        delta: bool,
    ) -> Result<(u64, String), tonic::Status> {
        let base = seen.base.as_ref().filter(|_| delta && seen.acked > 0);
        let request = match base {
            Some(base) => ApplyRequest {
                generation: snapshot.generation,
                delta: Some((&Delta::between(base, &snapshot.state)).into()),
                base_generation: seen.acked,
                history: history.to_owned(),
                ..Default::default()
            },
            None => ApplyRequest {
                generation: snapshot.generation,
                full: Some(v1::DesiredState::from(&*snapshot.state)),
                history: history.to_owned(),
                ..Default::default()
            },
        };
        let mut client = self.client.clone();
        let mut request = tonic::Request::new(request);
        request.set_timeout(CALL_TIMEOUT);
        let reply = client.apply(request).await?.into_inner();
        Ok((reply.generation, reply.history))
    }

    /// Records that another agent's history is in force on this data plane
    /// (which this agent fed before); returns the error it reports. Logged
    /// once per takeover, not on every resync tick.
    fn mark_taken_over(&self, seen: &mut Seen) -> String {
        let error = format!(
            "taken over: it holds generation {} of history {}, another agent's (this agent fed it before); restart this agent to feed it again",
            seen.acked, seen.history
        );
        if seen.error.as_deref() != Some(error.as_str()) {
            tracing::warn!(endpoint = %self.endpoint, "not pushed: {error}");
        }
        seen.error = Some(error.clone());
        error
    }

    async fn resync(&self, store: &Store) {
        {
            // Held across the call: a push finishing meanwhile must not be
            // overwritten by the older generation this reply reports.
            let mut seen = self.seen.lock().await;
            let mut client = self.client.clone();
            let mut request = tonic::Request::new(DataplaneStatusRequest {});
            request.set_timeout(CALL_TIMEOUT);
            match client.status(request).await {
                Ok(reply) => {
                    let reply = reply.into_inner();
                    if seen.acked != reply.generation || seen.history != reply.history {
                        // Restarted, or fed by someone else: no known base.
                        seen.base = None;
                    }
                    seen.acked = reply.generation;
                    seen.history = reply.history;
                    seen.reachable = true;
                    seen.shards = reply.shards;
                    seen.backend = reply.backend;
                    seen.pools = reply.pools;
                    seen.http_port = reply.http_port;
                    seen.unsaved = reply.unsaved;
                    // Marked under the same lock as the history it is about,
                    // so a status call never shows the other history without
                    // the reason this agent no longer pushes to it.
                    if seen.fed && !seen.history.is_empty() && seen.history != store.history() {
                        self.mark_taken_over(&mut seen);
                    }
                }
                Err(status) => {
                    seen.reachable = false;
                    seen.error = Some(format!(
                        "{}: {}",
                        code_name(status.code()),
                        status.message()
                    ));
                    return;
                }
            }
        }
        let generation = store.snapshot().generation;
        if generation > 0 {
            self.push(store, generation).await;
        }
    }
}

fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "0f0f";

    fn held(history: &str, generation: u64, base: Option<u64>, fed: bool) -> Held<'_> {
        Held {
            history,
            generation,
            base,
            fed,
        }
    }

    #[test]
    fn the_same_history_gets_a_delta_or_nothing() {
        assert_eq!(
            plan(OURS, 8, &held(OURS, 7, Some(7), true)),
            Plan::Delta { base: 7 }
        );
        assert_eq!(plan(OURS, 8, &held(OURS, 8, Some(8), true)), Plan::Nothing);
        assert_eq!(
            plan(OURS, 8, &held(OURS, 5, None, true)),
            Plan::Full(Reason::Behind),
            "no base for generation 5"
        );
    }

    #[test]
    fn a_data_plane_ahead_gets_the_full_state_never_a_skip() {
        // The agent's state was restored from an older copy: the data plane
        // holds generation 12 of the same history, the agent 8.
        assert_eq!(
            plan(OURS, 8, &held(OURS, 12, None, false)),
            Plan::Full(Reason::Ahead)
        );
        assert_eq!(
            plan(OURS, 8, &held(OURS, 12, None, true)),
            Plan::Full(Reason::Ahead)
        );
    }

    #[test]
    fn another_history_gets_the_full_state_unless_it_took_over() {
        // A wiped state directory: a new history at generation 1, the data
        // plane still holding generation 40 of the old one.
        assert_eq!(
            plan(OURS, 1, &held("aaaa", 40, None, false)),
            Plan::Full(Reason::OtherHistory)
        );
        // This agent fed it, and another agent's history replaced ours.
        assert_eq!(plan(OURS, 9, &held("aaaa", 2, None, true)), Plan::TakenOver);
    }

    #[test]
    fn an_empty_data_plane_or_agent() {
        assert_eq!(
            plan(OURS, 3, &held("", 0, None, true)),
            Plan::Full(Reason::Empty)
        );
        assert_eq!(plan(OURS, 0, &held("aaaa", 7, None, false)), Plan::Nothing);
    }

    #[test]
    fn a_data_plane_without_histories_is_compared_by_generation() {
        assert_eq!(
            plan(OURS, 4, &held("", 3, Some(3), true)),
            Plan::Delta { base: 3 }
        );
        assert_eq!(plan(OURS, 4, &held("", 4, None, true)), Plan::Nothing);
        assert_eq!(
            plan(OURS, 4, &held("", 6, None, true)),
            Plan::Full(Reason::Ahead)
        );
    }
}
