//! Cost of one boot event in the agent: a wave's stage machine alone, and
//! the whole publish path (last seen, running waves, broadcast).

use std::sync::Arc;
use std::time::Instant;

use bootwave_agent::events::Events;
use bootwave_agent::wave::{DoneRule, NewWave, Wave, WaveSpec, Waves};
use bootwave_proto::v1::{self, boot_event, tftp_event};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const HOSTS: u32 = 10_000;

fn mac(i: u32) -> [u8; 6] {
    let [_, a, b, c] = i.to_be_bytes();
    [2, 0, 0, a, b, c]
}

fn flow(m: [u8; 6]) -> Vec<v1::BootEvent> {
    let mac = bootwave_protocol::config::format_mac(&m);
    let dhcp = |user_class: &str, file: &str| v1::BootEvent {
        mac: mac.clone(),
        kind: Some(boot_event::Kind::Dhcp(v1::DhcpEvent {
            message: "REQUEST".into(),
            reply: "ACK".into(),
            arch: Some(7),
            user_class: user_class.into(),
            filename: file.into(),
            address: "10.0.0.5".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let tftp = |kind: tftp_event::Kind, file: &str| v1::BootEvent {
        mac: mac.clone(),
        kind: Some(boot_event::Kind::Tftp(v1::TftpEvent {
            kind: kind.into(),
            file: file.into(),
            size: 1 << 20,
            bytes: 1 << 20,
            ..Default::default()
        })),
        ..Default::default()
    };
    let mut events = vec![dhcp("", "ipxe.efi")];
    for (i, f) in ["ipxe.efi", "refind.pxe", "refind.conf", "refind_x64.efi"]
        .into_iter()
        .enumerate()
    {
        if i == 1 {
            events.push(dhcp("iPXE", "refind.pxe"));
        }
        events.push(tftp(tftp_event::Kind::Started, f));
        events.push(tftp(tftp_event::Kind::Completed, f));
    }
    events
}

fn events() -> Vec<v1::BootEvent> {
    (0..HOSTS).flat_map(|i| flow(mac(i))).collect()
}

fn bench(c: &mut Criterion) {
    let all = events();
    let mut group = c.benchmark_group("wave");
    group.throughput(Throughput::Elements(all.len() as u64));
    group.sample_size(20);
    group.bench_function("stage_machine_10k_hosts_full_flow", |b| {
        b.iter(|| {
            let spec = WaveSpec {
                id: "b".into(),
                name: String::new(),
                started_unix_ms: 0,
                timeout_ms: u32::MAX,
                done: DoneRule::default(),
            };
            let mut wave = Wave::new(spec, (0..HOSTS).map(|i| (mac(i), String::new())));
            for (at, e) in all.iter().enumerate() {
                wave.observe(u32::try_from(at).unwrap_or(u32::MAX), e);
            }
            assert!(wave.is_finished());
        });
    });
    group.bench_function("publish_10k_hosts_full_flow", |b| {
        b.iter(|| {
            let waves = Arc::new(Waves::new());
            let new = NewWave {
                name: String::new(),
                timeout_ms: u32::MAX,
                hosts: (0..HOSTS).map(|i| (mac(i), String::new())).collect(),
            };
            let id = waves.start(new, Instant::now(), 0).map(|w| w.id);
            let hub = Events::new(waves.clone(), 1 << 16);
            for e in &all {
                hub.publish(e.clone());
            }
            assert!(
                waves
                    .get(&id.unwrap_or_default(), false)
                    .is_ok_and(|w| w.finished)
            );
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
