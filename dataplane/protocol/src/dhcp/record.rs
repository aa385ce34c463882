//! Lease records: what the driver journals before a reply leaves.
//!
//! Every change of a binding becomes one [`LeaseRecord`]. Its encoding is a
//! fixed, versioned 28-byte layout (big-endian):
//!
//! | bytes  | field                                   |
//! | ------ | --------------------------------------- |
//! | 0      | version ([`RECORD_VERSION`])            |
//! | 1      | kind ([`RecordKind`])                   |
//! | 2..8   | client MAC                              |
//! | 8..12  | address                                 |
//! | 12..20 | `at`: when it happened, ms since epoch  |
//! | 20..28 | `until`: end of binding or quarantine   |
//!
//! The journal adds its own framing and checksum around these bytes.

use std::net::Ipv4Addr;

use crate::dhcp::time::UnixTime;

/// Version byte of the current layout.
pub const RECORD_VERSION: u8 = 1;
/// Encoded length of a version-1 record.
pub const RECORD_LEN: usize = 28;

/// What happened to a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum RecordKind {
    /// A new binding (ACK or BOOTREPLY for an address the client did not
    /// hold).
    #[default]
    Bind = 1,
    /// An existing binding extended.
    Renew = 2,
    /// The client released the address.
    Release = 3,
    /// The client declined the address; it is quarantined until `until`.
    Decline = 4,
    /// The binding ran out.
    Expire = 5,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Bind,
            2 => Self::Renew,
            3 => Self::Release,
            4 => Self::Decline,
            5 => Self::Expire,
            _ => return None,
        })
    }
}

/// One change of one binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseRecord {
    /// What happened.
    pub kind: RecordKind,
    /// The client.
    pub mac: [u8; 6],
    /// The address.
    pub addr: Ipv4Addr,
    /// When it happened.
    pub at: UnixTime,
    /// End of the binding (bind, renew; [`UnixTime::NEVER`] for a permanent
    /// BOOTP binding) or of the quarantine (decline); equal to `at`
    /// otherwise.
    pub until: UnixTime,
}

impl Default for LeaseRecord {
    fn default() -> Self {
        Self {
            kind: RecordKind::Bind,
            mac: [0; 6],
            addr: Ipv4Addr::UNSPECIFIED,
            at: UnixTime::EPOCH,
            until: UnixTime::EPOCH,
        }
    }
}

/// Why bytes are not a lease record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The length does not match the version's layout.
    #[error("record of {0} bytes, expected {RECORD_LEN}")]
    Length(usize),
    /// A layout version this build does not know.
    #[error("unknown record version {0}")]
    Version(u8),
    /// An unknown kind byte.
    #[error("unknown record kind {0}")]
    Kind(u8),
}

impl LeaseRecord {
    /// The fixed-layout encoding.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0] = RECORD_VERSION;
        b[1] = self.kind as u8;
        b[2..8].copy_from_slice(&self.mac);
        b[8..12].copy_from_slice(&self.addr.octets());
        b[12..20].copy_from_slice(&self.at.as_millis().to_be_bytes());
        b[20..28].copy_from_slice(&self.until.as_millis().to_be_bytes());
        b
    }

    /// Decodes [`LeaseRecord::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let version = *bytes.first().ok_or(RecordError::Length(0))?;
        if version != RECORD_VERSION {
            return Err(RecordError::Version(version));
        }
        let b: &[u8; RECORD_LEN] = bytes
            .try_into()
            .map_err(|_| RecordError::Length(bytes.len()))?;
        let kind = RecordKind::from_u8(b[1]).ok_or(RecordError::Kind(b[1]))?;
        let u64_at = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            u64::from_be_bytes(w)
        };
        Ok(Self {
            kind,
            mac: [b[2], b[3], b[4], b[5], b[6], b[7]],
            addr: Ipv4Addr::new(b[8], b[9], b[10], b[11]),
            at: UnixTime::from_millis(u64_at(12)),
            until: UnixTime::from_millis(u64_at(20)),
        })
    }
}

/// Up to two records produced by one packet (a new binding may release the
/// client's previous one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RecordBatch {
    items: [LeaseRecord; 2],
    len: usize,
}

impl RecordBatch {
    /// Appends a record; a third one is impossible by construction and is
    /// ignored (debug builds assert).
    pub(crate) fn push(&mut self, r: LeaseRecord) {
        debug_assert!(
            self.len < self.items.len(),
            "at most two records per packet"
        );
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = r;
            self.len += 1;
        }
    }

    /// The records, oldest first.
    pub(crate) fn as_slice(&self) -> &[LeaseRecord] {
        &self.items[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: RecordKind) -> LeaseRecord {
        LeaseRecord {
            kind,
            mac: [0x52, 0x54, 0, 0x77, 0, 0x10],
            addr: Ipv4Addr::new(192, 168, 1, 2),
            at: UnixTime::from_millis(1_795_694_390_521),
            until: UnixTime::NEVER,
        }
    }

    #[test]
    fn round_trips_every_kind() {
        for kind in [
            RecordKind::Bind,
            RecordKind::Renew,
            RecordKind::Release,
            RecordKind::Decline,
            RecordKind::Expire,
        ] {
            let r = sample(kind);
            assert_eq!(LeaseRecord::decode(&r.encode()), Ok(r));
        }
    }

    #[test]
    fn layout_is_fixed() {
        let b = sample(RecordKind::Decline).encode();
        assert_eq!(b[0], 1);
        assert_eq!(b[1], 4);
        assert_eq!(&b[2..8], &[0x52, 0x54, 0, 0x77, 0, 0x10]);
        assert_eq!(&b[8..12], &[192, 168, 1, 2]);
        assert_eq!(&b[12..20], &1_795_694_390_521u64.to_be_bytes());
        assert_eq!(&b[20..28], &[0xff; 8]);
    }

    #[test]
    fn rejects_bad_bytes() {
        let b = sample(RecordKind::Bind).encode();
        assert_eq!(LeaseRecord::decode(&[]), Err(RecordError::Length(0)));
        assert_eq!(LeaseRecord::decode(&b[..27]), Err(RecordError::Length(27)));
        let mut v = b;
        v[0] = 2;
        assert_eq!(LeaseRecord::decode(&v), Err(RecordError::Version(2)));
        let mut k = b;
        k[1] = 9;
        assert_eq!(LeaseRecord::decode(&k), Err(RecordError::Kind(9)));
    }
}
