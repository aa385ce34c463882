//! Verifying log and snapshot bytes, and telling a torn tail from corruption.

use super::format::{GROUP_HEADER_LEN, GroupDefect, HEADER_LEN, parse_group, peek_first_seq};

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

/// The verified content of a log or snapshot body.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Records of all good groups, in order.
    pub(crate) records: Vec<Vec<u8>>,
    /// Offset just past the last good group.
    pub(crate) good_end: u64,
    /// Sequence number following the last good record.
    pub(crate) next_seq: u64,
    /// What was dropped after `good_end`, if anything.
    pub(crate) torn: Option<TornTail>,
}

/// Damage that is not a torn tail: offset of the bad group and the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Offset of the first bad group.
    pub(crate) offset: u64,
    /// Which check failed.
    pub(crate) reason: &'static str,
}

/// Verifies the groups of a log file (`file` includes the header, already
/// checked). The first group that fails is a torn tail unless a later group
/// verifies and records a `synced_end` beyond the failure: that proves the
/// damaged bytes had been synced before, so they are corruption.
pub(crate) fn scan_log(file: &[u8], first_seq: u64) -> Result<Scan, Damage> {
    let mut scan = scan_groups(file, first_seq);
    let Some(bad) = scan.torn.take() else {
        return Ok(scan);
    };
    let bad_at = scan.good_end as usize;
    if synced_after(file, bad_at, scan.next_seq) {
        return Err(Damage {
            offset: scan.good_end,
            reason: bad.reason,
        });
    }
    scan.torn = Some(bad);
    Ok(scan)
}

/// Verifies a snapshot: groups must chain from `first_seq`, hold exactly
/// `record_count` records and end exactly at the end of the file. Any
/// failure is corruption, since a snapshot is synced before it is renamed
/// into place.
pub(crate) fn scan_snapshot(
    file: &[u8],
    first_seq: u64,
    record_count: u64,
) -> Result<Scan, Damage> {
    let scan = scan_groups(file, first_seq);
    if let Some(bad) = scan.torn {
        return Err(Damage {
            offset: bad.offset,
            reason: bad.reason,
        });
    }
    if scan.records.len() as u64 != record_count {
        return Err(Damage {
            offset: scan.good_end,
            reason: "snapshot record count does not match its header",
        });
    }
    Ok(scan)
}

/// Walks good groups from the header on; stops at the first failure and
/// describes it as a torn tail (the caller decides whether it really is).
fn scan_groups(file: &[u8], first_seq: u64) -> Scan {
    let mut scan = Scan {
        good_end: HEADER_LEN as u64,
        next_seq: first_seq,
        ..Scan::default()
    };
    let mut pos = HEADER_LEN;
    while pos < file.len() {
        let failure = match parse_group(&file[pos..]) {
            Ok((group, _)) if group.first_seq != scan.next_seq => "commit group out of sequence",
            Ok((group, len)) => {
                scan.records.extend(group.records().map(<[u8]>::to_vec));
                scan.next_seq += u64::from(group.count);
                pos += len;
                scan.good_end = pos as u64;
                continue;
            }
            Err(defect) => GroupDefect::reason(defect),
        };
        scan.torn = Some(TornTail {
            offset: pos as u64,
            dropped_bytes: (file.len() - pos) as u64,
            reason: failure,
        });
        break;
    }
    scan
}

/// True when some group starting after `bad_at` verifies, continues the
/// sequence plausibly, and records that bytes past `bad_at` had been synced.
fn synced_after(file: &[u8], bad_at: usize, next_seq: u64) -> bool {
    let last_start = file.len().saturating_sub(GROUP_HEADER_LEN);
    (bad_at + 1..=last_start).any(|at| {
        // Cheap filter before the checksum: the sequence number must lie
        // between `next_seq` and the most records the gap could hold.
        let plausible = peek_first_seq(&file[at..])
            .is_some_and(|seq| seq >= next_seq && seq - next_seq <= (at - bad_at) as u64);
        plausible
            && parse_group(&file[at..]).is_ok_and(|(group, _)| group.synced_end > bad_at as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::format::{FileHeader, FileKind, begin_group, push_record, seal_group};

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
        let scan = scan_log(&file, 10).expect("clean");
        assert_eq!(scan.records, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!((scan.good_end, scan.next_seq), (file.len() as u64, 13));
        assert_eq!(scan.torn, None);
    }

    #[test]
    fn damage_before_a_synced_group_is_corruption() {
        let (one, _) = log_with(&[(&[b"first"], 40)]);
        // The second group says everything before it was synced.
        let (mut file, starts) = log_with(&[(&[b"first"], 40), (&[b"second"], one.len() as u64)]);
        file[starts[0] + GROUP_HEADER_LEN + 5] ^= 0x40;
        let damage = scan_log(&file, 10).expect_err("must be corruption");
        assert_eq!(damage.offset, starts[0] as u64);
    }

    #[test]
    fn damage_before_an_unsynced_group_is_a_torn_tail() {
        let (mut file, starts) =
            log_with(&[(&[b"first"], 40), (&[b"second"], 40), (&[b"third"], 40)]);
        file[starts[1] + GROUP_HEADER_LEN + 5] ^= 0x40;
        let scan = scan_log(&file, 10).expect("torn tail");
        assert_eq!(scan.records, [b"first".to_vec()]);
        let torn = scan.torn.expect("tail reported");
        assert_eq!(torn.offset, starts[1] as u64);
        assert_eq!(torn.dropped_bytes, (file.len() - starts[1]) as u64);
    }

    #[test]
    fn sequence_gap_is_detected() {
        let (file, starts) = log_with(&[(&[b"first"], 40)]);
        let scan = scan_log(&file, 11).expect("torn");
        assert_eq!(scan.torn.map(|t| t.offset), Some(starts[0] as u64));
    }

    #[test]
    fn snapshot_count_must_match() {
        let (file, _) = log_with(&[(&[b"a", b"b"], 0)]);
        assert_eq!(scan_snapshot(&file, 10, 2).map(|s| s.records.len()), Ok(2));
        assert!(scan_snapshot(&file, 10, 3).is_err());
        assert!(scan_snapshot(&file[..file.len() - 1], 10, 2).is_err());
    }
}
