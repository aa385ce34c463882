//! Option negotiation: blksize (RFC 2348), timeout and tsize (RFC 2349),
//! windowsize (RFC 7440), on top of RFC 2347.
//!
//! Names are matched without regard to case; unknown options and values out
//! of range are ignored (the option is then simply not acknowledged). The
//! accepted set is kept as bit flags plus values so the OACK can be rebuilt
//! for a retransmission without storing its bytes.

use super::wire::{self, Options};

/// Smallest blksize a client may ask for.
pub const MIN_BLKSIZE: u16 = 8;
/// Largest blksize RFC 2348 allows.
pub const MAX_BLKSIZE: u16 = 65464;
/// blksize when none is negotiated.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// IPv4 + UDP + TFTP DATA header bytes that sit in the MTU with a block.
pub const MTU_OVERHEAD: u16 = 20 + 8 + 4;

/// Bit flags of the accepted options.
pub(crate) mod flag {
    /// blksize was accepted.
    pub(crate) const BLKSIZE: u8 = 1;
    /// timeout was accepted.
    pub(crate) const TIMEOUT: u8 = 2;
    /// tsize was accepted.
    pub(crate) const TSIZE: u8 = 4;
    /// windowsize was accepted.
    pub(crate) const WINDOWSIZE: u8 = 8;
    /// Mask of all option flags.
    pub(crate) const ALL: u8 = BLKSIZE | TIMEOUT | TSIZE | WINDOWSIZE;
}

/// Server-side bounds applied to what clients ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Largest blksize granted (already clamped to the MTU and RFC range).
    pub(crate) max_blksize: u16,
    /// Largest windowsize granted.
    pub(crate) max_windowsize: u16,
    /// Bytes (DATA datagrams, headers included) one window may put on the
    /// wire at once.
    pub(crate) burst_budget: usize,
    /// Largest `timeout` acknowledged, in seconds; a client asking for
    /// more gets no `timeout` in the OACK and keeps its own default.
    pub(crate) max_timeout_secs: u8,
}

impl Limits {
    /// Bounds from the configured maxima, clamped to what the protocol and
    /// the link allow.
    pub(crate) fn new(
        max_blksize: u16,
        mtu: u16,
        max_windowsize: u16,
        burst_budget: usize,
    ) -> Self {
        let by_mtu = mtu.saturating_sub(MTU_OVERHEAD);
        Self {
            max_blksize: max_blksize.min(by_mtu).clamp(MIN_BLKSIZE, MAX_BLKSIZE),
            max_windowsize: max_windowsize.max(1),
            burst_budget,
            max_timeout_secs: u8::MAX,
        }
    }

    /// The same bounds acknowledging `timeout` only up to `max_timeout`
    /// (whole seconds, rounded down).
    pub(crate) fn with_max_timeout(self, max_timeout: std::time::Duration) -> Self {
        let secs = u8::try_from(max_timeout.as_secs()).unwrap_or(u8::MAX);
        Self {
            max_timeout_secs: secs,
            ..self
        }
    }

    /// The largest window whose burst fits the budget at `blksize`.
    fn window_for(&self, blksize: u16) -> u16 {
        let per_block = usize::from(blksize) + wire::DATA_HEADER_LEN;
        let fits = (self.burst_budget / per_block).clamp(1, usize::from(u16::MAX));
        self.max_windowsize.min(fits as u16)
    }
}

/// The outcome of a negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// Accepted options ([`flag`] bits); 0 means no OACK.
    pub(crate) flags: u8,
    /// Block size in effect.
    pub(crate) blksize: u16,
    /// Window size in effect.
    pub(crate) windowsize: u16,
    /// Retransmission timeout in seconds, when negotiated.
    pub(crate) timeout_secs: u8,
}

impl Negotiated {
    /// Applies `limits` to the options a client sent.
    pub(crate) fn from_request(options: Options<'_>, limits: &Limits) -> Self {
        let mut out = Self {
            flags: 0,
            blksize: DEFAULT_BLKSIZE,
            windowsize: 1,
            timeout_secs: 0,
        };
        let mut window_asked = None;
        for (name, value) in options {
            let Some(value) = decimal(value) else {
                continue;
            };
            let seen = |bit| out.flags & bit != 0;
            if name.eq_ignore_ascii_case(b"blksize") && !seen(flag::BLKSIZE) {
                if value >= u64::from(MIN_BLKSIZE) {
                    out.blksize = value.min(u64::from(limits.max_blksize)) as u16;
                    out.flags |= flag::BLKSIZE;
                }
            } else if name.eq_ignore_ascii_case(b"timeout") && !seen(flag::TIMEOUT) {
                // RFC 2349: an acknowledged timeout must be the one asked
                // for, so a value beyond our bound is not acknowledged.
                if (1..=u64::from(limits.max_timeout_secs)).contains(&value) {
                    out.timeout_secs = value as u8;
                    out.flags |= flag::TIMEOUT;
                }
            } else if name.eq_ignore_ascii_case(b"tsize") {
                out.flags |= flag::TSIZE;
            } else if name.eq_ignore_ascii_case(b"windowsize")
                && window_asked.is_none()
                && (1..=u64::from(u16::MAX)).contains(&value)
            {
                window_asked = Some(value as u16);
                out.flags |= flag::WINDOWSIZE;
            }
        }
        if let Some(asked) = window_asked {
            out.windowsize = asked.min(limits.window_for(out.blksize));
        }
        out
    }

    /// Appends the OACK for these options; `tsize` is the (converted) file
    /// size.
    pub(crate) fn emit_oack(&self, tsize: u64, out: &mut Vec<u8>) {
        let candidates = [
            (flag::BLKSIZE, "blksize", u64::from(self.blksize)),
            (flag::TIMEOUT, "timeout", u64::from(self.timeout_secs)),
            (flag::TSIZE, "tsize", tsize),
            (flag::WINDOWSIZE, "windowsize", u64::from(self.windowsize)),
        ];
        let mut options = [("", 0); 4];
        let mut n = 0;
        for (bit, name, value) in candidates {
            if self.flags & bit != 0 {
                options[n] = (name, value);
                n += 1;
            }
        }
        wire::emit_oack(out, &options[..n]);
    }
}

/// Parses a non-empty run of ASCII digits; `None` on anything else or on
/// overflow.
fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::new(65464, 1500, 64, 1 << 20)
    }

    fn negotiate(region: &[u8], limits: &Limits) -> Negotiated {
        let options = Options::new_checked(region).expect("well-formed options");
        Negotiated::from_request(options, limits)
    }

    #[test]
    fn clamps_blksize_to_mtu_and_config() {
        let got = negotiate(b"blksize\x0065464\x00", &limits());
        assert_eq!((got.flags, got.blksize), (flag::BLKSIZE, 1468));
        let small = Limits::new(1024, 9000, 64, 1 << 20);
        assert_eq!(negotiate(b"BLKSIZE\x001432\x00", &small).blksize, 1024);
        assert_eq!(negotiate(b"blksize\x008\x00", &limits()).blksize, 8);
        let refused = negotiate(b"blksize\x007\x00", &limits());
        assert_eq!((refused.flags, refused.blksize), (0, DEFAULT_BLKSIZE));
    }

    #[test]
    fn timeout_range_and_bad_values() {
        assert_eq!(negotiate(b"timeout\x006\x00", &limits()).timeout_secs, 6);
        assert_eq!(negotiate(b"timeout\x000\x00", &limits()).flags, 0);
        assert_eq!(negotiate(b"timeout\x00256\x00", &limits()).flags, 0);
        assert_eq!(negotiate(b"timeout\x00-1\x00", &limits()).flags, 0);
        assert_eq!(negotiate(b"timeout\x00\x00", &limits()).flags, 0);
        assert_eq!(
            negotiate(b"tsize\x0099999999999999999999\x00", &limits()).flags,
            0
        );
    }

    #[test]
    fn timeout_beyond_max_timeout_is_not_acknowledged() {
        let bounded = limits().with_max_timeout(std::time::Duration::from_millis(3_900));
        assert_eq!(negotiate(b"timeout\x003\x00", &bounded).timeout_secs, 3);
        let asked = negotiate(b"timeout\x00255\x00tsize\x000\x00", &bounded);
        assert_eq!((asked.flags, asked.timeout_secs), (flag::TSIZE, 0));
        let sub_second = limits().with_max_timeout(std::time::Duration::from_millis(500));
        assert_eq!(negotiate(b"timeout\x001\x00", &sub_second).flags, 0);
    }

    #[test]
    fn windowsize_clamped_by_config_and_budget() {
        let got = negotiate(b"windowsize\x00100\x00", &limits());
        assert_eq!((got.flags, got.windowsize), (flag::WINDOWSIZE, 64));
        let tight = Limits::new(1468, 1500, 64, 4 * 1472 + 100);
        let got = negotiate(b"blksize\x001468\x00windowsize\x0016\x00", &tight);
        assert_eq!(got.windowsize, 4);
        let tiny = Limits::new(1468, 1500, 64, 10);
        assert_eq!(negotiate(b"windowsize\x0016\x00", &tiny).windowsize, 1);
        assert_eq!(negotiate(b"windowsize\x000\x00", &limits()).flags, 0);
    }

    #[test]
    fn unknown_options_ignored_and_oack_order_fixed() {
        let got = negotiate(
            b"multicast\x00\x00WindowSize\x004\x00TSize\x000\x00blksize\x001468\x00",
            &limits(),
        );
        assert_eq!(got.flags, flag::WINDOWSIZE | flag::TSIZE | flag::BLKSIZE);
        let mut buf = Vec::new();
        got.emit_oack(1234, &mut buf);
        assert_eq!(
            buf,
            b"\x00\x06blksize\x001468\x00tsize\x001234\x00windowsize\x004\x00"
        );
    }
}
