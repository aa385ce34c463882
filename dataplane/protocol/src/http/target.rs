//! From an HTTP request target to a path the resolver may be asked for.
//!
//! The target is percent-decoded and then goes through the same
//! normaliser as a TFTP file name ([`normalize_path`]), so both transports
//! refuse the same names. Before decoding, escapes that would smuggle a
//! separator (`%2f`, `%5c`) or a NUL (`%00`) past that check are refused,
//! as is a malformed escape; after decoding, a path naming the file
//! system's root (`//etc/passwd`) is refused instead of being quietly made
//! relative.

use percent_encoding::percent_decode;

use crate::tftp::{PathError, normalize_path};

/// Why a request target names no servable path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The target is neither `/path` nor `http://host/path`.
    #[error("request target is not a path")]
    NotAPath,
    /// A `%` not followed by two hex digits.
    #[error("malformed percent escape")]
    BadEscape,
    /// `%2f` or `%5c`: a separator hidden from the path checks.
    #[error("encoded path separator")]
    EncodedSeparator,
    /// `%00`.
    #[error("encoded NUL byte")]
    EncodedNul,
    /// The decoded path starts with two separators (an absolute path of
    /// the file system).
    #[error("absolute file system path")]
    Absolute,
    /// The decoded path fails the shared normaliser (`..`, control
    /// characters, not UTF-8, too long, empty).
    #[error("{0}")]
    Path(#[from] PathError),
}

impl TargetError {
    /// Whether the name is refused for its length (414) rather than its
    /// shape (400).
    pub fn is_too_long(&self) -> bool {
        matches!(self, Self::Path(PathError::TooLong))
    }
}

/// Decodes request target `target` into a normalised relative path in
/// `out` (cleared first), using `scratch` for the decoded bytes. The
/// query and fragment are ignored; `max_len` bounds the decoded name as
/// for TFTP.
pub fn decode_target<'o>(
    target: &str,
    max_len: usize,
    scratch: &mut Vec<u8>,
    out: &'o mut String,
) -> Result<&'o str, TargetError> {
    out.clear();
    scratch.clear();
    let path = strip_authority(target).ok_or(TargetError::NotAPath)?;
    let path = path.split(['?', '#']).next().unwrap_or_default();
    // Three bytes per decoded byte at most: anything longer is over the
    // limit whatever it decodes to.
    if path.len() > max_len.saturating_mul(3).saturating_add(1) {
        return Err(PathError::TooLong.into());
    }
    check_escapes(path.as_bytes())?;
    scratch.extend(percent_decode(path.as_bytes()));
    if matches!(scratch.get(1), Some(b'/' | b'\\')) {
        return Err(TargetError::Absolute);
    }
    let relative = scratch.get(1..).unwrap_or_default();
    Ok(normalize_path(relative, max_len, out)?)
}

/// The path of an origin-form (`/x`) or absolute-form (`http://h/x`)
/// target, starting with its `/`.
fn strip_authority(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(target);
    }
    let scheme = target.get(..7)?;
    if !scheme.eq_ignore_ascii_case("http://") {
        return None;
    }
    let rest = &target[7..];
    rest.find('/').map(|i| &rest[i..])
}

/// Refuses malformed escapes and those decoding to a separator or NUL.
fn check_escapes(path: &[u8]) -> Result<(), TargetError> {
    let mut i = 0;
    while let Some(offset) = path[i..].iter().position(|&b| b == b'%') {
        let at = i + offset;
        let (Some(hi), Some(lo)) = (
            path.get(at + 1).and_then(|&b| hex(b)),
            path.get(at + 2).and_then(|&b| hex(b)),
        ) else {
            return Err(TargetError::BadEscape);
        };
        match (hi << 4) | lo {
            0 => return Err(TargetError::EncodedNul),
            b'/' | b'\\' => return Err(TargetError::EncodedSeparator),
            _ => {}
        }
        i = at + 3;
    }
    Ok(())
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tftp::DEFAULT_MAX_PATH_LEN;

    fn decode(target: &str) -> Result<String, TargetError> {
        let (mut scratch, mut out) = (Vec::new(), String::from("stale"));
        decode_target(target, DEFAULT_MAX_PATH_LEN, &mut scratch, &mut out).map(str::to_owned)
    }

    #[test]
    fn decodes_plain_escaped_and_absolute_form_targets() {
        assert_eq!(decode("/ipxe.efi").as_deref(), Ok("ipxe.efi"));
        assert_eq!(
            decode("/efi/refind_x64.efi?x=1#f").as_deref(),
            Ok("efi/refind_x64.efi")
        );
        assert_eq!(decode("/a%20b/%C3%BC").as_deref(), Ok("a b/ü"));
        assert_eq!(decode("http://10.0.0.1:8080/x/y").as_deref(), Ok("x/y"));
        assert_eq!(decode("HTTP://h/z").as_deref(), Ok("z"));
        assert_eq!(decode("/a/./b").as_deref(), Ok("a/b"));
    }

    #[test]
    fn refuses_path_attacks() {
        assert_eq!(decode("/../etc/passwd"), Err(PathError::ParentDir.into()));
        assert_eq!(
            decode("/%2e%2e/etc/passwd"),
            Err(PathError::ParentDir.into())
        );
        assert_eq!(
            decode("/a/%2E%2E/%2e%2e/x"),
            Err(PathError::ParentDir.into())
        );
        assert_eq!(decode("/..%2fetc"), Err(TargetError::EncodedSeparator));
        assert_eq!(decode("/..%5Cetc"), Err(TargetError::EncodedSeparator));
        assert_eq!(decode("/a%00.efi"), Err(TargetError::EncodedNul));
        assert_eq!(decode("//etc/passwd"), Err(TargetError::Absolute));
        assert_eq!(decode("/\\etc\\passwd"), Err(TargetError::Absolute));
        assert_eq!(decode("/a%0a"), Err(PathError::Control.into()));
        assert_eq!(decode("/%ff"), Err(PathError::NotUtf8.into()));
        assert_eq!(decode("/%zz"), Err(TargetError::BadEscape));
        assert_eq!(decode("/%4"), Err(TargetError::BadEscape));
        assert_eq!(decode("/"), Err(PathError::Empty.into()));
        assert_eq!(decode("*"), Err(TargetError::NotAPath));
        assert_eq!(decode("ipxe.efi"), Err(TargetError::NotAPath));
        assert_eq!(decode("http://host"), Err(TargetError::NotAPath));
        let long = format!("/{}", "a".repeat(300));
        assert!(decode(&long).is_err_and(|e| e.is_too_long()));
        let escaped = format!("/{}", "%41".repeat(256));
        assert!(decode(&escaped).is_err_and(|e| e.is_too_long()));
        let at_limit = format!("/{}", "%41".repeat(255));
        assert_eq!(decode(&at_limit).map(|p| p.len()), Ok(255));
    }
}
