//! The machine's network interfaces and their IPv4 addresses, from
//! `getifaddrs(3)`.

use std::ffi::CStr;
use std::io;
use std::net::Ipv4Addr;

use bootwave_protocol::config::MachineInterface;

/// One interface as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Name, index and IPv4 addresses with prefix lengths.
    pub machine: MachineInterface,
    /// `IFF_LOOPBACK` is set.
    pub loopback: bool,
}

/// Lists every interface that has a name and an index, with its IPv4
/// addresses (interfaces without one are listed with none), in the order
/// the kernel reports them.
pub fn interfaces() -> io::Result<Vec<Interface>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // Safety: `head` is a valid out-pointer; on success the list is freed
    // below with `freeifaddrs` and not used afterwards.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getifaddrs(&mut head) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out: Vec<Interface> = Vec::new();
    let mut cursor = head;
    while !cursor.is_null() {
        // Safety: `cursor` is a non-null node of the list `getifaddrs`
        // returned, alive until `freeifaddrs`.
        #[allow(unsafe_code)]
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_name.is_null() {
            continue;
        }
        // Safety: `ifa_name` is a NUL-terminated string owned by the list.
        #[allow(unsafe_code)]
        let name = unsafe { CStr::from_ptr(entry.ifa_name) };
        let Ok(name) = name.to_str() else { continue };
        // Safety: `ifa_name` is a valid NUL-terminated interface name.
        #[allow(unsafe_code)]
        let index = unsafe { libc::if_nametoindex(entry.ifa_name) };
        if index == 0 {
            continue;
        }
        let slot = match out.iter().position(|i| i.machine.index == index) {
            Some(at) => at,
            None => {
                out.push(Interface {
                    machine: MachineInterface {
                        name: name.to_owned(),
                        index,
                        addrs: Vec::new(),
                    },
                    loopback: false,
                });
                out.len() - 1
            }
        };
        let iface = &mut out[slot];
        iface.loopback |= entry.ifa_flags & libc::IFF_LOOPBACK as libc::c_uint != 0;
        if let Some(addr) = ipv4_of(entry.ifa_addr) {
            let prefix = ipv4_of(entry.ifa_netmask).map_or(32, |m| u32::from(m).count_ones());
            // `count_ones` of a u32 is at most 32.
            iface.machine.addrs.push((addr, prefix as u8));
        }
    }
    // Safety: `head` came from a successful `getifaddrs` and is freed once.
    #[allow(unsafe_code)]
    unsafe {
        libc::freeifaddrs(head)
    };
    Ok(out)
}

/// The IPv4 address in a `sockaddr`, if it is one.
fn ipv4_of(sa: *const libc::sockaddr) -> Option<Ipv4Addr> {
    if sa.is_null() {
        return None;
    }
    // Safety: a non-null `ifa_addr`/`ifa_netmask` points at a sockaddr
    // whose family field is readable.
    #[allow(unsafe_code)]
    let family = unsafe { (*sa).sa_family };
    if i32::from(family) != libc::AF_INET {
        return None;
    }
    // Safety: the family says this is a `sockaddr_in`; read it unaligned to
    // make no alignment assumption about the kernel's buffer.
    #[allow(unsafe_code)]
    let sin = unsafe { std::ptr::read_unaligned(sa.cast::<libc::sockaddr_in>()) };
    Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed_with_its_address() {
        let all = interfaces().expect("getifaddrs");
        let lo = all
            .iter()
            .find(|i| i.loopback)
            .expect("a loopback interface");
        assert!(lo.machine.index > 0);
        assert!(
            lo.machine
                .addrs
                .iter()
                .any(|&(ip, prefix)| ip == Ipv4Addr::LOCALHOST && prefix == 8),
            "{lo:?}"
        );
    }
}
