//! `WatchEvents` and `ListLeases` over a real unix socket: filtering,
//! conversion, a lagging subscriber, and streams ending at stop.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bootwave_proto::v1::{
    self, boot_event, dataplane_control_client::DataplaneControlClient, tftp_event,
};
use bootwave_protocol::config::{self, ClientArch};
use bootwave_protocol::dhcp::{
    Event, LeaseRecord, LeaseTable, MessageType, RecordKind, ShortBytes, UnixTime, Verdict,
};
use bootwave_protocol::shard::shard_of;
use bootwave_protocol::tftp::{TransferEvent, TransferStarted};
use tokio_stream::StreamExt as _;

use super::*;

const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
/// How long a test waits for one streamed event before failing.
const EVENT_LIMIT: Duration = Duration::from_secs(10);

type Client = DataplaneControlClient<tonic::transport::Channel>;

fn start(path: &Path, observe: Observe) -> ControlHandle {
    let local = config::parse("", "local.toml", Path::new("/")).unwrap();
    serve_with(
        path,
        local,
        Arc::new(|_, _| Ok(())),
        Arc::new(DataplaneStatus::default),
        observe,
    )
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn client(path: &Path) -> Client {
    let endpoint = format!("unix:{}", path.display());
    DataplaneControlClient::new(bootwave_proto::channel::connect(&endpoint).await.unwrap())
}

fn ipxe_offer(mac: [u8; 6]) -> Event {
    Event {
        message: Some(MessageType::Discover),
        xid: 0x1234,
        mac,
        arch: Some(ClientArch(7)),
        user_class: true,
        user_class_value: ShortBytes::new(b"iPXE"),
        ipxe_encap: true,
        vendor_class: ShortBytes::new(b"PXEClient:Arch:00007"),
        boot_file: ShortBytes::new(b"refind.pxe"),
        addr: Some(Ipv4Addr::new(10, 0, 0, 5)),
        verdict: Verdict::Offered,
        lease_secs: None,
    }
}

fn started(mac: Option<[u8; 6]>) -> TransferEvent {
    TransferEvent::Started(TransferStarted {
        client: SocketAddr::from(([10, 0, 0, 5], 1234)),
        mac,
        file: Arc::from("ipxe.efi"),
        size: 1_000_000,
        blksize: 1468,
        windowsize: 8,
    })
}

async fn next(stream: &mut tonic::Streaming<v1::BootEvent>) -> v1::BootEvent {
    tokio::time::timeout(EVENT_LIMIT, stream.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
        .expect("not an error")
}

#[test]
fn watch_events_streams_the_events_of_the_macs_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let bus = EventBus::new(64);
    let _handle = start(
        &path,
        Observe {
            events: bus.clone(),
            leases: Vec::new(),
        },
    );
    let (dhcp, tftp) = runtime().block_on(async {
        let mut c = client(&path).await;
        let request = v1::WatchEventsRequest {
            macs: vec!["02:00:00:00:00:0A".into()],
        };
        let mut stream = c.watch_events(request).await.unwrap().into_inner();
        // Subscribed once the call returned: every event below is seen.
        bus.publish_dhcp(1, &ipxe_offer(B));
        bus.publish_tftp(0, started(None));
        bus.publish_dhcp(1, &ipxe_offer(A));
        bus.publish_tftp(0, started(Some(B)));
        bus.publish_tftp(0, started(Some(A)));
        (next(&mut stream).await, next(&mut stream).await)
    });
    assert_eq!(
        (dhcp.mac.as_str(), dhcp.client.as_str()),
        ("02:00:00:00:00:0a", "10.0.0.5")
    );
    assert_eq!(dhcp.missed_before, 0);
    assert!(
        dhcp.time_unix_us > 1_700_000_000_000_000,
        "{}",
        dhcp.time_unix_us
    );
    let Some(boot_event::Kind::Dhcp(d)) = dhcp.kind else {
        panic!("not a DHCP event: {dhcp:?}");
    };
    assert_eq!(
        (d.message.as_str(), d.reply.as_str()),
        ("DISCOVER", "OFFER")
    );
    assert_eq!(
        (d.arch, d.user_class.as_str(), d.ipxe_encap),
        (Some(7), "iPXE", true)
    );
    assert_eq!(
        (d.filename.as_str(), d.address.as_str()),
        ("refind.pxe", "10.0.0.5")
    );
    assert_eq!(
        (d.vendor_class.as_str(), d.drop_reason.as_str(), d.xid),
        ("PXEClient:Arch:00007", "", 0x1234)
    );
    assert_eq!(
        (tftp.mac.as_str(), tftp.client.as_str()),
        ("02:00:00:00:00:0a", "10.0.0.5:1234")
    );
    let Some(boot_event::Kind::Tftp(t)) = tftp.kind else {
        panic!("not a TFTP event: {tftp:?}");
    };
    assert_eq!(t.kind(), tftp_event::Kind::Started);
    assert_eq!(
        (t.file.as_str(), t.size, t.blksize, t.windowsize),
        ("ipxe.efi", 1_000_000, 1468, 8)
    );
}

#[test]
fn a_bad_mac_filter_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let _handle = start(&path, Observe::default());
    let status = runtime().block_on(async {
        let request = v1::WatchEventsRequest {
            macs: vec!["02:00:00:00:00:01".into(), "nope".into()],
        };
        client(&path).await.watch_events(request).await.unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("macs[1]"), "{status:?}");
}

#[test]
fn a_lagging_subscriber_is_told_how_many_events_it_missed() {
    const PUBLISHED: u32 = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let bus = EventBus::new(16);
    let _handle = start(
        &path,
        Observe {
            events: bus.clone(),
            leases: Vec::new(),
        },
    );
    let marker = [2, 0, 0, 0, 0xff, 0xff];
    let (received, missed) = runtime().block_on(async {
        let mut c = client(&path).await;
        let mut stream = c
            .watch_events(v1::WatchEventsRequest::default())
            .await
            .unwrap()
            .into_inner();
        // Nobody reads while the shards publish: the bus keeps the newest
        // 16 events for this subscriber and drops the rest.
        for i in 0..PUBLISHED {
            let [_, _, hi, lo] = i.to_be_bytes();
            bus.publish_dhcp(0, &ipxe_offer([2, 0, 0, 1, hi, lo]));
        }
        bus.publish_dhcp(0, &ipxe_offer(marker));
        let (mut received, mut missed) = (0u64, 0u64);
        loop {
            let event = next(&mut stream).await;
            received += 1;
            missed += event.missed_before;
            if event.mac == config::format_mac(&marker) {
                return (received, missed);
            }
        }
    });
    assert!(missed > 0, "the subscriber lagged");
    assert_eq!(
        received + missed,
        u64::from(PUBLISHED) + 1,
        "every event is either delivered or counted as missed"
    );
}

#[test]
fn stopping_the_server_ends_open_event_streams() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let handle = start(&path, Observe::default());
    let rt = runtime();
    let mut stream = rt.block_on(async {
        let mut c = client(&path).await;
        c.watch_events(v1::WatchEventsRequest::default())
            .await
            .unwrap()
            .into_inner()
    });
    let (done, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        handle.stop();
        let _ = done.send(());
    });
    // The client keeps reading: its stream ends instead of waiting for
    // events that will never come.
    let end = rt.block_on(async { tokio::time::timeout(EVENT_LIMIT, stream.next()).await });
    assert!(
        matches!(end, Ok(None | Some(Err(_)))),
        "the stream ended: {end:?}"
    );
    stopped
        .recv_timeout(EVENT_LIMIT)
        .expect("stop returns although a stream was open");
}

#[test]
fn a_client_that_stopped_reading_does_not_hold_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let handle = start(&path, Observe::default());
    let rt = runtime();
    // The client's runtime is not driven after this: it never answers
    // the server's goodbye.
    let _stream = rt.block_on(async {
        let mut c = client(&path).await;
        c.watch_events(v1::WatchEventsRequest::default())
            .await
            .unwrap()
            .into_inner()
    });
    let (done, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        handle.stop();
        let _ = done.send(());
    });
    stopped
        .recv_timeout(EVENT_LIMIT)
        .expect("stop returns after its grace period");
}

/// A MAC that `shard_of` gives to `shard` of 2.
fn mac_of_shard(shard: u32, n: u8) -> [u8; 6] {
    (0..=255u8)
        .map(|i| [2, 0, 0, n, 0, i])
        .find(|mac| shard_of(mac, 2) == shard)
        .unwrap()
}

/// Two shard mirrors holding: shard 0 a binding in 10.0.0.0/24 and a
/// release in 10.0.1.0/24; shard 1 a binding in 10.0.0.0/24.
fn mirrors() -> (Vec<Arc<LeaseMirror>>, [[u8; 6]; 3]) {
    let macs = [mac_of_shard(0, 1), mac_of_shard(0, 2), mac_of_shard(1, 3)];
    let record = |kind, mac, addr: [u8; 4], until| LeaseRecord {
        kind,
        mac,
        addr: Ipv4Addr::from(addr),
        at: UnixTime::from_secs(1_000),
        until: UnixTime::from_secs(until),
    };
    let records = [
        record(RecordKind::Bind, macs[0], [10, 0, 0, 7], 4_102_444_800),
        record(RecordKind::Bind, macs[1], [10, 0, 1, 9], 2_000),
        record(RecordKind::Release, macs[1], [10, 0, 1, 9], 1_500),
        record(RecordKind::Bind, macs[2], [10, 0, 0, 3], 4_102_444_800),
    ];
    let mirrors = (0..2)
        .map(|shard| {
            // Every shard's table sees every record (as replay does); the
            // mirror keeps the shard's own clients.
            let mut table = LeaseTable::new(shard, 2, 8);
            records.iter().for_each(|r| table.replay(r));
            let mirror = Arc::new(LeaseMirror::new(shard, 2));
            mirror.seed(&table);
            mirror
        })
        .collect();
    (mirrors, macs)
}

fn list(path: &Path, mac: &str, subnet: &str) -> Result<Vec<v1::Lease>, tonic::Status> {
    runtime().block_on(async {
        let request = v1::ListLeasesRequest {
            mac: mac.into(),
            subnet: subnet.into(),
        };
        Ok(client(path)
            .await
            .list_leases(request)
            .await?
            .into_inner()
            .leases)
    })
}

#[test]
fn list_leases_lists_every_shard_and_filters_by_mac_and_subnet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let (leases, macs) = mirrors();
    let _handle = start(
        &path,
        Observe {
            events: EventBus::default(),
            leases,
        },
    );
    let all = list(&path, "", "").unwrap();
    let summary: Vec<(String, &str, &str, u32)> = all
        .iter()
        .map(|l| (l.mac.clone(), l.address.as_str(), l.state.as_str(), l.shard))
        .collect();
    let mac = |i: usize| config::format_mac(&macs[i]);
    assert_eq!(
        summary,
        [
            (mac(2), "10.0.0.3", "bound", 1),
            (mac(0), "10.0.0.7", "bound", 0),
            (mac(1), "10.0.1.9", "released", 0),
        ],
        "each lease once, from the shard owning its client, by address"
    );
    assert_eq!(all[1].expires_unix_s, 4_102_444_800);
    let by_mac = list(&path, &mac(1).to_uppercase(), "").unwrap();
    assert_eq!(by_mac.len(), 1);
    assert_eq!(by_mac[0].address, "10.0.1.9");
    let by_subnet = list(&path, "", "10.0.0.0/24").unwrap();
    assert_eq!(by_subnet.len(), 2);
    assert!(by_subnet.iter().all(|l| l.address.starts_with("10.0.0.")));
    assert!(list(&path, &mac(1), "10.0.0.0/24").unwrap().is_empty());
    let bad = list(&path, "", "10.0.0.0").unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().starts_with("subnet:"), "{bad:?}");
}
