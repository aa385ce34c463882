//! Configuration errors and their positions in the file.

use std::fmt;
use std::ops::Range;

/// Where in the configuration text a problem lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file name given to [`parse`](super::parse), for messages.
    pub origin: String,
    /// 1-based line and column (in characters), when the problem has a
    /// position (a problem with a defaulted value has none).
    pub position: Option<(usize, usize)>,
}

impl Location {
    /// The location of byte offset range `span` in `text`.
    pub(crate) fn new(origin: &str, text: &str, span: Option<Range<usize>>) -> Self {
        let position = span.map(|span| line_column(text, span.start));
        Self {
            origin: origin.to_owned(),
            position,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "{}:{line}:{column}", self.origin),
            None => f.write_str(&self.origin),
        }
    }
}

/// 1-based line and character column of byte `offset` in `text`. Offsets
/// past the end or inside a character are clamped to the nearest preceding
/// character boundary.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The text is not TOML, or a key or a value type does not fit the schema
    /// (unknown key, missing key, string where a number belongs).
    #[error("{location}: {message}")]
    Syntax {
        /// Where.
        location: Location,
        /// What the TOML reader said.
        message: String,
    },
    /// A value has the right type but is not acceptable (address outside its
    /// subnet, duplicate MAC, inverted lease times…).
    #[error("{location}: {key}: {message}")]
    Invalid {
        /// Where.
        location: Location,
        /// The key path, e.g. `subnets[0].ranges[1]`.
        key: String,
        /// What is wrong with the value.
        message: String,
    },
}

impl ConfigError {
    /// Where the problem is.
    pub fn location(&self) -> &Location {
        match self {
            Self::Syntax { location, .. } | Self::Invalid { location, .. } => location,
        }
    }
}

/// A validation failure before it is placed in a file: the value's span,
/// its key path and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) span: Option<Range<usize>>,
    pub(crate) key: String,
    pub(crate) message: String,
}

impl Rejection {
    /// A rejection of the value at `span` under `key`.
    pub(crate) fn new(
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            span,
            key: key.into(),
            message: message.into(),
        }
    }

    /// Places the rejection in `text` named `origin`.
    pub(crate) fn locate(self, origin: &str, text: &str) -> ConfigError {
        ConfigError::Invalid {
            location: Location::new(origin, text, self.span),
            key: self.key,
            message: self.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters_from_one() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        // 'é' is two bytes; the quote after "bé = " is column 6.
        assert_eq!(line_column(text, 12), (2, 6));
        // Inside 'é' clamps back to its start; past the end clamps to the end.
        assert_eq!(line_column(text, 8), (2, 2));
        assert_eq!(line_column(text, 999), (3, 1));
    }
}
