//! `WatchEvents`: the event bus as a gRPC stream, filtered by MAC.
//!
//! Each stream is one task that reads its own bus subscription, converts
//! the events it wants and forwards them through a small channel. When the
//! client reads slowly the channel fills, the task waits, and the bus
//! (never the shards) drops the oldest events for this subscriber; the
//! next event sent carries how many were missed (`missed_before`, counted
//! over every event missed, whatever the filter).

use std::net::Ipv4Addr;
use std::time::UNIX_EPOCH;

use bootwave_proto::v1::{
    self, BootEvent, DhcpEvent, TftpEvent, boot_event, http_event, tftp_event,
};
use bootwave_protocol::config::format_mac;
use bootwave_protocol::dhcp::{DropReason, Event, MessageType, Verdict};
use bootwave_protocol::tftp::TransferEvent;
use tokio::sync::{broadcast, mpsc, watch};
use tonic::Status;

use crate::events::{BusEvent, EventKind, Subscriber};
use crate::http::{HttpEvent, HttpPhase};

/// Converted events waiting for the client, per stream.
const STREAM_BUFFER: usize = 64;

/// The stream type of `WatchEvents`.
pub(super) type EventStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<BootEvent, Status>> + Send>>;

/// The MACs a request asks for (empty: all), or which one is not a MAC.
pub(super) fn parse_macs(macs: &[String]) -> Result<Vec<[u8; 6]>, Status> {
    macs.iter()
        .enumerate()
        .map(|(i, text)| {
            bootwave_proto::convert::parse_mac(text).ok_or_else(|| {
                Status::invalid_argument(format!("macs[{i}]: `{text}` is not a MAC address"))
            })
        })
        .collect()
}

/// A stream of the events of `macs` (all when empty) read from `events`,
/// ending when the client goes away or `stop` turns true.
pub(super) fn stream(
    mut events: Subscriber,
    macs: Vec<[u8; 6]>,
    mut stop: watch::Receiver<bool>,
) -> EventStream {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(async move {
        let mut missed = 0u64;
        loop {
            let received = tokio::select! {
                received = events.recv() => received,
                _ = stop.wait_for(|stopped| *stopped) => return,
            };
            let event = match received {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    missed += n;
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if !macs.is_empty() && !event.mac().is_some_and(|mac| macs.contains(&mac)) {
                continue;
            }
            let mut boot = to_proto(&event);
            boot.missed_before = std::mem::take(&mut missed);
            if tx.send(Ok(boot)).await.is_err() {
                return;
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// The wire form of one event (`dataplane` is left for the agent).
pub(super) fn to_proto(event: &BusEvent) -> BootEvent {
    let time_unix_us = event
        .time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    let mac = event.mac().map(|m| format_mac(&m)).unwrap_or_default();
    let (client, kind) = match &event.kind {
        EventKind::Dhcp(e) => (address(e.addr), boot_event::Kind::Dhcp(dhcp(e))),
        EventKind::Tftp(e) => (e.client().to_string(), boot_event::Kind::Tftp(tftp(e))),
        EventKind::Http(e) => (e.client.to_string(), boot_event::Kind::Http(http(e))),
    };
    BootEvent {
        time_unix_us,
        mac,
        client,
        dataplane: String::new(),
        missed_before: 0,
        kind: Some(kind),
    }
}

fn address(addr: Option<Ipv4Addr>) -> String {
    addr.map(|a| a.to_string()).unwrap_or_default()
}

fn dhcp(e: &Event) -> DhcpEvent {
    let (reply, drop_reason) = match e.verdict {
        Verdict::Offered => ("OFFER", String::new()),
        Verdict::Acked | Verdict::Informed => ("ACK", String::new()),
        Verdict::Nacked(_) => ("NAK", String::new()),
        Verdict::BootReply => ("BOOTREPLY", String::new()),
        Verdict::Released | Verdict::Declined | Verdict::Probing => ("", String::new()),
        Verdict::Dropped(reason) => ("", format!("{reason:?}")),
    };
    DhcpEvent {
        message: message_name(e).to_owned(),
        reply: reply.to_owned(),
        arch: e.arch.map(|a| u32::from(a.0)),
        user_class: e.user_class_text().into_owned(),
        ipxe_encap: e.ipxe_encap,
        vendor_class: String::from_utf8_lossy(e.vendor_class.as_bytes()).into_owned(),
        filename: String::from_utf8_lossy(e.boot_file.as_bytes()).into_owned(),
        address: address(e.addr),
        drop_reason,
        xid: e.xid,
    }
}

/// Option 53 by name; `BOOTP` without one, empty when the message was
/// dropped before its type was read.
fn message_name(e: &Event) -> &'static str {
    match e.message {
        Some(MessageType::Discover) => "DISCOVER",
        Some(MessageType::Offer) => "OFFER",
        Some(MessageType::Request) => "REQUEST",
        Some(MessageType::Decline) => "DECLINE",
        Some(MessageType::Ack) => "ACK",
        Some(MessageType::Nak) => "NAK",
        Some(MessageType::Release) => "RELEASE",
        Some(MessageType::Inform) => "INFORM",
        None => match e.verdict {
            Verdict::Dropped(
                DropReason::Truncated
                | DropReason::Oversized
                | DropReason::BadOp
                | DropReason::BadHlen
                | DropReason::BadCookie
                | DropReason::OptionOverrun
                | DropReason::BadOverload
                | DropReason::NestedOverload
                | DropReason::NotRequest
                | DropReason::UnsupportedHardware
                | DropReason::NotOurShard
                | DropReason::UnknownMessageType
                | DropReason::StaleProbe
                | DropReason::BadChaddr,
            ) => "",
            _ => "BOOTP",
        },
    }
}

fn http(e: &HttpEvent) -> v1::HttpEvent {
    let ms = |d: std::time::Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    let (kind, bytes, duration_ms, error) = match &e.phase {
        HttpPhase::Started => (http_event::Kind::Started, 0, 0, String::new()),
        HttpPhase::Completed { duration } => (
            http_event::Kind::Completed,
            e.size,
            ms(*duration),
            String::new(),
        ),
        HttpPhase::Failed {
            bytes,
            duration,
            error,
        } => {
            let error = if *bytes == 0 && e.size == 0 {
                format!("{} {error}", e.status.code())
            } else {
                format!("{error} after {bytes} of {} bytes", e.size)
            };
            (http_event::Kind::Failed, *bytes, ms(*duration), error)
        }
    };
    v1::HttpEvent {
        kind: kind.into(),
        file: e.path.to_string(),
        size: e.size,
        bytes,
        duration_ms,
        status: u32::from(e.status.code()),
        error,
    }
}

fn tftp(e: &TransferEvent) -> TftpEvent {
    match e {
        TransferEvent::Started(s) => TftpEvent {
            kind: tftp_event::Kind::Started.into(),
            file: s.file.to_string(),
            size: s.size,
            blksize: u32::from(s.blksize),
            windowsize: u32::from(s.windowsize),
            ..TftpEvent::default()
        },
        TransferEvent::Ended(end) => {
            let (kind, error) = if end.outcome.is_completed() {
                (tftp_event::Kind::Completed, String::new())
            } else {
                (tftp_event::Kind::Failed, end.outcome.to_string())
            };
            TftpEvent {
                kind: kind.into(),
                file: end.file.to_string(),
                size: end.size,
                bytes: end.bytes_acked,
                retransmits: end.retransmits,
                duration_ms: u32::try_from(end.duration.as_millis()).unwrap_or(u32::MAX),
                error,
                ..TftpEvent::default()
            }
        }
    }
}
