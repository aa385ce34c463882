//! The reflector: the least a DHCP and TFTP server can do for the boot
//! flow (an address per MAC, the boot file per client, files from memory,
//! windows sent back to back), so that a wave against it measures the
//! simulator's own ceiling on this machine.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::os::fd::AsRawFd;

use crate::dhcp;
use crate::net;

/// The address the reflector leases to the machine with this MAC: the
/// MAC's low 24 bits under 127.16.0.0/12.
pub fn lease_for(mac: [u8; 6]) -> Ipv4Addr {
    let low = u32::from_be_bytes([0, mac[3], mac[4], mac[5]]);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 16, 0, 0)) + low)
}

struct Sending {
    file: Arc<[u8]>,
    blksize: usize,
    window: u64,
    /// Blocks acknowledged so far.
    acked: u64,
    /// Waiting for ERROR 8 or ACK 0 after an OACK.
    after_oack: bool,
    oack: Option<Vec<u8>>,
    at: Instant,
}

impl Sending {
    fn blocks(&self) -> u64 {
        self.file.len() as u64 / self.blksize as u64 + 1
    }

    fn block(&self, n: u64) -> Vec<u8> {
        let start = ((n - 1) as usize * self.blksize).min(self.file.len());
        let end = (start + self.blksize).min(self.file.len());
        let mut p = Vec::with_capacity(4 + end - start);
        p.extend_from_slice(&[0, 3]);
        p.extend_from_slice(&(n as u16).to_be_bytes());
        p.extend_from_slice(&self.file[start..end]);
        p
    }
}

/// Runs the reflector on `server` (ports 67 and 69) until `stop`.
pub fn run(
    server: Ipv4Addr,
    files: HashMap<String, Arc<[u8]>>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let dhcp_sock = net::udp(SocketAddrV4::new(server, 67), false)?;
    let tftp_sock = net::udp(SocketAddrV4::new(server, 69), false)?;
    let mut poll = Poll::new()?;
    poll.registry().register(
        &mut SourceFd(&dhcp_sock.as_raw_fd()),
        Token(0),
        Interest::READABLE,
    )?;
    poll.registry().register(
        &mut SourceFd(&tftp_sock.as_raw_fd()),
        Token(1),
        Interest::READABLE,
    )?;
    let mut events = Events::with_capacity(16);
    let mut buf = vec![0u8; 2048];
    let mut transfers: HashMap<SocketAddrV4, Sending> = HashMap::new();
    let mut last_sweep = Instant::now();
    let mut more = false;
    while !stop.load(Ordering::Relaxed) {
        let wait = if more {
            Duration::ZERO
        } else {
            Duration::from_millis(50)
        };
        poll.poll(&mut events, Some(wait))?;
        more = false;
        loop {
            let (n, from) = match dhcp_sock.recv_from(&mut buf) {
                Ok(v) => v,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            };
            let Some(req) = dhcp::parse_request(&buf[..n]) else {
                continue;
            };
            let mut mac = [0; 6];
            mac.copy_from_slice(&req.msg.chaddr()[..6]);
            let file = if req.ipxe { "refind.pxe" } else { "ipxe.efi" };
            if let Some(reply) = dhcp::reflect(&req, lease_for(mac), server, file) {
                let to = if req.msg.giaddr().is_unspecified() {
                    from
                } else {
                    std::net::SocketAddr::from((req.msg.giaddr(), 67))
                };
                let _ = dhcp_sock.send_to(&reply, to);
            }
        }
        let mut now = Instant::now();
        // Bounded, so that DHCP is answered during heavy transfers.
        for round in 0.. {
            if round == 1024 {
                more = true;
                break;
            }
            if round % 64 == 0 {
                now = Instant::now();
            }
            let (n, from) = match tftp_sock.recv_from(&mut buf) {
                Ok(v) => v,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            };
            let std::net::SocketAddr::V4(from) = from else {
                continue;
            };
            on_tftp(&tftp_sock, &files, &mut transfers, from, &buf[..n], now);
        }
        if now.duration_since(last_sweep) > Duration::from_millis(200) {
            last_sweep = now;
            transfers.retain(|_, t| now.duration_since(t.at) < Duration::from_secs(10));
            for (to, t) in &mut transfers {
                if now.duration_since(t.at) > Duration::from_secs(1) {
                    t.at = now;
                    resend(&tftp_sock, *to, t);
                }
            }
        }
    }
    Ok(())
}

fn resend(sock: &UdpSocket, to: SocketAddrV4, t: &Sending) {
    if let (true, Some(oack)) = (t.after_oack, &t.oack) {
        let _ = sock.send_to(oack, to);
        return;
    }
    send_window(sock, to, t);
}

fn send_window(sock: &UdpSocket, to: SocketAddrV4, t: &Sending) {
    let last = (t.acked + t.window).min(t.blocks());
    for n in t.acked + 1..=last {
        let _ = sock.send_to(&t.block(n), to);
    }
}

fn on_tftp(
    sock: &UdpSocket,
    files: &HashMap<String, Arc<[u8]>>,
    transfers: &mut HashMap<SocketAddrV4, Sending>,
    from: SocketAddrV4,
    p: &[u8],
    now: Instant,
) {
    if p.len() < 4 {
        return;
    }
    match u16::from_be_bytes([p[0], p[1]]) {
        1 => {
            let mut parts = p[2..].split(|&b| b == 0);
            let name = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            let _mode = parts.next();
            let Some(file) = files.get(name.trim_start_matches('/')) else {
                let mut e = vec![0, 5, 0, 1];
                e.extend_from_slice(b"File not found\0");
                let _ = sock.send_to(&e, from);
                return;
            };
            let mut t = Sending {
                file: file.clone(),
                blksize: 512,
                window: 1,
                acked: 0,
                after_oack: false,
                oack: None,
                at: now,
            };
            let mut oack = vec![0, 6];
            while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
                let key = String::from_utf8_lossy(k).to_ascii_lowercase();
                let val: Option<u64> = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
                let answer = match (key.as_str(), val) {
                    ("blksize", Some(b)) => {
                        t.blksize = b.clamp(8, 1468) as usize;
                        Some(t.blksize as u64)
                    }
                    ("windowsize", Some(w)) => {
                        t.window = w.clamp(1, 64);
                        Some(t.window)
                    }
                    ("tsize", Some(_)) => Some(file.len() as u64),
                    _ => None,
                };
                if let Some(a) = answer {
                    oack.extend_from_slice(key.as_bytes());
                    oack.push(0);
                    oack.extend_from_slice(a.to_string().as_bytes());
                    oack.push(0);
                }
            }
            if oack.len() > 2 {
                t.after_oack = true;
                let _ = sock.send_to(&oack, from);
                t.oack = Some(oack);
            } else {
                send_window(sock, from, &t);
            }
            transfers.insert(from, t);
        }
        4 => {
            let Some(t) = transfers.get_mut(&from) else {
                return;
            };
            let block = u16::from_be_bytes([p[2], p[3]]);
            // The acknowledged block, in full, nearest to what was sent.
            let base = t.acked & !0xffff;
            let mut n = base | u64::from(block);
            if n + 0x8000 < t.acked {
                n += 0x1_0000;
            }
            if n < t.acked || n > t.acked + t.window {
                return;
            }
            t.after_oack = false;
            t.acked = n;
            t.at = now;
            if n >= t.blocks() {
                transfers.remove(&from);
                return;
            }
            send_window(sock, from, t);
        }
        5 => {
            transfers.remove(&from);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_follow_the_mac() {
        assert_eq!(
            lease_for([2, 0xb0, 0, 0, 1, 2]),
            Ipv4Addr::new(127, 16, 1, 2)
        );
        assert_eq!(
            lease_for([2, 0xb0, 0, 1, 0, 0]),
            Ipv4Addr::new(127, 17, 0, 0)
        );
    }
}
