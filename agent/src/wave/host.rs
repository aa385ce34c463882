//! One host's way through its network boot: the per-host stage machine.
//!
//! Facts ([`Seen`]) and the time since the wave started go in; the stage,
//! the timeline and the error come out. Nothing here reads a clock.
//!
//! The stages, in the order of the flow:
//!
//! - `WAITING` → `DHCP_FIRMWARE`: an ACK to a request without user class
//!   "iPXE". The file that ACK names is the firmware file.
//! - `DHCP_FIRMWARE` → `FIRMWARE_FILE`: a transfer of the firmware file
//!   starts (or completes).
//! - `WAITING`, `DHCP_FIRMWARE`, `FIRMWARE_FILE` → `DHCP_IPXE`: an ACK to a
//!   request with user class "iPXE". The file it names is the script.
//! - `DHCP_IPXE` → `SCRIPT`: a transfer of the script starts (or completes).
//! - `SCRIPT` → `BOOT_FILES`: a transfer of another file starts.
//! - `SCRIPT`, `BOOT_FILES` → `DONE`: a transfer of a *done file* other than
//!   the script and the firmware file completes. By default a done file is
//!   any `.efi` file ([`DoneRule`]): the boot loader the script chains last
//!   (in the rEFInd flow, `refind_x64.efi`) is the last file fetched before
//!   the host boots its local disk.
//! - → `FAILED`: a NAK; a failed transfer of the firmware file, the script or
//!   a done file; the wave's timeout. Failed transfers of other files (a
//!   script probing for optional files) change nothing, nor do transfers the
//!   client itself ended on purpose: UEFI firmware asks for a file's size
//!   (`tsize`) and refuses the answer before fetching it, and a repeated
//!   request replaces the transfer it repeats. A transfer that ended with
//!   only its final ACK missing counts as completed: iPXE starts an image
//!   it fetched at once, often before that ACK is sent.
//!
//! From `DHCP_IPXE` on, news of the firmware file moves nothing: its
//! transfer (or a duplicate one a retried request started) may end after
//! iPXE already asked for its script, since the data plane reports each
//! transfer from the thread serving it and the threads do not wait for one
//! another.
//!
//! A firmware ACK after `DHCP_IPXE` (or after `FAILED`) means the host
//! rebooted: its timeline starts again with that ACK, whose mark says which
//! reboot it is, and [`HostTrack::reboots`] counts them. An iPXE ACK after
//! `FAILED` resumes from `DHCP_IPXE` (iPXE retrying). `DONE` is final: what
//! the host does after handing over to its disk is not the wave's business.
//! Repeated ACKs within a stage (firmware or iPXE retrying) only update the
//! file names.

use bootwave_proto::v1::{self, WaveStage};
use bootwave_protocol::config::format_mac;

use super::observe::{Seen, human_bytes, same_file};

/// Most marks one host's timeline keeps (later ones are dropped; the stage
/// still moves).
const MAX_MARKS: usize = 32;

/// Which completed transfer means a host is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoneRule {
    /// A file whose name ends with this (ASCII case-insensitive).
    Suffix(String),
    /// Exactly this file.
    File(String),
}

impl Default for DoneRule {
    /// Any `.efi` file after the script.
    fn default() -> Self {
        Self::Suffix(".efi".into())
    }
}

impl DoneRule {
    /// Whether a completed transfer of `file` means done.
    pub fn matches(&self, file: &str) -> bool {
        match self {
            Self::Suffix(s) => file.to_ascii_lowercase().ends_with(&s.to_ascii_lowercase()),
            Self::File(f) => same_file(file, f),
        }
    }
}

/// A stage reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The stage.
    pub stage: WaveStage,
    /// Milliseconds since the wave started.
    pub at_ms: u32,
    /// What marked it.
    pub detail: String,
}

/// Where one host of a wave is.
#[derive(Debug, Clone)]
pub struct HostTrack {
    mac: [u8; 6],
    hostname: String,
    stage: WaveStage,
    timeline: Vec<Mark>,
    error: String,
    firmware_file: String,
    script_file: String,
    reboots: u32,
}

impl HostTrack {
    /// A host nothing was seen from yet.
    pub fn new(mac: [u8; 6], hostname: String) -> Self {
        Self {
            mac,
            hostname,
            stage: WaveStage::Waiting,
            timeline: Vec::new(),
            error: String::new(),
            firmware_file: String::new(),
            script_file: String::new(),
            reboots: 0,
        }
    }

    /// Its current stage.
    pub fn stage(&self) -> WaveStage {
        self.stage
    }

    /// The stages reached since its last reboot, in order.
    pub fn timeline(&self) -> &[Mark] {
        &self.timeline
    }

    /// Why it failed (empty unless `FAILED`).
    pub fn error(&self) -> &str {
        &self.error
    }

    /// How many times it rebooted during the wave.
    pub fn reboots(&self) -> u32 {
        self.reboots
    }

    /// Applies one fact seen at `at_ms`; returns whether anything shown
    /// changed.
    pub fn observe(&mut self, at_ms: u32, seen: &Seen<'_>, done: &DoneRule) -> bool {
        use WaveStage as S;
        let stage = self.stage;
        match *seen {
            _ if stage == S::Done => false,
            Seen::Ack {
                ipxe: false,
                address,
                filename,
            } => match stage {
                S::DhcpFirmware | S::FirmwareFile => {
                    self.firmware_file = filename.to_owned();
                    false
                }
                S::Waiting => {
                    self.firmware_file = filename.to_owned();
                    self.reach(at_ms, S::DhcpFirmware, format!("ACK {address}"))
                }
                _ => {
                    self.reboots += 1;
                    let detail = format!(
                        "ACK {address}, reboot {} (was {})",
                        self.reboots,
                        stage_name(stage)
                    );
                    self.timeline.clear();
                    self.error.clear();
                    self.script_file.clear();
                    self.firmware_file = filename.to_owned();
                    self.reach(at_ms, S::DhcpFirmware, detail)
                }
            },
            Seen::Ack {
                ipxe: true,
                address,
                filename,
            } => {
                self.script_file = filename.to_owned();
                match stage {
                    S::DhcpIpxe | S::Script | S::BootFiles => false,
                    _ => {
                        self.error.clear();
                        self.reach(at_ms, S::DhcpIpxe, format!("ACK {address} (iPXE)"))
                    }
                }
            }
            Seen::Nak { message, address } => {
                self.fail(at_ms, format!("NAK to {message} for {address}"))
            }
            Seen::Started { file, size } => {
                let detail = format!("{file} {}", human_bytes(size));
                match stage {
                    S::DhcpFirmware if same_file(file, &self.firmware_file) => {
                        self.reach(at_ms, S::FirmwareFile, detail)
                    }
                    S::DhcpIpxe if same_file(file, &self.script_file) => {
                        self.reach(at_ms, S::Script, detail)
                    }
                    S::Script if self.is_boot_file(file) => self.reach(at_ms, S::BootFiles, detail),
                    _ => false,
                }
            }
            Seen::Completed { file, bytes } => {
                let detail = format!("{file} {}", human_bytes(bytes));
                match stage {
                    S::DhcpFirmware if same_file(file, &self.firmware_file) => {
                        self.reach(at_ms, S::FirmwareFile, detail)
                    }
                    S::DhcpIpxe if same_file(file, &self.script_file) => {
                        self.reach(at_ms, S::Script, detail)
                    }
                    S::Script | S::BootFiles if self.is_boot_file(file) => {
                        if done.matches(file) {
                            self.reach(at_ms, S::Done, detail)
                        } else if stage == S::Script {
                            self.reach(at_ms, S::BootFiles, detail)
                        } else {
                            false
                        }
                    }
                    _ => false,
                }
            }
            Seen::Failed { file, error } => {
                let fatal = !ended_by_the_client(error)
                    && match stage {
                        S::DhcpFirmware | S::FirmwareFile => same_file(file, &self.firmware_file),
                        S::DhcpIpxe => same_file(file, &self.script_file),
                        S::Script | S::BootFiles => {
                            same_file(file, &self.script_file)
                                || (self.is_boot_file(file) && done.matches(file))
                        }
                        _ => false,
                    };
                fatal && self.fail(at_ms, format!("{file}: {error}"))
            }
        }
    }

    /// The wave's timeout passed at `at_ms`: a host not done fails.
    pub fn time_out(&mut self, at_ms: u32) -> bool {
        match self.stage {
            WaveStage::Done | WaveStage::Failed => false,
            stage => self.fail(at_ms, format!("timed out in {}", stage_name(stage))),
        }
    }

    /// The host on the wire, with or without its timeline.
    pub fn to_wire(&self) -> v1::WaveHost {
        v1::WaveHost {
            mac: format_mac(&self.mac),
            hostname: self.hostname.clone(),
            stage: self.stage.into(),
            timeline: self
                .timeline
                .iter()
                .map(|m| v1::StageMark {
                    stage: m.stage.into(),
                    at_ms: m.at_ms,
                    detail: m.detail.clone(),
                })
                .collect(),
            error: self.error.clone(),
        }
    }

    /// Whether `file`, fetched after the script, is one the script asked
    /// for: neither the script itself nor the firmware file (whose late
    /// news belongs to the firmware stage).
    fn is_boot_file(&self, file: &str) -> bool {
        !same_file(file, &self.script_file) && !same_file(file, &self.firmware_file)
    }

    fn fail(&mut self, at_ms: u32, error: String) -> bool {
        if self.stage == WaveStage::Failed {
            return false;
        }
        self.error.clone_from(&error);
        self.reach(at_ms, WaveStage::Failed, error)
    }

    fn reach(&mut self, at_ms: u32, stage: WaveStage, detail: String) -> bool {
        self.stage = stage;
        if self.timeline.len() < MAX_MARKS {
            self.timeline.push(Mark {
                stage,
                at_ms,
                detail,
            });
        }
        true
    }
}

/// The stage's name as the API spells it ("DHCP_IPXE").
pub fn stage_name(stage: WaveStage) -> &'static str {
    stage.as_str_name()
}

/// Whether a failed transfer's `error` (the data plane's outcome text) is
/// the client ending it on purpose: a size probe (it refused the OACK) or
/// a repeated request that replaced it.
fn ended_by_the_client(error: &str) -> bool {
    error.starts_with("options refused") || error.starts_with("replaced by a new request")
}
