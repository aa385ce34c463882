//! The `Range` request header, single byte range only (RFC 9110 §14).

/// What to send of a representation of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No usable `Range`: the whole file with 200. A header that is not a
    /// single `bytes=` range (another unit, a list, bad syntax) is ignored,
    /// as RFC 9110 allows.
    Full,
    /// Bytes `start..=end` with 206.
    Partial {
        /// First byte sent.
        start: u64,
        /// Last byte sent (inclusive).
        end: u64,
    },
    /// A well-formed range that lies outside the file: 416.
    Unsatisfiable,
}

impl ByteRange {
    /// The offset and length to send from a file of `size` bytes.
    pub fn span(self, size: u64) -> (u64, u64) {
        match self {
            Self::Full => (0, size),
            Self::Partial { start, end } => (start, end - start + 1),
            Self::Unsatisfiable => (0, 0),
        }
    }
}

/// Interprets the value of a `Range` header for a file of `size` bytes.
pub fn parse_range(value: &[u8], size: u64) -> ByteRange {
    let Ok(text) = std::str::from_utf8(value) else {
        return ByteRange::Full;
    };
    let text = text.trim();
    let Some(unit) = text.get(..6) else {
        return ByteRange::Full;
    };
    if !unit.eq_ignore_ascii_case("bytes=") {
        return ByteRange::Full;
    }
    let spec = text[6..].trim();
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return ByteRange::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    match (number(first), number(last)) {
        // `-N`: the last N bytes.
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || size == 0 {
                return ByteRange::Unsatisfiable;
            }
            ByteRange::Partial {
                start: size - n.min(size),
                end: size - 1,
            }
        }
        // `A-`: from A to the end.
        (Some(start), None) if last.is_empty() => from(start, size - size.min(1), size),
        // `A-B`.
        (Some(start), Some(end)) if start <= end => {
            from(start, end.min(size.saturating_sub(1)), size)
        }
        _ => ByteRange::Full,
    }
}

fn from(start: u64, end: u64, size: u64) -> ByteRange {
    if start >= size {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Partial { start, end }
}

/// A decimal number; values past `u64::MAX` saturate (they lie beyond any
/// file either way).
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::ByteRange::{Full, Partial, Unsatisfiable};
    use super::*;

    fn r(value: &str, size: u64) -> ByteRange {
        parse_range(value.as_bytes(), size)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(r("bytes=0-99", 1000), Partial { start: 0, end: 99 });
        assert_eq!(
            r("bytes=500-", 1000),
            Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            r("bytes=-100", 1000),
            Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(r("bytes=-5000", 1000), Partial { start: 0, end: 999 });
        assert_eq!(
            r("bytes=900-5000", 1000),
            Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(r("Bytes = 1-1", 10), Full, "space inside the unit token");
        assert_eq!(r("BYTES=1-1", 10), Partial { start: 1, end: 1 });
        assert_eq!(
            r("bytes=999-999", 1000),
            Partial {
                start: 999,
                end: 999
            }
        );
        assert_eq!(
            r("bytes=0-99999999999999999999999", 10),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(Partial { start: 10, end: 19 }.span(100), (10, 10));
        assert_eq!(Full.span(100), (0, 100));
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(r("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(r("bytes=1000-2000", 1000), Unsatisfiable);
        assert_eq!(r("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(r("bytes=0-", 0), Unsatisfiable);
        assert_eq!(r("bytes=-1", 0), Unsatisfiable);
        assert_eq!(r("bytes=99999999999999999999999-", 10), Unsatisfiable);
    }

    #[test]
    fn ignored_headers_mean_the_whole_file() {
        for value in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=5-1",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0x1-2",
        ] {
            assert_eq!(r(value, 100), Full, "{value:?}");
        }
        assert_eq!(parse_range(b"bytes=\xff-1", 100), Full);
    }
}
