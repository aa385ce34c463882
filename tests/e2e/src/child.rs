//! [`ChildGuard`]: a spawned process that is always stopped and reaped.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::error::{HarnessError, Result};

/// How long a process gets to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// Poll interval while waiting for a process to exit.
const POLL: Duration = Duration::from_millis(20);
/// Lines of each output stream quoted in failure messages.
const TAIL_LINES: usize = 30;

/// A child process that is stopped (SIGTERM, then SIGKILL) and reaped when
/// dropped, even during a panic. Its stdout and stderr go to files so a full
/// pipe never blocks it; their tails are quoted in failure messages.
#[derive(Debug)]
pub struct ChildGuard {
    command: String,
    child: Child,
    status: Option<ExitStatus>,
    logs: tempfile::TempDir,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin closed and both output streams captured.
    pub fn spawn(mut cmd: Command) -> Result<Self> {
        let command = describe(&cmd);
        let io_err = |what: &str| {
            let what = format!("{what} for `{command}`");
            move |source| HarnessError::Io { what, source }
        };
        let logs = tempfile::Builder::new()
            .prefix("bwt-logs-")
            .tempdir()
            .map_err(io_err("creating the log directory"))?;
        let stdout = File::create(logs.path().join("stdout")).map_err(io_err("stdout log"))?;
        let stderr = File::create(logs.path().join("stderr")).map_err(io_err("stderr log"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|source| HarnessError::Spawn {
                command: command.clone(),
                source,
            })?;
        Ok(Self {
            command,
            child,
            status: None,
            logs,
        })
    }

    /// The process id (of the program itself: `ip netns exec` execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The exit status if the process has exited (reaping it), else `None`.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `limit` for the process to exit by itself. On timeout the
    /// process is stopped and the error quotes its output.
    pub fn wait_timeout(&mut self, limit: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_status() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(HarnessError::Timeout {
                    command: self.command.clone(),
                    limit,
                    output: self.tail(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits up to `limit` for a successful exit and returns the whole
    /// stdout; any other outcome is an error quoting the output tails.
    pub fn finish(mut self, limit: Duration) -> Result<String> {
        let status = self.wait_timeout(limit)?;
        if !status.success() {
            return Err(HarnessError::Command {
                command: self.command.clone(),
                status,
                output: self.tail(),
            });
        }
        Ok(self.stdout())
    }

    /// Stops the process: SIGTERM, up to two seconds of grace, then SIGKILL.
    /// Returns its exit status (`None` only if it could not be reaped).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(status) = self.try_status() {
            return Some(status);
        }
        // The child is not reaped yet, so its PID cannot have been reused.
        signal(self.child.id(), Signal::TERM);
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
        self.status
    }

    /// Everything the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.logs.path().join("stdout"))
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.logs.path().join("stderr"))
    }

    /// The last lines of stdout and stderr, labelled, for failure messages.
    pub fn tail(&self) -> String {
        let mut out = String::new();
        for (name, text) in [("stdout", self.stdout()), ("stderr", self.stderr())] {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(TAIL_LINES);
            let _ = writeln!(
                out,
                "--- {name} of `{}` (last {} lines)",
                self.command,
                lines.len() - start
            );
            for line in &lines[start..] {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }

    /// Path of the file that receives the process's stdout.
    pub fn stdout_path(&self) -> PathBuf {
        self.logs.path().join("stdout")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `sig` to `pid`, ignoring failure (the process may be gone).
pub(crate) fn signal(pid: u32, sig: Signal) {
    let pid = i32::try_from(pid).ok().and_then(Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// The command line of `cmd`, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_returns_stdout_of_a_successful_command() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2"]);
        let child = ChildGuard::spawn(cmd).expect("spawn sh");
        let out = child.finish(Duration::from_secs(10)).expect("sh succeeds");
        assert_eq!(out, "out\n");
    }

    #[test]
    fn failure_quotes_both_streams() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo visible-out; echo visible-err >&2; exit 3"]);
        let child = ChildGuard::spawn(cmd).expect("spawn sh");
        let err = child
            .finish(Duration::from_secs(10))
            .expect_err("exit 3 is a failure");
        let text = err.to_string();
        assert!(text.contains("visible-out"), "{text}");
        assert!(text.contains("visible-err"), "{text}");
        assert!(text.contains("exit status: 3"), "{text}");
    }

    #[test]
    fn timeout_stops_the_process_with_sigterm() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut child = ChildGuard::spawn(cmd).expect("spawn sleep");
        let err = child
            .wait_timeout(Duration::from_millis(100))
            .expect_err("sleep 30 outlives 100 ms");
        assert!(matches!(err, HarnessError::Timeout { .. }), "{err}");
        let status = child.try_status().expect("reaped after the timeout");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(15));
    }

    #[test]
    fn sigkill_follows_when_sigterm_is_ignored() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "trap '' TERM; echo ready; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done",
        ]);
        let mut child = ChildGuard::spawn(cmd).expect("spawn sh");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !child.stdout().contains("ready") && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        let status = child.stop().expect("reaped");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
    }

    #[test]
    fn drop_kills_a_running_process() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let child = ChildGuard::spawn(cmd).expect("spawn sleep");
        let pid = child.pid();
        drop(child);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
