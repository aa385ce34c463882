//! Turning a requested file name into a safe path relative to the root.
//!
//! Pure string work, done before the resolver sees anything: the resolver
//! gets a `/`-separated path with no empty, `.` or `..` components and no
//! leading `/`, so it can never be asked for something outside the root.

/// Default longest accepted file name, in bytes (as sent).
pub const DEFAULT_MAX_PATH_LEN: usize = 255;

/// Why a requested name is refused (all answered with TFTP error 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The name is empty or names the root itself.
    #[error("empty file name")]
    Empty,
    /// The name is longer than the configured limit.
    #[error("file name too long")]
    TooLong,
    /// The name contains a NUL byte.
    #[error("NUL byte in file name")]
    Nul,
    /// The name contains a control character.
    #[error("control character in file name")]
    Control,
    /// The name is not valid UTF-8.
    #[error("file name is not UTF-8")]
    NotUtf8,
    /// A `..` component would leave the directory it appears in.
    #[error("parent directory component in file name")]
    ParentDir,
}

/// Normalises `raw` into `out` (cleared first) and returns it.
///
/// `\` counts as `/`; one leading `/` is dropped (the name is then relative
/// to the root, like tftp-hpa `--secure`); empty and `.` components are
/// collapsed; any `..` component is refused outright.
pub fn normalize<'o>(
    raw: &[u8],
    max_len: usize,
    out: &'o mut String,
) -> Result<&'o str, PathError> {
    out.clear();
    if raw.len() > max_len {
        return Err(PathError::TooLong);
    }
    if raw.contains(&0) {
        return Err(PathError::Nul);
    }
    if raw.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(PathError::Control);
    }
    let text = std::str::from_utf8(raw).map_err(|_| PathError::NotUtf8)?;
    let text = text.strip_prefix(['/', '\\']).unwrap_or(text);
    for component in text.split(['/', '\\']) {
        match component {
            "" | "." => continue,
            ".." => return Err(PathError::ParentDir),
            name => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(name);
            }
        }
    }
    if out.is_empty() {
        return Err(PathError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &[u8]) -> Result<String, PathError> {
        let mut out = String::from("stale");
        normalize(raw, DEFAULT_MAX_PATH_LEN, &mut out).map(str::to_owned)
    }

    #[test]
    fn accepts_and_collapses() {
        assert_eq!(norm(b"ipxe.efi").as_deref(), Ok("ipxe.efi"));
        assert_eq!(norm(b"/ipxe.efi").as_deref(), Ok("ipxe.efi"));
        assert_eq!(norm(b"//a//./b/").as_deref(), Ok("a/b"));
        assert_eq!(
            norm(b"\\boot\\grub\\x64.efi").as_deref(),
            Ok("boot/grub/x64.efi")
        );
        assert_eq!(norm(b"a..b/c...").as_deref(), Ok("a..b/c..."));
        assert_eq!(norm("ümlaut".as_bytes()).as_deref(), Ok("ümlaut"));
    }

    #[test]
    fn refuses_attacks() {
        assert_eq!(norm(b"../etc/passwd"), Err(PathError::ParentDir));
        assert_eq!(norm(b"/../x"), Err(PathError::ParentDir));
        assert_eq!(norm(b"a/../../b"), Err(PathError::ParentDir));
        assert_eq!(norm(b"a/.."), Err(PathError::ParentDir));
        assert_eq!(norm(b"\\..\\x"), Err(PathError::ParentDir));
        assert_eq!(norm(b"a\0b"), Err(PathError::Nul));
        assert_eq!(norm(b"a\nb"), Err(PathError::Control));
        assert_eq!(norm(b"a\x7fb"), Err(PathError::Control));
        assert_eq!(norm(b"\xff\xfe"), Err(PathError::NotUtf8));
        assert_eq!(norm(b""), Err(PathError::Empty));
        assert_eq!(norm(b"/"), Err(PathError::Empty));
        assert_eq!(norm(b"./."), Err(PathError::Empty));
        assert_eq!(norm(&[b'a'; 300]), Err(PathError::TooLong));
        assert_eq!(norm(&[b'a'; 255]).map(|s| s.len()), Ok(255));
    }

    #[test]
    fn honours_a_smaller_limit() {
        let mut out = String::new();
        assert_eq!(normalize(b"abcdef", 5, &mut out), Err(PathError::TooLong));
        assert_eq!(normalize(b"abcde", 5, &mut out), Ok("abcde"));
    }
}
