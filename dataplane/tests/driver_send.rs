//! Windows of `[header | file slice]` datagrams, with and without GSO, and
//! receive-buffer exhaustion.
#![allow(clippy::unwrap_used)]

mod driver_support;

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use bootwave_dataplane::driver::{BackendChoice, Chunk, ShardExit, ShardStats, gso_supported};
use bootwave_protocol::tftp::FileData;
use driver_support::*;

/// Sends a trigger, then reads one datagram per chunk and checks each is
/// its header followed by its slice of the file.
fn window_arrives_intact(
    backend: BackendChoice,
    file: Arc<dyn FileData>,
    chunks: Vec<Chunk>,
) -> ShardStats {
    let (addr, binding) = any_addr_group();
    let reply = Reply::Window {
        file: file.clone(),
        chunks: chunks.clone(),
    };
    let (group, _counter) = start_probes(config(1, backend, addr, binding), reply, Duration::ZERO);
    let client = client();
    client
        .send_to(b"go", target(&group, Ipv4Addr::LOCALHOST))
        .unwrap();
    read_window(&client, file.bytes(), &chunks);
    let exits: Vec<ShardExit<Probe>> = stop_and_join(group);
    let stats = exits[0].stats;
    assert_eq!(stats.tx_datagrams, chunks.len() as u64);
    assert_eq!(stats.tx_errors, 0);
    stats
}

fn read_window(client: &UdpSocket, file: &[u8], chunks: &[Chunk]) {
    let mut buf = vec![0u8; 70_000];
    for chunk in chunks {
        let n = client.recv(&mut buf).unwrap();
        let mut want = chunk.header.to_vec();
        want.extend_from_slice(&file[chunk.start..chunk.start + chunk.len]);
        assert_eq!(n, want.len(), "datagram for block {:?}", chunk.header);
        assert_eq!(&buf[..n], &want[..]);
    }
}

fn scatter_window(backend: BackendChoice) {
    // Uneven lengths: no GSO, one two-iovec sendmsg per datagram.
    let lens = [500, 100, 700, 0, 512];
    let stats = window_arrives_intact(backend, pattern_file(4096), chunks(&lens, 700));
    assert_eq!(stats.gso_sends, 0);
}

#[test]
fn uring_scatter_window_arrives_intact() {
    scatter_window(BackendChoice::Uring);
}

#[test]
fn portable_scatter_window_arrives_intact() {
    scatter_window(BackendChoice::Portable);
}

fn gso_window(backend: BackendChoice) {
    assert!(
        gso_supported(),
        "this kernel lacks UDP_SEGMENT; the GSO path cannot be tested here"
    );
    // 20 full 4000-byte blocks and a short last one: 65000 / 4004 = 16
    // segments per call, so two GSO sends.
    let mut lens = vec![4000; 20];
    lens.push(123);
    let stats = window_arrives_intact(backend, pattern_file(100_000), chunks(&lens, 4000));
    assert_eq!(stats.gso_sends, 2);
}

#[test]
fn uring_gso_window_arrives_as_separate_datagrams() {
    gso_window(BackendChoice::Uring);
}

#[test]
fn portable_gso_window_arrives_as_separate_datagrams() {
    gso_window(BackendChoice::Portable);
}

#[test]
fn uring_rearms_after_running_out_of_receive_buffers() {
    const BURST: usize = 200;
    let (addr, binding) = any_addr_group();
    let mut cfg = config(1, BackendChoice::Uring, addr, binding);
    cfg.uring.recv_buffers = 4;
    // The shard sleeps on the first datagram while the rest queue up in the
    // socket; four buffers cannot hold them, so the multishot receive ends
    // with ENOBUFS and must be re-armed.
    let (group, counter) = start_probes(cfg, Reply::Silent, Duration::from_millis(50));
    let client = client();
    let server = target(&group, Ipv4Addr::LOCALHOST);
    for i in 0..=BURST {
        client.send_to(&(i as u32).to_be_bytes(), server).unwrap();
    }
    wait_count(&counter, BURST + 1);
    let exits = stop_and_join(group);
    let stats = exits[0].stats;
    assert!(stats.recv_no_buffers >= 1, "{stats:?}");
    assert!(stats.recv_rearms >= 1, "{stats:?}");
    let order: Vec<u32> = exits[0]
        .service
        .seen
        .iter()
        .map(|s| u32::from_be_bytes(s.data[..4].try_into().unwrap()))
        .collect();
    assert_eq!(
        order,
        (0..=BURST as u32).collect::<Vec<_>>(),
        "nothing lost or reordered"
    );
}
