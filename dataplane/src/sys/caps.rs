//! Linux capabilities: the data plane keeps only what serving needs.
//!
//! [`restrict`] is called on the main thread before any other thread is
//! spawned. Capabilities are per thread and a new thread starts with its
//! creator's sets, so every shard, control, HTTP and helper thread then
//! holds at most [`KEPT`]: binding ports below 1024 (DHCP, TFTP, HTTP),
//! raw and packet sockets (ping check, ARP probes, router
//! advertisements), and writing ARP entries and forced socket buffer
//! sizes (`SIOCSARP`, `SO_RCVBUFFORCE`). Started by hand as root, the
//! process gives up everything else (file access beyond its owner's
//! permissions, `setuid`, module loading, …) before it reads the network.

use std::fmt;
use std::io;

/// `CAP_SETPCAP`: needed to shrink the bounding set.
const CAP_SETPCAP: u32 = 8;
/// `CAP_NET_BIND_SERVICE`: bind ports below 1024.
pub const CAP_NET_BIND_SERVICE: u32 = 10;
/// `CAP_NET_ADMIN`: ARP entries, forced socket buffer sizes.
pub const CAP_NET_ADMIN: u32 = 12;
/// `CAP_NET_RAW`: raw ICMP and packet sockets.
pub const CAP_NET_RAW: u32 = 13;

/// The capabilities the data plane keeps, as a mask of `1 << CAP_*`.
pub const KEPT: u64 = 1 << CAP_NET_BIND_SERVICE | 1 << CAP_NET_ADMIN | 1 << CAP_NET_RAW;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

/// Highest capability number tried when the kernel does not say
/// (`/proc/sys/kernel/cap_last_cap` unreadable).
const LAST_CAP_FALLBACK: u32 = 63;

/// The three capability sets of the calling thread, as masks of
/// `1 << CAP_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSets {
    /// What the thread may use now.
    pub effective: u64,
    /// What it may make effective again.
    pub permitted: u64,
    /// What an `execve` may pass on.
    pub inheritable: u64,
}

/// What [`restrict`] left and removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restricted {
    /// The sets in force afterwards.
    pub now: CapSets,
    /// Permitted capabilities given up.
    pub dropped: u64,
    /// Whether the bounding set was shrunk too (needs `CAP_SETPCAP`;
    /// without it the caller never held more than its bounding set).
    pub bounding_shrunk: bool,
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct Header {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The calling thread's capability sets.
pub fn current() -> io::Result<CapSets> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // Safety: `header` and the two-element `data` array are live and have
    // the layout the version-3 capget ABI reads and writes.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |low: u32, high: u32| u64::from(high) << 32 | u64::from(low);
    Ok(CapSets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

/// Keeps only the capabilities of `keep` (a mask of `1 << CAP_*`) that the
/// thread holds: they stay effective and permitted, everything else leaves
/// the effective, permitted, inheritable and ambient sets and, when the
/// thread may (`CAP_SETPCAP`), the bounding set, so no later `execve` can
/// regain it. Affects the calling thread and the threads it spawns later.
pub fn restrict(keep: u64) -> io::Result<Restricted> {
    let before = current()?;
    let mut bounding_shrunk = false;
    if before.effective & 1 << CAP_SETPCAP != 0 {
        for cap in (0..=last_cap()).filter(|cap| keep & 1 << cap == 0) {
            // Safety: prctl with integer arguments only.
            #[allow(unsafe_code)]
            let rc =
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
            if rc != 0 {
                let err = io::Error::last_os_error();
                // Past the kernel's last capability: nothing more to drop.
                if err.raw_os_error() == Some(libc::EINVAL) {
                    break;
                }
                return Err(err);
            }
        }
        bounding_shrunk = true;
    }
    // Safety: prctl with integer arguments only.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    // EINVAL: a kernel without ambient capabilities (before 4.3).
    if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
        return Err(io::Error::last_os_error());
    }
    let held = before.permitted & keep;
    set(CapSets {
        effective: held,
        permitted: held,
        inheritable: 0,
    })?;
    let now = current()?;
    Ok(Restricted {
        now,
        dropped: before.permitted & !now.permitted,
        bounding_shrunk,
    })
}

/// Sets the calling thread's three sets.
fn set(sets: CapSets) -> io::Result<()> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    // Truncation intended: each set is split into its low and high word.
    #[allow(clippy::cast_possible_truncation)]
    let word = |mask: u64, high: bool| (if high { mask >> 32 } else { mask }) as u32;
    let data = [false, true].map(|high| Data {
        effective: word(sets.effective, high),
        permitted: word(sets.permitted, high),
        inheritable: word(sets.inheritable, high),
    });
    // Safety: `header` and the two-element `data` array are live and have
    // the layout the version-3 capset ABI reads.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The kernel's highest capability number.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(LAST_CAP_FALLBACK)
}

/// A capability mask written as the names `capsh` uses
/// (`cap_net_bind_service,cap_net_admin`), unknown numbers as `cap_N`;
/// `none` when empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names(pub u64);

impl fmt::Display for Names {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 41] = [
            "chown",
            "dac_override",
            "dac_read_search",
            "fowner",
            "fsetid",
            "kill",
            "setgid",
            "setuid",
            "setpcap",
            "linux_immutable",
            "net_bind_service",
            "net_broadcast",
            "net_admin",
            "net_raw",
            "ipc_lock",
            "ipc_owner",
            "sys_module",
            "sys_rawio",
            "sys_chroot",
            "sys_ptrace",
            "sys_pacct",
            "sys_admin",
            "sys_boot",
            "sys_nice",
            "sys_resource",
            "sys_time",
            "sys_tty_config",
            "mknod",
            "lease",
            "audit_write",
            "audit_control",
            "setfcap",
            "mac_override",
            "mac_admin",
            "syslog",
            "wake_alarm",
            "block_suspend",
            "audit_read",
            "perfmon",
            "bpf",
            "checkpoint_restore",
        ];
        if self.0 == 0 {
            return f.write_str("none");
        }
        let mut first = true;
        for cap in (0..64).filter(|cap| self.0 & 1 << cap != 0) {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            match NAMES.get(cap) {
                Some(name) => write!(f, "cap_{name}")?,
                None => write!(f, "cap_{cap}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The `CapEff`/`CapPrm`/`CapInh`/`CapBnd`/`CapAmb` masks of the
    /// calling thread as the kernel reports them.
    fn status_masks() -> [u64; 5] {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        ["CapEff:", "CapPrm:", "CapInh:", "CapBnd:", "CapAmb:"].map(|key| {
            let line = status.lines().find(|l| l.starts_with(key)).unwrap();
            u64::from_str_radix(line[key.len()..].trim(), 16).unwrap()
        })
    }

    #[test]
    fn current_matches_what_the_kernel_reports() {
        let sets = current().unwrap();
        let [eff, prm, inh, _, _] = status_masks();
        assert_eq!(
            (sets.effective, sets.permitted, sets.inheritable),
            (eff, prm, inh)
        );
    }

    #[test]
    fn a_restricted_thread_holds_at_most_the_kept_set() {
        // Capabilities are per thread: only this test's own thread loses
        // them.
        std::thread::spawn(|| {
            let before = current().unwrap();
            let restricted = restrict(KEPT).unwrap();
            let [eff, prm, inh, bnd, amb] = status_masks();
            assert_eq!(eff, before.permitted & KEPT);
            assert_eq!(prm, before.permitted & KEPT);
            assert_eq!((inh, amb), (0, 0));
            assert_eq!(restricted.now.effective, eff);
            assert_eq!(restricted.dropped, before.permitted & !KEPT);
            if restricted.bounding_shrunk {
                assert_eq!(bnd & !KEPT, 0, "bounding set {bnd:x}");
            }
            // A second call changes nothing and drops nothing.
            let again = restrict(KEPT).unwrap();
            assert_eq!((again.now, again.dropped), (restricted.now, 0));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn names_follow_capsh() {
        assert_eq!(
            Names(KEPT).to_string(),
            "cap_net_bind_service,cap_net_admin,cap_net_raw"
        );
        assert_eq!(Names(0).to_string(), "none");
        assert_eq!(
            Names(1 << 1 | 1 << 50).to_string(),
            "cap_dac_override,cap_50"
        );
    }
}
