//! `bootwave wave start|watch|summary|ls`: reboot waves.
//!
//! `watch` and `summary` of a finished wave exit with [`EXIT_WAVE_FAILED`]
//! unless every host of the wave is DONE (some failed, timed out, or the
//! wave was finished before they were done).

use bootwave_proto::v1::{self, WaveStage};
use clap::Subcommand;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::output::{json_line, table};
use super::{Client, EXIT_ERROR, EXIT_UNAVAILABLE, EXIT_WAVE_FAILED, Failure};

/// Wave commands.
#[derive(Debug, Subcommand)]
pub enum WaveCommand {
    /// Start following hosts (chosen by label and/or MAC) through their
    /// network boot; prints the wave's id.
    Start {
        /// Hosts carrying this label `key=value`; repeatable (all must match).
        #[arg(long = "label", value_name = "K=V", value_parser = super::parse_label,
              required_unless_present = "macs")]
        labels: Vec<(String, String)>,
        /// This host; repeatable.
        #[arg(long = "mac", value_name = "MAC")]
        macs: Vec<String>,
        /// Free text shown with the wave.
        #[arg(long)]
        name: Option<String>,
        /// Hosts not done after this many seconds fail (default 900).
        #[arg(long, value_name = "S")]
        timeout: Option<u32>,
        /// Keep watching the wave until it ends (like `wave watch`).
        #[arg(long)]
        watch: bool,
    },
    /// Follow a wave live until it ends, then print its summary.
    Watch {
        /// The wave (default: the latest).
        id: Option<String>,
    },
    /// Per-stage counts and timings of a wave, and its failed hosts.
    Summary {
        /// The wave (default: the latest).
        id: Option<String>,
        /// Also draw the wave into this SVG file: one row per host, one
        /// colour per stage over time, failures marked.
        #[arg(long, value_name = "FILE")]
        svg: Option<std::path::PathBuf>,
    },
    /// List the waves the agent keeps.
    Ls,
}

/// Runs a wave command.
pub(super) async fn run(
    client: &mut Client,
    command: WaveCommand,
    json: bool,
) -> Result<(), Failure> {
    match command {
        WaveCommand::Start {
            labels,
            macs,
            name,
            timeout,
            watch: follow,
        } => {
            let request = v1::StartWaveRequest {
                labels: labels.into_iter().collect(),
                macs,
                name: name.unwrap_or_default(),
                timeout_s: timeout.unwrap_or(0),
            };
            let wave = client.start_wave(request).await?.into_inner();
            if json && !follow {
                json_line(&wave_json(&wave));
            } else if !json {
                println!("{}", wave.id);
            }
            if follow {
                return watch(client, wave.id, json).await;
            }
            Ok(())
        }
        WaveCommand::Watch { id } => watch(client, id.unwrap_or_default(), json).await,
        WaveCommand::Summary { id, svg } => {
            let wave = match svg {
                Some(path) => {
                    let wave = with_hosts(client, id.unwrap_or_default()).await?;
                    write_svg(&path, &wave)?;
                    wave
                }
                None => {
                    let request = v1::GetWaveRequest {
                        id: id.unwrap_or_default(),
                    };
                    client.get_wave(request).await?.into_inner()
                }
            };
            if json {
                json_line(&wave_json(&wave));
            } else {
                print_summary(&wave);
            }
            outcome(&wave)
        }
        WaveCommand::Ls => {
            let waves = client
                .list_waves(v1::ListWavesRequest {})
                .await?
                .into_inner()
                .waves;
            if json {
                let list: Vec<_> = waves.iter().map(wave_json).collect();
                json_line(&json!(list));
                return Ok(());
            }
            let rows: Vec<_> = waves
                .iter()
                .map(|w| {
                    vec![
                        w.id.clone(),
                        if w.name.is_empty() {
                            "-".into()
                        } else {
                            w.name.clone()
                        },
                        total(w).to_string(),
                        count(w, WaveStage::Done).to_string(),
                        count(w, WaveStage::Failed).to_string(),
                        if w.finished { "finished" } else { "running" }.into(),
                    ]
                })
                .collect();
            table(&["ID", "NAME", "HOSTS", "DONE", "FAILED", "STATE"], &rows);
            Ok(())
        }
    }
}

/// The wave now with every host's timeline, also while it runs (the
/// first update of a watch that asks for hosts).
async fn with_hosts(client: &mut Client, id: String) -> Result<v1::Wave, Failure> {
    let request = v1::WatchWaveRequest { id, hosts: true };
    let mut stream = client.watch_wave(request).await?.into_inner();
    stream.message().await?.ok_or_else(|| Failure {
        code: EXIT_UNAVAILABLE,
        message: "the agent ended the watch before sending the wave".into(),
    })
}

/// Writes the wave's picture to `path` (through a temporary file beside it).
fn write_svg(path: &std::path::Path, wave: &v1::Wave) -> Result<(), Failure> {
    let failure = |e: std::io::Error| Failure {
        code: EXIT_ERROR,
        message: format!("writing {}: {e}", path.display()),
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(failure)?;
    std::io::Write::write_all(&mut tmp, super::svg::wave_svg(wave).as_bytes()).map_err(failure)?;
    // A picture to open in any browser, not a secret: readable by all, as
    // a file written with `>` would be.
    let readable = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644);
    tmp.as_file().set_permissions(readable).map_err(failure)?;
    tmp.persist(path).map_err(|e| failure(e.error))?;
    Ok(())
}

/// Streams the wave's updates: progress bars (on a terminal) or one JSON
/// line per update, then the summary.
async fn watch(client: &mut Client, id: String, json: bool) -> Result<(), Failure> {
    let request = v1::WatchWaveRequest { id, hosts: false };
    let mut stream = client.watch_wave(request).await?.into_inner();
    let bars = (!json).then(Bars::new);
    while let Some(wave) = stream.message().await? {
        if let Some(bars) = &bars {
            bars.show(&wave);
        } else {
            json_line(&wave_json(&wave));
        }
        if wave.finished {
            if let Some(bars) = bars {
                bars.finish();
                print_summary(&wave);
            }
            return outcome(&wave);
        }
    }
    Err(Failure {
        code: EXIT_UNAVAILABLE,
        message: "the agent ended the watch before the wave finished".into(),
    })
}

/// One progress bar per stage: for the stages of the flow, the hosts that
/// reached it or a later one; for FAILED, the failed hosts.
struct Bars {
    multi: MultiProgress,
    bars: Vec<(WaveStage, ProgressBar)>,
}

impl Bars {
    fn new() -> Self {
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template("{prefix:>13} [{bar:40}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bars = FLOW
            .iter()
            .chain(&[WaveStage::Failed])
            .map(|&stage| {
                let bar = multi.add(ProgressBar::new(0).with_style(style.clone()));
                bar.set_prefix(stage.as_str_name());
                (stage, bar)
            })
            .collect();
        Self { multi, bars }
    }

    fn show(&self, wave: &v1::Wave) {
        let hosts = u64::from(total(wave));
        for (stage, bar) in &self.bars {
            bar.set_length(hosts);
            bar.set_position(u64::from(reached(wave, *stage)));
        }
    }

    fn finish(self) {
        for (_, bar) in &self.bars {
            bar.finish();
        }
        let _ = self.multi.clear();
    }
}

/// The stages of the flow after WAITING, in order.
const FLOW: [WaveStage; 6] = [
    WaveStage::DhcpFirmware,
    WaveStage::FirmwareFile,
    WaveStage::DhcpIpxe,
    WaveStage::Script,
    WaveStage::BootFiles,
    WaveStage::Done,
];

fn count(wave: &v1::Wave, stage: WaveStage) -> u32 {
    let of = |c: &&v1::StageCount| c.stage() == stage;
    wave.counts.iter().find(of).map_or(0, |c| c.hosts)
}

fn total(wave: &v1::Wave) -> u32 {
    wave.counts.iter().map(|c| c.hosts).sum()
}

/// Hosts at `stage` or later in the flow (FAILED: the failed ones).
fn reached(wave: &v1::Wave, stage: WaveStage) -> u32 {
    if stage == WaveStage::Failed {
        return count(wave, stage);
    }
    FLOW.iter()
        .skip_while(|&&s| s != stage)
        .map(|&s| count(wave, s))
        .sum()
}

/// Success only when every host is done.
fn outcome(wave: &v1::Wave) -> Result<(), Failure> {
    let done = count(wave, WaveStage::Done);
    if !wave.finished || done == total(wave) {
        return Ok(());
    }
    Err(Failure {
        code: EXIT_WAVE_FAILED,
        message: format!(
            "wave {}: {} of {} hosts not done",
            wave.id,
            total(wave) - done,
            total(wave)
        ),
    })
}

fn print_summary(wave: &v1::Wave) {
    let state = if wave.finished { "finished" } else { "running" };
    println!(
        "wave {} {} ({state}, {} hosts)",
        wave.id,
        wave.name,
        total(wave)
    );
    let rows: Vec<_> = wave
        .counts
        .iter()
        .map(|c| {
            let timing = wave.timings.iter().find(|t| t.stage == c.stage);
            let ms =
                |v: Option<u32>| v.map_or("-".into(), |v| format!("{:.1}s", f64::from(v) / 1e3));
            let reached = timing.filter(|t| t.hosts > 0);
            vec![
                c.stage().as_str_name().to_owned(),
                c.hosts.to_string(),
                reached.map_or(0, |t| t.hosts).to_string(),
                ms(reached.map(|t| t.p50_ms)),
                ms(reached.map(|t| t.max_ms)),
            ]
        })
        .collect();
    table(&["STAGE", "NOW", "REACHED", "P50", "MAX"], &rows);
    let failed: Vec<_> = wave
        .hosts
        .iter()
        .filter(|h| h.stage() != WaveStage::Done)
        .map(|h| {
            vec![
                h.mac.clone(),
                if h.hostname.is_empty() {
                    "-".into()
                } else {
                    h.hostname.clone()
                },
                h.stage().as_str_name().to_owned(),
                h.error.clone(),
            ]
        })
        .collect();
    if wave.finished && !failed.is_empty() {
        println!();
        table(&["MAC", "HOSTNAME", "STAGE", "ERROR"], &failed);
    }
}

/// A wave as JSON (hosts only when the wave carries them).
pub(super) fn wave_json(w: &v1::Wave) -> Value {
    let counts: serde_json::Map<String, Value> = w
        .counts
        .iter()
        .map(|c| (c.stage().as_str_name().to_owned(), json!(c.hosts)))
        .collect();
    let timings: Vec<_> = w
        .timings
        .iter()
        .map(|t| {
            json!({
                "stage": t.stage().as_str_name(),
                "hosts": t.hosts,
                "p50_ms": t.p50_ms,
                "max_ms": t.max_ms,
            })
        })
        .collect();
    let hosts: Vec<_> = w
        .hosts
        .iter()
        .map(|h| {
            let timeline: Vec<_> = h
                .timeline
                .iter()
                .map(|m| json!({"stage": m.stage().as_str_name(), "at_ms": m.at_ms, "detail": m.detail}))
                .collect();
            json!({
                "mac": h.mac,
                "hostname": h.hostname,
                "stage": h.stage().as_str_name(),
                "error": h.error,
                "timeline": timeline,
            })
        })
        .collect();
    json!({
        "id": w.id,
        "name": w.name,
        "started_unix_ms": w.started_unix_ms,
        "finished_unix_ms": w.finished_unix_ms,
        "finished": w.finished,
        "timeout_s": w.timeout_s,
        "counts": counts,
        "timings": timings,
        "hosts": hosts,
    })
}
