//! Pushing the desired state to the data planes.
//!
//! Each data plane gets the newest generation (`DataplaneControl.Apply`):
//! as a delta on top of the generation it acknowledged last when the agent
//! still holds that state, else as the full state (also when the data plane
//! refuses a delta with `ABORTED`, e.g. after it restarted). Pushes to one
//! data plane are serialised and a push never sends an older generation
//! than the one it acknowledged, so concurrent changes cannot roll a data
//! plane back. A background task asks every data plane for its generation
//! and re-sends the state to those that are behind (a restarted data plane
//! reports 0).

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
    /// The state of generation `acked`, when this agent sent it (the base
    /// of the next delta).
    base: Option<Arc<State>>,
    reachable: bool,
    error: Option<String>,
    shards: u32,
    backend: String,
    pools: Vec<v1::PoolUsage>,
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

impl Plane {
    async fn push(&self, store: &Store, generation: u64) -> Option<v1::DataplaneLag> {
        let mut seen = self.seen.lock().await;
        if seen.acked >= generation {
            return None;
        }
        let snapshot = store.snapshot();
        let mut result = self.send(&mut seen, &snapshot, true).await;
        if matches!(&result, Err(status) if status.code() == tonic::Code::Aborted) {
            tracing::info!(endpoint = %self.endpoint, "delta refused; sending the full state");
            result = self.send(&mut seen, &snapshot, false).await;
        }
        match result {
            Ok(acked) => {
                seen.acked = acked;
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

    /// Sends `snapshot`: as a delta from the acknowledged state when
    /// `delta` is allowed and that state is known, else in full. Returns
    /// the generation acknowledged.
    async fn send(
        &self,
        seen: &mut Seen,
        snapshot: &Snapshot,
        delta: bool,
    ) -> Result<u64, tonic::Status> {
        let base = seen.base.as_ref().filter(|_| delta && seen.acked > 0);
        let request = match base {
            Some(base) => ApplyRequest {
                generation: snapshot.generation,
                delta: Some((&Delta::between(base, &snapshot.state)).into()),
                base_generation: seen.acked,
                ..Default::default()
            },
            None => ApplyRequest {
                generation: snapshot.generation,
                full: Some(v1::DesiredState::from(&*snapshot.state)),
                ..Default::default()
            },
        };
        let mut client = self.client.clone();
        let mut request = tonic::Request::new(request);
        request.set_timeout(CALL_TIMEOUT);
        let reply = client.apply(request).await?;
        Ok(reply.into_inner().generation)
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
                    if seen.acked != reply.generation {
                        // Restarted, or fed by someone else: no known base.
                        seen.base = None;
                    }
                    seen.acked = reply.generation;
                    seen.reachable = true;
                    seen.shards = reply.shards;
                    seen.backend = reply.backend;
                    seen.pools = reply.pools;
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
