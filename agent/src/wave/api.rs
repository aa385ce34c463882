//! The wave RPCs: choosing the hosts of a new wave, and streaming a wave's
//! updates.

use std::sync::Arc;
use std::time::Duration;

use bootwave_proto::convert::{State, mac_field};
use bootwave_proto::v1;
use bootwave_protocol::config::format_mac;
use tokio::sync::{mpsc, watch};
use tonic::Status;

use super::registry::{NewWave, WaveError, Waves};
use crate::service::EventStream;

/// Timeout of a wave whose request gives none.
pub const DEFAULT_TIMEOUT_S: u32 = 900;
/// Least time between two updates of one `WatchWave` stream.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// The hosts of `request` in `state`: those carrying every label given,
/// together with the MACs given.
pub fn select(state: &State, request: v1::StartWaveRequest) -> Result<NewWave, Status> {
    if request.labels.is_empty() && request.macs.is_empty() {
        return Err(Status::invalid_argument(
            "labels: give labels or macs to choose the hosts",
        ));
    }
    let mut hosts = std::collections::BTreeMap::new();
    if !request.labels.is_empty() {
        for h in state.hosts.values().filter(|h| {
            request
                .labels
                .iter()
                .all(|(k, v)| h.labels.get(k) == Some(v))
        }) {
            hosts.insert(h.mac, h.hostname.clone().unwrap_or_default());
        }
        if hosts.is_empty() {
            let mut wanted: Vec<String> = request
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            wanted.sort();
            return Err(Status::invalid_argument(format!(
                "labels: no host carries {}",
                wanted.join(",")
            )));
        }
    }
    for (i, text) in request.macs.iter().enumerate() {
        let field = format!("macs[{i}]");
        let mac = mac_field(&field, text)?;
        let host = state.hosts.get(&mac).ok_or_else(|| {
            Status::invalid_argument(format!("{field}: no host {}", format_mac(&mac)))
        })?;
        hosts.insert(mac, host.hostname.clone().unwrap_or_default());
    }
    let timeout_s = match request.timeout_s {
        0 => DEFAULT_TIMEOUT_S,
        s => s,
    };
    Ok(NewWave {
        name: request.name,
        timeout_ms: timeout_s.saturating_mul(1000),
        hosts: hosts.into_iter().collect(),
    })
}

/// The gRPC status of a failed wave call.
pub fn status(e: WaveError) -> Status {
    match e {
        e @ (WaveError::NotFound(_) | WaveError::NoWave) => Status::not_found(e.to_string()),
        e @ WaveError::TooMany(_) => Status::resource_exhausted(e.to_string()),
    }
}

/// The wave now, then again after each change (at most one update per
/// [`WATCH_INTERVAL`]), ending with the finished wave (or when `closing`
/// changes).
pub fn watch(
    waves: Arc<Waves>,
    request: &v1::WatchWaveRequest,
    mut closing: watch::Receiver<bool>,
) -> Result<EventStream<v1::Wave>, Status> {
    let (id, mut changes) = waves.subscribe(&request.id).map_err(status)?;
    let hosts = request.hosts;
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        loop {
            changes.borrow_and_update();
            let wave = match waves.get(&id, hosts) {
                Ok(w) => w,
                Err(e) => {
                    let _ = tx.send(Err(status(e))).await;
                    return;
                }
            };
            let finished = wave.finished;
            if tx.send(Ok(wave)).await.is_err() || finished {
                return;
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                () = tx.closed() => return,
                _ = closing.changed() => return,
            }
            tokio::time::sleep(WATCH_INTERVAL).await;
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}
