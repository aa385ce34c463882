//! Network namespaces for the probe and neighbour tests.
//!
//! A test body runs inside a namespace on a thread of its own that has
//! `setns(2)`-ed into `/var/run/netns/<name>`: the network namespace is per
//! thread, so sockets that thread opens live in the namespace while the rest
//! of the test process stays outside. Namespaces are made with `ip netns`
//! (root needed; a test fails loudly without it) and deleted by name when
//! the guard drops, also when the test panics.
#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `bwt-<tag>-<pid>` with `lo` up. `tag` must be unique among
    /// the tests of one binary (they run in parallel in one process).
    pub fn new(tag: &str) -> Self {
        let name = format!("bwt-{tag}-{}", std::process::id());
        // A namespace left by a killed run of the same pid would make `add`
        // fail; removing it first is harmless when there is none.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <name> args…`, panics on failure, returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key_value: &str) {
        run(
            "ip",
            &["netns", "exec", &self.name, "sysctl", "-qw", key_value],
        );
    }

    /// Runs `body` on a thread inside the namespace and returns its result
    /// (a panic in `body` fails the test).
    pub fn run<T: Send>(&self, body: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                #[allow(unsafe_code)]
                // Safety: `file` is an open namespace file for the duration
                // of the call; setns changes only this thread's namespace.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                body()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// The ifindex of `ifname` in `ns`.
pub fn ifindex(ns: &Netns, ifname: &str) -> u32 {
    let out = ns.ip(&["-o", "link", "show", "dev", ifname]);
    let index = out.split(':').next().unwrap_or_default().trim();
    index
        .parse()
        .unwrap_or_else(|e| panic!("ifindex of {ifname} in {out:?}: {e}"))
}

/// Runs a command, panics with its stderr on failure, returns stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
