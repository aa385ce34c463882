//! Per-host script templates: a tiny substitution language for iPXE scripts.
//!
//! A template is text with placeholders in double braces:
//!
//! ```text
//! #!ipxe
//! echo Booting {{hostname}} ({{mac}}, {{ip}}) in rack {{label:rack}}
//! chain tftp://{{next-server}}/{{profile}}/vmlinuz?mac=${net0/mac}
//! ```
//!
//! | placeholder | value |
//! | --- | --- |
//! | `{{hostname}}` | the host's `hostname`, else its declaration name |
//! | `{{name}}` | the host's declaration name |
//! | `{{mac}}` | `aa:bb:cc:dd:ee:ff` |
//! | `{{mac-hyphen}}` | `aa-bb-cc-dd-ee-ff` |
//! | `{{ip}}` | the host's fixed address, else the address the request came from |
//! | `{{next-server}}` | `next-server` of the subnet holding the client's address |
//! | `{{http-base}}` | `http://<next-server>:<[http] port>`; without a `next-server`, `http://${next-server}:<port>` (iPXE's own setting: the server its DHCP reply named) |
//! | `{{profile}}` | the host's boot profile |
//! | `{{label:KEY}}` | the host's label `KEY` |
//!
//! A literal `{{` is written `{{{{`. Spaces inside the braces are allowed
//! (`{{ mac }}`). A placeholder ends on the line it starts.
//!
//! # Why double braces
//!
//! iPXE scripts use `${name}` for their own settings, and iPXE's names
//! overlap ours (`${mac}`, `${ip}`, `${hostname}`, `${next-server}` are all
//! iPXE settings, evaluated when the script runs). Replacing a fixed set of
//! `${…}` names would silently shadow some of iPXE's and pass a misspelt one
//! (`${hostnmae}`) to iPXE, which expands it to nothing at boot time. With
//! `{{…}}` every `${…}` belongs to iPXE and passes through untouched (no
//! escaping needed), any existing iPXE script is a valid template, and an
//! unknown placeholder is refused when the configuration is loaded, with its
//! line and column.
//!
//! # Safety
//!
//! Parsing is linear, bounded by [`MAX_TEMPLATE_LEN`], and never panics;
//! rendering only copies text and values and cannot fail. The values come
//! from the validated configuration, which refuses control characters in
//! names and labels, so a substituted value can never start a new script
//! line. Within its line a value is pasted verbatim (iPXE would still read
//! `||` or `${…}` in a label value): labels and names are operator input,
//! trusted like the template itself.

mod render;
mod serve;

use std::ops::Range;

pub use render::{Vars, write_mac};
pub use serve::script_for;

/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 256 * 1024;
/// Longest label key accepted in `{{label:KEY}}` and in host labels.
pub const MAX_LABEL_KEY_LEN: usize = 63;

/// A parsed template: literal text and placeholders, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Bytes of the source copied as they are.
    Text(Range<usize>),
    /// A value substituted at render time.
    Var(Var),
}

/// A placeholder's variable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Var {
    /// `{{hostname}}`.
    Hostname,
    /// `{{name}}`.
    Name,
    /// `{{mac}}`.
    Mac,
    /// `{{mac-hyphen}}`.
    MacHyphen,
    /// `{{ip}}`.
    Ip,
    /// `{{next-server}}`.
    NextServer,
    /// `{{http-base}}`.
    HttpBase,
    /// `{{profile}}`.
    Profile,
    /// `{{label:KEY}}`.
    Label(String),
}

/// Why a template was refused. Lines and columns count from 1; columns
/// count characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template is longer than [`MAX_TEMPLATE_LEN`].
    #[error("template is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A `{{` has no `}}` on the same line.
    #[error(
        "line {line}, column {column}: `{{{{` is not closed by `}}}}` on its line (write `{{{{{{{{` for a literal `{{{{`)"
    )]
    Unclosed {
        /// Line of the `{{`.
        line: usize,
        /// Column of the `{{`.
        column: usize,
    },
    /// The placeholder names no known variable.
    #[error(
        "line {line}, column {column}: unknown variable `{name}` (known: hostname, name, mac, mac-hyphen, ip, next-server, http-base, profile, label:KEY)"
    )]
    UnknownVariable {
        /// Line of the `{{`.
        line: usize,
        /// Column of the `{{`.
        column: usize,
        /// What was written between the braces.
        name: String,
    },
    /// A `{{label:KEY}}` whose key is empty, too long or has characters
    /// other than letters, digits, `.`, `_`, `-` and `/`.
    #[error("line {line}, column {column}: `{key}` is not a label key ({reason})")]
    BadLabelKey {
        /// Line of the `{{`.
        line: usize,
        /// Column of the `{{`.
        column: usize,
        /// The key as written.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Template {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        if source.len() > MAX_TEMPLATE_LEN {
            return Err(TemplateError::TooLong {
                len: source.len(),
                max: MAX_TEMPLATE_LEN,
            });
        }
        let mut parts = Vec::new();
        let mut text_start = 0;
        let mut at = 0;
        while let Some(found) = source[at..].find("{{") {
            let open = at + found;
            if source[open..].starts_with("{{{{") {
                // An escaped `{{`: keep the first two braces as text.
                push_text(&mut parts, text_start..open + 2);
                at = open + 4;
                text_start = at;
                continue;
            }
            let (line, column) = position(source, open);
            let inner_start = open + 2;
            let line_end = source[inner_start..]
                .find('\n')
                .map_or(source.len(), |i| inner_start + i);
            let close = source[inner_start..line_end]
                .find("}}")
                .map(|i| inner_start + i)
                .ok_or(TemplateError::Unclosed { line, column })?;
            let var = variable(source[inner_start..close].trim_matches(' '), line, column)?;
            push_text(&mut parts, text_start..open);
            parts.push(Part::Var(var));
            at = close + 2;
            text_start = at;
        }
        push_text(&mut parts, text_start..source.len());
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// The text the template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables the template uses, in order of appearance (repeats
    /// included).
    pub fn variables(&self) -> impl Iterator<Item = &Var> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Text(_) => None,
        })
    }

    /// The label keys the template uses.
    pub fn label_keys(&self) -> impl Iterator<Item = &str> {
        self.variables().filter_map(|v| match v {
            Var::Label(key) => Some(key.as_str()),
            _ => None,
        })
    }
}

/// Checks a label key: 1 to [`MAX_LABEL_KEY_LEN`] bytes of ASCII letters,
/// digits, `.`, `_`, `-` and `/`.
pub fn check_label_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("empty");
    }
    if key.len() > MAX_LABEL_KEY_LEN {
        return Err("longer than 63 bytes");
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
    {
        return Err("only letters, digits, '.', '_', '-' and '/' are allowed");
    }
    Ok(())
}

fn push_text(parts: &mut Vec<Part>, range: Range<usize>) {
    if range.is_empty() {
        return;
    }
    // Adjacent text (around an escape) joins the previous piece.
    if let Some(Part::Text(last)) = parts.last_mut()
        && last.end == range.start
    {
        last.end = range.end;
        return;
    }
    parts.push(Part::Text(range));
}

fn variable(name: &str, line: usize, column: usize) -> Result<Var, TemplateError> {
    Ok(match name {
        "hostname" => Var::Hostname,
        "name" => Var::Name,
        "mac" => Var::Mac,
        "mac-hyphen" => Var::MacHyphen,
        "ip" => Var::Ip,
        "next-server" => Var::NextServer,
        "http-base" => Var::HttpBase,
        "profile" => Var::Profile,
        _ => {
            let Some(key) = name.strip_prefix("label:") else {
                return Err(TemplateError::UnknownVariable {
                    line,
                    column,
                    name: name.to_owned(),
                });
            };
            check_label_key(key).map_err(|reason| TemplateError::BadLabelKey {
                line,
                column,
                key: key.to_owned(),
                reason,
            })?;
            Var::Label(key.to_owned())
        }
    })
}

/// 1-based line and character column of byte `offset` (a char boundary).
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
