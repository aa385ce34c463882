//! The stage machine driven by scripted boot events and fake time.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bootwave_proto::v1::{self, WaveStage as S, boot_event, http_event, tftp_event};

use super::registry::{NewWave, WaveError, Waves};
use super::{DoneRule, STAGES, Wave, WaveSpec};

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn mac(m: [u8; 6]) -> String {
    bootwave_protocol::config::format_mac(&m)
}

fn dhcp(m: [u8; 6], message: &str, reply: &str, user_class: &str, file: &str) -> v1::BootEvent {
    v1::BootEvent {
        mac: mac(m),
        kind: Some(boot_event::Kind::Dhcp(v1::DhcpEvent {
            message: message.into(),
            reply: reply.into(),
            arch: Some(7),
            user_class: user_class.into(),
            ipxe_encap: !user_class.is_empty(),
            filename: file.into(),
            address: "10.0.0.5".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn ack(m: [u8; 6], ipxe: bool, file: &str) -> v1::BootEvent {
    dhcp(m, "REQUEST", "ACK", if ipxe { "iPXE" } else { "" }, file)
}

fn tftp(m: [u8; 6], kind: tftp_event::Kind, file: &str) -> v1::BootEvent {
    v1::BootEvent {
        mac: mac(m),
        kind: Some(boot_event::Kind::Tftp(v1::TftpEvent {
            kind: kind.into(),
            file: file.into(),
            size: 1_000_000,
            bytes: if kind == tftp_event::Kind::Completed {
                1_000_000
            } else {
                0
            },
            error: if kind == tftp_event::Kind::Failed {
                "timed out".into()
            } else {
                String::new()
            },
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn started(m: [u8; 6], f: &str) -> v1::BootEvent {
    tftp(m, tftp_event::Kind::Started, f)
}
fn completed(m: [u8; 6], f: &str) -> v1::BootEvent {
    tftp(m, tftp_event::Kind::Completed, f)
}
fn failed(m: [u8; 6], f: &str) -> v1::BootEvent {
    tftp(m, tftp_event::Kind::Failed, f)
}

/// The whole guide flow of one host, one event every 100 ms from `t0`.
fn flow(m: [u8; 6]) -> Vec<v1::BootEvent> {
    vec![
        dhcp(m, "DISCOVER", "OFFER", "", "ipxe.efi"),
        ack(m, false, "ipxe.efi"),
        started(m, "ipxe.efi"),
        completed(m, "ipxe.efi"),
        dhcp(m, "DISCOVER", "OFFER", "iPXE", "refind.pxe"),
        ack(m, true, "refind.pxe"),
        started(m, "refind.pxe"),
        completed(m, "refind.pxe"),
        started(m, "/refind.conf"),
        completed(m, "/refind.conf"),
        started(m, "/refind_x64.efi"),
        completed(m, "/refind_x64.efi"),
    ]
}

fn wave(hosts: &[[u8; 6]], timeout_ms: u32) -> Wave {
    let spec = WaveSpec {
        id: "w".into(),
        name: "test".into(),
        started_unix_ms: 1_000_000,
        timeout_ms,
        done: DoneRule::default(),
    };
    Wave::new(spec, hosts.iter().map(|&m| (m, format!("h{}", m[5]))))
}

fn stages(w: &Wave, m: [u8; 6]) -> Vec<(S, u32)> {
    let host = w.host(&m).unwrap();
    host.timeline().iter().map(|k| (k.stage, k.at_ms)).collect()
}

fn count(w: &Wave, stage: S) -> u32 {
    w.stage_counts()[STAGES.iter().position(|&s| s == stage).unwrap()]
}

#[test]
fn full_flow_reaches_done_on_the_efi_after_the_script() {
    let mut w = wave(&[A, B], 60_000);
    for (i, e) in flow(A).iter().enumerate() {
        w.observe(u32::try_from(i).unwrap() * 100, e);
    }
    assert_eq!(
        stages(&w, A),
        vec![
            (S::DhcpFirmware, 100),
            (S::FirmwareFile, 200),
            (S::DhcpIpxe, 500),
            (S::Script, 600),
            (S::BootFiles, 800),
            (S::Done, 1100),
        ]
    );
    let host = w.host(&A).unwrap();
    assert_eq!(host.stage(), S::Done);
    assert_eq!(host.timeline()[5].detail, "/refind_x64.efi 1.0 MB");
    assert_eq!(host.timeline()[0].detail, "ACK 10.0.0.5");
    assert_eq!((count(&w, S::Done), count(&w, S::Waiting)), (1, 1));
    assert!(!w.is_finished(), "B has not booted yet");

    let wire = w.to_wire(false);
    assert!(wire.hosts.is_empty());
    let done = wire.timings.iter().find(|t| t.stage() == S::Done).unwrap();
    assert_eq!((done.hosts, done.p50_ms, done.max_ms), (1, 1100, 1100));

    for (i, e) in flow(B).iter().enumerate() {
        w.observe(2000 + u32::try_from(i).unwrap() * 10, e);
    }
    assert!(w.is_finished(), "every host is done");
    let wire = w.to_wire(false);
    assert_eq!(wire.finished_unix_ms, 1_000_000 + 2110);
    assert_eq!(wire.hosts.len(), 2, "a finished wave always has its hosts");
    let dhcp_fw = wire
        .timings
        .iter()
        .find(|t| t.stage() == S::DhcpFirmware)
        .unwrap();
    assert_eq!(
        (dhcp_fw.hosts, dhcp_fw.p50_ms, dhcp_fw.max_ms),
        (2, 100, 2010)
    );
    assert_eq!(wire.counts.len(), 8);
}

fn http(m: [u8; 6], kind: http_event::Kind, file: &str) -> v1::BootEvent {
    v1::BootEvent {
        mac: mac(m),
        kind: Some(boot_event::Kind::Http(v1::HttpEvent {
            kind: kind.into(),
            file: file.into(),
            size: 2_000_000,
            bytes: if kind == http_event::Kind::Completed {
                2_000_000
            } else {
                0
            },
            status: 200,
            ..Default::default()
        })),
        ..Default::default()
    }
}

#[test]
fn http_downloads_move_hosts_as_tftp_transfers_do() {
    // UEFI HTTP boot: the firmware's ACK names a URL, the firmware file
    // and rEFInd come over HTTP, the script over TFTP.
    let url = "http://10.0.0.1:8080/ipxe.efi";
    let events = vec![
        ack(A, false, url),
        http(A, http_event::Kind::Started, "ipxe.efi"),
        http(A, http_event::Kind::Completed, "ipxe.efi"),
        ack(A, true, "refind-http.pxe"),
        started(A, "refind-http.pxe"),
        completed(A, "refind-http.pxe"),
        http(A, http_event::Kind::Started, "refind.conf"),
        http(A, http_event::Kind::Completed, "refind.conf"),
        http(A, http_event::Kind::Started, "refind_x64.efi"),
        http(A, http_event::Kind::Completed, "refind_x64.efi"),
    ];
    let mut w = wave(&[A, B], 60_000);
    for (i, e) in events.iter().enumerate() {
        w.observe(u32::try_from(i).unwrap() * 100, e);
    }
    assert_eq!(
        stages(&w, A),
        vec![
            (S::DhcpFirmware, 0),
            (S::FirmwareFile, 100),
            (S::DhcpIpxe, 300),
            (S::Script, 400),
            (S::BootFiles, 600),
            (S::Done, 900),
        ]
    );
    assert_eq!(
        w.host(&A).unwrap().timeline()[5].detail,
        "refind_x64.efi 2.0 MB"
    );

    // A refused GET of the script fails the host, with the reason.
    let mut refused = http(B, http_event::Kind::Failed, "refind-http.pxe");
    if let Some(boot_event::Kind::Http(h)) = &mut refused.kind {
        h.error = "404 Not Found".into();
        h.status = 404;
    }
    w.observe(1000, &ack(B, true, "http://10.0.0.1/refind-http.pxe"));
    w.observe(1100, &refused);
    let host = w.host(&B).unwrap();
    assert_eq!(host.stage(), S::Failed);
    assert!(host.error().contains("404 Not Found"), "{}", host.error());
}

#[test]
fn a_reboot_after_ipxe_restarts_the_timeline() {
    let mut w = wave(&[A], 60_000);
    for e in &flow(A)[..7] {
        w.observe(10, e);
    }
    assert_eq!(w.host(&A).unwrap().stage(), S::Script);
    assert!(w.observe(500, &ack(A, false, "ipxe.efi")));
    let host = w.host(&A).unwrap();
    assert_eq!(host.reboots(), 1);
    assert_eq!(stages(&w, A), vec![(S::DhcpFirmware, 500)]);
    assert_eq!(
        host.timeline()[0].detail,
        "ACK 10.0.0.5, reboot 1 (was SCRIPT)"
    );
    assert_eq!(count(&w, S::Script), 0);
    assert_eq!(count(&w, S::DhcpFirmware), 1);
    for e in &flow(A)[2..] {
        w.observe(900, e);
    }
    assert_eq!(w.host(&A).unwrap().stage(), S::Done);
    assert!(w.is_finished());
}

#[test]
fn firmware_retries_do_not_count_as_reboots() {
    let mut w = wave(&[A], 60_000);
    w.observe(10, &ack(A, false, "ipxe.efi"));
    w.observe(20, &started(A, "ipxe.efi"));
    assert!(!w.observe(30, &ack(A, false, "ipxe.efi")));
    assert_eq!(w.host(&A).unwrap().reboots(), 0);
    assert_eq!(w.host(&A).unwrap().stage(), S::FirmwareFile);
}

#[test]
fn a_nak_fails_the_host_and_a_later_boot_recovers_it() {
    let mut w = wave(&[A, B], 60_000);
    w.observe(10, &ack(A, false, "ipxe.efi"));
    assert!(w.observe(20, &dhcp(A, "REQUEST", "NAK", "", "")));
    let host = w.host(&A).unwrap();
    assert_eq!(host.stage(), S::Failed);
    assert_eq!(host.error(), "NAK to REQUEST for 10.0.0.5");
    assert_eq!(count(&w, S::Failed), 1);
    w.observe(30, &ack(A, false, "ipxe.efi"));
    let host = w.host(&A).unwrap();
    assert_eq!((host.stage(), host.error()), (S::DhcpFirmware, ""));
    assert_eq!(host.reboots(), 1);
}

#[test]
fn a_failed_stage_transfer_fails_the_host_but_an_optional_file_does_not() {
    let mut w = wave(&[A, B], 60_000);
    for e in &flow(A)[..8] {
        w.observe(10, e);
    }
    assert!(!w.observe(20, &failed(A, "optional.cfg")));
    assert_eq!(w.host(&A).unwrap().stage(), S::Script);
    assert!(w.observe(30, &failed(A, "refind_x64.efi")));
    let host = w.host(&A).unwrap();
    assert_eq!(host.stage(), S::Failed);
    assert_eq!(host.error(), "refind_x64.efi: timed out");

    w.observe(40, &ack(B, false, "ipxe.efi"));
    w.observe(50, &failed(B, "/ipxe.efi"));
    assert_eq!(w.host(&B).unwrap().stage(), S::Failed);
    assert!(w.is_finished(), "every host failed");
    assert_eq!(w.to_wire(false).finished_unix_ms, 1_000_050);
}

#[test]
fn transfers_the_client_ends_on_purpose_fail_nothing() {
    let mut w = wave(&[A], 60_000);
    let flow = flow(A);
    for e in &flow[..3] {
        w.observe(10, e);
    }
    for error in ["options refused", "replaced by a new request"] {
        let mut probe = failed(A, "ipxe.efi");
        if let Some(boot_event::Kind::Tftp(t)) = &mut probe.kind {
            t.error = error.into();
        }
        assert!(!w.observe(20, &probe), "{error}");
        assert_eq!(w.host(&A).unwrap().stage(), S::FirmwareFile, "{error}");
    }
    for e in &flow[3..] {
        w.observe(30, e);
    }
    assert_eq!(w.host(&A).unwrap().stage(), S::Done);
}

#[test]
fn a_done_file_whose_final_ack_is_missing_counts_as_fetched() {
    let mut w = wave(&[A], 60_000);
    let flow = flow(A);
    let (last, head) = flow.split_last().unwrap();
    for e in head {
        w.observe(10, e);
    }
    let mut unconfirmed = last.clone();
    if let Some(boot_event::Kind::Tftp(t)) = &mut unconfirmed.kind {
        assert_eq!(
            t.kind(),
            tftp_event::Kind::Completed,
            "the flow ends with a completion"
        );
        t.kind = tftp_event::Kind::Failed.into();
        t.error = "final ACK missing".into();
    }
    assert!(w.observe(20, &unconfirmed));
    assert_eq!(w.host(&A).unwrap().stage(), S::Done);
}

#[test]
fn the_timeout_fails_every_host_not_done() {
    let mut w = wave(&[A, B], 5_000);
    for e in flow(A) {
        w.observe(10, &e);
    }
    w.observe(20, &ack(B, false, "ipxe.efi"));
    assert_eq!(w.poll_timeout(), Some(5_000));
    assert!(!w.handle_timeout(4_999));
    assert!(w.handle_timeout(5_000));
    assert!(w.is_finished());
    assert_eq!(w.poll_timeout(), None);
    let b = w.host(&B).unwrap();
    assert_eq!(
        (b.stage(), b.error()),
        (S::Failed, "timed out in DHCP_FIRMWARE")
    );
    assert_eq!(w.host(&A).unwrap().stage(), S::Done);
    assert!(!w.observe(6_000, &ack(B, false, "ipxe.efi")), "finished");
}

#[test]
fn unknown_macs_and_events_without_a_mac_are_ignored() {
    let mut w = wave(&[A], 5_000);
    let stranger = [2, 0, 0, 0, 0, 9];
    for e in flow(stranger) {
        assert!(!w.observe(10, &e));
    }
    let mut anonymous = completed(A, "refind_x64.efi");
    anonymous.mac.clear();
    assert!(!w.observe(10, &anonymous));
    assert_eq!(count(&w, S::Waiting), 1);
    assert_eq!(w.host(&A).unwrap().timeline().len(), 0);
}

#[test]
fn tftp_before_any_ack_and_other_files_move_nothing() {
    let mut w = wave(&[A], 5_000);
    assert!(!w.observe(5, &dhcp(A, "INFORM", "ACK", "", "ipxe.efi")));
    assert!(!w.observe(10, &completed(A, "refind_x64.efi")));
    w.observe(20, &ack(A, false, "ipxe.efi"));
    assert!(!w.observe(30, &started(A, "other.efi")));
    assert_eq!(w.host(&A).unwrap().stage(), S::DhcpFirmware);
}

#[test]
fn a_done_rule_naming_one_file_waits_for_it() {
    let spec = WaveSpec {
        id: "w".into(),
        name: String::new(),
        started_unix_ms: 0,
        timeout_ms: 5_000,
        done: DoneRule::File("vmlinuz".into()),
    };
    let mut w = Wave::new(spec, [(A, String::new())]);
    for e in &flow(A) {
        w.observe(10, e);
    }
    assert_eq!(w.host(&A).unwrap().stage(), S::BootFiles);
    w.observe(20, &completed(A, "/vmlinuz"));
    assert_eq!(w.host(&A).unwrap().stage(), S::Done);
}

#[test]
fn registry_feeds_running_waves_and_times_them_out() {
    let waves = Waves::new();
    let t0 = Instant::now();
    assert_eq!(waves.get("", false), Err(WaveError::NoWave));
    let new = |hosts: Vec<[u8; 6]>| NewWave {
        name: "n".into(),
        timeout_ms: 1_000,
        hosts: hosts.into_iter().map(|m| (m, String::new())).collect(),
    };
    let first = waves.start(new(vec![A]), t0, 5_000).unwrap();
    let second = waves.start(new(vec![A, B]), t0, 5_000).unwrap();
    assert_ne!(first.id, second.id);
    let (id, changes) = waves.subscribe("").unwrap();
    assert_eq!(id, second.id, "empty id: the latest");
    waves.observe(&ack(A, false, "ipxe.efi"), t0 + Duration::from_millis(40));
    assert!(changes.has_changed().unwrap());
    let got = waves.get(&first.id, true).unwrap();
    assert_eq!(got.hosts[0].timeline[0].at_ms, 40);
    assert_eq!(waves.stage_counts()[1], 2, "A in both waves");
    let finished = waves
        .finish(&first.id, t0 + Duration::from_millis(50))
        .unwrap();
    assert!(finished.finished);
    assert_eq!(finished.finished_unix_ms, 5_050);
    waves.tick(t0 + Duration::from_millis(1_000));
    let second = waves.get(&second.id, false).unwrap();
    assert!(second.finished);
    assert_eq!(second.counts[7].hosts, 2, "both timed out");
    assert_eq!(waves.stage_counts(), [0; 8], "no wave running");
    assert_eq!(
        waves.get("nope", false),
        Err(WaveError::NotFound("nope".into()))
    );
    assert_eq!(waves.list().len(), 2);
}

#[test]
fn registry_keeps_a_bounded_number_of_waves() {
    let waves = Waves::new();
    let t0 = Instant::now();
    let new = || NewWave {
        name: String::new(),
        timeout_ms: 1_000,
        hosts: vec![(A, String::new())],
    };
    for _ in 0..super::registry::MAX_WAVES {
        waves.start(new(), t0, 0).unwrap();
    }
    assert!(matches!(
        waves.start(new(), t0, 0),
        Err(WaveError::TooMany(_))
    ));
    let oldest = waves.list()[0].id.clone();
    waves.finish(&oldest, t0).unwrap();
    waves.start(new(), t0, 0).unwrap();
    let ids: Vec<String> = waves.list().into_iter().map(|w| w.id).collect();
    assert_eq!(ids.len(), super::registry::MAX_WAVES);
    assert!(!ids.contains(&oldest), "the finished wave made room");
}

#[test]
fn metrics_see_stage_names_and_counts() {
    use crate::metrics::WaveStages;
    let waves = Waves::new();
    let hosts = vec![(A, String::new()), (B, String::new())];
    let new = NewWave {
        name: String::new(),
        timeout_ms: 1_000,
        hosts,
    };
    let t0 = Instant::now();
    waves.start(new, t0, 0).unwrap();
    waves.observe(&ack(B, true, "refind.pxe"), t0);
    let counts = WaveStages::stage_counts(&waves);
    assert_eq!(counts.len(), 8);
    assert_eq!(counts[0], ("WAITING".to_owned(), 1));
    assert_eq!(counts[3], ("DHCP_IPXE".to_owned(), 1));
}

#[test]
fn late_news_of_the_firmware_file_does_not_finish_or_fail_a_host() {
    // The firmware file's transfer ends on another thread than the one
    // serving iPXE's request: its completion can arrive after the script.
    let mut w = wave(&[A], 60_000);
    w.observe(10, &ack(A, false, "ipxe.efi"));
    w.observe(20, &started(A, "ipxe.efi"));
    w.observe(30, &ack(A, true, "refind.pxe"));
    w.observe(40, &started(A, "refind.pxe"));
    w.observe(50, &completed(A, "refind.pxe"));
    assert!(!w.observe(60, &completed(A, "ipxe.efi")));
    assert!(!w.observe(61, &started(A, "ipxe.efi")));
    assert!(!w.observe(62, &failed(A, "ipxe.efi")));
    assert_eq!(w.host(&A).unwrap().stage(), S::Script);
    w.observe(70, &started(A, "/refind.conf"));
    assert!(!w.observe(75, &completed(A, "/ipxe.efi")));
    assert_eq!(w.host(&A).unwrap().stage(), S::BootFiles);
    w.observe(80, &completed(A, "/refind_x64.efi"));
    assert_eq!(
        stages(&w, A),
        vec![
            (S::DhcpFirmware, 10),
            (S::FirmwareFile, 20),
            (S::DhcpIpxe, 30),
            (S::Script, 40),
            (S::BootFiles, 70),
            (S::Done, 80),
        ]
    );
}
