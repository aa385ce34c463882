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
                other => panic!("a DHCP or TFTP event: {other:?}"),
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

/// Sends `request` to the HTTP server on `port` and reads the whole answer
/// (the requests close the connection).
fn http_exchange(port: u16, request: &str) -> Vec<u8> {
    use std::io::{Read as _, Write as _};
    let deadline = std::time::Instant::now() + EVENT_LIMIT;
    let mut stream = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(e) if std::time::Instant::now() > deadline => panic!("HTTP server: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    stream.set_read_timeout(Some(EVENT_LIMIT)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("request sent");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("answer read");
    answer
}

fn http(event: &BootEvent) -> Option<&v1::HttpEvent> {
    match &event.kind {
        Some(boot_event::Kind::Http(h)) => Some(h),
        _ => None,
    }
}

#[test]
fn http_downloads_are_boot_events() {
    let file: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let dir = test_dir(&[("refind_x64.efi", &file)]);
    let (dhcp_port, tftp_port) = free_ports();
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free TCP port")
        .port();
    let extra = format!(
        "[[hosts]]\nname = \"n2\"\nmac = \"{RESERVED_TEXT}\"\nfixed-address = \"127.0.0.1\"\n\n[http]\nport = {http_port}\n"
    );
    let server = Running::start(
        dir.path(),
        &config_text(dhcp_port, tftp_port, &extra),
        dhcp_port,
        tftp_port,
        &["--backend", "portable"],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (c, mut all) = rt.block_on(async {
        let mut c = client(dir.path()).await;
        let all = watch(&mut c, &[]).await;
        (c, all)
    });

    // A HEAD (no event), a whole download, then a GET of a missing file.
    let head = http_exchange(
        http_port,
        "HEAD /refind_x64.efi HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    let got = http_exchange(
        http_port,
        "GET /refind_x64.efi HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(got.ends_with(&file), "the whole file");
    let missing = http_exchange(
        http_port,
        "GET /missing.efi HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(missing.starts_with(b"HTTP/1.1 404"), "{missing:?}");

    rt.block_on(async {
        let started = next(&mut all).await;
        let h = http(&started).unwrap_or_else(|| panic!("an HTTP event: {started:?}"));
        assert_eq!(h.kind(), v1::http_event::Kind::Started, "{started:?}");
        assert_eq!(
            (started.mac.as_str(), h.file.as_str(), h.size, h.status),
            (RESERVED_TEXT, "refind_x64.efi", file.len() as u64, 200)
        );
        assert!(started.client.starts_with("127.0.0.1:"), "{started:?}");
        let ended = next(&mut all).await;
        let h = http(&ended).unwrap_or_else(|| panic!("an HTTP event: {ended:?}"));
        assert_eq!(h.kind(), v1::http_event::Kind::Completed, "{ended:?}");
        assert_eq!((h.bytes, h.error.as_str()), (file.len() as u64, ""));
        assert_eq!(ended.client, started.client);
        let refused = next(&mut all).await;
        let h = http(&refused).unwrap_or_else(|| panic!("an HTTP event: {refused:?}"));
        assert_eq!(h.kind(), v1::http_event::Kind::Failed, "{refused:?}");
        assert_eq!(
            (h.file.as_str(), h.status, h.error.as_str()),
            ("missing.efi", 404, "404 Not Found")
        );
        assert_eq!(refused.mac, RESERVED_TEXT);
    });
    drop((all, c));
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
