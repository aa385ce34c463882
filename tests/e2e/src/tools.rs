//! Locating the external programs the end-to-end tests drive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Debian packages that provide every tool the end-to-end tests and peer
/// benchmarks use. `tests/run` installs exactly these (a unit test keeps the
/// two lists in step).
pub const PACKAGES: &[&str] = &[
    "iproute2",
    "busybox",
    "isc-dhcp-client",
    "kea-admin",
    "kea-dhcp4-server",
    "dnsmasq-base",
    "atftp",
    "tftp-hpa",
    "tftpd-hpa",
    "curl",
    "tcpdump",
    "python3",
];

/// Directories searched after `PATH`: the sbin directories are often missing
/// from a test runner's `PATH` while `ip`, `dnsmasq` and `perfdhcp` live there.
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Absolute paths of required tools, as found by [`require_root_and_tools`].
#[derive(Debug, Clone)]
pub struct Tools {
    paths: BTreeMap<String, PathBuf>,
}

impl Tools {
    /// The absolute path of `name`.
    ///
    /// # Panics
    /// If `name` was not among the tools required when this value was made:
    /// that is a mistake in the test itself.
    pub fn path(&self, name: &str) -> &Path {
        match self.paths.get(name) {
            Some(path) => path,
            None => panic!("tool `{name}` was not listed in require_root_and_tools"),
        }
    }
}

/// Checks that the process runs as root and that every tool in `names` is
/// installed, and returns their paths.
///
/// # Panics
/// With a message naming what is missing and how to get it. A test that needs
/// namespaces or peer programs must fail loudly, never pass by skipping.
pub fn require_root_and_tools(names: &[&str]) -> Tools {
    if !rustix::process::geteuid().is_root() {
        panic!(
            "end-to-end tests need root (network namespaces, veth links, port 67); \
             run them through `tests/run` as root"
        );
    }
    let mut paths = BTreeMap::new();
    let mut missing = Vec::new();
    for &name in names {
        match find_tool(name) {
            Some(path) => {
                paths.insert(name.to_owned(), path);
            }
            None => missing.push(name),
        }
    }
    if !missing.is_empty() {
        panic!(
            "missing tools: {}; `tests/run` installs the Debian packages {}",
            missing.join(", "),
            PACKAGES.join(" ")
        );
    }
    Tools { paths }
}

/// Finds `name` in `PATH`, then in the usual bin and sbin directories.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The path of `ip`, falling back to the bare name so that a missing
/// iproute2 shows up as a spawn error naming `ip`.
pub(crate) fn ip_tool() -> PathBuf {
    find_tool("ip").unwrap_or_else(|| PathBuf::from("ip"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_run_installs_every_package() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../run");
        let text = std::fs::read_to_string(&script).expect("tests/run is readable");
        let line = text
            .lines()
            .find(|line| line.trim_start().starts_with("for p in "))
            .expect("tests/run has its `for p in …; do` package loop");
        let listed: Vec<&str> = line
            .trim_start()
            .trim_start_matches("for p in ")
            .split(';')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        for package in PACKAGES {
            assert!(
                listed.contains(package),
                "tests/run does not install {package}: {line}"
            );
        }
    }

    #[test]
    fn find_tool_finds_sh_and_not_nonsense() {
        let sh = find_tool("sh").expect("sh exists");
        assert!(sh.is_absolute());
        assert_eq!(find_tool("bwt-no-such-tool-7f3a"), None);
    }
}
