//! Known-answer vectors: RRQs captured from OVMF and iPXE, parsed, answered
//! and re-emitted byte for byte.

use super::support::{
    DATA_PORTS, Direct, LISTEN_PORT, MemResolver, client_addr, pattern, settings,
};
use crate::tftp::wire::{self, Mode, Packet};
use crate::tftp::{ErrorCode, TftpServer};

/// OVMF's size probe for `ipxe.efi`: `tsize 0 blksize 1468 windowsize 4`.
static OVMF_PROBE: &[u8] =
    b"\x00\x01ipxe.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00windowsize\x004\x00";
/// OVMF's download of `ipxe.efi`: `blksize 1468 windowsize 4`.
static OVMF_DOWNLOAD: &[u8] =
    b"\x00\x01ipxe.efi\x00octet\x00blksize\x001468\x00windowsize\x004\x00";
/// iPXE fetching its script: `blksize 1432 tsize 0`.
static IPXE_SCRIPT: &[u8] = b"\x00\x01refind.pxe\x00octet\x00blksize\x001432\x00tsize\x000\x00";
/// iPXE fetching `refind.conf`.
static IPXE_CONF: &[u8] = b"\x00\x01refind.conf\x00octet\x00blksize\x001432\x00tsize\x000\x00";
/// iPXE fetching `refind_x64.efi`.
static IPXE_EFI: &[u8] = b"\x00\x01refind_x64.efi\x00octet\x00blksize\x001432\x00tsize\x000\x00";

/// The captures' UDP payloads as hex (from the capture files).
const HEX: [(&str, &[u8]); 5] = [
    (
        "0001697078652e656669006f63746574007473697a65003000626c6b73697a6500313436380077696e646f7773697a65003400",
        OVMF_PROBE,
    ),
    (
        "0001697078652e656669006f6374657400626c6b73697a6500313436380077696e646f7773697a65003400",
        OVMF_DOWNLOAD,
    ),
    (
        "0001726566696e642e707865006f6374657400626c6b73697a650031343332007473697a65003000",
        IPXE_SCRIPT,
    ),
    (
        "0001726566696e642e636f6e66006f6374657400626c6b73697a650031343332007473697a65003000",
        IPXE_CONF,
    ),
    (
        "0001726566696e645f7836342e656669006f6374657400626c6b73697a650031343332007473697a65003000",
        IPXE_EFI,
    ),
];

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn captured_rrqs_parse_and_re_emit_identically() {
    for (hex, bytes) in HEX {
        assert_eq!(unhex(hex), bytes);
        let Ok(Packet::Rrq(request)) = Packet::parse(bytes) else {
            panic!("not an RRQ");
        };
        assert_eq!(request.mode, Mode::Octet);
        let options: Vec<(String, String)> = request
            .options
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into(),
                    String::from_utf8_lossy(v).into(),
                )
            })
            .collect();
        let pairs: Vec<(&str, &str)> = options
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut again = vec![0xa5; 0];
        wire::emit_request(&mut again, false, request.filename, "octet", &pairs);
        assert_eq!(again, bytes);
    }
}

#[test]
fn captured_rrqs_get_the_expected_answers() {
    let files = [
        ("ipxe.efi", pattern(1_048_576, 1)),
        ("refind.pxe", pattern(400, 2)),
        ("refind.conf", pattern(1200, 3)),
        ("refind_x64.efi", pattern(250_000, 4)),
    ];
    let mut d = Direct::new(TftpServer::new(
        &settings(),
        &DATA_PORTS,
        MemResolver::with(&files),
    ));
    let expected: [(&[u8], &[u8]); 5] = [
        (
            OVMF_PROBE,
            b"\x00\x06blksize\x001468\x00tsize\x001048576\x00windowsize\x004\x00",
        ),
        (
            OVMF_DOWNLOAD,
            b"\x00\x06blksize\x001468\x00windowsize\x004\x00",
        ),
        (IPXE_SCRIPT, b"\x00\x06blksize\x001432\x00tsize\x00400\x00"),
        (IPXE_CONF, b"\x00\x06blksize\x001432\x00tsize\x001200\x00"),
        (IPXE_EFI, b"\x00\x06blksize\x001432\x00tsize\x00250000\x00"),
    ];
    for (host, (rrq, oack)) in (1..).zip(expected) {
        let client = client_addr(host, 1000);
        let sent = d.recv(0, client, LISTEN_PORT, rrq);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].bytes, oack);
        let data = d.recv(1, client, sent[0].local_port, &wire::ack(0));
        let Ok(Packet::Data { block: 1, payload }) = Packet::parse(&data[0].bytes) else {
            panic!("no DATA 1");
        };
        let len = payload.len();
        assert!(len == 1468 || len == 1432 || len < 1432, "block of {len}");
    }
}

#[test]
fn error_and_ack_vectors() {
    let mut buf = Vec::new();
    wire::emit_error(
        &mut buf,
        ErrorCode::OptionsRefused,
        "User aborted the transfer",
    );
    assert_eq!(buf, b"\x00\x05\x00\x08User aborted the transfer\x00");
    assert_eq!(
        Packet::parse(&buf),
        Ok(Packet::Error {
            code: 8,
            message: b"User aborted the transfer"
        })
    );
    assert_eq!(Packet::parse(&wire::ack(0)), Ok(Packet::Ack { block: 0 }));
    let data = [&wire::data_header(65535)[..], b"tail"].concat();
    assert_eq!(
        Packet::parse(&data),
        Ok(Packet::Data {
            block: 65535,
            payload: b"tail"
        })
    );
    let Ok(Packet::Oack(options)) = Packet::parse(b"\x00\x06tsize\x00123\x00") else {
        panic!("not an OACK");
    };
    assert_eq!(
        options.iter().collect::<Vec<_>>(),
        vec![(&b"tsize"[..], &b"123"[..])]
    );
}
