//! [`Netns`]: a named network namespace deleted on drop.

use std::ffi::OsStr;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::child::ChildGuard;
use crate::error::{HarnessError, Result};
use crate::naming::{kill_all_inside, sweep_once, unique_name};
use crate::tools::ip_tool;

/// Directory where `ip netns` keeps named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// Deadline for the `ip` commands that set namespaces and links up.
pub(crate) const IP_LIMIT: Duration = Duration::from_secs(10);

/// A network namespace owned by the current process.
///
/// Dropping it kills every process still inside and deletes it; the veth
/// ends and bridges inside go with it.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `bwt-<pid>-<n>-<label>` with its loopback up. The first call
    /// in a process also removes namespaces left by dead runs.
    pub fn create(label: &str) -> Result<Self> {
        check_label(label)?;
        sweep_once();
        let name = unique_name(label);
        run_ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside this namespace
    /// (`ip netns exec <name> <program>`); add arguments as usual.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(ip_tool());
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Starts `program args…` inside this namespace under a [`ChildGuard`].
    pub fn spawn<S: AsRef<OsStr>>(
        &self,
        program: impl AsRef<OsStr>,
        args: &[S],
    ) -> Result<ChildGuard> {
        let mut cmd = self.command(program);
        cmd.args(args);
        ChildGuard::spawn(cmd)
    }

    /// Runs `program args…` inside this namespace to completion within
    /// `limit` and returns its stdout; failure quotes its output.
    pub fn exec<S: AsRef<OsStr>>(
        &self,
        program: impl AsRef<OsStr>,
        args: &[S],
        limit: Duration,
    ) -> Result<String> {
        self.spawn(program, args)?.finish(limit)
    }

    /// Runs `ip -n <name> args…` and returns its stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(ip_tool());
        cmd.args(["-n", &self.name]).args(args);
        ChildGuard::spawn(cmd)?.finish(IP_LIMIT)
    }

    /// Adds `addr/prefix` to the interface `ifname` inside this namespace.
    pub fn add_addr(&self, ifname: &str, addr: Ipv4Addr, prefix: u8) -> Result<()> {
        self.ip(&["addr", "add", &format!("{addr}/{prefix}"), "dev", ifname])?;
        Ok(())
    }

    /// Sets the hardware address of `ifname` inside this namespace.
    pub fn set_mac(&self, ifname: &str, mac: [u8; 6]) -> Result<()> {
        let mac = mac.map(|b| format!("{b:02x}")).join(":");
        self.ip(&["link", "set", "dev", ifname, "address", &mac])?;
        Ok(())
    }

    /// Runs `f` on a thread that has entered this namespace and returns its
    /// result. Sockets `f` creates belong to this namespace for their whole
    /// life, so `f` may hand them back for use from any thread.
    pub fn run_inside<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let path = Path::new(NETNS_DIR).join(&self.name);
        let file = File::open(&path).map_err(|source| HarnessError::Io {
            what: format!("opening {}", path.display()),
            source,
        })?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    rustix::thread::move_into_link_name_space(
                        file.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .map_err(|e| HarnessError::Io {
                        what: format!("entering namespace {}", self.name),
                        source: e.into(),
                    })?;
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// PIDs of the processes whose network namespace this is.
    pub fn pids(&self) -> Result<Vec<u32>> {
        let out = run_ip(&["netns", "pids", &self.name])?;
        Ok(out
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_all_inside(&self.name);
        let _ = run_ip(&["netns", "del", &self.name]);
    }
}

/// Runs `ip args…` in the current namespace and returns its stdout.
pub(crate) fn run_ip(args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(ip_tool());
    cmd.args(args);
    ChildGuard::spawn(cmd)?.finish(IP_LIMIT)
}

fn check_label(label: &str) -> Result<()> {
    let bad = |reason| {
        Err(HarnessError::InvalidName {
            name: label.to_owned(),
            reason,
        })
    };
    if label.is_empty() || label.len() > 32 {
        return bad("a namespace label has 1 to 32 characters");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return bad("a namespace label uses only ASCII letters, digits, '-' and '_'");
    }
    Ok(())
}

/// Checks a network interface name: 1 to 15 bytes (IFNAMSIZ − 1), no '/',
/// no whitespace.
pub(crate) fn check_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        return Ok(());
    }
    Err(HarnessError::InvalidName {
        name: name.to_owned(),
        reason: "an interface name has 1 to 15 printable characters, none of '/' or ':'",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_interface_names_are_checked() {
        assert!(check_label("srv").is_ok());
        assert!(check_label("client_3-b").is_ok());
        assert!(check_label("").is_err());
        assert!(check_label("a b").is_err());
        assert!(check_ifname("veth0").is_ok());
        assert!(check_ifname("exactly15chars_").is_ok());
        assert!(check_ifname("sixteen-chars-xx").is_err());
        assert!(check_ifname("a/b").is_err());
    }
}
