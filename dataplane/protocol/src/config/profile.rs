//! Boot profiles and the per-host iPXE scripts they serve.
//!
//! A profile names what a host boots. Boot rules match on it (which file
//! each stage gets); a `[[profiles]]` entry can add a script template that
//! the TFTP server renders for each host of that profile and serves at the
//! profile's script path (see [`crate::template`]).

use std::path::PathBuf;

use crate::template::Template;

/// A declared profile (`[[profiles]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The name hosts and boot rules refer to.
    pub name: String,
    /// The script served to the profile's hosts, if any.
    pub script: Option<ProfileScript>,
}

/// A per-host script: where it is served and what it renders.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileScript {
    /// The TFTP path, normalised like a request (`/`-separated, relative to
    /// the root, no `.` or `..`).
    pub path: String,
    /// The parsed template.
    pub template: Template,
    /// The file the template was read from, when given as `template-file`
    /// (resolved against the configuration's directory).
    pub template_file: Option<PathBuf>,
}

/// Longest label value accepted, in bytes.
pub const MAX_LABEL_VALUE_LEN: usize = 255;

/// Checks a label value: at most [`MAX_LABEL_VALUE_LEN`] bytes, no control
/// characters (a value is pasted into scripts and must not start a line).
pub fn check_label_value(value: &str) -> Result<(), &'static str> {
    if value.len() > MAX_LABEL_VALUE_LEN {
        return Err("longer than 255 bytes");
    }
    if value.chars().any(char::is_control) {
        return Err("control characters (newlines, tabs…) are not allowed");
    }
    Ok(())
}
