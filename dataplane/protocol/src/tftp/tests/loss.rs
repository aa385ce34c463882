//! Windows under loss, duplication and reordering; block-number rollover;
//! clients that vanish.

use std::time::Duration;

use super::client::{ClientSpec, ClientState};
use super::pair::{Impairments, Pair};
use super::support::{DATA_PORTS, MemResolver, pattern, settings};
use crate::tftp::{NetasciiData, TftpServer};

fn pair_with(file: &[u8], seed: u64) -> Pair<MemResolver> {
    let server = TftpServer::new(
        &settings(),
        &DATA_PORTS,
        MemResolver::with(&[("f.bin", file.to_vec())]),
    );
    Pair::new(server, seed)
}

#[test]
fn windows_under_loss_deliver_exact_bytes() {
    let file = pattern(400_000, 11);
    for windowsize in [1u16, 4, 16, 64] {
        for loss in [0u32, 10, 100] {
            let mut pair = pair_with(&file, 100 + u64::from(windowsize) * 7 + u64::from(loss));
            pair.impairments = Impairments {
                loss,
                ..Impairments::default()
            };
            let id = pair.add_client(ClientSpec::atftp("f.bin", 1468, windowsize), 1);
            pair.drive(2_000_000);
            let client = &pair.clients[id];
            let case = format!("window {windowsize}, loss {loss}‰");
            assert_eq!(client.state, ClientState::Done, "{case}");
            assert!(client.data == file, "{case}: content differs");
            assert_eq!(client.windowsize, windowsize, "{case}");
            let c = pair.server.counters();
            assert_eq!(c.transfers_completed, 1, "{case}");
            if loss == 0 {
                assert_eq!(c.retransmits, 0, "{case}");
            } else {
                assert!(c.retransmits > 0, "{case}: loss but no resend");
            }
        }
    }
}

#[test]
fn netascii_windows_under_loss_resume_mid_conversion() {
    // Text dense in LF and CR so expansions straddle block edges; loss
    // makes windows resume at every kind of cursor position.
    let mut text = Vec::new();
    for i in 0..40_000u32 {
        text.push(b'a' + (i % 7) as u8);
        if i % 5 == 0 {
            text.push(b'\n');
        }
        if i % 11 == 0 {
            text.push(b'\r');
        }
    }
    let expected = crate::tftp::FileData::bytes(&NetasciiData::convert(&text)).to_vec();
    for (windowsize, blksize, loss) in [(1u16, 512u16, 50u32), (8, 511, 100), (32, 1468, 100)] {
        let mut pair = pair_with(&text, 900 + u64::from(windowsize));
        pair.impairments = Impairments {
            loss,
            ..Impairments::default()
        };
        let spec = ClientSpec::atftp("f.bin", blksize, windowsize).netascii();
        let id = pair.add_client(spec, 1);
        pair.drive(2_000_000);
        let client = &pair.clients[id];
        let case = format!("window {windowsize}, blksize {blksize}, loss {loss}‰");
        assert_eq!(client.state, ClientState::Done, "{case}");
        assert!(client.data == expected, "{case}: content differs");
        assert_eq!(client.tsize, Some(expected.len() as u64), "{case}");
        assert!(pair.server.counters().retransmits > 0, "{case}: no resend");
    }
}

#[test]
fn duplication_and_reordering() {
    let file = pattern(500_000, 12);
    for (windowsize, seed) in [(1u16, 1u64), (8, 2), (32, 3)] {
        let mut pair = pair_with(&file, seed);
        pair.impairments = Impairments {
            loss: 20,
            duplicate: 100,
            reorder: 100,
        };
        let id = pair.add_client(ClientSpec::atftp("f.bin", 1024, windowsize), 1);
        pair.drive(2_000_000);
        assert_eq!(
            pair.clients[id].state,
            ClientState::Done,
            "window {windowsize}"
        );
        assert!(
            pair.clients[id].data == file,
            "window {windowsize}: content differs"
        );
    }
}

#[test]
fn block_numbers_roll_over_past_65535_lock_step() {
    // 40 MiB at 512 bytes: 81,921 blocks, so numbers wrap once.
    let file = pattern(40 << 20, 13);
    let mut pair = pair_with(&file, 4);
    let id = pair.add_client(ClientSpec::tftp_hpa("f.bin"), 1);
    pair.drive(10_000_000);
    let client = &pair.clients[id];
    assert_eq!(client.state, ClientState::Done);
    assert_eq!(client.data.len(), file.len());
    assert!(client.data == file, "content differs");
    assert_eq!(pair.server.counters().data_blocks_sent, 81_921);
}

#[test]
fn block_numbers_roll_over_windowed_with_loss() {
    let file = pattern(34 << 20, 14);
    let mut pair = pair_with(&file, 5);
    pair.impairments.loss = 5;
    let id = pair.add_client(ClientSpec::atftp("f.bin", 512, 16), 1);
    pair.drive(10_000_000);
    let client = &pair.clients[id];
    assert_eq!(client.state, ClientState::Done);
    assert!(client.data == file, "content differs");
}

#[test]
fn vanished_client_is_reclaimed_after_retries() {
    let file = pattern(1 << 20, 15);
    let mut pair = pair_with(&file, 6);
    let id = pair.add_client(ClientSpec::ipxe("f.bin"), 1);
    for _ in 0..50 {
        pair.step();
    }
    assert_eq!(pair.server.active_transfers(), 1);
    pair.clients[id].vanish();
    let resends_before = pair.server.counters().retransmits;
    pair.run_for(Duration::from_secs(120), 100_000);
    assert_eq!(pair.server.active_transfers(), 0);
    let c = pair.server.counters();
    assert_eq!(c.transfers_timed_out, 1);
    assert_eq!(c.transfers_completed, 0);
    // One resend of the (single-block) window per retry, then nothing.
    assert_eq!(
        c.retransmits - resends_before,
        u64::from(settings().max_retries)
    );
    assert_eq!(pair.server.timer_entries(), 0, "no timer left behind");
    assert_eq!(pair.server.poll_timeout(), None);
}
