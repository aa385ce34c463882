//! UDP socket setup: reuseport groups, the chaddr steering program, GSO probe.

use std::io;
use std::mem::size_of;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use bootwave_protocol::shard::cbpf_program;
use socket2::{Domain, Protocol, Socket, Type};

use super::DriverError;

/// Default receive and send buffer size asked of the kernel (4 MiB).
const DEFAULT_BUFFER: usize = 4 << 20;

/// One listening address; every shard gets one socket for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    /// Address to bind, usually `0.0.0.0:67` or `0.0.0.0:69`.
    pub addr: SocketAddrV4,
    /// How the shards share the address.
    pub binding: Binding,
    /// `SO_BINDTODEVICE`: receive only from, and send only through, this
    /// interface.
    pub device: Option<String>,
    /// `SO_RCVBUF` in bytes (forced past `rmem_max` when privileged).
    pub recv_buffer: usize,
    /// `SO_SNDBUF` in bytes (forced past `wmem_max` when privileged).
    pub send_buffer: usize,
}

/// How the shards share a [`SocketSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// One `SO_REUSEPORT` group: all shards bind the same address. With port
    /// 0 the first socket picks a port and the others join it.
    Group(Steering),
    /// Each shard binds its own socket: port 0 stays ephemeral per shard, a
    /// non-zero port `p` becomes `p + shard`.
    PerShard,
}

/// Which socket of a reuseport group gets a unicast datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steering {
    /// The kernel's hash of the 4-tuple.
    Kernel,
    /// [`bootwave_protocol::shard::shard_of`] of the DHCP `chaddr`, through
    /// `SO_ATTACH_REUSEPORT_CBPF` (datagrams too short for `chaddr` fall back
    /// to the kernel's hash).
    Chaddr,
    /// Like [`Steering::Chaddr`], but `shard_of` over only the first `n`
    /// sockets of the group: the others still see broadcast clones, but no
    /// unicast is steered to them. For a data plane whose DHCP runs on
    /// fewer shards than its TFTP.
    ChaddrFirst(usize),
}

impl SocketSpec {
    /// A spec with default buffer sizes and no device binding.
    pub fn new(addr: SocketAddrV4, binding: Binding) -> Self {
        Self {
            addr,
            binding,
            device: None,
            recv_buffer: DEFAULT_BUFFER,
            send_buffer: DEFAULT_BUFFER,
        }
    }
}

/// Opens the sockets of `spec` for `shards` shards, in shard order.
///
/// For a group, all sockets are bound before the steering program is
/// attached, and socket `i` is the `i`-th of the group, so a program result
/// of `i` reaches shard `i`.
pub(crate) fn open_spec(spec: &SocketSpec, shards: usize) -> Result<Vec<UdpSocket>, DriverError> {
    let mut sockets = Vec::with_capacity(shards);
    match spec.binding {
        Binding::Group(steering) => {
            let mut addr = spec.addr;
            for _ in 0..shards {
                let socket = open_one(spec, addr, true)?;
                if addr.port() == 0 {
                    addr = local_v4(&socket, spec.addr)?;
                }
                sockets.push(socket);
            }
            let owners = match steering {
                Steering::Kernel => None,
                Steering::Chaddr => Some(shards),
                Steering::ChaddrFirst(n) => Some(n.clamp(1, shards.max(1))),
            };
            if let Some(owners) = owners
                && let Some(first) = sockets.first()
            {
                attach_chaddr_program(first, owners).map_err(|source| DriverError::Socket {
                    addr,
                    op: "SO_ATTACH_REUSEPORT_CBPF",
                    source,
                })?;
            }
        }
        Binding::PerShard => {
            for shard in 0..shards {
                let mut addr = spec.addr;
                if addr.port() != 0 {
                    let port = u16::try_from(usize::from(addr.port()) + shard)
                        .map_err(|_| DriverError::Config("per-shard port beyond 65535"))?;
                    addr.set_port(port);
                }
                sockets.push(open_one(spec, addr, false)?);
            }
        }
    }
    Ok(sockets)
}

/// The IPv4 address a socket is bound to.
pub(crate) fn local_v4(
    socket: &UdpSocket,
    wanted: SocketAddrV4,
) -> Result<SocketAddrV4, DriverError> {
    match socket.local_addr() {
        Ok(std::net::SocketAddr::V4(addr)) => Ok(addr),
        Ok(std::net::SocketAddr::V6(_)) => Err(DriverError::Config("IPv4 socket bound to IPv6")),
        Err(source) => Err(DriverError::Socket {
            addr: wanted,
            op: "getsockname",
            source,
        }),
    }
}

/// Whether the kernel accepts `UDP_SEGMENT` (UDP GSO, Linux 4.18+).
pub fn gso_supported() -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let mut value: libc::c_int = 0;
    getsockopt(
        socket.as_raw_fd(),
        libc::SOL_UDP,
        libc::UDP_SEGMENT,
        &mut value,
    )
    .is_ok()
}

fn open_one(
    spec: &SocketSpec,
    addr: SocketAddrV4,
    reuseport: bool,
) -> Result<UdpSocket, DriverError> {
    let fail = |op| move |source| DriverError::Socket { addr, op, source };
    let socket =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(fail("socket"))?;
    socket
        .set_reuse_address(true)
        .map_err(fail("SO_REUSEADDR"))?;
    if reuseport {
        socket.set_reuse_port(true).map_err(fail("SO_REUSEPORT"))?;
    }
    socket.set_broadcast(true).map_err(fail("SO_BROADCAST"))?;
    socket.set_nonblocking(true).map_err(fail("O_NONBLOCK"))?;
    let fd = socket.as_raw_fd();
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, &1 as &libc::c_int)
        .map_err(fail("IP_PKTINFO"))?;
    if let Some(device) = &spec.device {
        socket
            .bind_device(Some(device.as_bytes()))
            .map_err(fail("SO_BINDTODEVICE"))?;
    }
    set_buffer(fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, spec.recv_buffer)
        .map_err(fail("SO_RCVBUF"))?;
    set_buffer(fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, spec.send_buffer)
        .map_err(fail("SO_SNDBUF"))?;
    socket.bind(&addr.into()).map_err(fail("bind"))?;
    Ok(socket.into())
}

/// Sets a buffer size with the privileged option, falling back to the
/// ordinary one (capped by `net.core.{r,w}mem_max`).
pub(crate) fn set_buffer(
    fd: RawFd,
    forced: libc::c_int,
    plain: libc::c_int,
    bytes: usize,
) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    if setsockopt(fd, libc::SOL_SOCKET, forced, &value).is_ok() {
        return Ok(());
    }
    setsockopt(fd, libc::SOL_SOCKET, plain, &value)
}

fn attach_chaddr_program(socket: &UdpSocket, shards: usize) -> io::Result<()> {
    let shards = u32::try_from(shards).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut filter: Vec<libc::sock_filter> = cbpf_program(shards)
        .iter()
        .map(|insn| libc::sock_filter {
            code: insn.code,
            jt: insn.jt,
            jf: insn.jf,
            k: insn.k,
        })
        .collect();
    let program = libc::sock_fprog {
        len: u16::try_from(filter.len())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        filter: filter.as_mut_ptr(),
    };
    setsockopt(
        socket.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_ATTACH_REUSEPORT_CBPF,
        &program,
    )
}

/// `setsockopt` with a typed value.
pub(crate) fn setsockopt<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // Safety: `value` is a live, initialised `T` of exactly `len` bytes that
    // the kernel only reads during the call; `fd` is a socket we own.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setsockopt(fd, level, name, (value as *const T).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `getsockopt` into a typed value.
fn getsockopt<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &mut T,
) -> io::Result<()> {
    let mut len = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // Safety: `value` points to `len` writable bytes owned by the caller; the
    // kernel writes at most `len` bytes and updates `len`.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getsockopt(fd, level, name, (value as *mut T).cast(), &mut len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn group_on_port_zero_shares_one_port() {
        let spec = SocketSpec::new(
            "127.0.0.1:0".parse().unwrap(),
            Binding::Group(Steering::Chaddr),
        );
        let sockets = open_spec(&spec, 3).unwrap();
        let ports: Vec<u16> = sockets
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        assert_ne!(ports[0], 0);
        assert!(ports.iter().all(|&p| p == ports[0]), "{ports:?}");
    }

    #[test]
    fn per_shard_sockets_get_distinct_ports() {
        let spec = SocketSpec::new("127.0.0.1:0".parse().unwrap(), Binding::PerShard);
        let sockets = open_spec(&spec, 2).unwrap();
        let a = sockets[0].local_addr().unwrap().port();
        let b = sockets[1].local_addr().unwrap().port();
        assert_ne!(a, b);
    }

    #[test]
    fn pktinfo_is_enabled() {
        let spec = SocketSpec::new("127.0.0.1:0".parse().unwrap(), Binding::PerShard);
        let sockets = open_spec(&spec, 1).unwrap();
        let mut on: libc::c_int = 0;
        getsockopt(
            sockets[0].as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            &mut on,
        )
        .unwrap();
        assert_eq!(on, 1);
    }
}
