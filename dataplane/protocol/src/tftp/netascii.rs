//! Netascii (RFC 764 as used by RFC 1350): LF becomes CR LF, a bare CR
//! becomes CR NUL.
//!
//! The whole file is converted once when the request is accepted, so block
//! boundaries need no special care and `tsize` reports the converted size.

use std::sync::Arc;

use super::FileData;

/// A file's bytes converted to netascii.
#[derive(Debug)]
pub struct NetasciiData(Vec<u8>);

impl NetasciiData {
    /// Converts `raw` to netascii.
    pub fn convert(raw: &[u8]) -> Self {
        let extra = raw.iter().filter(|&&b| b == b'\n' || b == b'\r').count();
        let mut out = Vec::with_capacity(raw.len() + extra);
        for &byte in raw {
            match byte {
                b'\n' => out.extend_from_slice(b"\r\n"),
                b'\r' => out.extend_from_slice(b"\r\0"),
                other => out.push(other),
            }
        }
        Self(out)
    }

    /// Converts `file` into a new shared file.
    pub fn convert_shared(file: &dyn FileData) -> Arc<dyn FileData> {
        Arc::new(Self::convert(file.bytes()))
    }
}

impl FileData for NetasciiData {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_line_ends_and_bare_cr() {
        let got = NetasciiData::convert(b"a\nb\rc\r\nd");
        assert_eq!(got.bytes(), b"a\r\nb\r\0c\r\0\r\nd");
        assert_eq!(NetasciiData::convert(b"").bytes(), b"");
        assert_eq!(NetasciiData::convert(b"\n\n").bytes(), b"\r\n\r\n");
    }
}
