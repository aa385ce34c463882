//! Downloads by each client model, each option alone and combined.

use std::net::{IpAddr, Ipv4Addr};

use super::client::{ClientSpec, ClientState};
use super::pair::Pair;
use super::support::{DATA_PORTS, MemResolver, pattern, settings};
use crate::tftp::{NetasciiData, TftpServer};

const EVENTS: usize = 1_000_000;

fn pair_with(files: &[(&str, Vec<u8>)]) -> Pair<MemResolver> {
    let server = TftpServer::new(&settings(), &DATA_PORTS, MemResolver::with(files));
    Pair::new(server, 7)
}

/// Downloads `file` with `spec` and returns the client's view of it.
fn download(spec: ClientSpec, file: &[u8]) -> (Pair<MemResolver>, usize) {
    let name = String::from_utf8(spec.filename.clone()).expect("test names are text");
    let mut pair = pair_with(&[(name.as_str(), file.to_vec())]);
    let id = pair.add_client(spec, 1);
    pair.drive(EVENTS);
    assert_eq!(
        pair.clients[id].state,
        ClientState::Done,
        "{:?}",
        pair.clients[id]
    );
    assert_eq!(pair.clients[id].data, file, "content differs");
    assert_eq!(pair.server.active_transfers(), 0);
    (pair, id)
}

fn oack_of(pair: &Pair<MemResolver>, id: usize) -> Vec<(String, String)> {
    pair.clients[id].oack.clone().unwrap_or_default()
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn tftp_hpa_plain_rfc1350_gets_no_oack() {
    let file = pattern(5000, 1);
    let (pair, id) = download(ClientSpec::tftp_hpa("f.bin"), &file);
    assert_eq!(pair.clients[id].oack, None);
    assert_eq!(pair.clients[id].blksize, 512);
    let c = pair.server.counters();
    assert_eq!((c.transfers_started, c.transfers_completed), (1, 1));
    assert_eq!(c.data_blocks_sent, 10);
    assert_eq!(c.bytes_sent, 5000);
}

#[test]
fn each_option_alone() {
    let file = pattern(3000, 2);
    type Options = &'static [(&'static str, &'static str)];
    let cases: [(Options, Options); 4] = [
        (&[("blksize", "1024")], &[("blksize", "1024")]),
        (&[("timeout", "3")], &[("timeout", "3")]),
        (&[("tsize", "0")], &[("tsize", "3000")]),
        (&[("windowsize", "8")], &[("windowsize", "8")]),
    ];
    for (asked, granted) in cases {
        let (pair, id) = download(ClientSpec::custom("f.bin", asked), &file);
        assert_eq!(oack_of(&pair, id), kv(granted), "asked {asked:?}");
    }
}

#[test]
fn options_combined_and_case_insensitive() {
    let file = pattern(100_000, 3);
    let spec = ClientSpec::custom(
        "f.bin",
        &[
            ("TSIZE", "0"),
            ("BlkSize", "9000"),
            ("x-unknown", "1"),
            ("WINDOWSIZE", "200"),
            ("Timeout", "2"),
        ],
    );
    let (pair, id) = download(spec, &file);
    assert_eq!(
        oack_of(&pair, id),
        kv(&[
            ("blksize", "1468"),
            ("timeout", "2"),
            ("tsize", "100000"),
            ("windowsize", "64")
        ])
    );
}

#[test]
fn no_acceptable_option_means_straight_data() {
    let file = pattern(700, 4);
    let spec = ClientSpec::custom(
        "f.bin",
        &[("blksize", "4"), ("multicast", ""), ("timeout", "0")],
    );
    let (pair, id) = download(spec, &file);
    assert_eq!(pair.clients[id].oack, None);
}

#[test]
fn ovmf_size_probe_then_download() {
    let file = pattern(1_000_000, 5);
    let (pair, id) = download(ClientSpec::ovmf("ipxe.efi"), &file);
    let client = &pair.clients[id];
    assert_eq!(client.tsize, Some(1_000_000), "probe saw the size");
    assert_eq!(
        oack_of(&pair, id),
        kv(&[("blksize", "1468"), ("windowsize", "4")])
    );
    let c = pair.server.counters();
    assert_eq!(c.transfers_started, 2);
    assert_eq!(c.option_refusals, 1);
    assert_eq!(c.transfers_completed, 1);
    assert_eq!(c.transfers_failed, 0);
    assert_eq!(c.retransmits, 0, "no loss, no resend");
}

#[test]
fn ipxe_lock_step_one_ack_per_block() {
    let file = pattern(200_000, 6);
    let (pair, id) = download(ClientSpec::ipxe("refind_x64.efi"), &file);
    let client = &pair.clients[id];
    assert_eq!(
        oack_of(&pair, id),
        kv(&[("blksize", "1432"), ("tsize", "200000")])
    );
    let blocks = 200_000 / 1432 + 1;
    assert_eq!(client.data_received, blocks as u64);
    assert_eq!(
        client.acks_sent,
        blocks as u64 + 1,
        "ACK 0 plus one per block"
    );
    assert_eq!(pair.server.counters().data_blocks_sent, blocks as u64);
}

#[test]
fn curl_and_busybox() {
    let file = pattern(10_000, 7);
    // curl asks for a 6 s timeout, above `max_timeout` (4 s): the OACK
    // leaves it out and curl keeps its own.
    let (pair, id) = download(ClientSpec::curl("f.bin"), &file);
    assert_eq!(
        oack_of(&pair, id),
        kv(&[("blksize", "512"), ("tsize", "10000")])
    );
    let (pair, id) = download(ClientSpec::busybox("f.bin", 1024), &file);
    assert_eq!(
        oack_of(&pair, id),
        kv(&[("blksize", "1024"), ("tsize", "10000")])
    );
}

#[test]
fn atftp_windowed() {
    let file = pattern(300_000, 8);
    let (pair, id) = download(ClientSpec::atftp("f.bin", 1400, 16), &file);
    assert_eq!(
        oack_of(&pair, id),
        kv(&[
            ("blksize", "1400"),
            ("tsize", "300000"),
            ("windowsize", "16")
        ])
    );
    let blocks: u64 = 300_000 / 1400 + 1;
    let windows = blocks.div_ceil(16);
    assert_eq!(pair.clients[id].acks_sent, windows + 1);
}

#[test]
fn size_multiple_of_blksize_ends_with_empty_block() {
    let file = pattern(512 * 4, 9);
    let (pair, _) = download(ClientSpec::tftp_hpa("f.bin"), &file);
    assert_eq!(pair.server.counters().data_blocks_sent, 5);
    let (pair, _) = download(ClientSpec::tftp_hpa("f.bin"), &[]);
    assert_eq!(pair.server.counters().data_blocks_sent, 1);
}

#[test]
fn netascii_converts_across_blocks_and_reports_converted_tsize() {
    // A CR LF pair that straddles a 512-byte block boundary, a bare CR, and
    // lines that end exactly at boundaries.
    let mut text = vec![b'a'; 511];
    text.extend_from_slice(b"\nb\rc\n");
    text.extend(std::iter::repeat_n(b"line\n".as_slice(), 300).flatten());
    let converted = NetasciiData::convert(&text);
    let expected = crate::tftp::FileData::bytes(&converted).to_vec();
    let mut pair = pair_with(&[("readme.txt", text.clone())]);
    let id = pair.add_client(ClientSpec::curl("readme.txt").netascii(), 1);
    pair.drive(EVENTS);
    let client = &pair.clients[id];
    assert_eq!(client.state, ClientState::Done);
    assert_eq!(client.data, expected);
    assert_eq!(&client.data[510..514], b"a\r\nb");
    assert_eq!(client.tsize, Some(expected.len() as u64));
    assert_eq!(expected.len(), text.len() + 303);
}

#[test]
fn dynamic_file_per_mac() {
    let mut pair = pair_with(&[]);
    pair.server.set_mac_lookup(|ip: IpAddr| match ip {
        IpAddr::V4(v4) if v4 == Ipv4Addr::new(10, 0, 1, 1) => {
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        }
        IpAddr::V4(v4) if v4 == Ipv4Addr::new(10, 0, 1, 2) => {
            Some([0x52, 0x54, 0, 0xab, 0xcd, 0xef])
        }
        _ => None,
    });
    let a = pair.add_client(ClientSpec::ipxe("boot.ipxe"), 1);
    let b = pair.add_client(ClientSpec::ipxe("/boot.ipxe"), 2);
    let unknown = pair.add_client(ClientSpec::ipxe("boot.ipxe"), 3);
    pair.drive(EVENTS);
    let text =
        |id: usize| String::from_utf8(pair.clients[id].data.clone()).expect("script is text");
    assert!(text(a).contains("host 52:54:00:12:34:56"), "{}", text(a));
    assert!(text(b).contains("host 52:54:00:ab:cd:ef"), "{}", text(b));
    assert!(text(a).starts_with("#!ipxe\n"));
    assert_eq!(
        pair.clients[unknown].state,
        ClientState::Failed {
            code: 1,
            message: "file not found".into()
        }
    );
}

#[test]
fn many_clients_share_ports_without_clashing() {
    let file = pattern(50_000, 10);
    let mut pair = pair_with(&[("f.bin", file.clone())]);
    for host in 1..=40 {
        pair.add_client(ClientSpec::atftp("f.bin", 1468, 4), host);
    }
    pair.drive(EVENTS);
    for client in &pair.clients {
        assert_eq!(client.state, ClientState::Done);
        assert_eq!(client.data, file);
    }
    assert_eq!(pair.server.counters().transfers_completed, 40);
}
