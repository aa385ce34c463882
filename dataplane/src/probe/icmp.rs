//! ICMP echo messages: building requests, recognising replies. No I/O.

/// ICMP type of an echo reply.
const ECHO_REPLY: u8 = 0;
/// ICMP type of an echo request.
const ECHO_REQUEST: u8 = 8;
/// Type, code, checksum, identifier, sequence.
const HEADER_LEN: usize = 8;
/// Bytes of payload after the header: the prober's nonce.
const PAYLOAD_LEN: usize = 8;
/// The length of every request this module builds.
pub(crate) const REQUEST_LEN: usize = HEADER_LEN + PAYLOAD_LEN;

/// The fields of an echo reply that matching looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EchoReply {
    /// The identifier (with ping sockets, the kernel's choice).
    pub(crate) ident: u16,
    /// The sequence number the request carried.
    pub(crate) seq: u16,
    /// The first payload bytes, echoed from the request.
    pub(crate) nonce: u64,
}

/// An echo request carrying `ident`, `seq` and `nonce`, with its checksum.
pub(crate) fn echo_request(ident: u16, seq: u16, nonce: u64) -> [u8; REQUEST_LEN] {
    let mut msg = [0u8; REQUEST_LEN];
    msg[0] = ECHO_REQUEST;
    msg[4..6].copy_from_slice(&ident.to_be_bytes());
    msg[6..8].copy_from_slice(&seq.to_be_bytes());
    msg[8..16].copy_from_slice(&nonce.to_be_bytes());
    let sum = checksum(&msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    msg
}

/// Reads an echo reply out of a received datagram. `with_ip_header` is true
/// for raw sockets, which deliver the IPv4 header too. Anything that is not
/// a well-formed echo reply of ours in shape gives `None`.
pub(crate) fn parse_reply(datagram: &[u8], with_ip_header: bool) -> Option<EchoReply> {
    let icmp = if with_ip_header {
        let first = *datagram.first()?;
        let ihl = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || ihl < 20 {
            return None;
        }
        datagram.get(ihl..)?
    } else {
        datagram
    };
    let msg = icmp.get(..REQUEST_LEN)?;
    if msg[0] != ECHO_REPLY || msg[1] != 0 {
        return None;
    }
    let be16 = |at: usize| u16::from_be_bytes([msg[at], msg[at + 1]]);
    let mut nonce = [0u8; 8];
    nonce.copy_from_slice(&msg[8..16]);
    Some(EchoReply {
        ident: be16(4),
        seq: be16(6),
        nonce: u64::from_be_bytes(nonce),
    })
}

/// The Internet checksum (RFC 1071) of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply a host sends for `request`: type 0, checksum adjusted.
    fn reply_to(request: &[u8]) -> Vec<u8> {
        let mut reply = request.to_vec();
        reply[0] = ECHO_REPLY;
        reply[2..4].fill(0);
        let sum = checksum(&reply);
        reply[2..4].copy_from_slice(&sum.to_be_bytes());
        reply
    }

    #[test]
    fn request_checksum_verifies_to_zero() {
        let msg = echo_request(0x1234, 7, 0xdead_beef_0bad_f00d);
        assert_eq!(msg[0], ECHO_REQUEST);
        assert_eq!(checksum(&msg), 0);
        // RFC 1071 example bytes: 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn reply_round_trips_with_and_without_ip_header() {
        let reply = reply_to(&echo_request(9, 513, 42));
        let want = EchoReply {
            ident: 9,
            seq: 513,
            nonce: 42,
        };
        assert_eq!(parse_reply(&reply, false), Some(want));
        let mut with_ip = vec![
            0x45, 0, 0, 36, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        with_ip.extend_from_slice(&reply);
        assert_eq!(parse_reply(&with_ip, true), Some(want));
        // An IP header with options (IHL 6) is skipped too.
        let mut with_opts = vec![0x46];
        with_opts.extend_from_slice(&[0; 23]);
        with_opts.extend_from_slice(&reply);
        assert_eq!(parse_reply(&with_opts, true), Some(want));
    }

    #[test]
    fn other_messages_are_not_replies() {
        let request = echo_request(1, 1, 1);
        assert_eq!(parse_reply(&request, false), None);
        let reply = reply_to(&request);
        assert_eq!(parse_reply(&reply[..REQUEST_LEN - 1], false), None);
        let mut unreachable = reply.clone();
        unreachable[0] = 3;
        assert_eq!(parse_reply(&unreachable, false), None);
        assert_eq!(parse_reply(&[], true), None);
        assert_eq!(parse_reply(&[0x45, 0, 0], true), None);
        assert_eq!(parse_reply(&[0x60; 40], true), None);
        assert_eq!(parse_reply(&[0x41; 40], true), None);
    }
}
