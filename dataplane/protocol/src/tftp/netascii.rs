//! Netascii (RFC 764 as used by RFC 1350): LF becomes CR LF, a bare CR
//! becomes CR NUL.
//!
//! Nothing is converted ahead of time: a transfer keeps a [`Cursor`] into
//! the shared raw file and converts each block as it is sent, so a netascii
//! request holds no copy of the file. The converted size (for `tsize` and
//! for the number of blocks) comes from [`FileData::netascii_len`], which
//! implementations cache per file version. A block may end between the CR
//! and the second byte of an expanded character; the cursor then records
//! that the next block starts with that second byte.

use super::FileData;

/// A position in the converted stream: the raw byte being converted, and
/// whether its first output byte (the CR of an expansion) was already
/// produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// Offset of the next raw byte.
    pub(crate) input: u64,
    /// The raw byte at `input` expands to two bytes and its CR is already
    /// out: the next output byte is its LF or NUL.
    pub(crate) half: bool,
}

/// Length of `raw` once converted.
pub fn converted_len(raw: &[u8]) -> u64 {
    let extra = raw.iter().filter(|&&b| b == b'\n' || b == b'\r').count();
    (raw.len() + extra) as u64
}

/// The second output byte of an expanded raw byte.
fn second(byte: u8) -> u8 {
    if byte == b'\n' { b'\n' } else { 0 }
}

/// Appends up to `max` converted bytes from `cursor` to `out`; returns the
/// cursor after them. Stops early at the end of `raw`.
pub(crate) fn fill(raw: &[u8], cursor: Cursor, max: usize, out: &mut Vec<u8>) -> Cursor {
    let mut at = usize::try_from(cursor.input).unwrap_or(usize::MAX);
    let mut room = max;
    if cursor.half && room > 0 {
        let Some(&byte) = raw.get(at) else {
            return cursor;
        };
        out.push(second(byte));
        at += 1;
        room -= 1;
    }
    while room > 0 && at < raw.len() {
        let rest = &raw[at..];
        // Copy the run of bytes that need no expansion in one go.
        let plain = rest
            .iter()
            .take(room)
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or_else(|| rest.len().min(room));
        out.extend_from_slice(&rest[..plain]);
        at += plain;
        room -= plain;
        if room == 0 || at >= raw.len() {
            break;
        }
        out.push(b'\r');
        room -= 1;
        if room == 0 {
            return Cursor {
                input: at as u64,
                half: true,
            };
        }
        out.push(second(raw[at]));
        at += 1;
        room -= 1;
    }
    Cursor {
        input: at as u64,
        half: false,
    }
}

/// The cursor `n` converted bytes after `cursor` (clamped to the end).
pub(crate) fn skip(raw: &[u8], cursor: Cursor, n: u64) -> Cursor {
    if n == 0 {
        return cursor;
    }
    let mut at = usize::try_from(cursor.input).unwrap_or(usize::MAX);
    let mut left = n;
    if cursor.half && left > 0 && at < raw.len() {
        at += 1;
        left -= 1;
    }
    while left > 0 && at < raw.len() {
        let cost = if matches!(raw[at], b'\n' | b'\r') {
            2
        } else {
            1
        };
        if cost > left {
            return Cursor {
                input: at as u64,
                half: true,
            };
        }
        left -= cost;
        at += 1;
    }
    Cursor {
        input: at as u64,
        half: false,
    }
}

/// A file's bytes converted to netascii as a whole: the reference that the
/// per-block conversion is tested against.
#[derive(Debug)]
pub struct NetasciiData(Vec<u8>);

impl NetasciiData {
    /// Converts `raw` to netascii.
    pub fn convert(raw: &[u8]) -> Self {
        let mut out = Vec::with_capacity(usize::try_from(converted_len(raw)).unwrap_or(0));
        for &byte in raw {
            match byte {
                b'\n' => out.extend_from_slice(b"\r\n"),
                b'\r' => out.extend_from_slice(b"\r\0"),
                other => out.push(other),
            }
        }
        Self(out)
    }
}

impl FileData for NetasciiData {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn converts_line_ends_and_bare_cr() {
        let got = NetasciiData::convert(b"a\nb\rc\r\nd");
        assert_eq!(got.bytes(), b"a\r\nb\r\0c\r\0\r\nd");
        assert_eq!(NetasciiData::convert(b"").bytes(), b"");
        assert_eq!(NetasciiData::convert(b"\n\n").bytes(), b"\r\n\r\n");
    }

    /// Converts `raw` block by block of `blksize`, as a transfer does.
    fn by_blocks(raw: &[u8], blksize: usize) -> Vec<Vec<u8>> {
        let total = converted_len(raw);
        let mut cursor = Cursor::default();
        let mut blocks = Vec::new();
        let mut sent = 0u64;
        loop {
            let mut block = Vec::new();
            cursor = fill(raw, cursor, blksize, &mut block);
            sent += block.len() as u64;
            let short = block.len() < blksize;
            blocks.push(block);
            if short {
                break;
            }
        }
        assert_eq!(sent, total);
        blocks
    }

    #[test]
    fn expansions_split_across_block_edges() {
        // Block size 4: "abc\n" → "abc\r" | "\n" …; "abc\r" → "abc\r" | "\0".
        for raw in [
            &b"abc\nxyz"[..],
            b"abc\rxyz",
            b"abc\r\nxy",
            b"\n\n\n\n",
            b"\r\r\r",
            b"abcd",
            b"abc\n",
            b"\r",
        ] {
            let oracle = NetasciiData::convert(raw);
            let joined: Vec<u8> = by_blocks(raw, 4).concat();
            assert_eq!(joined, oracle.bytes(), "{raw:?}");
            for n in 0..=oracle.bytes().len() as u64 + 2 {
                let at = skip(raw, Cursor::default(), n);
                let mut rest = Vec::new();
                fill(raw, at, usize::MAX, &mut rest);
                let from = (n as usize).min(oracle.bytes().len());
                assert_eq!(rest, &oracle.bytes()[from..], "{raw:?} skip {n}");
            }
        }
    }

    proptest! {
        #[test]
        fn per_block_matches_whole_file(
            raw in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), Just(0u8), Just(b'a'), any::<u8>()],
                0..600,
            ),
            blksize in 1usize..70,
            resume in 0u64..700,
        ) {
            let oracle = NetasciiData::convert(&raw);
            prop_assert_eq!(converted_len(&raw), oracle.bytes().len() as u64);
            let blocks = by_blocks(&raw, blksize);
            for (i, block) in blocks.iter().enumerate() {
                let start = i * blksize;
                let end = (start + blksize).min(oracle.bytes().len());
                prop_assert_eq!(&block[..], &oracle.bytes()[start..end]);
            }
            // Resuming at any output offset (a partial-window ACK) gives
            // what the oracle has there.
            let at = skip(&raw, Cursor::default(), resume);
            let mut block = Vec::new();
            fill(&raw, at, blksize, &mut block);
            let start = (resume as usize).min(oracle.bytes().len());
            let end = (start + blksize).min(oracle.bytes().len());
            prop_assert_eq!(&block[..], &oracle.bytes()[start..end]);
        }
    }
}
