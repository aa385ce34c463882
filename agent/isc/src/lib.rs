//! Import of ISC dhcpd configurations (`dhcpd.conf`) into bootwave TOML.
//!
//! Three stages, each in its own module: `lexer` (text to tokens with line
//! numbers), `parser` (tokens to a statement tree, `include` files spliced
//! in), and `convert` (the tree to a bootwave configuration, rendered by
//! `emit`). Whatever the converter cannot express is reported as a
//! [`Diagnostic`] with its file and line, never dropped silently.
//!
//! Input is bounded: at most [`MAX_TOTAL_BYTES`] across all included files,
//! [`MAX_DEPTH`] nested blocks and [`MAX_INCLUDE_DEPTH`] nested includes.
//! Malformed input is an [`ImportError`] naming the line; nothing panics.

mod cond;
mod convert;
mod emit;
mod lexer;
mod parser;
mod rules;

use std::fmt;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

/// Largest total size of the main file and everything it includes.
pub const MAX_TOTAL_BYTES: usize = 16 << 20;
/// Deepest nesting of `{ … }` blocks.
pub const MAX_DEPTH: usize = 64;
/// Deepest nesting of `include` statements.
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// Where a token or statement is: file number and 1-based line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Pos {
    /// Index into the list of files read.
    pub(crate) file: u16,
    /// 1-based line.
    pub(crate) line: u32,
}

/// A malformed input position, before file numbers are turned into names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) pos: Pos,
    pub(crate) message: String,
}

/// A remark before file numbers are turned into names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    pub(crate) pos: Pos,
    pub(crate) severity: Severity,
    pub(crate) message: String,
}

impl Note {
    pub(crate) fn info(pos: Pos, message: impl Into<String>) -> Self {
        Self {
            pos,
            severity: Severity::Info,
            message: message.into(),
        }
    }

    pub(crate) fn warn(pos: Pos, message: impl Into<String>) -> Self {
        Self {
            pos,
            severity: Severity::Warning,
            message: message.into(),
        }
    }
}

/// Why an import failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The input is not a well-formed dhcpd.conf (unbalanced braces,
    /// unterminated string, NUL byte, size or nesting limit, unreadable
    /// include).
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// File name.
        file: String,
        /// 1-based line.
        line: u32,
        /// What is wrong.
        message: String,
    },
    /// The main file cannot be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The path given.
        path: String,
        /// The operating system's reason.
        message: String,
    },
    /// The converted configuration does not pass bootwave's validation (the
    /// dhcpd.conf holds something bootwave refuses, e.g. a range outside its
    /// subnet).
    #[error("the converted configuration is not valid: {0}")]
    Invalid(String),
}

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Converted with a change the operator should know about, or ignored
    /// because it has no effect in bootwave.
    Info,
    /// Not converted, or converted only approximately: behaviour differs.
    Warning,
}

/// One remark about one statement of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// File name.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// Info or warning.
    pub severity: Severity,
    /// What happened to the statement.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Info => "info",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}: {level}: {}", self.file, self.line, self.message)
    }
}

/// Choices the dhcpd.conf cannot carry.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `tftp.root` of the output (dhcpd.conf does not know the TFTP root).
    pub tftp_root: Option<String>,
}

/// A finished import.
#[derive(Debug, Clone)]
pub struct Import {
    /// The bootwave configuration, as TOML text that
    /// `bootwave_protocol::config::parse` accepts.
    pub toml: String,
    /// Remarks in file and line order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Import {
    /// Whether any remark is a warning.
    pub fn has_warnings(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Warning)
    }
}

/// Where file contents come from (the file system, or memory in tests).
pub trait Loader {
    /// Reads the file at `path`, failing if it holds more than `limit` bytes.
    fn load(&mut self, path: &Path, limit: usize) -> io::Result<Vec<u8>>;

    /// A name that is equal for two paths to the same file (include loop
    /// detection).
    fn identity(&self, path: &Path) -> PathBuf {
        path.to_path_buf()
    }
}

/// Reads files from the file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsLoader;

impl Loader for FsLoader {
    fn load(&mut self, path: &Path, limit: usize) -> io::Result<Vec<u8>> {
        let file = std::fs::File::open(path)?;
        let mut bytes = Vec::new();
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        file.take(cap).read_to_end(&mut bytes)?;
        if bytes.len() > limit {
            return Err(io::Error::other(format!(
                "larger than {} MiB",
                MAX_TOTAL_BYTES >> 20
            )));
        }
        Ok(bytes)
    }

    fn identity(&self, path: &Path) -> PathBuf {
        path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Converts the dhcpd.conf at `path` (and its includes, read through
/// `loader`) into bootwave TOML, checks the result with bootwave's own
/// parser, and returns it with the remarks.
pub fn import(
    path: &Path,
    options: &Options,
    loader: &mut dyn Loader,
) -> Result<Import, ImportError> {
    let mut files = parser::Files::default();
    let stmts =
        parser::parse_file(path, loader, &mut files, &mut Vec::new(), None).map_err(|e| {
            if files.names.is_empty() {
                ImportError::Read {
                    path: path.display().to_string(),
                    message: e.message,
                }
            } else {
                ImportError::Syntax {
                    file: files.name(e.pos.file).to_owned(),
                    line: e.pos.line,
                    message: e.message,
                }
            }
        })?;
    let (draft, notes) = convert::convert(&stmts, options);
    let toml = emit::emit(&draft, &files.names);
    bootwave_protocol::config::parse(&toml, "converted.toml", Path::new("/"))
        .map_err(|e| ImportError::Invalid(e.to_string()))?;
    let mut notes = notes;
    notes.sort_by_key(|n| n.pos);
    let diagnostics: Vec<Diagnostic> = notes
        .into_iter()
        .map(|n| Diagnostic {
            file: files.name(n.pos.file).to_owned(),
            line: n.pos.line,
            severity: n.severity,
            message: n.message,
        })
        .collect();
    Ok(Import { toml, diagnostics })
}

#[cfg(test)]
mod tests;
