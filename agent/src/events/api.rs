//! The event and lease RPCs of the agent: `WatchEvents` (the fanned-in
//! stream, filtered by MAC) and `ListLeases` (every data plane asked, the
//! answers merged).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bootwave_proto::convert::{mac_field, net_field, parse_mac};
use bootwave_proto::v1::dataplane_control_client::DataplaneControlClient;
use bootwave_proto::v1::{self, ListLeasesRequest};
use bootwave_protocol::config::format_mac;
use futures_util::future::join_all;
use tokio::sync::{broadcast, mpsc, watch};
use tonic::Status;
use tonic::transport::Channel;

use super::Events;
use crate::service::EventStream;

/// How long one data plane may take to list its leases.
const LEASES_TIMEOUT: Duration = Duration::from_secs(10);
/// Events queued for one `WatchEvents` stream before the broadcast's own
/// buffer takes over.
const STREAM_QUEUE: usize = 256;

/// The stream of every event published from now on whose MAC is one of
/// `request.macs` (all when empty), until `closing` changes.
pub fn watch(
    events: &Events,
    request: &v1::WatchEventsRequest,
    mut closing: watch::Receiver<bool>,
) -> Result<EventStream<v1::BootEvent>, Status> {
    let macs: HashSet<[u8; 6]> = request
        .macs
        .iter()
        .enumerate()
        .map(|(i, m)| mac_field(&format!("macs[{i}]"), m).map_err(Status::from))
        .collect::<Result<_, _>>()?;
    let mut rx = events.subscribe();
    let (tx, out) = mpsc::channel(STREAM_QUEUE);
    tokio::spawn(async move {
        let mut missed = 0u64;
        loop {
            let received = tokio::select! {
                r = rx.recv() => r,
                () = tx.closed() => return,
                _ = closing.changed() => return,
            };
            let event = match received {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    missed += n;
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if !macs.is_empty() && !parse_mac(&event.mac).is_some_and(|m| macs.contains(&m)) {
                continue;
            }
            let mut event = Arc::unwrap_or_clone(event);
            event.missed_before += std::mem::take(&mut missed);
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out)))
}

/// Asks every data plane for its leases (normalised filters), stamps each
/// lease with its data plane, and merges them sorted by MAC; a data plane
/// that cannot answer is named in `errors`.
pub async fn list_leases(
    planes: Vec<(String, DataplaneControlClient<Channel>)>,
    request: ListLeasesRequest,
) -> Result<v1::ListLeasesReply, Status> {
    let mac = match request.mac.as_str() {
        "" => String::new(),
        text => format_mac(&mac_field("mac", text)?),
    };
    let subnet = match request.subnet.as_str() {
        "" => String::new(),
        text => net_field("subnet", text)?.to_string(),
    };
    let request = ListLeasesRequest { mac, subnet };
    let calls = planes.into_iter().map(|(endpoint, mut client)| {
        let mut call = tonic::Request::new(request.clone());
        call.set_timeout(LEASES_TIMEOUT);
        async move { (endpoint, client.list_leases(call).await) }
    });
    let mut reply = v1::ListLeasesReply::default();
    for (endpoint, result) in join_all(calls).await {
        match result {
            Ok(r) => reply
                .leases
                .extend(r.into_inner().leases.into_iter().map(|mut l| {
                    l.dataplane.clone_from(&endpoint);
                    l
                })),
            Err(s) => reply
                .errors
                .push(format!("{endpoint}: {:?}: {}", s.code(), s.message())),
        }
    }
    reply.leases.sort_by(|a, b| {
        (&a.mac, &a.dataplane, &a.address).cmp(&(&b.mac, &b.dataplane, &b.address))
    });
    Ok(reply)
}
