//! Start-up, the main thread's signal loop, reload and drain.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bootwave_protocol::config::{self, Config};
use bootwave_protocol::dhcp::{SharedSnapshot, Snapshot};
use bootwave_protocol::tftp::{ServerOptions, TftpServer};

use super::RuntimeError;
use super::dhcp::{DhcpPorts, DhcpSide, Helpers, Observed};
use super::interfaces::Served;
use super::leases;
use super::service::{Control, ShardService, SocketRole};
use super::stats::{self, Published};
use super::summary::Startup;
use super::tftp::TftpSide;
use crate::control::{self, ControlHandle, DataplaneStatus};
use crate::driver::{
    BackendChoice, Binding, DriverConfig, EphemeralSpec, ShardGroup, SocketSpec, Steering,
    spawn_shards,
};
use crate::events::{EventBus, LeaseMirror};
use crate::metrics::{self, MetricsServer};
use crate::neigh::NeighTable;
use crate::probe::{ArpProber, Prober, SocketKind};
use crate::scripts::ScriptResolver;
use crate::store::{FileStore, StoreOptions};
use crate::sys::{ifaddrs, signals};

/// How often the main thread looks at the drain while waiting for it.
const DRAIN_POLL: Duration = Duration::from_millis(50);
/// How long the main thread sleeps in `sigtimedwait` between checks.
const SIGNAL_POLL: Duration = Duration::from_millis(500);

/// What the command line decides.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration file.
    pub config: PathBuf,
    /// Shard threads.
    pub shards: usize,
    /// Shards that answer DHCP (`None`: [`leases::dhcp_shards`] decides).
    pub dhcp_shards: Option<usize>,
    /// I/O backend.
    pub backend: BackendChoice,
    /// The control socket the agent pushes desired state to, if any.
    pub control: Option<PathBuf>,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Longest wait for TFTP transfers to end after `SIGTERM`/`SIGINT`.
    pub drain_timeout: Duration,
}

/// Reads and validates the configuration file at `path`.
pub fn load_config(path: &Path) -> Result<Config, RuntimeError> {
    let text = std::fs::read_to_string(path).map_err(|source| RuntimeError::Io {
        what: format!("reading {}", path.display()),
        source,
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(config::parse_with(
        &text,
        &path.display().to_string(),
        base,
        &crate::scripts::read_template,
    )?)
}

/// Runs the data plane until `SIGTERM` or `SIGINT` (see the [module
/// docs](super)).
pub fn run(options: &Options) -> Result<(), RuntimeError> {
    let signals = signals::block().map_err(|source| RuntimeError::Io {
        what: "blocking signals".to_owned(),
        source,
    })?;
    let file = load_config(&options.config)?;
    let (config, pushed) = state_at_start(options, &file);
    let machine = ifaddrs::interfaces().map_err(|source| RuntimeError::Io {
        what: "listing interfaces (getifaddrs)".to_owned(),
        source,
    })?;
    let served = Arc::new(Served::select(&config, &machine));
    if let Some(reason) = &served.idle_reason {
        tracing::warn!("DHCP idle: {reason}");
    }
    let store = Arc::new(FileStore::open(&config.tftp.root, StoreOptions::default())?);
    let watcher = match store.watch() {
        Ok(handle) => Some(handle),
        Err(err) => {
            tracing::warn!(error = %err, "tftp root not watched; send SIGHUP after changing files");
            None
        }
    };
    let shards = options.shards.max(1);
    let dhcp_shards = leases::dhcp_shards(&config, shards, options.dhcp_shards);
    let snapshot: SharedSnapshot = Snapshot::shared(config.clone());
    let prepared = leases::prepare(
        &config.journal.dir,
        config.journal.fsync,
        &snapshot,
        u32::try_from(dhcp_shards).unwrap_or(u32::MAX),
    )?;
    let ping = ping_status(&config);
    let startup = Startup::new(
        &options.config,
        &config,
        &served,
        &store,
        &prepared,
        shards,
        &ping.to_string(),
    )
    .with_state(&state_line(options, &config, pushed.as_ref()));
    let published: Vec<Arc<Published>> = (0..shards).map(|_| Arc::default()).collect();
    let control = Arc::new(Control::default());
    let probing = ping.probing();
    let dhcp_count = u32::try_from(prepared.servers.len()).unwrap_or(u32::MAX);
    let observe = control::Observe {
        events: EventBus::default(),
        leases: (0..dhcp_count)
            .map(|shard| Arc::new(LeaseMirror::new(shard, dhcp_count)))
            .collect(),
    };
    let group = start_shards(
        options, &config, &served, &store, &snapshot, prepared, &published, &control, probing,
        &observe,
    )?;
    let http_stats = Arc::new(crate::http::HttpStats::default());
    let http = serve_http(
        &config,
        &served,
        &machine,
        &store,
        &snapshot,
        &observe,
        &http_stats,
    )?;
    let metrics = serve_metrics(options.metrics, &published, &observe.leases, &http_stats)?;
    let owner: Owner = Arc::new(Mutex::new(pushed.as_ref().map(|a| a.origin.clone())));
    let control_server = serve_control(
        options,
        (&file, pushed),
        (&snapshot, &owner),
        &group,
        observe,
    );
    // Dropped at the end of `run`: stops the responder thread.
    let _ra = crate::ra::start(config.ipv6.router_advertisements, &served.interfaces);
    println!(
        "{}",
        startup.finish(&group, metrics.as_ref().map(MetricsServer::local_addr))
    );
    let mut file = file;
    loop {
        match signals.wait(SIGNAL_POLL) {
            Some(signals::Signal::Hup) => {
                reload(&options.config, &mut file, (&snapshot, &owner), &store);
            }
            Some(signal) => {
                tracing::info!(?signal, "draining");
                break;
            }
            None => {}
        }
    }
    drain(&signals, &control, &published, options.drain_timeout);
    group.stop();
    let exits = group.join()?;
    for mut exit in exits {
        exit.service.finish();
    }
    drop(http);
    drop(control_server);
    drop(watcher);
    drop(metrics);
    tracing::info!("stopped");
    Ok(())
}

/// Per-shard parts built before the shards start, taken by each shard
/// thread.
type Parts = (
    bootwave_protocol::dhcp::DhcpServer,
    (String, crate::journal::Journal),
);

#[allow(clippy::too_many_arguments)]
fn start_shards(
    options: &Options,
    config: &Config,
    served: &Arc<Served>,
    store: &Arc<FileStore>,
    snapshot: &SharedSnapshot,
    prepared: leases::Prepared,
    published: &[Arc<Published>],
    control: &Arc<Control>,
    probing: bool,
    observe: &control::Observe,
) -> Result<ShardGroup<ShardService>, RuntimeError> {
    let any = Ipv4Addr::UNSPECIFIED;
    let dhcp_shards = prepared.servers.len();
    // One spec per role, in role order: a socket's index is its role's.
    let sockets = SocketRole::ALL
        .map(|role| match role {
            SocketRole::Dhcp => SocketSpec::new(
                SocketAddrV4::new(any, config.dhcp.port),
                Binding::Group(Steering::ChaddrFirst(dhcp_shards)),
            ),
            SocketRole::TftpListen => SocketSpec::new(
                SocketAddrV4::new(any, config.tftp.port),
                Binding::Group(Steering::Kernel),
            ),
        })
        .to_vec();
    let mut driver = DriverConfig::new(options.shards.max(1), sockets);
    driver.backend = options.backend;
    // One socket per transfer, on a port the kernel draws: bounded by the
    // transfer table.
    driver.ephemeral = EphemeralSpec {
        max_sockets: (config.tftp.max_transfers as usize)
            .saturating_add(super::tftp::SPARE_SOCKETS),
        ..EphemeralSpec::default()
    };
    let parts: Vec<Option<Parts>> = prepared
        .servers
        .into_iter()
        .zip(prepared.journals)
        .map(Some)
        .collect();
    let parts = Mutex::new(parts);
    let (served, store, control) = (served.clone(), store.clone(), control.clone());
    let snapshot = snapshot.clone();
    let published = published.to_vec();
    let tftp_settings = config.tftp.clone();
    let ports = DhcpPorts::for_server(config.dhcp.port);
    let (bus, mirrors) = (observe.events.clone(), observe.leases.clone());
    let group = spawn_shards(driver, move |ctx| {
        let shard = u32::try_from(ctx.shard).unwrap_or(u32::MAX);
        // Each shard index is built exactly once; shards below the DHCP
        // shard count find their parts there, the others have none.
        let dhcp_parts = parts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(ctx.shard)
            .and_then(Option::take);
        let mut tftp = TftpServer::with_options(
            &tftp_settings,
            &[],
            ScriptResolver::new(store.clone(), snapshot.clone()),
            ServerOptions {
                per_transfer_ports: true,
                ..ServerOptions::default()
            },
        );
        // TFTP learns a client's MAC from its reservation in the current
        // snapshot (lock-free load), for per-host files and the logs.
        let reservations = snapshot.clone();
        tftp.set_mac_lookup(move |ip: std::net::IpAddr| match ip {
            std::net::IpAddr::V4(v4) => reservations.load().reserved_for(v4),
            std::net::IpAddr::V6(_) => None,
        });
        ShardService::new(
            dhcp_parts.map(|(server, journal)| {
                // Every DHCP shard has parts and a mirror of the same index.
                let mirror = mirrors.get(ctx.shard).cloned().unwrap_or_else(|| {
                    Arc::new(LeaseMirror::new(
                        shard,
                        u32::try_from(mirrors.len()).unwrap_or(1),
                    ))
                });
                DhcpSide::new(
                    server,
                    journal,
                    served.clone(),
                    ports,
                    helpers(ctx.shard, probing),
                    Observed {
                        shard,
                        bus: bus.clone(),
                        mirror,
                    },
                )
            }),
            TftpSide::new(
                tftp,
                tftp_settings.port,
                served.clone(),
                (shard, bus.clone()),
            ),
            control.clone(),
            published[ctx.shard].clone(),
        )
    })?;
    Ok(group)
}

/// Whether ping checks can run, for the summary; logs once when they
/// cannot.
/// What the ping check can do on this machine, found once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PingCheck {
    /// `ping-check = false`.
    Off,
    /// Asked for, with the probes the system allows: ARP on-link (a packet
    /// socket) and ICMP for relayed addresses (that kind of socket).
    On { arp: bool, icmp: Option<SocketKind> },
}

impl PingCheck {
    /// Whether the shards probe at all.
    fn probing(self) -> bool {
        matches!(self, Self::On { arp, icmp } if arp || icmp.is_some())
    }
}

impl std::fmt::Display for PingCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Off => f.write_str("off"),
            Self::On {
                arp: true,
                icmp: Some(kind),
            } => write!(f, "on (ARP on-link, ICMP {kind:?} socket relayed)"),
            Self::On {
                arp: false,
                icmp: Some(kind),
            } => write!(f, "on (ICMP {kind:?} socket)"),
            Self::On {
                arp: true,
                icmp: None,
            } => f.write_str("on (ARP on-link; relayed addresses unprobed)"),
            Self::On {
                arp: false,
                icmp: None,
            } => f.write_str("on but unavailable (probes count as unanswered)"),
        }
    }
}

fn ping_status(config: &Config) -> PingCheck {
    if !config.dhcp.ping_check {
        return PingCheck::Off;
    }
    let arp = ArpProber::new()
        .inspect_err(|err| tracing::warn!(error = %err, "no ARP probes: on-link addresses are probed with ICMP echoes, which fill the neighbour table under load"))
        .is_ok();
    let icmp = Prober::new()
        .inspect_err(|err| {
            if !arp {
                tracing::warn!(error = %err, "ping-check is unavailable: every probed address counts as unanswered");
            }
        })
        .ok()
        .map(|prober| prober.kind());
    PingCheck::On { arp, icmp }
}

/// The shard's prober (when ping checks run) and neighbour table, each
/// left out with a warning when the system refuses it.
fn helpers(shard: usize, probing: bool) -> Helpers {
    let prober = probing
        .then(|| {
            Prober::new()
                .inspect_err(
                    |err| tracing::warn!(shard, error = %err, "no ICMP prober on this shard"),
                )
                .ok()
        })
        .flatten();
    let arp = probing
        .then(|| {
            ArpProber::new()
                .inspect_err(
                    |err| tracing::debug!(shard, error = %err, "no ARP prober on this shard"),
                )
                .ok()
        })
        .flatten();
    let neigh = NeighTable::new()
        .inspect_err(|err| tracing::warn!(shard, error = %err, "no neighbour table: replies to new clients are broadcast"))
        .ok();
    Helpers { prober, arp, neigh }
}

/// Who owns the agent-owned part of the configuration (subnets, hosts,
/// profiles, `[dhcp]` settings) in the running snapshot: `None`, the local
/// file; else the pushed state of this origin. Held while the snapshot is
/// swapped, so a reload and a push never interleave.
type Owner = Arc<Mutex<Option<control::Origin>>>;

/// The configuration to serve at start and the pushed state it holds: with
/// a control socket, the state the agent pushed last (persisted under the
/// journal directory) on top of the file's machine-local settings; else,
/// or when there is none or it cannot be used (logged), the file.
fn state_at_start(options: &Options, file: &Config) -> (Config, Option<control::persist::Applied>) {
    if options.control.is_none() {
        return (file.clone(), None);
    }
    let applied = match control::persist::load(&file.journal.dir) {
        Ok(Some(applied)) => applied,
        Ok(None) => return (file.clone(), None),
        Err(err) => {
            tracing::error!("{err}; serving the configuration file until the agent pushes");
            return (file.clone(), None);
        }
    };
    match applied.state.to_config_with(file) {
        Ok(config) => {
            tracing::info!(
                generation = applied.origin.generation,
                history = %applied.origin.history,
                "serving the persisted {}",
                applied.origin
            );
            (config, Some(applied))
        }
        Err(err) => {
            tracing::error!(
                "{}: the persisted {} is refused ({err}); serving the configuration file until the agent pushes",
                control::persist::path(&file.journal.dir).display(),
                applied.origin
            );
            (file.clone(), None)
        }
    }
}

/// The start-up screen's account of which state is in force.
fn state_line(
    options: &Options,
    config: &Config,
    pushed: Option<&control::persist::Applied>,
) -> String {
    match pushed {
        Some(applied) => format!(
            "{} (persisted in {}); machine-local settings from the file",
            applied.origin,
            control::persist::path(&config.journal.dir).display()
        ),
        None if options.control.is_some() => {
            "the configuration file (no pushed state yet)".to_owned()
        }
        None => "the configuration file (no control socket)".to_owned(),
    }
}

/// Starts the control endpoint when asked for. A desired state pushed by
/// the agent replaces the DHCP snapshot in one atomic swap (interfaces,
/// ports, TFTP and journal settings stay those of the local file) and is
/// persisted under the journal directory. A socket that cannot be served is
/// logged, not fatal: the data plane keeps serving its configuration.
fn serve_control(
    options: &Options,
    (file, pushed): (&Config, Option<control::persist::Applied>),
    (snapshot, owner): (&SharedSnapshot, &Owner),
    group: &ShardGroup<ShardService>,
    observe: control::Observe,
) -> Option<ControlHandle> {
    let path = options.control.as_deref()?;
    let (swap, owner) = (snapshot.clone(), owner.clone());
    let apply: control::ApplyFn = Arc::new(move |config: Config, origin: &control::Origin| {
        let mut owner = owner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tracing::info!(
            generation = origin.generation,
            subnets = config.subnets.len(),
            hosts = config.hosts.len(),
            "control: desired state applied"
        );
        swap.store(Arc::new(Snapshot::new(config)));
        *owner = Some(origin.clone());
        Ok(())
    });
    let status = DataplaneStatus {
        shards: u32::try_from(options.shards.max(1)).unwrap_or(u32::MAX),
        backend: match group.backend() {
            crate::driver::Backend::Uring => "io_uring".to_owned(),
            crate::driver::Backend::Portable => "portable".to_owned(),
        },
        http_port: file.http.enabled.then_some(file.http.port),
    };
    let status: control::StatusFn = Arc::new(move || status.clone());
    let endpoint = control::Endpoint {
        local: file.clone(),
        apply,
        status,
        observe,
        persist: Some(file.journal.dir.clone()),
        in_force: pushed,
    };
    match control::start(path, endpoint) {
        Ok(handle) => {
            tracing::info!(path = %path.display(), "control socket ready");
            Some(handle)
        }
        Err(err) => {
            tracing::warn!(error = %err, "no control socket: serving the configuration in force only");
            None
        }
    }
}

/// Starts the HTTP server when `[http]` enables it: on every served
/// interface and on loopback, from the same store and scripts as TFTP.
fn serve_http(
    config: &Config,
    served: &Served,
    machine: &[ifaddrs::Interface],
    store: &Arc<FileStore>,
    snapshot: &SharedSnapshot,
    observe: &control::Observe,
    stats: &Arc<crate::http::HttpStats>,
) -> Result<Option<crate::http::HttpServer>, RuntimeError> {
    if !config.http.enabled {
        return Ok(None);
    }
    let mut devices: Vec<String> = served.interfaces.iter().map(|i| i.name.clone()).collect();
    for interface in machine.iter().filter(|i| i.loopback) {
        if !devices.contains(&interface.machine.name) {
            devices.push(interface.machine.name.clone());
        }
    }
    let server = crate::http::HttpServer::start(
        &config.http,
        &devices,
        ScriptResolver::new(store.clone(), snapshot.clone()),
        crate::http::mac_lookup(snapshot.clone(), observe.leases.clone()),
        Arc::clone(stats),
        observe.events.clone(),
    )
    .map_err(|source| RuntimeError::Io {
        what: "starting the HTTP server".to_owned(),
        source,
    })?;
    for (device, addr) in &server.listening {
        tracing::info!(%device, %addr, "http: listening");
    }
    Ok(Some(server))
}

/// Starts the metrics endpoint when asked for.
fn serve_metrics(
    addr: Option<SocketAddr>,
    published: &[Arc<Published>],
    mirrors: &[Arc<LeaseMirror>],
    http: &Arc<crate::http::HttpStats>,
) -> Result<Option<MetricsServer>, RuntimeError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let shards = published.to_vec();
    let mirrors = mirrors.to_vec();
    let http = Arc::clone(http);
    let render: metrics::Render = Arc::new(move |out: &mut String| {
        stats::render(&shards, out);
        stats::render_pools(&mirrors, out);
        http.render(out);
    });
    Ok(Some(metrics::serve(addr, render)?))
}

/// `SIGHUP`: re-reads the file and the TFTP root. Without a pushed state
/// in force, the file owns everything and its new configuration is swapped
/// in (when it validates); with one, the pushed state stays in force and a
/// change of the sections it owns in the file is logged, not applied.
/// Machine-local settings that only a restart changes are logged too.
fn reload(
    path: &Path,
    file: &mut Config,
    (snapshot, owner): (&SharedSnapshot, &Owner),
    store: &FileStore,
) {
    match load_config(path) {
        Err(err) => {
            tracing::error!("reload: keeping the running configuration: {err}");
        }
        Ok(new) => {
            if new.interfaces != file.interfaces
                || new.dhcp.port != file.dhcp.port
                || new.tftp != file.tftp
                || new.http != file.http
                || new.journal != file.journal
                || new.ipv6 != file.ipv6
            {
                tracing::warn!(
                    "reload: interfaces, ports, [tftp], [http], [journal] and [ipv6] stay as they were at start; restart to change them"
                );
            }
            let owner = owner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match owner.as_ref() {
                None => {
                    let rules =
                        |c: &Config| c.subnets.iter().map(|s| s.boot_rules.len()).sum::<usize>();
                    tracing::info!(
                        subnets = format!("{} -> {}", file.subnets.len(), new.subnets.len()),
                        hosts = format!("{} -> {}", file.hosts.len(), new.hosts.len()),
                        boot_rules = format!("{} -> {}", rules(file), rules(&new)),
                        "reload: configuration swapped"
                    );
                    snapshot.store(Arc::new(Snapshot::new(new.clone())));
                }
                Some(origin) => match agent_owned_changes(file, &new) {
                    changed if changed.is_empty() => {
                        tracing::info!("reload: the {origin} stays in force");
                    }
                    changed => tracing::warn!(
                        changed = changed.join(", "),
                        "reload: the file's {} changed, but the {origin} owns them and stays in force; change them through the agent (e.g. `bootwave apply -f {}`)",
                        changed.join(", "),
                        path.display()
                    ),
                },
            }
            *file = new;
        }
    }
    match store.reload() {
        Ok(report) => tracing::info!(
            files = report.files,
            bytes = report.bytes,
            copied = report.copied,
            reused = report.reused,
            "reload: tftp root rescanned"
        ),
        Err(err) => tracing::error!("reload: tftp root kept as it was: {err}"),
    }
}

/// The sections a pushed state owns that differ between two files.
fn agent_owned_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut dhcp = new.dhcp.clone();
    dhcp.port = old.dhcp.port;
    [
        ("[dhcp]", dhcp != old.dhcp),
        ("subnets", new.subnets != old.subnets),
        ("hosts", new.hosts != old.hosts),
        ("profiles", new.profiles != old.profiles),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// Raises the drain flag and waits until no TFTP transfer is left, the
/// timeout passes, or a second signal asks to stop now.
fn drain(
    signals: &signals::Blocked,
    control: &Control,
    published: &[Arc<Published>],
    timeout: Duration,
) {
    control.draining.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + timeout;
    // Let every shard see the flag and publish its counters once.
    std::thread::sleep(stats::PUBLISH_EVERY + DRAIN_POLL);
    loop {
        let active: u64 = published.iter().map(|p| p.tftp_active()).sum();
        if active == 0 {
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(active, "drain timeout: stopping with transfers in flight");
            return;
        }
        if let Some(signal) = signals.wait(DRAIN_POLL) {
            tracing::warn!(?signal, active, "second signal: stopping now");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PingCheck, SocketKind};

    #[test]
    fn the_shards_probe_only_with_a_probe_the_system_allows() {
        let cases = [
            (PingCheck::Off, false, "off"),
            (
                PingCheck::On {
                    arp: true,
                    icmp: Some(SocketKind::Raw),
                },
                true,
                "on (ARP on-link, ICMP Raw socket relayed)",
            ),
            (
                PingCheck::On {
                    arp: false,
                    icmp: Some(SocketKind::Ping),
                },
                true,
                "on (ICMP Ping socket)",
            ),
            (
                PingCheck::On {
                    arp: true,
                    icmp: None,
                },
                true,
                "on (ARP on-link; relayed addresses unprobed)",
            ),
            (
                PingCheck::On {
                    arp: false,
                    icmp: None,
                },
                false,
                "on but unavailable (probes count as unanswered)",
            ),
        ];
        for (check, probing, shown) in cases {
            assert_eq!(
                (check.probing(), check.to_string().as_str()),
                (probing, shown)
            );
        }
    }
}
