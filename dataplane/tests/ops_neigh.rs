//! ARP entries written with SIOCSARP inside a network namespace the test
//! creates (see `ops_support` for how a test thread enters one). Needs root.
#![allow(clippy::unwrap_used)]

mod ops_support;

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use bootwave_dataplane::neigh::{self, NeighError, NeighTable};
use ops_support::{Netns, ifindex};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 50);
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0x0c];

/// A namespace with veth `na` (10.78.0.1/24) ↔ `nb`, both up.
fn lan(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ip(&["link", "add", "na", "type", "veth", "peer", "name", "nb"]);
    ns.ip(&["addr", "add", "10.78.0.1/24", "dev", "na"]);
    ns.ip(&["link", "set", "na", "up"]);
    ns.ip(&["link", "set", "nb", "up"]);
    ns
}

fn neigh_line(ns: &Netns, ip: Ipv4Addr) -> String {
    ns.ip(&["neigh", "show", "dev", "na", "to", &ip.to_string()])
        .trim()
        .to_owned()
}

#[test]
fn entry_is_listed_with_its_mac_and_not_failed() {
    let ns = lan("nadd");
    assert_eq!(neigh_line(&ns, CLIENT), "");
    ns.run(|| NeighTable::new().unwrap().add("na", CLIENT, MAC).unwrap());
    let line = neigh_line(&ns, CLIENT);
    assert!(
        line.starts_with("10.78.0.50 lladdr 52:54:00:aa:bb:0c "),
        "{line}"
    );
    let state = line.rsplit(' ').next().unwrap();
    assert!(["STALE", "REACHABLE", "DELAY"].contains(&state), "{line}");
    assert!(!line.contains("PERMANENT"), "{line}");

    // Writing again replaces the link address; the one-off function works too.
    let other = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0x0d];
    ns.run(|| neigh::add_arp_entry("na", CLIENT, other).unwrap());
    let line = neigh_line(&ns, CLIENT);
    assert!(
        line.starts_with("10.78.0.50 lladdr 52:54:00:aa:bb:0d "),
        "{line}"
    );
}

#[test]
fn one_table_writes_many_entries() {
    let ns = lan("nmany");
    ns.run(|| {
        let table = NeighTable::new().unwrap();
        for host in 10..30u8 {
            let mac = [0x52, 0x54, 0, 0, 1, host];
            table
                .add("na", Ipv4Addr::new(10, 78, 0, host), mac)
                .unwrap();
        }
    });
    let listed = ns.ip(&["neigh", "show", "dev", "na"]);
    for host in 10..30u8 {
        let want = format!("10.78.0.{host} lladdr 52:54:00:00:01:{host:02x} ");
        assert!(listed.contains(&want), "{want} missing from {listed}");
    }
}

#[test]
fn unknown_or_invalid_interface_is_an_error() {
    let ns = lan("nbad");
    ns.run(|| {
        let table = NeighTable::new().unwrap();
        let err = table.add("nosuch0", CLIENT, MAC).unwrap_err();
        assert!(
            matches!(&err, NeighError::NoSuchInterface(n) if n == "nosuch0"),
            "{err}"
        );
        let err = table.add("much-too-long-name", CLIENT, MAC).unwrap_err();
        assert!(matches!(err, NeighError::BadInterfaceName(_)), "{err}");
    });
    assert_eq!(neigh_line(&ns, CLIENT), "");
}

#[test]
fn interface_index_to_name() {
    let ns = lan("nidx");
    let na = ifindex(&ns, "na");
    let names = ns.run(|| (neigh::ifname_of(1).unwrap(), neigh::ifname_of(na).unwrap()));
    assert_eq!(names, ("lo".to_owned(), "na".to_owned()));
    let err = ns.run(|| neigh::ifname_of(999_999).unwrap_err());
    assert!(matches!(err, NeighError::NoSuchIndex(999_999)), "{err}");
}

/// Frames seen on one interface through an `AF_PACKET` socket.
struct Capture {
    fd: OwnedFd,
}

/// What a captured frame says: destination MAC, EtherType, and for ARP the
/// target protocol address.
#[derive(Debug, PartialEq)]
struct Frame {
    dst: [u8; 6],
    ethertype: u16,
    arp_target: Option<Ipv4Addr>,
}

impl Capture {
    fn open(ifindex: u32) -> Self {
        let all = (libc::ETH_P_ALL as u16).to_be();
        #[allow(unsafe_code)]
        // Safety: plain syscall with constant arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(all),
            )
        };
        assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
        #[allow(unsafe_code)]
        // Safety: `fd` was just returned by socket(2) and is owned by no one.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        #[allow(unsafe_code)]
        // Safety: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = all;
        sll.sll_ifindex = ifindex as i32;
        #[allow(unsafe_code)]
        // Safety: `sll` is a live sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
        Self { fd }
    }

    /// Frames received within `wait` (IPv6 chatter left out).
    fn frames(&self, wait: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + wait;
        let mut frames = Vec::new();
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            #[allow(unsafe_code)]
            // Safety: `buf` is writable for its length; the fd is open.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let Ok(n) = usize::try_from(n) else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let frame = &buf[..n];
            let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
            if ethertype == 0x86dd {
                continue;
            }
            let arp_target = (ethertype == 0x0806 && n >= 42)
                .then(|| Ipv4Addr::new(frame[38], frame[39], frame[40], frame[41]));
            frames.push(Frame {
                dst: frame[..6].try_into().unwrap(),
                ethertype,
                arp_target,
            });
        }
        frames
    }
}

#[test]
fn unicast_to_an_entry_sends_no_arp_request() {
    let ns = lan("nwire");
    let nb = ifindex(&ns, "nb");
    let unknown = Ipv4Addr::new(10, 78, 0, 60);
    let frames = ns.run(|| {
        let capture = Capture::open(nb);
        NeighTable::new().unwrap().add("na", CLIENT, MAC).unwrap();
        let udp = UdpSocket::bind("10.78.0.1:0").unwrap();
        udp.send_to(b"offer", (CLIENT, 68)).unwrap();
        // Without an entry the kernel has to ask: the control case.
        udp.send_to(b"offer", (unknown, 68)).unwrap();
        capture.frames(Duration::from_millis(500))
    });
    let to_client: Vec<_> = frames.iter().filter(|f| f.dst == MAC).collect();
    assert_eq!(to_client.len(), 1, "{frames:?}");
    assert_eq!(to_client[0].ethertype, 0x0800);
    let asked: Vec<_> = frames.iter().filter_map(|f| f.arp_target).collect();
    assert!(asked.contains(&unknown), "no ARP for {unknown}: {frames:?}");
    assert!(!asked.contains(&CLIENT), "ARP for {CLIENT}: {frames:?}");
}
