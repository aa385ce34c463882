//! The agent's Prometheus endpoint (`--metrics ADDR`, `GET /metrics`, text
//! format 0.0.4).
//!
//! Families:
//! - `bootwave_agent_generation`: the state's newest generation.
//! - `bootwave_agent_dataplane_acked_generation{dataplane}`,
//!   `bootwave_agent_dataplane_generation_lag{dataplane}` and
//!   `bootwave_agent_dataplane_reachable{dataplane}`: per data plane.
//! - `bootwave_agent_push_seconds`: histogram of the time from a committed
//!   change to the last data plane's acknowledgement;
//!   `bootwave_agent_push_incomplete_total`: pushes that some data plane did
//!   not acknowledge.
//! - `bootwave_agent_rpc_total{service,method,code}`: finished RPCs.
//! - `bootwave_agent_wave_hosts{stage}`: hosts of running waves per stage,
//!   from a [`WaveStages`] source.
//!
//! The scrape endpoint, the text writer and the histogram are the data
//! plane's ([`bootwave_daemon::metrics`]), so both binaries expose the
//! same way. Values are read when a scrape arrives; nothing here blocks an
//! RPC or a push.

mod latency;
mod rpc;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bootwave_daemon::metrics::{self, Exposition, MetricsError, MetricsServer, Render};

use crate::push::Dataplanes;
use crate::store::Store;

pub use latency::PushLatency;
pub use rpc::{CountedBody, RpcCounts, RpcLayer, RpcService};

/// Counts of hosts per wave stage, asked for at every scrape.
pub trait WaveStages: Send + Sync {
    /// `(stage name, hosts in that stage)` over the running waves.
    fn stage_counts(&self) -> Vec<(String, u64)>;
}

impl<F> WaveStages for F
where
    F: Fn() -> Vec<(String, u64)> + Send + Sync,
{
    fn stage_counts(&self) -> Vec<(String, u64)> {
        self()
    }
}

/// A [`WaveStages`] source with no waves.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWaves;

impl WaveStages for NoWaves {
    fn stage_counts(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}

/// Everything a scrape reads.
pub struct Sources {
    /// The desired state (its generation).
    pub store: Arc<Store>,
    /// The data planes (acknowledged generations, push latency).
    pub dataplanes: Arc<Dataplanes>,
    /// RPC counts, filled by [`RpcLayer`].
    pub rpc: Arc<RpcCounts>,
    /// Wave stage counts.
    pub waves: Arc<dyn WaveStages>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

/// What was last read of a data plane whose lock was busy at a scrape (a
/// push in flight holds it).
#[derive(Debug, Clone, Copy, Default)]
struct PlaneValues {
    acked: u64,
    reachable: bool,
}

/// Serves `GET /metrics` for `sources` on `addr` from its own thread.
pub fn serve(addr: SocketAddr, sources: Sources) -> Result<MetricsServer, MetricsError> {
    let last: Mutex<HashMap<String, PlaneValues>> = Mutex::default();
    let render: Render = Arc::new(move |out: &mut String| render(&sources, &last, out));
    metrics::serve(addr, render)
}

/// Writes every family of `sources` into `out`.
fn render(sources: &Sources, last: &Mutex<HashMap<String, PlaneValues>>, out: &mut String) {
    let mut exp = Exposition::new(out);
    let generation = sources.store.snapshot().generation;
    exp.gauge(
        "bootwave_agent_generation",
        "Newest generation of the desired state.",
        &[],
        generation,
    );
    planes(&mut exp, sources, last, generation);
    sources.dataplanes.latency().render(&mut exp);
    sources.rpc.render(&mut exp);
    exp.header(
        "bootwave_agent_wave_hosts",
        "Hosts of running reboot waves, per stage.",
        metrics::MetricKind::Gauge,
    );
    for (stage, count) in sources.waves.stage_counts() {
        exp.sample("bootwave_agent_wave_hosts", &[("stage", &stage)], count);
    }
}

fn planes(
    exp: &mut Exposition<'_>,
    sources: &Sources,
    last: &Mutex<HashMap<String, PlaneValues>>,
    generation: u64,
) {
    // A poisoned cache only means an earlier scrape panicked; its values
    // are still plain numbers.
    let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
    for (endpoint, info) in sources.dataplanes.try_info() {
        let values = match info {
            Some(info) => {
                let v = PlaneValues {
                    acked: info.acked_generation,
                    reachable: info.reachable,
                };
                last.insert(endpoint.clone(), v);
                v
            }
            None => last.get(&endpoint).copied().unwrap_or_default(),
        };
        let labels = [("dataplane", endpoint.as_str())];
        exp.gauge(
            "bootwave_agent_dataplane_acked_generation",
            "Newest generation the data plane acknowledged.",
            &labels,
            values.acked,
        );
        exp.gauge(
            "bootwave_agent_dataplane_generation_lag",
            "Generations the data plane is behind the desired state.",
            &labels,
            generation.saturating_sub(values.acked),
        );
        exp.gauge(
            "bootwave_agent_dataplane_reachable",
            "1 when the data plane answered its last call.",
            &labels,
            u64::from(values.reachable),
        );
    }
}
