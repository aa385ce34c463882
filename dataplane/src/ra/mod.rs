//! The Router Advertisement responder: one small thread that answers IPv6
//! Router Solicitations on the served interfaces with the minimal
//! advertisement of [`bootwave_protocol::ra`], so iPXE stops waiting for
//! IPv6 autoconfiguration (about 13 s per boot without one).
//!
//! The thread owns one raw ICMPv6 socket (kernel filter: types 133 and
//! 134), joined to the all-routers group on every served interface. Each
//! message goes to the [`Responder`] with its ingress interface and hop
//! limit; messages from other interfaces are dropped there, so nothing is
//! ever sent on an interface that is not served. Advertisements leave from
//! the interface's link-local address (the kernel's choice for a
//! link-scope destination) with hop limit 255. The socket's read timeout
//! bounds every wait, so the thread sees the stop flag and deferred
//! multicasts within [`TICK`].

mod socket;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bootwave_protocol::config::{RouterAdvertisements, ServedInterface};
use bootwave_protocol::ra::{Outcome, ROUTER_ADVERTISEMENT, ROUTER_SOLICITATION, Responder};

pub use socket::{ALL_ROUTERS, Icmp6Socket};

/// Longest sleep of the responder thread between checks of its stop flag
/// and its deferred advertisements.
pub const TICK: Duration = Duration::from_millis(100);

/// The running responder; stops and joins its thread on drop.
#[derive(Debug)]
pub struct RaHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for RaHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the responder on `served` when `mode` asks for it and there is
/// an interface to serve; a system that refuses the socket is logged, not
/// fatal (boots still work, iPXE just waits longer).
pub fn start(mode: RouterAdvertisements, served: &[ServedInterface]) -> Option<RaHandle> {
    if mode == RouterAdvertisements::Off || served.is_empty() {
        return None;
    }
    match spawn(served) {
        Ok(handle) => Some(handle),
        Err(err) => {
            tracing::warn!(error = %err, "router advertisements unavailable: iPXE will wait for IPv6 autoconfiguration");
            None
        }
    }
}

/// Opens the socket, joins the all-routers group on every served interface
/// and starts the thread.
pub fn spawn(served: &[ServedInterface]) -> io::Result<RaHandle> {
    let socket = Icmp6Socket::open(&[ROUTER_SOLICITATION, ROUTER_ADVERTISEMENT], TICK)?;
    let mut links = Vec::with_capacity(served.len());
    for iface in served {
        socket.join(ALL_ROUTERS, iface.index)?;
        links.push((iface.index, socket.link_addr(&iface.name)));
        tracing::info!(interface = %iface.name, "ra: answering router solicitations (lifetime 0, no prefix)");
    }
    let names: Vec<(u32, String)> = served.iter().map(|i| (i.index, i.name.clone())).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("bootwave-ra".to_owned())
        .spawn(move || serve(&socket, Responder::new(links), &names, &flag))?;
    Ok(RaHandle {
        stop,
        thread: Some(thread),
    })
}

fn serve(
    socket: &Icmp6Socket,
    mut responder: Responder,
    names: &[(u32, String)],
    stop: &AtomicBool,
) {
    let name_of = |ifindex: u32| {
        names
            .iter()
            .find(|(i, _)| *i == ifindex)
            .map_or("?", |(_, n)| n.as_str())
    };
    let mut buf = [0u8; 1500];
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match socket.recv(&mut buf) {
            Ok(Some((len, meta))) => {
                let outcome = responder.handle(Instant::now(), &meta, &buf[..len], &mut out);
                match outcome {
                    Outcome::OtherRouter(router) if buf[0] == ROUTER_ADVERTISEMENT => {
                        tracing::warn!(interface = name_of(meta.ifindex), %router, "ra: another IPv6 router advertises here; no more router advertisements on this interface");
                    }
                    Outcome::Answered | Outcome::Deferred => {
                        tracing::debug!(interface = name_of(meta.ifindex), src = %meta.src, ?outcome, "ra: router solicitation");
                    }
                    Outcome::NotServed => {}
                    other => {
                        tracing::debug!(ifindex = meta.ifindex, src = %meta.src, outcome = ?other, "ra: dropped")
                    }
                }
            }
            Ok(None) => {}
            Err(err) => {
                tracing::debug!(error = %err, "ra: receive failed");
                std::thread::sleep(TICK);
            }
        }
        responder.handle_timeout(Instant::now(), &mut out);
        for tx in out.drain(..) {
            if let Err(err) = socket.send(tx.ifindex, tx.dst, tx.payload()) {
                tracing::debug!(interface = name_of(tx.ifindex), dst = %tx.dst, error = %err, "ra: send failed");
            }
        }
    }
}
