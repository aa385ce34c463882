//! Boot events, leases and reboot waves through the agent's API, in process,
//! against scripted fake data planes.
#![allow(clippy::unwrap_used)]

mod agent_support;
mod wave_support;

use std::time::Duration;

use agent_support::*;
use bootwave_proto::v1::{self, WaveStage, tftp_event};
use tonic::Code;
use wave_support::*;

const MAC_A: &str = "02:00:00:00:01:01";

async fn next<T>(stream: &mut tonic::Streaming<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("no message within 5 s")
        .unwrap()
        .expect("stream ended")
}

async fn put_hosts(
    c: &mut v1::bootwave_service_client::BootwaveServiceClient<tonic::transport::Channel>,
    hosts: Vec<v1::Host>,
) {
    c.put_subnet(v1::PutSubnetRequest {
        subnet: Some(subnet()),
    })
    .await
    .unwrap();
    c.import_hosts(tokio_stream::iter(hosts)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_stamped_filtered_and_remembered_as_last_seen() {
    let (dir, state, socket) = temp();
    let plane = FakePlane::start(&dir.path().join("dp.sock"), vec![]).await;
    let agent = start_agent(&state, &socket, vec![plane.endpoint.clone()]).await;
    let mut c = client(&agent.endpoint).await;
    plane.wait_for_follower().await;

    let mut all = c
        .watch_events(v1::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut only_b = c
        .watch_events(v1::WatchEventsRequest {
            macs: vec!["02-00-00-00-01-02".into()],
        })
        .await
        .unwrap()
        .into_inner();
    plane.emit(dhcp(MAC_A, "NAK", "iPXE", ""));
    plane.emit(tftp(
        "02:00:00:00:01:02",
        tftp_event::Kind::Failed,
        "ipxe.efi",
    ));

    let first = next(&mut all).await;
    assert_eq!(
        (first.mac.as_str(), first.dataplane.as_str()),
        (MAC_A, plane.endpoint.as_str())
    );
    assert_eq!(next(&mut all).await.mac, "02:00:00:00:01:02");
    let b = next(&mut only_b).await;
    assert_eq!(b.mac, "02:00:00:00:01:02", "A filtered out");
    assert_eq!(b.dataplane, plane.endpoint);

    let explain = c
        .explain(v1::ExplainRequest { mac: MAC_A.into() })
        .await
        .unwrap()
        .into_inner();
    let seen = explain.last_seen.expect("last seen filled");
    assert_eq!(seen.last_dhcp, "REQUEST -> NAK");
    assert_eq!(seen.user_class, "iPXE");
    assert_eq!(seen.last_error, "NAK to REQUEST for 10.0.0.5");
    assert_eq!(seen.dataplane, plane.endpoint);
    let never = c
        .explain(v1::ExplainRequest {
            mac: "02:00:00:00:09:09".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(never.last_seen.is_none());

    let bad = c
        .watch_events(v1::WatchEventsRequest {
            macs: vec![MAC_A.into(), "nope".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("macs[1]"), "{}", bad.message());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_resume_after_the_data_plane_restarts() {
    let (dir, state, socket) = temp();
    let dp_socket = dir.path().join("dp.sock");
    let plane = FakePlane::start(&dp_socket, vec![]).await;
    let agent = start_agent(&state, &socket, vec![plane.endpoint.clone()]).await;
    let mut c = client(&agent.endpoint).await;
    plane.wait_for_follower().await;
    let mut all = c
        .watch_events(v1::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    plane.emit(dhcp(MAC_A, "ACK", "", "ipxe.efi"));
    assert_eq!(next(&mut all).await.mac, MAC_A);
    plane.kill().await;

    let plane = FakePlane::start(&dp_socket, vec![]).await;
    plane.wait_for_follower().await;
    plane.emit(dhcp("02:00:00:00:01:03", "ACK", "", "ipxe.efi"));
    let again = next(&mut all).await;
    assert_eq!(again.mac, "02:00:00:00:01:03", "the agent subscribed again");
    assert_eq!(again.dataplane, plane.endpoint);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_of_every_plane_are_merged_and_unreachable_ones_named() {
    let (dir, state, socket) = temp();
    let one = FakePlane::start(
        &dir.path().join("one.sock"),
        vec![
            lease("02:00:00:00:01:02", "10.0.0.102"),
            lease(MAC_A, "10.0.0.101"),
        ],
    )
    .await;
    let two = FakePlane::start(
        &dir.path().join("two.sock"),
        vec![lease(MAC_A, "10.0.0.150")],
    )
    .await;
    let gone = format!("unix:{}", dir.path().join("gone.sock").display());
    let planes = vec![one.endpoint.clone(), two.endpoint.clone(), gone.clone()];
    let agent = start_agent(&state, &socket, planes).await;
    let mut c = client(&agent.endpoint).await;

    let all = c
        .list_leases(v1::ListLeasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(&str, &str, &str)> = all
        .leases
        .iter()
        .map(|l| (l.mac.as_str(), l.address.as_str(), l.dataplane.as_str()))
        .collect();
    let mut want = vec![
        (MAC_A, "10.0.0.101", one.endpoint.as_str()),
        (MAC_A, "10.0.0.150", two.endpoint.as_str()),
        ("02:00:00:00:01:02", "10.0.0.102", one.endpoint.as_str()),
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(all.errors.len(), 1);
    assert!(all.errors[0].starts_with(&gone), "{:?}", all.errors);

    let one_mac = c
        .list_leases(v1::ListLeasesRequest {
            mac: "02-00-00-00-01-02".into(),
            subnet: "10.0.0.0/24".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one_mac.leases.len(), 1, "the MAC went out normalised");

    for (mac, subnet, field) in [("zz", "", "mac"), ("", "10.0.0.1/24", "subnet")] {
        let e = c
            .list_leases(v1::ListLeasesRequest {
                mac: mac.into(),
                subnet: subnet.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().starts_with(field), "{}", e.message());
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_wave_refuses_empty_or_unknown_selections() {
    let (_dir, state, socket) = temp();
    let agent = start_agent(&state, &socket, vec![]).await;
    let mut c = client(&agent.endpoint).await;
    put_hosts(&mut c, vec![labelled_host(1, "r1")]).await;
    let cases: Vec<(v1::StartWaveRequest, &str)> = vec![
        (v1::StartWaveRequest::default(), "labels"),
        (
            v1::StartWaveRequest {
                labels: [("rack".to_owned(), "r9".to_owned())].into(),
                ..Default::default()
            },
            "labels: no host carries rack=r9",
        ),
        (
            v1::StartWaveRequest {
                macs: vec![MAC_A.into(), "02:00".into()],
                ..Default::default()
            },
            "macs[1]",
        ),
        (
            v1::StartWaveRequest {
                macs: vec!["02:00:00:00:09:09".into()],
                ..Default::default()
            },
            "macs[0]: no host 02:00:00:00:09:09",
        ),
    ];
    for (request, field) in cases {
        let e = c.start_wave(request).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().starts_with(field), "{}", e.message());
    }
    for e in [
        c.get_wave(v1::GetWaveRequest::default()).await.unwrap_err(),
        c.finish_wave(v1::FinishWaveRequest { id: "x".into() })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::NotFound);
    }
    let e = c
        .watch_wave(v1::WatchWaveRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(
        c.list_waves(v1::ListWavesRequest {})
            .await
            .unwrap()
            .into_inner()
            .waves
            .is_empty()
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_follows_its_hosts_to_done_and_failed() {
    let (dir, state, socket) = temp();
    let plane = FakePlane::start(&dir.path().join("dp.sock"), vec![]).await;
    let agent = start_agent(&state, &socket, vec![plane.endpoint.clone()]).await;
    let mut c = client(&agent.endpoint).await;
    let mut hosts: Vec<v1::Host> = (1..=20).map(|i| labelled_host(i, "r1")).collect();
    hosts.push(labelled_host(99, "other"));
    put_hosts(&mut c, hosts).await;
    plane.wait_for_follower().await;

    let started = c
        .start_wave(v1::StartWaveRequest {
            labels: [("rack".to_owned(), "r1".to_owned())].into(),
            macs: vec!["02:00:00:00:01:63".into()],
            name: "kernel update".into(),
            timeout_s: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.hosts.len(), 21, "20 by label and one by MAC");
    assert_eq!(started.timeout_s, 900);
    assert_eq!(started.counts[0].hosts, 21);
    assert_eq!(started.hosts[0].hostname, "node1");

    let mut watch = c
        .watch_wave(v1::WatchWaveRequest {
            id: started.id.clone(),
            hosts: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut watch).await.counts[0].hosts, 21);

    for i in 1..=20u8 {
        for e in boot_flow(&format!("02:00:00:00:01:{i:02x}")) {
            plane.emit(e);
        }
    }
    let odd = "02:00:00:00:01:63";
    plane.emit(dhcp(odd, "ACK", "", "ipxe.efi"));
    plane.emit(tftp(odd, tftp_event::Kind::Failed, "ipxe.efi"));

    let mut updates = 0;
    let last = loop {
        let w = next(&mut watch).await;
        updates += 1;
        assert!(updates < 100, "too many updates");
        if w.finished {
            break w;
        }
    };
    assert!(
        watch.message().await.unwrap().is_none(),
        "the stream ends with the wave"
    );
    let count = |s: WaveStage| last.counts.iter().find(|c| c.stage() == s).unwrap().hosts;
    assert_eq!((count(WaveStage::Done), count(WaveStage::Failed)), (20, 1));
    assert_eq!(last.hosts.len(), 21);
    let failed = last.hosts.iter().find(|h| h.mac == odd).unwrap();
    assert_eq!(failed.error, "ipxe.efi: timed out");
    let done = &last.hosts[0];
    let stages: Vec<WaveStage> = done.timeline.iter().map(|m| m.stage()).collect();
    assert_eq!(
        stages,
        [
            WaveStage::DhcpFirmware,
            WaveStage::FirmwareFile,
            WaveStage::DhcpIpxe,
            WaveStage::Script,
            WaveStage::BootFiles,
            WaveStage::Done
        ]
    );
    let timing = last
        .timings
        .iter()
        .find(|t| t.stage() == WaveStage::Done)
        .unwrap();
    assert_eq!(timing.hosts, 20);
    assert!(timing.p50_ms <= timing.max_ms);

    let got = c
        .get_wave(v1::GetWaveRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.id.as_str(), got.finished), (started.id.as_str(), true));
    let listed = c
        .list_waves(v1::ListWavesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.waves.len(), 1);
    assert!(listed.waves[0].hosts.is_empty() || listed.waves[0].finished);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_wave_ends_the_watch_with_every_host() {
    let (_dir, state, socket) = temp();
    let agent = start_agent(&state, &socket, vec![]).await;
    let mut c = client(&agent.endpoint).await;
    put_hosts(&mut c, vec![labelled_host(1, "r1"), labelled_host(2, "r1")]).await;
    let started = c
        .start_wave(v1::StartWaveRequest {
            macs: vec![MAC_A.into()],
            timeout_s: 60,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut watch = c
        .watch_wave(v1::WatchWaveRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(!next(&mut watch).await.finished);
    let finished = c
        .finish_wave(v1::FinishWaveRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(finished.id, started.id);
    assert!(finished.finished && finished.finished_unix_ms >= finished.started_unix_ms);
    let last = next(&mut watch).await;
    assert!(last.finished);
    assert_eq!(last.hosts.len(), 1);
    assert_eq!(last.hosts[0].stage(), WaveStage::Waiting);
    assert!(watch.message().await.unwrap().is_none());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_times_out() {
    let (_dir, state, socket) = temp();
    let agent = start_agent(&state, &socket, vec![]).await;
    let mut c = client(&agent.endpoint).await;
    put_hosts(&mut c, vec![labelled_host(1, "r1")]).await;
    c.start_wave(v1::StartWaveRequest {
        macs: vec![MAC_A.into()],
        timeout_s: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut watch = c
        .watch_wave(v1::WatchWaveRequest::default())
        .await
        .unwrap()
        .into_inner();
    let last = loop {
        let w = next(&mut watch).await;
        if w.finished {
            break w;
        }
    };
    assert_eq!(last.hosts[0].stage(), WaveStage::Failed);
    assert_eq!(last.hosts[0].error, "timed out in WAITING");
    agent.stop().await;
}
