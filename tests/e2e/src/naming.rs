//! Unique names for namespaces and the sweeper for those of dead runs.
//!
//! Every namespace is named `bwt-<pid>-<n>-<label>`, where `<pid>` is the
//! process that made it. The benchmark scripts in `benches/` use the same
//! scheme with their shell's PID, so one sweeper serves both: a `bwt-` name
//! whose PID no longer runs is left over from a crashed run and is removed.

use std::path::Path;
use std::process::Command;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::child::signal;
use crate::tools::ip_tool;

/// Prefix shared by every namespace the harness and the benchmarks create.
pub const PREFIX: &str = "bwt-";

/// Directory where `ip netns` keeps named namespaces.
const NETNS_DIR: &str = "/run/netns";

static COUNTER: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();

/// A fresh namespace name for this process: `bwt-<pid>-<n>-<label>`.
pub(crate) fn unique_name(label: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{}-{n}-{label}", std::process::id())
}

/// Removes stale namespaces once per process, before the first is made.
pub(crate) fn sweep_once() {
    SWEEP.call_once(|| {
        sweep_stale();
    });
}

/// Deletes every `bwt-<pid>-…` namespace whose `<pid>` is not a running
/// process, after killing whatever still runs inside it. Returns the names
/// removed.
pub fn sweep_stale() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = owner_pid(&name) else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        kill_all_inside(&name);
        let deleted = Command::new(ip_tool())
            .args(["netns", "del", &name])
            .output()
            .is_ok_and(|out| out.status.success());
        if deleted {
            removed.push(name);
        }
    }
    removed
}

/// The PID embedded in a harness namespace name, if `name` is one.
pub(crate) fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// SIGKILLs every process whose network namespace is `name`.
pub(crate) fn kill_all_inside(name: &str) {
    let Ok(out) = Command::new(ip_tool())
        .args(["netns", "pids", name])
        .output()
    else {
        return;
    };
    let pids = String::from_utf8_lossy(&out.stdout);
    for pid in pids
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
    {
        signal(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_harness_and_bench_names() {
        assert_eq!(owner_pid("bwt-1234-0-srv"), Some(1234));
        assert_eq!(owner_pid("bwt-99-client"), Some(99));
        assert_eq!(owner_pid("bwt-x-1-srv"), None);
        assert_eq!(owner_pid("other-1234-0"), None);
        assert_eq!(owner_pid("bwt-1234"), None);
    }

    #[test]
    fn unique_names_differ_and_carry_this_pid() {
        let a = unique_name("srv");
        let b = unique_name("srv");
        assert_ne!(a, b);
        assert_eq!(owner_pid(&a), Some(std::process::id()));
        assert!(a.ends_with("-srv"));
    }
}
