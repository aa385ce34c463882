//! The control path under test: [`Agent`] (`bootwave-agent` behind a unix
//! socket), [`ControlledDataplane`] (`bootwave-dataplane` with
//! `--control unix:PATH`, restartable on the same configuration) and
//! [`bootwave_cli`] (the `bootwave` command-line client).
//!
//! Every socket here is a unix socket in a directory the test owns; the
//! processes run inside the lab's server namespace.

use std::ffi::OsString;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::bootwave_config::{bootwave_toml, check_bootwave_toml};
use crate::child::ChildGuard;
use crate::error::{HarnessError, Result};
use crate::netns::Netns;
use crate::servers::{Backend, ServeSpec, bootwave_binary};
use crate::wait::wait_udp_bound;

/// How long a process gets to start listening.
const START_LIMIT: Duration = Duration::from_secs(10);
/// How long one `bootwave` command may run.
const CLI_LIMIT: Duration = Duration::from_secs(20);
/// Poll interval while waiting for a socket.
const POLL: Duration = Duration::from_millis(20);

/// A running `bootwave-agent`; stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct Agent {
    child: ChildGuard,
    socket: PathBuf,
}

/// What an [`Agent`] is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    /// `--state DIR`: the state database directory (kept across restarts).
    pub state_dir: PathBuf,
    /// `--listen unix:PATH`.
    pub socket: PathBuf,
    /// `--dataplane unix:PATH`, one per data plane.
    pub dataplanes: Vec<PathBuf>,
    /// `--resync-ms N`.
    pub resync_ms: u64,
}

impl Agent {
    /// Starts the agent inside `ns` and waits until its socket accepts
    /// connections.
    pub fn start(ns: &Netns, spec: &AgentSpec) -> Result<Self> {
        let mut args: Vec<OsString> = vec![
            "--state".into(),
            spec.state_dir.clone().into(),
            "--listen".into(),
            unix_endpoint(&spec.socket),
            "--resync-ms".into(),
            spec.resync_ms.to_string().into(),
        ];
        for plane in &spec.dataplanes {
            args.push("--dataplane".into());
            args.push(unix_endpoint(plane));
        }
        let mut child = ns.spawn(workspace_binary("bootwave-agent", AGENT_ENV)?, &args)?;
        wait_socket(&mut child, &spec.socket)?;
        Ok(Self {
            child,
            socket: spec.socket.clone(),
        })
    }

    /// The agent's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Kills the agent with SIGKILL and reaps it; returns its exit status.
    pub fn kill9(&mut self) -> Option<ExitStatus> {
        kill9(&mut self.child)
    }

    /// Runs `bootwave --agent unix:<socket> args…` to completion and
    /// returns its stdout; a failure quotes the CLI's and the agent's output.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        bootwave_cli(&self.socket, args).map_err(|e| HarnessError::Parse {
            what: e.to_string(),
            text: self.child.tail(),
        })
    }

    /// The last lines of the agent's output.
    pub fn tail(&self) -> String {
        self.child.tail()
    }
}

/// Runs `bootwave --agent unix:<agent> args…` (no token, no environment
/// override) and returns its stdout when it exits with status 0.
pub fn bootwave_cli(agent: &Path, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(workspace_binary("bootwave", CLI_ENV)?);
    cmd.env_remove("BOOTWAVE_AGENT")
        .env_remove("BOOTWAVE_TOKEN")
        .arg("--agent")
        .arg(unix_endpoint(agent))
        .args(args);
    ChildGuard::spawn(cmd)?.finish(CLI_LIMIT)
}

/// `bootwave-dataplane` serving a [`ServeSpec`] with `--control unix:PATH`;
/// stopped on drop. Its configuration directory (and so its lease journal)
/// lives as long as this value, across [`ControlledDataplane::restart`].
#[derive(Debug)]
pub struct ControlledDataplane {
    child: Option<ChildGuard>,
    config: PathBuf,
    control: PathBuf,
    backend: Backend,
    _config_dir: tempfile::TempDir,
}

impl ControlledDataplane {
    /// Writes the configuration for `spec`, starts the data plane inside
    /// `ns` and waits until port 67 is bound and the control socket accepts
    /// connections.
    pub fn start(ns: &Netns, spec: &ServeSpec, backend: Backend, control: &Path) -> Result<Self> {
        let config_dir = tempfile::Builder::new()
            .prefix("bwt-dataplane-")
            .tempdir()
            .map_err(|source| io_error("creating the data plane config directory", source))?;
        let text = bootwave_toml(spec, config_dir.path());
        std::fs::create_dir(config_dir.path().join("tftp"))
            .map_err(|source| io_error("creating the empty TFTP root", source))?;
        check_bootwave_toml(&text, config_dir.path())?;
        let config = config_dir.path().join("bootwave.toml");
        std::fs::write(&config, &text)
            .map_err(|source| io_error(&format!("writing {}", config.display()), source))?;
        let mut plane = Self {
            child: None,
            config,
            control: control.to_owned(),
            backend,
            _config_dir: config_dir,
        };
        plane.restart(ns)?;
        Ok(plane)
    }

    /// The configuration file the data plane reads (a bootwave TOML that
    /// `bootwave apply -f` accepts too).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Stops the running process (SIGTERM, then SIGKILL) if any, and starts
    /// a new one on the same configuration and control socket.
    pub fn restart(&mut self, ns: &Netns) -> Result<()> {
        self.stop();
        let args: Vec<OsString> = vec![
            "--config".into(),
            self.config.clone().into(),
            "--backend".into(),
            self.backend.arg().into(),
            "--log-format".into(),
            "human".into(),
            "--control".into(),
            unix_endpoint(&self.control),
        ];
        let mut child = ns.spawn(bootwave_binary()?, &args)?;
        let bound = wait_udp_bound(ns, 67, START_LIMIT).map_err(|e| HarnessError::Deadline {
            what: format!("{e}\n{}", child.tail()),
            limit: START_LIMIT,
        });
        let ready = bound.and_then(|()| wait_socket(&mut child, &self.control));
        self.child = Some(child);
        ready
    }

    /// Stops the data plane by its PID (SIGTERM, then SIGKILL after a grace
    /// period); returns its exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.child.take().and_then(|mut child| child.stop())
    }

    /// Kills the data plane with SIGKILL (no cleanup: its control socket
    /// file stays behind) and reaps it; [`Self::restart`] starts it again.
    pub fn kill9(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(kill9)
    }

    /// Sends SIGHUP to the running data plane (reload the configuration
    /// file and the TFTP root).
    pub fn sighup(&self) {
        if let Some(child) = &self.child {
            crate::child::signal(child.pid(), rustix::process::Signal::HUP);
        }
    }

    /// The process id of the data plane last started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildGuard::pid)
    }

    /// Everything the running data plane wrote to stderr (its log).
    pub fn log(&self) -> String {
        self.child
            .as_ref()
            .map(ChildGuard::stderr)
            .unwrap_or_default()
    }

    /// Everything the running data plane wrote to stdout (its start-up
    /// screen).
    pub fn screen(&self) -> String {
        self.child
            .as_ref()
            .map(ChildGuard::stdout)
            .unwrap_or_default()
    }

    /// The last lines of the running data plane's output.
    pub fn tail(&self) -> String {
        self.child
            .as_ref()
            .map(ChildGuard::tail)
            .unwrap_or_default()
    }
}

/// Environment variable naming the agent binary.
const AGENT_ENV: &str = "BOOTWAVE_AGENT_BINARY";
/// Environment variable naming the CLI binary.
const CLI_ENV: &str = "BOOTWAVE_CLI_BINARY";

/// The workspace binary `name`: `$env`, else
/// the newer of `<target>/{release,debug}/<name>` under `$CARGO_TARGET_DIR` or the
/// workspace's `target/` (built by `cargo build -p bootwave-agent`).
pub fn workspace_binary(name: &str, env: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    // The newer build of the two: a release binary left from an earlier
    // checkout must not shadow the debug one `cargo test` just built.
    ["release", "debug"]
        .iter()
        .map(|profile| target.join(profile).join(name))
        .filter_map(|path| Some((path.metadata().ok()?.modified().ok()?, path)))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, path)| path)
        .ok_or_else(|| HarnessError::Io {
            what: format!(
                "{name} not built under {} (run `cargo build -p bootwave-agent` or set {env})",
                target.display()
            ),
            source: std::io::ErrorKind::NotFound.into(),
        })
}

/// `unix:PATH`.
fn unix_endpoint(path: &Path) -> OsString {
    let mut s = OsString::from("unix:");
    s.push(path);
    s
}

/// Waits until `socket` accepts a connection while `child` runs.
fn wait_socket(child: &mut ChildGuard, socket: &Path) -> Result<()> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if UnixStream::connect(socket).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_status() {
            return Err(HarnessError::Command {
                command: child.command().to_owned(),
                status,
                output: child.tail(),
            });
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Deadline {
                what: format!(
                    "{} to accept connections\n{}",
                    socket.display(),
                    child.tail()
                ),
                limit: START_LIMIT,
            });
        }
        std::thread::sleep(POLL);
    }
}

/// SIGKILL, then reap.
fn kill9(child: &mut ChildGuard) -> Option<ExitStatus> {
    if let Some(status) = child.try_status() {
        return Some(status);
    }
    // Not reaped yet, so the PID is still this process's.
    crate::child::signal(child.pid(), rustix::process::Signal::KILL);
    child.wait_timeout(START_LIMIT).ok()
}

fn io_error(what: &str, source: std::io::Error) -> HarnessError {
    HarnessError::Io {
        what: what.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_endpoint_prefixes_the_path() {
        assert_eq!(
            unix_endpoint(Path::new("/tmp/x/agent.sock")),
            OsString::from("unix:/tmp/x/agent.sock")
        );
    }

    #[test]
    fn a_missing_binary_names_what_to_build() {
        let err =
            workspace_binary("bootwave-no-such-binary", "BWT_NO_SUCH_ENV").expect_err("not built");
        let text = err.to_string();
        assert!(text.contains("bootwave-no-such-binary not built"), "{text}");
        assert!(text.contains("cargo build -p bootwave-agent"), "{text}");
    }
}
