//! Following one data plane's boot events, for as long as the agent runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bootwave_proto::v1::WatchEventsRequest;
use bootwave_proto::v1::dataplane_control_client::DataplaneControlClient;
use tonic::transport::Channel;

use super::Events;

/// First wait before subscribing again.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait before subscribing again.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A subscription that lived this long resets the backoff.
const HEALTHY: Duration = Duration::from_secs(10);

/// Subscribes to `WatchEvents` of the data plane at `endpoint` and publishes
/// each event, stamped with the endpoint, into `events`. When the stream
/// ends or fails (data plane restarted, unreachable), subscribes again after
/// a backoff doubling from 100 ms to 5 s. Runs until the task is dropped.
pub async fn follow(
    endpoint: String,
    mut client: DataplaneControlClient<Channel>,
    events: Arc<Events>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let since = Instant::now();
        let mut delivered = 0u64;
        match client.watch_events(WatchEventsRequest::default()).await {
            Ok(stream) => {
                tracing::info!(%endpoint, "following boot events");
                let mut stream = stream.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(mut event)) => {
                            event.dataplane.clone_from(&endpoint);
                            events.publish(event);
                            delivered += 1;
                        }
                        Ok(None) => {
                            tracing::info!(%endpoint, delivered, "boot event stream ended");
                            break;
                        }
                        Err(status) => {
                            tracing::info!(%endpoint, delivered, "boot event stream broke: {status}");
                            break;
                        }
                    }
                }
            }
            Err(status) => {
                tracing::debug!(%endpoint, "subscribing to boot events: {status}");
            }
        }
        if since.elapsed() >= HEALTHY {
            backoff = BACKOFF_MIN;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
