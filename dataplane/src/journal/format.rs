//! The on-disk encoding: file headers and commit groups.
//!
//! All integers are little-endian. Parsing functions take untrusted bytes and
//! never panic; every field offset is named below.

/// First eight bytes of every journal file.
pub(crate) const MAGIC: [u8; 8] = *b"BWJOURNL";
/// Format version written by this build.
pub(crate) const VERSION: u16 = 1;
/// Length of the file header.
pub(crate) const HEADER_LEN: usize = 40;
/// Length of a commit-group header.
pub(crate) const GROUP_HEADER_LEN: usize = 28;
/// Length of the prefix in front of each record inside a group body.
pub(crate) const RECORD_PREFIX_LEN: usize = 4;
/// Largest record accepted by `append` and compaction.
pub const MAX_RECORD_LEN: usize = 1 << 20;
/// Largest group body `append` builds (snapshots use 1 MiB chunks).
pub const MAX_GROUP_BODY: usize = 64 << 20;

/// Field offsets of the file header.
mod header {
    use std::ops::Range;
    pub(super) const MAGIC: Range<usize> = 0..8;
    pub(super) const VERSION: Range<usize> = 8..10;
    pub(super) const KIND: Range<usize> = 10..12;
    pub(super) const GENERATION: Range<usize> = 12..20;
    pub(super) const FIRST_SEQ: Range<usize> = 20..28;
    pub(super) const RECORD_COUNT: Range<usize> = 28..36;
    pub(super) const CRC: Range<usize> = 36..40;
}

/// Field offsets of a commit-group header.
mod group {
    use std::ops::Range;
    pub(super) const BODY_LEN: Range<usize> = 0..4;
    pub(super) const CRC: Range<usize> = 4..8;
    pub(super) const FIRST_SEQ: Range<usize> = 8..16;
    pub(super) const SYNCED_END: Range<usize> = 16..24;
    pub(super) const COUNT: Range<usize> = 24..28;
}

/// Which of the two journal files a header belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// The append-only log (`<name>.log`).
    Log = 1,
    /// The compaction snapshot (`<name>.snap`).
    Snapshot = 2,
}

/// A decoded file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHeader {
    /// Log or snapshot.
    pub(crate) kind: FileKind,
    /// Compaction generation: a log applies on top of the snapshot with the
    /// same generation (generation 0 = no snapshot).
    pub(crate) generation: u64,
    /// Sequence number of the first record in the file.
    pub(crate) first_seq: u64,
    /// Snapshot: exact number of records. Log: 0.
    pub(crate) record_count: u64,
}

/// Why a header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderDefect {
    /// A structural problem, described.
    Invalid(&'static str),
    /// A version this build does not read.
    Version(u16),
}

/// Why the bytes at some offset are not a valid commit group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupDefect {
    /// Header or body runs past the end of the file.
    Truncated,
    /// The checksum does not match.
    Checksum,
    /// The checksum matches but the records do not tile the body.
    Malformed,
}

impl GroupDefect {
    /// A short human-readable reason.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Truncated => "commit group runs past end of file",
            Self::Checksum => "commit group checksum mismatch",
            Self::Malformed => "records do not fill the commit group",
        }
    }
}

/// A verified commit group borrowed from file bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Group<'a> {
    /// Sequence number of its first record.
    pub(crate) first_seq: u64,
    /// Log offset known durable when the group was written.
    pub(crate) synced_end: u64,
    /// Number of records.
    pub(crate) count: u32,
    /// The record area (`count` length-prefixed records, exactly).
    body: &'a [u8],
}

impl FileHeader {
    /// Encodes the header, checksum included.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[header::MAGIC].copy_from_slice(&MAGIC);
        out[header::VERSION].copy_from_slice(&VERSION.to_le_bytes());
        out[header::KIND].copy_from_slice(&(self.kind as u16).to_le_bytes());
        out[header::GENERATION].copy_from_slice(&self.generation.to_le_bytes());
        out[header::FIRST_SEQ].copy_from_slice(&self.first_seq.to_le_bytes());
        out[header::RECORD_COUNT].copy_from_slice(&self.record_count.to_le_bytes());
        let crc = crc32fast::hash(&out[..header::CRC.start]);
        out[header::CRC].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and verifies the header at the start of `bytes`.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, HeaderDefect> {
        let Some(bytes) = bytes.get(..HEADER_LEN) else {
            return Err(HeaderDefect::Invalid("file shorter than its header"));
        };
        if bytes[header::MAGIC] != MAGIC {
            return Err(HeaderDefect::Invalid("bad magic"));
        }
        if crc32fast::hash(&bytes[..header::CRC.start]) != le_u32(&bytes[header::CRC]) {
            return Err(HeaderDefect::Invalid("header checksum mismatch"));
        }
        let version = le_u16(&bytes[header::VERSION]);
        if version != VERSION {
            return Err(HeaderDefect::Version(version));
        }
        let kind = match le_u16(&bytes[header::KIND]) {
            1 => FileKind::Log,
            2 => FileKind::Snapshot,
            _ => return Err(HeaderDefect::Invalid("unknown file kind")),
        };
        Ok(Self {
            kind,
            generation: le_u64(&bytes[header::GENERATION]),
            first_seq: le_u64(&bytes[header::FIRST_SEQ]),
            record_count: le_u64(&bytes[header::RECORD_COUNT]),
        })
    }
}

/// Clears `buf` and reserves room for a group header.
pub(crate) fn begin_group(buf: &mut Vec<u8>) {
    buf.clear();
    buf.resize(GROUP_HEADER_LEN, 0);
}

/// Appends one length-prefixed record to a group started by [`begin_group`].
/// The caller bounds `record.len()` by [`MAX_RECORD_LEN`], so it fits a `u32`.
pub(crate) fn push_record(buf: &mut Vec<u8>, record: &[u8]) {
    buf.extend_from_slice(&(record.len() as u32).to_le_bytes());
    buf.extend_from_slice(record);
}

/// Fills in the header of a group built with [`begin_group`]/[`push_record`].
/// The caller bounds the body by [`MAX_GROUP_BODY`], so it fits a `u32`.
pub(crate) fn seal_group(buf: &mut [u8], first_seq: u64, synced_end: u64, count: u32) {
    let body_len = (buf.len() - GROUP_HEADER_LEN) as u32;
    buf[group::BODY_LEN].copy_from_slice(&body_len.to_le_bytes());
    buf[group::FIRST_SEQ].copy_from_slice(&first_seq.to_le_bytes());
    buf[group::SYNCED_END].copy_from_slice(&synced_end.to_le_bytes());
    buf[group::COUNT].copy_from_slice(&count.to_le_bytes());
    let crc = group_crc(buf);
    buf[group::CRC].copy_from_slice(&crc.to_le_bytes());
}

/// Checksum of a whole group except its CRC field.
fn group_crc(group_bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&group_bytes[group::BODY_LEN]);
    hasher.update(&group_bytes[group::CRC.end..]);
    hasher.finalize()
}

/// Parses and verifies the commit group at the start of `bytes`; returns it
/// with its total encoded length.
pub(crate) fn parse_group(bytes: &[u8]) -> Result<(Group<'_>, usize), GroupDefect> {
    let head = bytes
        .get(..GROUP_HEADER_LEN)
        .ok_or(GroupDefect::Truncated)?;
    let total = GROUP_HEADER_LEN + le_u32(&head[group::BODY_LEN]) as usize;
    let all = bytes.get(..total).ok_or(GroupDefect::Truncated)?;
    if group_crc(all) != le_u32(&head[group::CRC]) {
        return Err(GroupDefect::Checksum);
    }
    let group = Group {
        first_seq: le_u64(&head[group::FIRST_SEQ]),
        synced_end: le_u64(&head[group::SYNCED_END]),
        count: le_u32(&head[group::COUNT]),
        body: &all[GROUP_HEADER_LEN..],
    };
    if group.count == 0 || group.records().count() != group.count as usize || !group.tiles() {
        return Err(GroupDefect::Malformed);
    }
    Ok((group, total))
}

/// The total length (header and body) a group header at the start of
/// `head` claims, unverified; `None` when `head` is shorter than a header.
pub(crate) fn claimed_len(head: &[u8]) -> Option<usize> {
    let head = head.get(..GROUP_HEADER_LEN)?;
    Some(GROUP_HEADER_LEN + le_u32(&head[group::BODY_LEN]) as usize)
}

/// The first sequence number a group header at the start of `bytes` claims,
/// unverified: a cheap filter before [`parse_group`].
pub(crate) fn peek_first_seq(bytes: &[u8]) -> Option<u64> {
    bytes.get(group::FIRST_SEQ).map(le_u64)
}

impl<'a> Group<'a> {
    /// The records, in order. Stops early only on a malformed body, which
    /// [`parse_group`] rejects.
    pub(crate) fn records(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let mut rest = self.body;
        std::iter::from_fn(move || {
            let len = le_u32(rest.get(..RECORD_PREFIX_LEN)?) as usize;
            let record = rest.get(RECORD_PREFIX_LEN..RECORD_PREFIX_LEN + len)?;
            rest = &rest[RECORD_PREFIX_LEN + len..];
            Some(record)
        })
    }

    /// True when the records cover the body exactly.
    fn tiles(&self) -> bool {
        let used: usize = self.records().map(|r| RECORD_PREFIX_LEN + r.len()).sum();
        used == self.body.len()
    }
}

/// Reads a little-endian `u16`; callers pass exactly two bytes.
fn le_u16(bytes: &[u8]) -> u16 {
    let mut raw = [0u8; 2];
    raw.copy_from_slice(bytes);
    u16::from_le_bytes(raw)
}

/// Reads a little-endian `u32`; callers pass exactly four bytes.
fn le_u32(bytes: &[u8]) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(bytes);
    u32::from_le_bytes(raw)
}

/// Reads a little-endian `u64`; callers pass exactly eight bytes.
fn le_u64(bytes: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(bytes);
    u64::from_le_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_of(records: &[&[u8]], first_seq: u64, synced_end: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        begin_group(&mut buf);
        for r in records {
            push_record(&mut buf, r);
        }
        seal_group(&mut buf, first_seq, synced_end, records.len() as u32);
        buf
    }

    #[test]
    fn header_round_trip() {
        let h = FileHeader {
            kind: FileKind::Snapshot,
            generation: 7,
            first_seq: 1234,
            record_count: 99,
        };
        let bytes = h.encode();
        assert_eq!(&bytes[..8], b"BWJOURNL");
        assert_eq!(FileHeader::decode(&bytes), Ok(h));
    }

    #[test]
    fn header_rejects_every_single_bit_flip() {
        let bytes = FileHeader {
            kind: FileKind::Log,
            generation: 1,
            first_seq: 2,
            record_count: 0,
        }
        .encode();
        for bit in 0..HEADER_LEN * 8 {
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(FileHeader::decode(&bad).is_err(), "bit {bit} accepted");
        }
        assert!(FileHeader::decode(&bytes[..HEADER_LEN - 1]).is_err());
    }

    #[test]
    fn group_round_trip() {
        let buf = group_of(&[b"alpha", b"", b"gamma-ray"], 42, 40);
        let mut trailing = buf.clone();
        trailing.extend_from_slice(b"next group");
        let (g, len) = parse_group(&trailing).expect("valid group");
        assert_eq!(len, buf.len());
        assert_eq!((g.first_seq, g.synced_end, g.count), (42, 40, 3));
        let recs: Vec<&[u8]> = g.records().collect();
        assert_eq!(recs, [&b"alpha"[..], b"", b"gamma-ray"]);
    }

    #[test]
    fn group_detects_truncation_and_bit_flips() {
        let buf = group_of(&[b"lease-record-one", b"lease-record-two"], 0, 40);
        for cut in 0..buf.len() {
            assert_eq!(parse_group(&buf[..cut]).err(), Some(GroupDefect::Truncated));
        }
        for bit in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(parse_group(&bad).is_err(), "bit {bit} accepted");
        }
    }

    #[test]
    fn group_with_wrong_count_is_malformed() {
        let mut buf = group_of(&[b"a", b"b"], 0, 0);
        // Re-seal claiming one record: checksum is valid, tiling is not.
        seal_group(&mut buf, 0, 0, 1);
        assert_eq!(parse_group(&buf).err(), Some(GroupDefect::Malformed));
        seal_group(&mut buf, 0, 0, 0);
        assert_eq!(parse_group(&buf).err(), Some(GroupDefect::Malformed));
    }

    #[test]
    fn zero_filled_bytes_are_not_a_group() {
        assert!(parse_group(&[0u8; 64]).is_err());
    }
}
