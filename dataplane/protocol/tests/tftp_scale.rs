//! A shard's table at full size: 100,000 transfers held at once, the
//! 100,001st refused, and every one reclaimed by its timers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bootwave_protocol::config::TftpSettings;
use bootwave_protocol::net::RecvMeta;
use bootwave_protocol::tftp::wire::{self, Packet};
use bootwave_protocol::tftp::{FileData, ResolveRequest, Resolved, Resolver, TftpServer, TxQueue};

const TRANSFERS: u32 = 100_000;

#[derive(Debug)]
struct OneFile(Arc<dyn FileData>);

impl Resolver for OneFile {
    fn resolve(&self, _: &ResolveRequest<'_>) -> Resolved {
        Resolved::File(Arc::clone(&self.0))
    }
}

fn client(i: u32) -> SocketAddr {
    let [_, a, b, c] = i.to_be_bytes();
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, a, b, c)),
        1024 + (i % 1000) as u16,
    )
}

#[test]
fn holds_and_reclaims_a_full_table() {
    let settings = TftpSettings {
        port: 69,
        root: "/srv/tftp".into(),
        max_blksize: 1468,
        mtu: 1500,
        max_windowsize: 64,
        min_timeout: Duration::from_millis(100),
        max_timeout: Duration::from_secs(2),
        max_retries: 2,
        max_transfers: TRANSFERS,
        admission: bootwave_protocol::config::TftpAdmission::UNLIMITED,
    };
    let file: Arc<dyn FileData> = Arc::new(vec![1u8; 100_000]);
    let mut server = TftpServer::new(&settings, &[7000, 7001, 7002, 7003], OneFile(file));
    let base = Instant::now();
    let mut out = TxQueue::new();
    let mut rrq = Vec::new();
    wire::emit_request(
        &mut rrq,
        false,
        b"ipxe.efi",
        "octet",
        &[("blksize", "1432")],
    );
    let meta = |src| RecvMeta {
        src,
        dst_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        local_port: 69,
        ifindex: 1,
    };
    for i in 0..TRANSFERS {
        server.handle(base, &meta(client(i)), &rrq, &mut out);
        out.clear();
    }
    assert_eq!(server.active_transfers(), TRANSFERS as usize);
    server.handle(base, &meta(client(TRANSFERS)), &rrq, &mut out);
    let (_, body) = out.parts(&out.transmits()[0]);
    assert_eq!(
        Packet::parse(body),
        Ok(Packet::Error {
            code: 0,
            message: b"server busy"
        })
    );
    out.clear();
    assert_eq!(
        server.timer_entries(),
        TRANSFERS as usize,
        "one timer per transfer"
    );
    assert_eq!(server.poll_timeout(), Some(base + Duration::from_secs(1)));

    // Nobody answers: OACKs are resent max_retries times, then dropped.
    let mut now = base;
    let mut calls = 0;
    while let Some(deadline) = server.poll_timeout() {
        now = now.max(deadline);
        server.handle_timeout(now, &mut out);
        out.clear();
        calls += 1;
        assert!(calls < 1_000_000, "timers do not converge");
    }
    assert_eq!(server.active_transfers(), 0);
    let counters = server.counters();
    assert_eq!(counters.transfers_timed_out, u64::from(TRANSFERS));
    assert_eq!(counters.retransmits, 2 * u64::from(TRANSFERS));
    assert_eq!(server.timer_entries(), 0);
}
