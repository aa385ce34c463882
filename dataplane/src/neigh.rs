//! Neighbour (ARP) entries for unicast replies to clients with no address.
//!
//! A DHCP reply to a client that has no address yet may be unicast to the
//! hardware address in `chaddr` (when the client did not set the broadcast
//! flag). The kernel only sends an IPv4 datagram once it knows the link
//! address, and left alone it would ARP for the offered address, which the
//! client cannot answer: one ARP broadcast per client, a flood when a fleet
//! boots. Writing the entry first, from `chaddr`, means the kernel never asks.
//!
//! The entry is written with `ATF_COM` but not `ATF_PERM`, so it enters the
//! table as `STALE` and ages out like a learnt one.

use std::ffi::CStr;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Why an entry could not be written or an interface not named.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NeighError {
    /// The control socket could not be opened.
    #[error("open ARP control socket: {0}")]
    Socket(#[source] io::Error),
    /// The process may not change the neighbour table (needs
    /// `CAP_NET_ADMIN`); reply by broadcast instead.
    #[error("not permitted to add ARP entries")]
    NotPermitted,
    /// The name is empty, longer than 15 bytes or holds a NUL.
    #[error("invalid interface name {0:?}")]
    BadInterfaceName(String),
    /// No interface has this name.
    #[error("no interface named {0:?}")]
    NoSuchInterface(String),
    /// No interface has this index.
    #[error("no interface with index {0}")]
    NoSuchIndex(u32),
    /// The kernel refused the entry for another reason.
    #[error("add ARP entry {ip} on {ifname}: {source}")]
    Ioctl {
        /// The interface named.
        ifname: String,
        /// The protocol address of the entry.
        ip: Ipv4Addr,
        /// The OS error.
        source: io::Error,
    },
}

/// Writes ARP entries through one long-lived control socket.
#[derive(Debug)]
pub struct NeighTable {
    socket: OwnedFd,
}

impl NeighTable {
    /// Opens the control socket (an unbound AF_INET datagram socket). The
    /// entries it writes go to the network namespace of the opening thread.
    pub fn new() -> Result<Self, NeighError> {
        #[allow(unsafe_code)]
        // Safety: plain syscall with constant arguments, no pointers.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(NeighError::Socket(io::Error::last_os_error()));
        }
        #[allow(unsafe_code)]
        // Safety: `fd` was just returned by socket(2), is valid and owned by
        // nothing else.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { socket })
    }

    /// Adds or replaces the entry `ip` → `mac` on `ifname` (`SIOCSARP`).
    pub fn add(&self, ifname: &str, ip: Ipv4Addr, mac: [u8; 6]) -> Result<(), NeighError> {
        let mut req = arp_request(ifname, ip, mac)?;
        #[allow(unsafe_code)]
        // Safety: SIOCSARP reads one `struct arpreq`; `req` is a live,
        // fully initialised arpreq and the fd is open while `self` lives.
        let rc = unsafe { libc::ioctl(self.socket.as_raw_fd(), libc::SIOCSARP as _, &raw mut req) };
        if rc == 0 {
            return Ok(());
        }
        let source = io::Error::last_os_error();
        Err(match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => NeighError::NotPermitted,
            Some(libc::ENODEV | libc::ENXIO) => NeighError::NoSuchInterface(ifname.to_owned()),
            _ => NeighError::Ioctl {
                ifname: ifname.to_owned(),
                ip,
                source,
            },
        })
    }
}

/// Adds the entry `ip` → `mac` on `ifname` with a one-off socket. A driver
/// adding many entries keeps a [`NeighTable`] instead.
pub fn add_arp_entry(ifname: &str, ip: Ipv4Addr, mac: [u8; 6]) -> Result<(), NeighError> {
    NeighTable::new()?.add(ifname, ip, mac)
}

/// The name of the interface with index `ifindex` (as received in
/// `IP_PKTINFO`), in the calling thread's network namespace.
pub fn ifname_of(ifindex: u32) -> Result<String, NeighError> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    #[allow(unsafe_code)]
    // Safety: `buf` is writable for IF_NAMESIZE bytes, the size
    // if_indextoname(3) requires.
    let name = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if name.is_null() {
        return Err(NeighError::NoSuchIndex(ifindex));
    }
    #[allow(unsafe_code)]
    // Safety: on success if_indextoname wrote a NUL-terminated name into
    // `buf`, which outlives the borrow.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
}

/// Builds the `struct arpreq` for a completed, non-permanent Ethernet entry.
fn arp_request(ifname: &str, ip: Ipv4Addr, mac: [u8; 6]) -> Result<libc::arpreq, NeighError> {
    let name = ifname.as_bytes();
    if name.is_empty() || name.len() >= libc::IF_NAMESIZE || name.contains(&0) {
        return Err(NeighError::BadInterfaceName(ifname.to_owned()));
    }
    let mut dev = [0 as libc::c_char; 16];
    for (d, s) in dev.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // `arp_pa` holds a sockaddr_in: port (2 bytes, zero), then the address.
    let mut pa = [0 as libc::c_char; 14];
    for (d, s) in pa[2..6].iter_mut().zip(ip.octets()) {
        *d = s as libc::c_char;
    }
    let mut ha = [0 as libc::c_char; 14];
    for (d, s) in ha.iter_mut().zip(mac) {
        *d = s as libc::c_char;
    }
    Ok(libc::arpreq {
        arp_pa: libc::sockaddr {
            sa_family: libc::AF_INET as libc::sa_family_t,
            sa_data: pa,
        },
        arp_ha: libc::sockaddr {
            sa_family: libc::ARPHRD_ETHER,
            sa_data: ha,
        },
        arp_flags: libc::ATF_COM,
        arp_netmask: libc::sockaddr {
            sa_family: 0,
            sa_data: [0; 14],
        },
        arp_dev: dev,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let req = arp_request(
            "eth0",
            Ipv4Addr::new(10, 0, 0, 9),
            [2, 0, 0, 0xaa, 0xbb, 0xff],
        )
        .unwrap();
        assert_eq!(req.arp_pa.sa_family, libc::AF_INET as libc::sa_family_t);
        let pa: Vec<u8> = req.arp_pa.sa_data.iter().map(|b| *b as u8).collect();
        assert_eq!(&pa[..6], &[0, 0, 10, 0, 0, 9]);
        assert_eq!(req.arp_ha.sa_family, libc::ARPHRD_ETHER);
        let ha: Vec<u8> = req.arp_ha.sa_data.iter().map(|b| *b as u8).collect();
        assert_eq!(&ha[..6], &[2, 0, 0, 0xaa, 0xbb, 0xff]);
        assert_eq!(req.arp_flags, libc::ATF_COM);
        let dev: Vec<u8> = req.arp_dev.iter().map(|b| *b as u8).collect();
        assert_eq!(&dev[..5], b"eth0\0");
    }

    #[test]
    fn bad_names_are_refused_before_the_kernel() {
        for name in ["", "sixteen-chars-xx", "eth\0"] {
            let err = arp_request(name, Ipv4Addr::LOCALHOST, [0; 6]).unwrap_err();
            assert!(matches!(err, NeighError::BadInterfaceName(n) if n == name));
        }
        assert!(arp_request("fifteen-chars-x", Ipv4Addr::LOCALHOST, [0; 6]).is_ok());
    }
}

/// Where the kernel's IPv4 neighbour-table limits live (per network
/// namespace, read in the caller's).
const GC_THRESH: &str = "/proc/sys/net/ipv4/neigh/default/gc_thresh";

/// The kernel's IPv4 neighbour-table limits `(gc_thresh1, gc_thresh2,
/// gc_thresh3)`: no garbage collection below the first, entries over the
/// second are collected after a few seconds, none can be added past the
/// third.
pub fn gc_thresholds() -> io::Result<[u64; 3]> {
    let mut out = [0; 3];
    for (i, v) in out.iter_mut().enumerate() {
        let path = format!("{GC_THRESH}{}", i + 1);
        let text = std::fs::read_to_string(&path)?;
        *v = text
            .trim()
            .parse()
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: {err}")))?;
    }
    Ok(out)
}

/// A warning when `clients` on-link clients (the served pools plus the
/// reserved hosts) can exceed what the neighbour table keeps: each one
/// that fetches files needs an entry, and past `gc_thresh3` the kernel
/// refuses new ones (replies then go out by broadcast, and TFTP stalls).
pub fn capacity_warning(clients: u64, thresholds: [u64; 3]) -> Option<String> {
    let [_, soft, hard] = thresholds;
    (clients > hard).then(|| {
        format!(
            "the pools hold {clients} addresses but the kernel keeps at most {hard} neighbours \
             (net.ipv4.neigh.default.gc_thresh3; gc_thresh2 = {soft}): raise them, e.g. with \
             assets/sysctl.d/60-bootwave-neighbours.conf"
        )
    })
}

/// How often [`NeighWarning`] writes a line.
const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// A warning, at most every ten seconds, about neighbour entries the kernel
/// refused (the replies were broadcast instead), with a count.
#[derive(Debug, Default)]
pub struct NeighWarning {
    last: Option<std::time::Instant>,
    since: u64,
}

impl NeighWarning {
    /// Notes one refused entry at `now`; writes the warning when due.
    pub fn note(&mut self, err: &NeighError, now: std::time::Instant) {
        self.since += 1;
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            return;
        }
        tracing::warn!(
            refused = self.since,
            error = %err,
            "neighbour entries refused, replies broadcast instead (is the table full? see gc_thresh3)"
        );
        self.last = Some(now);
        self.since = 0;
    }
}

#[cfg(test)]
mod capacity_tests {
    use super::*;

    #[test]
    fn a_warning_only_past_the_hard_limit() {
        assert_eq!(capacity_warning(1024, [128, 512, 1024]), None);
        let w = capacity_warning(5000, [128, 512, 1024]).expect("over the limit");
        assert!(
            w.contains("5000") && w.contains("1024") && w.contains("gc_thresh3"),
            "{w}"
        );
    }

    #[test]
    fn the_running_kernel_limits_read() {
        let [a, b, c] = gc_thresholds().expect("/proc/sys/net/ipv4/neigh/default readable");
        assert!(a <= b && b <= c, "{a} {b} {c}");
    }
}
