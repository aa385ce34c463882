//! The running binary reports what its clients do over the control
//! socket: DHCP and TFTP boot events on `WatchEvents` (all, or the MACs
//! asked for) and the leases on `ListLeases`, on both backends.

mod runtime_support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use bootwave_proto::v1::{
    self, BootEvent, boot_event, dataplane_control_client::DataplaneControlClient, tftp_event,
};
use runtime_support::{
    REPLY_LIMIT, Relay, Running, config_text, discover, free_ports, test_dir, tftp_get,
};
use tokio_stream::StreamExt as _;

/// The client that leases an address from the pool.
const DYNAMIC: [u8; 6] = [2, 0, 0, 0x50, 0, 1];
const DYNAMIC_TEXT: &str = "02:00:00:50:00:01";
/// The reservation of 127.0.0.1, where the TFTP client downloads from.
const RESERVED_TEXT: &str = "02:00:00:50:00:02";
/// How long the test waits for one event.
const EVENT_LIMIT: Duration = Duration::from_secs(10);

type Client = DataplaneControlClient<tonic::transport::Channel>;
type Events = tonic::Streaming<BootEvent>;

async fn client(dir: &Path) -> Client {
    let endpoint = format!("unix:{}", dir.join("control.sock").display());
    let channel = bootwave_proto::channel::connect(&endpoint)
        .await
        .expect("control socket answers");
    DataplaneControlClient::new(channel)
}

async fn watch(c: &mut Client, macs: &[&str]) -> Events {
    let request = v1::WatchEventsRequest {
        macs: macs.iter().map(|m| (*m).to_owned()).collect(),
    };
    c.watch_events(request).await.expect("watch").into_inner()
}

async fn next(events: &mut Events) -> BootEvent {
    tokio::time::timeout(EVENT_LIMIT, events.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
        .expect("not an error")
}

fn dhcp(event: &BootEvent) -> Option<&v1::DhcpEvent> {
    match &event.kind {
        Some(boot_event::Kind::Dhcp(d)) => Some(d),
        _ => None,
    }
}

fn tftp(event: &BootEvent) -> Option<&v1::TftpEvent> {
    match &event.kind {
        Some(boot_event::Kind::Tftp(t)) => Some(t),
        _ => None,
    }
}

fn events_and_leases(backend: &str) {
    let script = b"#!ipxe\nchain refind_x64.efi\n".to_vec();
    let dir = test_dir(&[("refind.pxe", &script)]);
    let (dhcp_port, tftp_port) = free_ports();
    let host = format!(
        "[[hosts]]\nname = \"n2\"\nmac = \"{RESERVED_TEXT}\"\nfixed-address = \"127.0.0.1\"\n"
    );
    let server = Running::start(
        dir.path(),
        &config_text(dhcp_port, tftp_port, &host),
        dhcp_port,
        tftp_port,
        &["--backend", backend, "--shards", "2"],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut c, mut all, mut dynamic) = rt.block_on(async {
        let mut c = client(dir.path()).await;
        let all = watch(&mut c, &[]).await;
        let dynamic = watch(&mut c, &[DYNAMIC_TEXT]).await;
        (c, all, dynamic)
    });

    // A DHCP exchange of one client, a download by another, then one more
    // DISCOVER of the first.
    let relay = Relay::new(dhcp_port);
    let leased = relay.lease(DYNAMIC, 0x5000);
    assert_eq!(tftp_get(tftp_port, "refind.pxe", None, None), script);
    let again = relay
        .exchange(&discover(DYNAMIC, 0x6000), REPLY_LIMIT)
        .unwrap_or_else(|| panic!("no OFFER\n{}", server.stderr()));
    assert_eq!(again.yiaddr, leased);

    rt.block_on(async {
        // Every event: each shard's in order (shards are not ordered
        // among themselves: the transfer may end after the last DISCOVER).
        let mut dhcp_events = Vec::new();
        let mut tftp_events = Vec::new();
        for _ in 0..5 {
            let event = next(&mut all).await;
            match &event.kind {
                Some(boot_event::Kind::Dhcp(_)) => dhcp_events.push(event),
                Some(boot_event::Kind::Tftp(_)) => tftp_events.push(event),
                None => panic!("an event without a kind: {event:?}"),
            }
        }
        let [discover, request, last] = &dhcp_events[..] else {
            panic!("three DHCP events: {dhcp_events:?}");
        };
        for (event, message, reply) in
            [(discover, "DISCOVER", "OFFER"), (request, "REQUEST", "ACK")]
        {
            let d = dhcp(event).unwrap_or_else(|| panic!("a DHCP event: {event:?}"));
            assert_eq!(
                (d.message.as_str(), d.reply.as_str()),
                (message, reply),
                "{event:?}"
            );
            assert_eq!(event.mac, DYNAMIC_TEXT);
            assert_eq!(d.address, leased.to_string());
            assert_eq!(
                (d.arch, d.user_class.as_str(), d.filename.as_str()),
                (Some(7), "", "ipxe.efi")
            );
            assert_eq!(event.missed_before, 0);
        }
        assert_eq!(dhcp(request).map(|d| d.xid), Some(0x5001));
        assert_eq!(dhcp(last).map(|d| d.xid), Some(0x6000), "{last:?}");
        let [started, ended] = &tftp_events[..] else {
            panic!("two TFTP events: {tftp_events:?}");
        };
        let t = tftp(started).unwrap_or_else(|| panic!("a TFTP event: {started:?}"));
        assert_eq!(t.kind(), tftp_event::Kind::Started);
        assert_eq!(
            (started.mac.as_str(), t.file.as_str()),
            (RESERVED_TEXT, "refind.pxe")
        );
        assert_eq!(t.size, script.len() as u64);
        assert!(started.client.starts_with("127.0.0.1:"), "{started:?}");
        let t = tftp(ended).unwrap_or_else(|| panic!("a TFTP event: {ended:?}"));
        assert_eq!(t.kind(), tftp_event::Kind::Completed, "{ended:?}");
        assert_eq!(
            (t.bytes, t.retransmits, t.error.as_str()),
            (script.len() as u64, 0, "")
        );
        assert_eq!(ended.client, started.client);
        assert!(ended.time_unix_us >= started.time_unix_us);

        // The filtered stream: the same DHCP events, no transfer.
        for xid in [0x5000, 0x5001, 0x6000] {
            let event = next(&mut dynamic).await;
            assert_eq!(dhcp(&event).map(|d| d.xid), Some(xid), "{event:?}");
        }

        // The lease, from the shard that holds it.
        let leases = c
            .list_leases(v1::ListLeasesRequest::default())
            .await
            .expect("list")
            .into_inner()
            .leases;
        let lease = leases
            .iter()
            .find(|l| l.mac == DYNAMIC_TEXT)
            .unwrap_or_else(|| panic!("the lease is listed: {leases:?}"));
        assert_eq!(
            (lease.address.as_str(), lease.state.as_str()),
            (leased.to_string().as_str(), "bound")
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        assert!(
            (now + 3_000..=now + 3_700).contains(&lease.expires_unix_s),
            "1 h lease: {lease:?}"
        );
        let only = c
            .list_leases(v1::ListLeasesRequest {
                mac: DYNAMIC_TEXT.into(),
                subnet: "127.0.10.0/24".into(),
            })
            .await
            .expect("list")
            .into_inner()
            .leases;
        assert_eq!(only.len(), 1, "{only:?}");
        assert_eq!(only[0].address.parse::<Ipv4Addr>().ok(), Some(leased));
    });
    drop((all, dynamic, c));
    assert!(server.stop().success());
}

#[test]
fn events_and_leases_with_the_uring_backend() {
    events_and_leases("uring");
}

#[test]
fn events_and_leases_with_the_portable_backend() {
    events_and_leases("portable");
}
