//! Verifying log and snapshot files as a stream, and telling a torn tail
//! from corruption.
//!
//! Files are read through a [`Window`] of [`READ_CHUNK`] bytes that grows
//! only to hold one larger commit group, never the whole file; each
//! verified group's records go to the caller before the next is read.

use std::{fs::File, io, os::unix::fs::FileExt};

use super::format::{
    GROUP_HEADER_LEN, Group, GroupDefect, HEADER_LEN, MAX_GROUP_BODY, claimed_len, parse_group,
    peek_first_seq,
};

/// Bytes read at a time.
pub(crate) const READ_CHUNK: usize = 256 << 10;

/// The end of a log that was dropped as a torn write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Offset of the first byte dropped (the end of the last good group).
    pub offset: u64,
    /// Number of bytes dropped.
    pub dropped_bytes: u64,
    /// Which check the first dropped group failed.
    pub reason: &'static str,
}

/// What a scan of a log or snapshot body found (its records went to the
/// caller).
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Records of all good groups.
    pub(crate) records: u64,
    /// Offset just past the last good group.
    pub(crate) good_end: u64,
    /// Sequence number following the last good record.
    pub(crate) next_seq: u64,
    /// What was dropped after `good_end`, if anything.
    pub(crate) torn: Option<TornTail>,
    /// The largest read buffer the scan used.
    pub(crate) buffer_peak: usize,
}

/// Damage that is not a torn tail: offset of the bad group and the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Offset of the first bad group.
    pub(crate) offset: u64,
    /// Which check failed.
    pub(crate) reason: &'static str,
}

/// Why a scan stopped with an error.
#[derive(Debug)]
pub(crate) enum ScanError {
    /// The bytes are damaged beyond a torn tail.
    Damage(Damage),
    /// Reading failed.
    Io(io::Error),
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Something to read journal bytes from at an offset.
pub(crate) trait Source {
    /// Reads into `buf` from `offset`; the number of bytes read (0 at the
    /// end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl Source for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

impl Source for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// A sliding read buffer over the first `len` bytes of a source.
struct Window<'a, S: Source + ?Sized> {
    src: &'a S,
    len: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    start: u64,
    peak: usize,
}

impl<'a, S: Source + ?Sized> Window<'a, S> {
    fn new(src: &'a S, len: u64) -> Self {
        Self {
            src,
            len,
            buf: Vec::new(),
            start: 0,
            peak: 0,
        }
    }

    /// The bytes `[at, at + n)`, cut at the end of the file. Reads ahead
    /// by [`READ_CHUNK`]; keeps only bytes from `at` on.
    fn get(&mut self, at: u64, n: usize) -> io::Result<&[u8]> {
        let end = at.saturating_add(n as u64).min(self.len).max(at);
        let buf_end = self.start + self.buf.len() as u64;
        if at < self.start || end > buf_end {
            if at >= self.start && at <= buf_end {
                self.buf.drain(..(at - self.start) as usize);
            } else {
                self.buf.clear();
            }
            self.start = at;
            let want = (end - at).max(READ_CHUNK as u64).min(self.len - at) as usize;
            let mut have = self.buf.len();
            self.buf.resize(want.max(have), 0);
            while have < want {
                match self
                    .src
                    .read_at(&mut self.buf[have..want], at + have as u64)
                {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(k) => have += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.peak = self.peak.max(self.buf.capacity());
        }
        let from = (at - self.start) as usize;
        Ok(&self.buf[from..from + (end - at) as usize])
    }

    /// Parses the group at `pos`, reading no more than it claims and never
    /// past the end of the file.
    fn group_at(&mut self, pos: u64) -> io::Result<Result<(Group<'_>, usize), GroupDefect>> {
        let Some(total) = claimed_len(self.get(pos, GROUP_HEADER_LEN)?) else {
            return Ok(Err(GroupDefect::Truncated));
        };
        if pos.saturating_add(total as u64) > self.len {
            return Ok(Err(GroupDefect::Truncated));
        }
        if total - GROUP_HEADER_LEN > MAX_GROUP_BODY {
            return Ok(Err(GroupDefect::Checksum));
        }
        Ok(parse_group(self.get(pos, total)?))
    }
}

/// Verifies the groups of a log file of `len` bytes (header already
/// checked), handing each good record with its sequence number to
/// `on_record`. The first group that fails is a torn tail unless a later
/// group verifies and records a `synced_end` beyond the failure: that
/// proves the damaged bytes had been synced before, so they are corruption
/// (the records handed over so far must then be discarded).
pub(crate) fn scan_log<S: Source + ?Sized>(
    src: &S,
    len: u64,
    first_seq: u64,
    on_record: &mut dyn FnMut(u64, &[u8]),
) -> Result<Scan, ScanError> {
    let mut window = Window::new(src, len);
    let mut scan = scan_groups(&mut window, first_seq, on_record)?;
    if let Some(bad) = scan.torn.take() {
        if synced_after(&mut window, scan.good_end, scan.next_seq)? {
            return Err(ScanError::Damage(Damage {
                offset: scan.good_end,
                reason: bad.reason,
            }));
        }
        scan.torn = Some(bad);
    }
    scan.buffer_peak = window.peak;
    Ok(scan)
}

/// Verifies a snapshot: groups must chain from `first_seq`, hold exactly
/// `record_count` records and end exactly at the end of the file. Any
/// failure is corruption, since a snapshot is synced before it is renamed
/// into place.
pub(crate) fn scan_snapshot<S: Source + ?Sized>(
    src: &S,
    len: u64,
    first_seq: u64,
    record_count: u64,
    on_record: &mut dyn FnMut(u64, &[u8]),
) -> Result<Scan, ScanError> {
    let mut window = Window::new(src, len);
    let mut scan = scan_groups(&mut window, first_seq, on_record)?;
    if let Some(bad) = scan.torn {
        return Err(ScanError::Damage(Damage {
            offset: bad.offset,
            reason: bad.reason,
        }));
    }
    if scan.records != record_count {
        return Err(ScanError::Damage(Damage {
            offset: scan.good_end,
            reason: "snapshot record count does not match its header",
        }));
    }
    scan.buffer_peak = window.peak;
    Ok(scan)
}

/// Walks good groups from the header on; stops at the first failure and
/// describes it as a torn tail (the caller decides whether it really is).
fn scan_groups<S: Source + ?Sized>(
    window: &mut Window<'_, S>,
    first_seq: u64,
    on_record: &mut dyn FnMut(u64, &[u8]),
) -> io::Result<Scan> {
    let len = window.len;
    let mut scan = Scan {
        good_end: HEADER_LEN as u64,
        next_seq: first_seq,
        ..Scan::default()
    };
    let mut pos = HEADER_LEN as u64;
    while pos < len {
        let failure = match window.group_at(pos)? {
            Ok((group, _)) if group.first_seq != scan.next_seq => "commit group out of sequence",
            Ok((group, n)) => {
                for (i, record) in group.records().enumerate() {
                    on_record(scan.next_seq + i as u64, record);
                }
                scan.next_seq += u64::from(group.count);
                scan.records += u64::from(group.count);
                pos += n as u64;
                scan.good_end = pos;
                continue;
            }
            Err(defect) => GroupDefect::reason(defect),
        };
        scan.torn = Some(TornTail {
            offset: pos,
            dropped_bytes: len - pos,
            reason: failure,
        });
        break;
    }
    Ok(scan)
}

/// True when some group starting after `bad_at` verifies, continues the
/// sequence plausibly, and records that bytes past `bad_at` had been synced.
fn synced_after<S: Source + ?Sized>(
    window: &mut Window<'_, S>,
    bad_at: u64,
    next_seq: u64,
) -> io::Result<bool> {
    let last_start = window.len.saturating_sub(GROUP_HEADER_LEN as u64);
    for at in bad_at + 1..=last_start {
        // Cheap filter before the checksum: the sequence number must lie
        // between `next_seq` and the most records the gap could hold.
        let plausible = peek_first_seq(window.get(at, GROUP_HEADER_LEN)?)
            .is_some_and(|seq| seq >= next_seq && seq - next_seq <= at - bad_at);
        if plausible
            && window
                .group_at(at)?
                .is_ok_and(|(group, _)| group.synced_end > bad_at)
        {
            return Ok(true);
        }
    }
    Ok(false)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::format::{FileHeader, FileKind, begin_group, push_record, seal_group};

    /// Scans `file` as a log; its records collected.
    fn log(file: &[u8], first_seq: u64) -> Result<(Scan, Vec<Vec<u8>>), Damage> {
        let mut records = Vec::new();
        let scan = scan_log(file, file.len() as u64, first_seq, &mut |_, r| {
            records.push(r.to_vec())
        });
        match scan {
            Ok(scan) => Ok((scan, records)),
            Err(ScanError::Damage(d)) => Err(d),
            Err(ScanError::Io(e)) => panic!("{e}"),
        }
    }

    fn log_with(groups: &[(&[&[u8]], u64)]) -> (Vec<u8>, Vec<usize>) {
        let mut file = FileHeader {
            kind: FileKind::Log,
            generation: 0,
            first_seq: 10,
            record_count: 0,
        }
        .encode()
        .to_vec();
        let mut starts = Vec::new();
        let mut seq = 10;
        for (records, synced_end) in groups {
            starts.push(file.len());
            let mut buf = Vec::new();
            begin_group(&mut buf);
            records.iter().for_each(|r| push_record(&mut buf, r));
            seal_group(&mut buf, seq, *synced_end, records.len() as u32);
            seq += records.len() as u64;
            file.extend_from_slice(&buf);
        }
        (file, starts)
    }

    #[test]
    fn clean_log_scans_fully() {
        let (file, _) = log_with(&[(&[b"a", b"b"], 40), (&[b"c"], 40)]);
        let (scan, records) = log(&file, 10).expect("clean");
        assert_eq!(records, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!((scan.good_end, scan.next_seq), (file.len() as u64, 13));
        assert_eq!(scan.torn, None);
    }

    #[test]
    fn damage_before_a_synced_group_is_corruption() {
        let (one, _) = log_with(&[(&[b"first"], 40)]);
        // The second group says everything before it was synced.
        let (mut file, starts) = log_with(&[(&[b"first"], 40), (&[b"second"], one.len() as u64)]);
        file[starts[0] + GROUP_HEADER_LEN + 5] ^= 0x40;
        let damage = log(&file, 10).expect_err("must be corruption");
        assert_eq!(damage.offset, starts[0] as u64);
    }

    #[test]
    fn damage_before_an_unsynced_group_is_a_torn_tail() {
        let (mut file, starts) =
            log_with(&[(&[b"first"], 40), (&[b"second"], 40), (&[b"third"], 40)]);
        file[starts[1] + GROUP_HEADER_LEN + 5] ^= 0x40;
        let (scan, records) = log(&file, 10).expect("torn tail");
        assert_eq!(records, [b"first".to_vec()]);
        let torn = scan.torn.expect("tail reported");
        assert_eq!(torn.offset, starts[1] as u64);
        assert_eq!(torn.dropped_bytes, (file.len() - starts[1]) as u64);
    }

    #[test]
    fn sequence_gap_is_detected() {
        let (file, starts) = log_with(&[(&[b"first"], 40)]);
        let (scan, _) = log(&file, 11).expect("torn");
        assert_eq!(scan.torn.map(|t| t.offset), Some(starts[0] as u64));
    }

    #[test]
    fn snapshot_count_must_match() {
        let (file, _) = log_with(&[(&[b"a", b"b"], 0)]);
        let snapshot = |file: &[u8], count| {
            scan_snapshot(file, file.len() as u64, 10, count, &mut |_, _| {}).map(|s| s.records)
        };
        assert_eq!(snapshot(&file, 2).ok(), Some(2));
        assert!(snapshot(&file, 3).is_err());
        assert!(snapshot(&file[..file.len() - 1], 2).is_err());
    }
}
