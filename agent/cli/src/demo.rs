//! `bootwave demo`: the main job on any Linux machine, touching no real
//! interface.
//!
//! As root it creates two network namespaces joined by a veth pair — the
//! boot server's side (`10.200.0.1`) and a simulated fleet behind a DHCP
//! relay (`10.200.0.2`, node addresses in `10.201.0.0/16`) — starts a data
//! plane and an agent on the server side, declares the hosts with labels,
//! starts a reboot wave for them, runs `bootwave-wave` for the same
//! machines while `bootwave wave watch` shows the wave live, then prints
//! the summary, draws the wave (`wave summary --svg`), shows `explain` for
//! one host and removes everything it created, also on Ctrl-C.
//!
//! The other binaries (`bootwave-dataplane`, `bootwave-agent`,
//! `bootwave-wave`) are taken from the directory of this executable, where
//! `cargo build --release --workspace --bins` puts them.

use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use rustix::process::{Pid, Signal};

/// Name prefix of everything the demo creates (namespaces, veth ends,
/// temporary directories), followed by the demo's PID.
const PREFIX: &str = "bwdemo";
/// The boot server's address on the link.
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// The relay's address on the link (the simulator relays for every node).
const RELAY: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
/// First reserved node address; node `i` gets `FIRST_NODE + i`.
const FIRST_NODE: Ipv4Addr = Ipv4Addr::new(10, 201, 1, 0);
/// Label every demo host carries; the wave is started by it.
const WAVE_LABEL: &str = "demo=wave";
/// How long a process gets to open its control socket.
const START_LIMIT: Duration = Duration::from_secs(15);
/// How long a child gets to stop after SIGTERM before SIGKILL.
const STOP_LIMIT: Duration = Duration::from_secs(5);
/// Size of the stand-in `ipxe.efi` (Debian's is about 1 MiB).
const IPXE_SIZE: usize = 1_024 * 1_024;
/// Size of the stand-in `refind_x64.efi` (Debian's is about 270 kB).
const REFIND_SIZE: usize = 270 * 1_024;
/// The shipped second-stage script and rEFInd configuration.
const REFIND_PXE: &str = include_str!("../../../assets/tftp/refind.pxe");
const REFIND_HTTP_PXE: &str = include_str!("../../../assets/tftp/refind-http.pxe");
const REFIND_CONF: &str = include_str!("../../../assets/tftp/refind.conf");

/// `bootwave demo` options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Simulated machines in the wave.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub nodes: u32,
    /// Directory that receives the wave's picture (wave.svg), its summary
    /// (wave.json) and the simulator's per-node timelines (nodes.jsonl).
    #[arg(long, value_name = "DIR", default_value = "bootwave-demo")]
    pub out: PathBuf,
    /// The data plane's I/O backend: auto, uring or portable.
    #[arg(long, default_value = "auto", value_parser = ["auto", "uring", "portable"])]
    pub backend: String,
    /// Serve the boot files of this directory (ipxe.efi, refind_x64.efi)
    /// instead of generated stand-ins of the same sizes.
    #[arg(long, value_name = "DIR")]
    pub boot_files: Option<PathBuf>,
    /// After the wave, keep the servers running (and print how to reach
    /// them) until Ctrl-C.
    #[arg(long)]
    pub keep: bool,
    /// Fail nodes still not done after this many seconds.
    #[arg(long, value_name = "S", default_value_t = 120)]
    pub timeout: u32,
    /// Machines powered on per second (0: all at once, the default).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rate: u32,
    /// iPXE gets `refind-http.pxe` and loads rEFInd over HTTP from the data
    /// plane (the firmware still loads ipxe.efi over TFTP).
    #[arg(long)]
    pub http: bool,
}

/// Runs the demo; every namespace, process and temporary file it created
/// is gone when this returns.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    ensure!(
        rustix::process::geteuid().is_root(),
        "bootwave demo creates network namespaces: run it as root (e.g. sudo)"
    );
    let tools = Tools::find()?;
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(&stop)?;
    remove_stale();

    let mut demo = Demo::new(tools, stop.clone())?;
    let outcome = demo.play(args);
    demo.teardown();
    if stop.load(Ordering::SeqCst) {
        eprintln!("demo: interrupted; everything it created is removed");
        return Ok(ExitCode::from(130));
    }
    outcome
}

/// The binaries the demo runs.
#[derive(Debug)]
struct Tools {
    dataplane: PathBuf,
    agent: PathBuf,
    wave: PathBuf,
    cli: PathBuf,
    ip: PathBuf,
}

impl Tools {
    fn find() -> anyhow::Result<Self> {
        let cli = std::env::current_exe().context("finding this executable")?;
        let dir = cli
            .parent()
            .ok_or_else(|| anyhow!("{} has no directory", cli.display()))?;
        let beside = |name: &str| dir.join(name);
        let tools = Self {
            dataplane: beside("bootwave-dataplane"),
            agent: beside("bootwave-agent"),
            wave: beside("bootwave-wave"),
            ip: which("ip").ok_or_else(|| anyhow!("`ip` (iproute2) is not installed"))?,
            cli,
        };
        let missing: Vec<_> = [&tools.dataplane, &tools.agent, &tools.wave]
            .into_iter()
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        ensure!(
            missing.is_empty(),
            "missing {}: build every binary with `cargo build --release --workspace --bins`",
            missing.join(", ")
        );
        Ok(tools)
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Ctrl-C and SIGTERM set `stop` instead of killing the demo, so that it
/// can remove what it created. A second signal still stops waits at once.
fn watch_signals(stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal watcher")?;
    let stop = stop.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("demo-signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    let _ = ready_tx.send(false);
                    return;
                };
                let _ = ready_tx.send(true);
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    stop.store(true, Ordering::SeqCst);
                }
            });
        })
        .context("starting the signal watcher")?;
    match ready_rx.recv_timeout(Duration::from_secs(5)) {
        Ok(true) => Ok(()),
        _ => bail!("could not install the Ctrl-C handler"),
    }
}

/// Removes namespaces left by a demo whose process is gone (killed with
/// SIGKILL, say); a running demo's are kept.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = owner_pid(name) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "delete", name]).status();
        }
    }
}

/// The PID in a demo namespace name `bwdemo-PID-srv`.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?.strip_prefix('-')?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// A child process stopped with SIGTERM (then SIGKILL) by `stop`.
#[derive(Debug)]
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Some(pid) = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, Signal::TERM);
        }
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of its log, for error messages.
    fn tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<_> = text.lines().rev().take(15).collect();
        let mut out = format!(
            "--- last lines of {} ({}):\n",
            self.name,
            self.log.display()
        );
        for line in lines.into_iter().rev() {
            let _ = writeln!(out, "{line}");
        }
        out
    }
}

/// Everything one demo run created.
#[derive(Debug)]
struct Demo {
    tools: Tools,
    stop: Arc<AtomicBool>,
    srv: String,
    sim: String,
    work: tempfile::TempDir,
    namespaces: Vec<String>,
    procs: Vec<Proc>,
}

impl Demo {
    fn new(tools: Tools, stop: Arc<AtomicBool>) -> anyhow::Result<Self> {
        let pid = std::process::id();
        let work = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}-{pid}-"))
            .tempdir()
            .context("creating the demo's work directory")?;
        Ok(Self {
            tools,
            stop,
            srv: format!("{PREFIX}-{pid}-srv"),
            sim: format!("{PREFIX}-{pid}-sim"),
            work,
            namespaces: Vec::new(),
            procs: Vec::new(),
        })
    }

    fn play(&mut self, args: &DemoArgs) -> anyhow::Result<ExitCode> {
        fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        let out = args
            .out
            .canonicalize()
            .with_context(|| format!("resolving {}", args.out.display()))?;
        println!(
            "bootwave demo: {} simulated machines reboot through one boot server",
            args.nodes
        );
        println!(
            "  (private namespaces {} and {}; no real interface is touched)",
            self.srv, self.sim
        );
        self.network()?;
        let paths = self.files(args)?;
        self.check_stop()?;
        self.start_dataplane(&paths, &args.backend)?;
        self.start_agent(&paths)?;
        self.check_stop()?;

        step(&format!(
            "bootwave apply -f state.toml    # subnets, boot rules and {} hosts labelled {WAVE_LABEL}",
            args.nodes
        ));
        self.cli_output(&["apply", "-f", &path_text(&paths.config)?])?;
        let timeout = args.timeout.to_string();
        step(&format!(
            "bootwave wave start --label {WAVE_LABEL} --name demo"
        ));
        let id = self
            .cli_output(&[
                "wave",
                "start",
                "--label",
                WAVE_LABEL,
                "--name",
                "demo",
                "--timeout",
                &timeout,
            ])?
            .trim()
            .to_owned();
        ensure!(!id.is_empty(), "wave start printed no id");

        let nodes_json = out.join("nodes.jsonl");
        step(&format!(
            "bootwave-wave --nodes {} --server {SERVER} --relay {RELAY}{}    # the fleet, in {}",
            args.nodes,
            if args.http { " --http" } else { "" },
            self.sim
        ));
        step(&format!("bootwave wave watch {id}"));
        let sim_log = self.work.path().join("bootwave-wave.log");
        let mut sim = self.spawn_in(
            &self.sim.clone(),
            &self.tools.wave.clone(),
            &[
                "--nodes",
                &args.nodes.to_string(),
                "--server",
                &SERVER.to_string(),
                "--relay",
                &RELAY.to_string(),
                "--files",
                &path_text(&paths.tftp)?,
                "--json",
                &path_text(&nodes_json)?,
                "--timeout",
                &timeout,
                "--rate",
                &args.rate.to_string(),
            ]
            .into_iter()
            .chain(args.http.then_some("--http"))
            .collect::<Vec<_>>(),
            &sim_log,
        )?;
        let mut watch = Command::new(&self.tools.cli)
            .args(["--agent", &paths.agent_endpoint, "wave", "watch", &id])
            .stdin(Stdio::null())
            .spawn()
            .context("starting bootwave wave watch")?;
        let limit = Duration::from_secs(u64::from(args.timeout) + 30);
        let sim_status = self.wait(&mut sim, limit, "bootwave-wave");
        let watch_status = self.wait(&mut watch, Duration::from_secs(60), "bootwave wave watch");
        self.check_stop()?;
        let sim_status = sim_status?;
        let sim_output = fs::read_to_string(&sim_log).unwrap_or_default();
        println!();
        step("the simulator's view (bootwave-wave):");
        print!("{sim_output}");
        let last = sim_output.lines().last().unwrap_or_default().to_owned();

        let svg = out.join("wave.svg");
        self.cli_output(&["wave", "summary", &id, "--svg", &path_text(&svg)?])
            .or_else(|e| {
                // A wave with hosts not done exits 5 but still writes the file.
                if svg.is_file() {
                    Ok(String::new())
                } else {
                    Err(e)
                }
            })?;
        let summary = self.cli_raw(&["--json", "wave", "summary", &id])?;
        fs::write(out.join("wave.json"), &summary.0)
            .with_context(|| format!("writing {}", out.join("wave.json").display()))?;

        let first = mac_text(node_mac(0));
        println!();
        step(&format!(
            "bootwave explain {first}    # why this host got what it got"
        ));
        match self.cli_output(&["explain", &first]) {
            Ok(text) => print!("{text}"),
            Err(e) => println!("(explain failed: {e:#})"),
        }
        println!();
        println!("wave picture:      {}", svg.display());
        println!("wave summary:      {}", out.join("wave.json").display());
        println!("node timelines:    {}", nodes_json.display());
        println!("simulator:         {last}");

        if args.keep {
            println!();
            println!("The servers keep running until Ctrl-C. In another shell, try:");
            println!("  export BOOTWAVE_AGENT={}", paths.agent_endpoint);
            println!("  {} status", self.tools.cli.display());
            println!("  {} explain {first}", self.tools.cli.display());
            println!("  {} leases", self.tools.cli.display());
            while !self.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }

        let all_done = sim_status.success()
            && matches!(watch_status, Ok(s) if s.success())
            && last.contains(&format!("done {} failed 0", args.nodes));
        Ok(if all_done {
            ExitCode::SUCCESS
        } else {
            eprintln!("demo: not every machine finished its boot (see above)");
            ExitCode::from(super::EXIT_WAVE_FAILED)
        })
    }

    /// The two namespaces and the link between them.
    fn network(&mut self) -> anyhow::Result<()> {
        let (srv, sim) = (self.srv.clone(), self.sim.clone());
        for ns in [&srv, &sim] {
            self.ip(&["netns", "add", ns])?;
            self.namespaces.push(ns.clone());
        }
        let pid = std::process::id();
        let (a, b) = (format!("bwd{pid}a"), format!("bwd{pid}b"));
        self.ip(&[
            "link", "add", &a, "netns", &srv, "type", "veth", "peer", "name", &b, "netns", &sim,
        ])?;
        let net = |ns: &str, args: &[&str]| -> anyhow::Result<()> {
            let mut full = vec!["-n", ns];
            full.extend_from_slice(args);
            self.ip(&full)
        };
        net(&srv, &["link", "set", "lo", "up"])?;
        net(&sim, &["link", "set", "lo", "up"])?;
        net(&srv, &["addr", "add", &format!("{SERVER}/24"), "dev", &a])?;
        net(&sim, &["addr", "add", &format!("{RELAY}/24"), "dev", &b])?;
        net(&srv, &["link", "set", &a, "up"])?;
        net(&sim, &["link", "set", &b, "up"])?;
        // Replies to node addresses go back through the relay.
        net(
            &srv,
            &["route", "add", "10.201.0.0/16", "via", &RELAY.to_string()],
        )?;
        // Every node address is local on the fleet's side, so the simulator
        // can fetch from each node's own leased address.
        net(
            &sim,
            &["route", "add", "local", "10.201.0.0/16", "dev", "lo"],
        )?;
        // The ping check must not take simulated nodes for address thieves.
        let status = Command::new(&self.tools.ip)
            .args([
                "netns",
                "exec",
                &sim,
                "sysctl",
                "-qw",
                "net.ipv4.icmp_echo_ignore_all=1",
            ])
            .status()
            .context("running sysctl in the fleet's namespace")?;
        ensure!(
            status.success(),
            "sysctl icmp_echo_ignore_all failed in {sim}"
        );
        Ok(())
    }

    fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new(&self.tools.ip)
            .args(args)
            .output()
            .context("running ip")?;
        ensure!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }

    /// The boot files, the configuration and the socket paths.
    fn files(&self, args: &DemoArgs) -> anyhow::Result<Paths> {
        let dir = self.work.path();
        let tftp = dir.join("tftp");
        fs::create_dir(&tftp).context("creating the TFTP root")?;
        for (name, size, seed) in [
            ("ipxe.efi", IPXE_SIZE, 7u64),
            ("refind_x64.efi", REFIND_SIZE, 11),
        ] {
            let target = tftp.join(name);
            match &args.boot_files {
                Some(src) => {
                    fs::copy(src.join(name), &target)
                        .with_context(|| format!("copying {}", src.join(name).display()))?;
                }
                None => fs::write(&target, stand_in(size, seed))
                    .with_context(|| format!("writing {}", target.display()))?,
            }
        }
        fs::write(tftp.join("refind.pxe"), REFIND_PXE).context("writing refind.pxe")?;
        fs::write(tftp.join("refind-http.pxe"), REFIND_HTTP_PXE)
            .context("writing refind-http.pxe")?;
        fs::write(tftp.join("refind.conf"), REFIND_CONF).context("writing refind.conf")?;
        let config = dir.join("state.toml");
        fs::write(&config, state_toml(dir, args.nodes, args.http))
            .context("writing the configuration")?;
        let agent_socket = dir.join("agent.sock");
        Ok(Paths {
            tftp,
            config,
            dataplane_socket: dir.join("dataplane.sock"),
            agent_endpoint: format!("unix:{}", agent_socket.display()),
            agent_socket,
            agent_state: dir.join("agent"),
        })
    }

    fn start_dataplane(&mut self, paths: &Paths, backend: &str) -> anyhow::Result<()> {
        step(&format!(
            "bootwave-dataplane --backend {backend}    # DHCP + TFTP + HTTP, in {}",
            self.srv
        ));
        let log = self.work.path().join("bootwave-dataplane.log");
        let child = self.spawn_in(
            &self.srv.clone(),
            &self.tools.dataplane.clone(),
            &[
                "--config",
                &path_text(&paths.config)?,
                "--control",
                &format!("unix:{}", paths.dataplane_socket.display()),
                "--backend",
                backend,
            ],
            &log,
        )?;
        self.procs.push(Proc {
            name: "bootwave-dataplane",
            child,
            log,
        });
        self.wait_socket(&paths.dataplane_socket)
    }

    fn start_agent(&mut self, paths: &Paths) -> anyhow::Result<()> {
        step("bootwave-agent    # keeps the desired state, pushes it, follows waves");
        fs::create_dir(&paths.agent_state).context("creating the agent's state directory")?;
        let log = self.work.path().join("bootwave-agent.log");
        let child = self.spawn_in(
            &self.srv.clone(),
            &self.tools.agent.clone(),
            &[
                "--state",
                &path_text(&paths.agent_state)?,
                "--listen",
                &paths.agent_endpoint,
                "--dataplane",
                &format!("unix:{}", paths.dataplane_socket.display()),
                "--resync-ms",
                "500",
            ],
            &log,
        )?;
        self.procs.push(Proc {
            name: "bootwave-agent",
            child,
            log,
        });
        self.wait_socket(&paths.agent_socket)
    }

    /// Starts `program args` inside namespace `ns`, its output into `log`.
    fn spawn_in(
        &self,
        ns: &str,
        program: &Path,
        args: &[&str],
        log: &Path,
    ) -> anyhow::Result<Child> {
        let file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = file.try_clone().context("duplicating the log file")?;
        Command::new(&self.tools.ip)
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {} in {ns}", program.display()))
    }

    /// Waits until the last started process accepts connections on `socket`.
    fn wait_socket(&mut self, socket: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            self.check_stop()?;
            if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                return Ok(());
            }
            let proc = self
                .procs
                .last_mut()
                .ok_or_else(|| anyhow!("no process to wait for"))?;
            if let Ok(Some(status)) = proc.child.try_wait() {
                bail!(
                    "{} exited ({status}) before listening\n{}",
                    proc.name,
                    proc.tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on {} within {START_LIMIT:?}\n{}",
                    proc.name,
                    socket.display(),
                    proc.tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for `child` at most `limit` (killing it then), or until Ctrl-C.
    fn wait(
        &self,
        child: &mut Child,
        limit: Duration,
        what: &str,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child
                .try_wait()
                .with_context(|| format!("waiting for {what}"))?
            {
                return Ok(status);
            }
            if self.stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{what} did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `bootwave --agent … args`; its stdout when it succeeds.
    fn cli_output(&self, args: &[&str]) -> anyhow::Result<String> {
        let (stdout, stderr, ok) = self.cli_raw(args)?;
        ensure!(ok, "bootwave {}: {}", args.join(" "), stderr.trim());
        Ok(stdout)
    }

    fn cli_raw(&self, args: &[&str]) -> anyhow::Result<(String, String, bool)> {
        let agent = format!("unix:{}", self.work.path().join("agent.sock").display());
        let out = Command::new(&self.tools.cli)
            .arg("--agent")
            .arg(&agent)
            .args(args)
            .env_remove("BOOTWAVE_TOKEN")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running bootwave {}", args.join(" ")))?;
        Ok((
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.success(),
        ))
    }

    fn check_stop(&self) -> anyhow::Result<()> {
        ensure!(!self.stop.load(Ordering::SeqCst), "interrupted");
        Ok(())
    }

    /// Stops every process (newest first), deletes the namespaces (which
    /// removes the veth pair); the work directory goes with `self`.
    fn teardown(&mut self) {
        for proc in self.procs.iter_mut().rev() {
            proc.stop();
        }
        self.procs.clear();
        for ns in self.namespaces.drain(..) {
            // Anything still inside (a stray child) goes with it.
            if let Ok(out) = Command::new(&self.tools.ip)
                .args(["netns", "pids", &ns])
                .output()
            {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Some(pid) = pid.parse().ok().and_then(Pid::from_raw) {
                        let _ = rustix::process::kill_process(pid, Signal::KILL);
                    }
                }
            }
            let _ = Command::new(&self.tools.ip)
                .args(["netns", "delete", &ns])
                .status();
        }
    }
}

/// Where the demo's files and sockets are.
#[derive(Debug)]
struct Paths {
    tftp: PathBuf,
    config: PathBuf,
    dataplane_socket: PathBuf,
    agent_socket: PathBuf,
    agent_endpoint: String,
    agent_state: PathBuf,
}

fn step(what: &str) {
    println!("$ {what}");
}

fn path_text(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{} is not UTF-8", path.display()))
}

/// MAC of simulated node `i` (the simulator's default numbering).
fn node_mac(i: u32) -> [u8; 6] {
    let [_, a, b, c] = i.to_be_bytes();
    [0x02, 0xb0, 0x00, a, b, c]
}

fn mac_text(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// Deterministic bytes standing in for a boot binary (the simulated
/// machines only fetch and check them).
fn stand_in(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// The data plane's configuration, which is also the state the agent is
/// given: the link, the fleet's relayed subnet with the guide's boot rules
/// (iPXE's script loads rEFInd over HTTP with `http`), and one labelled host
/// per node with a reserved address.
fn state_toml(dir: &Path, nodes: u32, http: bool) -> String {
    let mut toml = format!(
        r#"# bootwave demo: written by `bootwave demo`, removed when it ends.
interfaces = []

[dhcp]
default-lease-time = "2h"
max-lease-time = "2h"
authoritative = true
ping-check = false
relays = ["{RELAY}"]

[tftp]
root = "{tftp}"
max-transfers = 16384

[http]
port = 80

[journal]
dir = "{journal}"
fsync = "batch"

# One subnet holds the relay's address (the DHCP server picks the subnet
# by giaddr) and the fleet's addresses behind it.
[[subnets]]
network = "10.200.0.0/15"
ranges = ["10.201.100.0-10.201.255.250"]
routers = ["{RELAY}"]
next-server = "{SERVER}"

[[subnets.boot-rules]]
arch = ["efi-x64", "efi-x64-alt"]
user-class = "iPXE"
filename = "{script}"

[[subnets.boot-rules]]
arch = ["efi-x64", "efi-x64-alt"]
filename = "ipxe.efi"
"#,
        tftp = dir.join("tftp").display(),
        journal = dir.join("journal").display(),
        script = if http {
            "refind-http.pxe"
        } else {
            "refind.pxe"
        },
    );
    for i in 0..nodes {
        let ip = Ipv4Addr::from(u32::from(FIRST_NODE) + i);
        let rack = i / 40;
        let _ = write!(
            toml,
            "\n[[hosts]]\nname = \"node-{i:05}\"\nmac = \"{}\"\nhostname = \"node-{i:05}\"\nfixed-address = \"{ip}\"\nlabels = {{ demo = \"wave\", rack = \"r{rack:02}\" }}\n",
            mac_text(node_mac(i))
        );
    }
    toml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_a_valid_configuration_with_every_host() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("tftp")).expect("tftp dir");
        let text = state_toml(dir.path(), 200, false);
        let config = bootwave_protocol::config::parse(&text, "demo", dir.path())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(config.hosts.len(), 200);
        assert_eq!(text.matches("demo = \"wave\"").count(), 200);
        assert!(text.contains("mac = \"02:b0:00:00:00:c7\""));
        assert!(text.contains("fixed-address = \"10.201.1.199\""));
    }

    #[test]
    fn demo_names_carry_the_pid() {
        assert_eq!(owner_pid("bwdemo-4242-srv"), Some(4242));
        assert_eq!(owner_pid("bwdemo-x-srv"), None);
        assert_eq!(owner_pid("bwt-4242-srv"), None);
    }

    #[test]
    fn stand_ins_are_deterministic_and_not_constant() {
        let a = stand_in(4096, 7);
        assert_eq!(a, stand_in(4096, 7));
        assert_ne!(a, stand_in(4096, 11));
        assert!(a.iter().any(|&b| b != a[0]));
    }
}
