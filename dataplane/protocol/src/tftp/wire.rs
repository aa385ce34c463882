//! TFTP packets on the wire: a checked parse of untrusted bytes and the
//! emitters for what the server (and the test client) sends.
//!
//! [`Packet::parse`] checks every length and terminator up front; after it
//! returns `Ok`, no accessor can panic. Emitters append to a caller-owned
//! `Vec<u8>` so the buffer's capacity is reused from packet to packet.

use std::io::Write as _;

/// Byte offsets of the fixed fields.
mod field {
    use std::ops::Range;

    /// Opcode, present in every packet.
    pub(super) const OPCODE: Range<usize> = 0..2;
    /// Block number of DATA and ACK, error code of ERROR.
    pub(super) const BLOCK: Range<usize> = 2..4;
    /// Start of the DATA payload, the ERROR message, the RRQ/WRQ file name
    /// and the OACK options.
    pub(super) const REST: usize = 4;
    /// Start of the file name of RRQ/WRQ.
    pub(super) const FILENAME: usize = 2;
}

/// Packet opcodes (RFC 1350, RFC 2347).
pub mod opcode {
    /// Read request.
    pub const RRQ: u16 = 1;
    /// Write request.
    pub const WRQ: u16 = 2;
    /// Data block.
    pub const DATA: u16 = 3;
    /// Acknowledgement.
    pub const ACK: u16 = 4;
    /// Error.
    pub const ERROR: u16 = 5;
    /// Option acknowledgement.
    pub const OACK: u16 = 6;
}

/// Length of the DATA header (opcode and block number).
pub const DATA_HEADER_LEN: usize = 4;

/// TFTP error codes (RFC 1350 section 5, RFC 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// Not defined, see the message.
    NotDefined = 0,
    /// File not found.
    FileNotFound = 1,
    /// Access violation.
    AccessViolation = 2,
    /// Disk full or allocation exceeded.
    DiskFull = 3,
    /// Illegal TFTP operation.
    IllegalOperation = 4,
    /// Unknown transfer ID.
    UnknownTid = 5,
    /// File already exists.
    FileExists = 6,
    /// No such user.
    NoSuchUser = 7,
    /// The receiver refuses the offered options (RFC 2347).
    OptionsRefused = 8,
}

impl ErrorCode {
    /// The code for a wire value, if it is one of the defined codes.
    pub fn from_u16(code: u16) -> Option<Self> {
        Some(match code {
            0 => Self::NotDefined,
            1 => Self::FileNotFound,
            2 => Self::AccessViolation,
            3 => Self::DiskFull,
            4 => Self::IllegalOperation,
            5 => Self::UnknownTid,
            6 => Self::FileExists,
            7 => Self::NoSuchUser,
            8 => Self::OptionsRefused,
            _ => return None,
        })
    }
}

/// Transfer mode of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Text with CR LF line ends and CR NUL for a bare CR.
    Netascii,
    /// Raw bytes.
    Octet,
    /// Obsolete mail mode (never served).
    Mail,
}

impl Mode {
    /// The mode's name as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Netascii => "netascii",
            Self::Octet => "octet",
            Self::Mail => "mail",
        }
    }

    fn parse(name: &[u8]) -> Option<Self> {
        [Self::Netascii, Self::Octet, Self::Mail]
            .into_iter()
            .find(|mode| name.eq_ignore_ascii_case(mode.as_str().as_bytes()))
    }
}

/// Why bytes are not a TFTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Shorter than the fixed header of its opcode.
    #[error("packet truncated")]
    Truncated,
    /// The opcode is none of RRQ, WRQ, DATA, ACK, ERROR, OACK.
    #[error("unknown opcode {0}")]
    BadOpcode(u16),
    /// A string field (file name, mode, option) lacks its NUL terminator.
    #[error("string field not NUL-terminated")]
    MissingNul,
    /// The request's mode is not netascii, octet or mail.
    #[error("unknown transfer mode")]
    BadMode,
}

/// A read or write request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The file name as sent, without its NUL.
    pub filename: &'a [u8],
    /// The transfer mode.
    pub mode: Mode,
    /// Options (RFC 2347), checked to be NUL-terminated strings.
    pub options: Options<'a>,
}

/// A sequence of `name NUL value NUL` option pairs.
///
/// Built only by [`Packet::parse`] (or [`Options::new_checked`]), so the
/// region is empty or ends in NUL. An unpaired trailing name is ignored,
/// as are empty padding strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options<'a> {
    region: &'a [u8],
}

impl<'a> Options<'a> {
    /// Checks that `region` is a sequence of NUL-terminated strings.
    pub fn new_checked(region: &'a [u8]) -> Result<Self, ParseError> {
        match region.last() {
            None | Some(0) => Ok(Self { region }),
            Some(_) => Err(ParseError::MissingNul),
        }
    }

    /// The `(name, value)` pairs in the order sent.
    pub fn iter(&self) -> OptionIter<'a> {
        // Drop the final NUL so the split does not yield an empty string
        // after it.
        let strings = self.region.split_last().map_or(&[][..], |(_, rest)| rest);
        OptionIter {
            strings: strings.split(is_nul as fn(&u8) -> bool),
        }
    }
}

impl<'a> IntoIterator for Options<'a> {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = OptionIter<'a>;

    fn into_iter(self) -> OptionIter<'a> {
        self.iter()
    }
}

/// Iterator over option pairs; see [`Options`].
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    strings: std::slice::Split<'a, u8, fn(&u8) -> bool>,
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let name = self.strings.next()?;
            if name.is_empty() {
                // Padding NULs, or the empty tail after the final NUL.
                continue;
            }
            return Some((name, self.strings.next()?));
        }
    }
}

/// A parsed TFTP packet borrowing from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Read request.
    Rrq(Request<'a>),
    /// Write request.
    Wrq(Request<'a>),
    /// A data block.
    Data {
        /// Block number (wraps past 65535).
        block: u16,
        /// Up to blksize bytes.
        payload: &'a [u8],
    },
    /// Acknowledgement of a block (0 acknowledges an OACK).
    Ack {
        /// Block number acknowledged.
        block: u16,
    },
    /// An error; ends the transfer.
    Error {
        /// Error code (not necessarily one of [`ErrorCode`]).
        code: u16,
        /// Message, without its NUL (a missing NUL is tolerated).
        message: &'a [u8],
    },
    /// Option acknowledgement.
    Oack(Options<'a>),
}

impl<'a> Packet<'a> {
    /// Parses untrusted bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        let opcode = be16(bytes, field::OPCODE).ok_or(ParseError::Truncated)?;
        match opcode {
            opcode::RRQ => Ok(Self::Rrq(parse_request(bytes)?)),
            opcode::WRQ => Ok(Self::Wrq(parse_request(bytes)?)),
            opcode::DATA => Ok(Self::Data {
                block: be16(bytes, field::BLOCK).ok_or(ParseError::Truncated)?,
                payload: &bytes[field::REST..],
            }),
            opcode::ACK => Ok(Self::Ack {
                block: be16(bytes, field::BLOCK).ok_or(ParseError::Truncated)?,
            }),
            opcode::ERROR => {
                let code = be16(bytes, field::BLOCK).ok_or(ParseError::Truncated)?;
                let rest = &bytes[field::REST..];
                let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
                Ok(Self::Error {
                    code,
                    message: &rest[..end],
                })
            }
            opcode::OACK => Ok(Self::Oack(Options::new_checked(&bytes[2..])?)),
            other => Err(ParseError::BadOpcode(other)),
        }
    }
}

fn is_nul(byte: &u8) -> bool {
    *byte == 0
}

/// Reads a big-endian u16 at `range` (always two bytes) if present.
fn be16(bytes: &[u8], range: std::ops::Range<usize>) -> Option<u16> {
    let b = bytes.get(range)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn parse_request(bytes: &[u8]) -> Result<Request<'_>, ParseError> {
    let rest = &bytes[field::FILENAME..];
    let name_end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(ParseError::MissingNul)?;
    let after_name = &rest[name_end + 1..];
    let mode_end = after_name
        .iter()
        .position(|&b| b == 0)
        .ok_or(ParseError::MissingNul)?;
    let mode = Mode::parse(&after_name[..mode_end]).ok_or(ParseError::BadMode)?;
    Ok(Request {
        filename: &rest[..name_end],
        mode,
        options: Options::new_checked(&after_name[mode_end + 1..])?,
    })
}

/// The 4-byte header of DATA block `block`.
pub fn data_header(block: u16) -> [u8; DATA_HEADER_LEN] {
    let [hi, lo] = block.to_be_bytes();
    [0, opcode::DATA as u8, hi, lo]
}

/// An ACK of `block`.
pub fn ack(block: u16) -> [u8; 4] {
    let [hi, lo] = block.to_be_bytes();
    [0, opcode::ACK as u8, hi, lo]
}

/// Appends an ERROR packet.
pub fn emit_error(out: &mut Vec<u8>, code: ErrorCode, message: &str) {
    out.extend_from_slice(&opcode::ERROR.to_be_bytes());
    out.extend_from_slice(&(code as u16).to_be_bytes());
    out.extend_from_slice(message.as_bytes());
    out.push(0);
}

/// Appends an OACK carrying `options` as decimal values.
pub fn emit_oack(out: &mut Vec<u8>, options: &[(&str, u64)]) {
    out.extend_from_slice(&opcode::OACK.to_be_bytes());
    for (name, value) in options {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{value}");
        out.push(0);
    }
}

/// Appends an RRQ (or WRQ when `write`) with string-valued options.
pub fn emit_request(
    out: &mut Vec<u8>,
    write: bool,
    filename: &[u8],
    mode: &str,
    options: &[(&str, &str)],
) {
    let op = if write { opcode::WRQ } else { opcode::RRQ };
    out.extend_from_slice(&op.to_be_bytes());
    out.extend_from_slice(filename);
    out.push(0);
    out.extend_from_slice(mode.as_bytes());
    out.push(0);
    for (name, value) in options {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_fixed_packet() {
        assert_eq!(
            Packet::parse(&[0, 4, 0x12, 0x34]),
            Ok(Packet::Ack { block: 0x1234 })
        );
        assert_eq!(
            Packet::parse(&[0, 3, 0, 7, b'x']),
            Ok(Packet::Data {
                block: 7,
                payload: b"x"
            })
        );
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x08abort\x00"),
            Ok(Packet::Error {
                code: 8,
                message: b"abort"
            })
        );
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x01no nul"),
            Ok(Packet::Error {
                code: 1,
                message: b"no nul"
            })
        );
    }

    #[test]
    fn rejects_truncated_and_unknown() {
        assert_eq!(Packet::parse(&[]), Err(ParseError::Truncated));
        assert_eq!(Packet::parse(&[0]), Err(ParseError::Truncated));
        assert_eq!(Packet::parse(&[0, 4, 1]), Err(ParseError::Truncated));
        assert_eq!(Packet::parse(&[0, 9, 0, 0]), Err(ParseError::BadOpcode(9)));
        assert_eq!(Packet::parse(b"\x00\x01a"), Err(ParseError::MissingNul));
        assert_eq!(
            Packet::parse(b"\x00\x01a\x00octet"),
            Err(ParseError::MissingNul)
        );
        assert_eq!(
            Packet::parse(b"\x00\x01a\x00binary\x00"),
            Err(ParseError::BadMode)
        );
        assert_eq!(
            Packet::parse(b"\x00\x01a\x00octet\x00tsize\x000"),
            Err(ParseError::MissingNul)
        );
    }

    #[test]
    fn request_round_trip_with_mixed_case_mode() {
        let mut buf = vec![0xa5; 3];
        buf.clear();
        emit_request(&mut buf, false, b"f", "OcTeT", &[("blksize", "1428")]);
        let Ok(Packet::Rrq(req)) = Packet::parse(&buf) else {
            panic!("not an RRQ: {buf:?}");
        };
        assert_eq!(req.filename, b"f");
        assert_eq!(req.mode, Mode::Octet);
        let opts: Vec<_> = req.options.iter().collect();
        assert_eq!(opts, vec![(&b"blksize"[..], &b"1428"[..])]);
    }

    #[test]
    fn options_skip_padding_and_unpaired_tail() {
        let opts = Options::new_checked(b"\x00\x00tsize\x000\x00dangling\x00").expect("checked");
        let pairs: Vec<_> = opts.iter().collect();
        assert_eq!(pairs, vec![(&b"tsize"[..], &b"0"[..])]);
    }

    #[test]
    fn emits_error_and_oack() {
        let mut buf = Vec::new();
        emit_error(&mut buf, ErrorCode::FileNotFound, "file not found");
        assert_eq!(buf, b"\x00\x05\x00\x01file not found\x00");
        buf.clear();
        emit_oack(&mut buf, &[("blksize", 1468), ("tsize", 1_048_576)]);
        assert_eq!(buf, b"\x00\x06blksize\x001468\x00tsize\x001048576\x00");
        assert_eq!(data_header(0x0102), [0, 3, 1, 2]);
        assert_eq!(ack(65535), [0, 4, 0xff, 0xff]);
    }
}
