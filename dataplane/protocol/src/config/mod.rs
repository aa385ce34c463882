//! Configuration: the TOML file shape and the validated runtime types.
//!
//! [`parse`] turns the text of a configuration file into a validated
//! [`Config`] in two steps: serde reads the text into structs shaped like the
//! file (unknown keys are errors), then `TryFrom` checks every value and
//! builds the model. Errors name the file, line, column and key:
//!
//! ```text
//! bootwave.toml:12:9: subnets[0].ranges[0]: 192.168.2.9 is outside 192.168.1.0/28
//! ```
//!
//! The schema, every default and the validation rules are documented in
//! `assets/README.md`.

mod convert;
mod error;
mod file;
mod interfaces;
mod model;
mod profile;
mod summary;
mod values;

use std::path::Path;

pub use convert::{
    DEFAULT_DECLINE_QUARANTINE, DEFAULT_FSYNC_INTERVAL, DEFAULT_JOURNAL_DIR, DEFAULT_LEASE_TIME,
    DEFAULT_MAX_LEASE_TIME, DEFAULT_OFFER_HOLD, DEFAULT_PING_TIMEOUT, DEFAULT_TFTP_ROOT,
};
pub use error::{ConfigError, Location};
pub use interfaces::{InterfaceError, MachineInterface, ServedInterface, select_interfaces};
pub use model::*;
pub use summary::Summary;
pub use values::{MAX_HTTP_PATH, format_mac, write_http_boot_url};

/// Parses and validates the text of a configuration file.
///
/// `origin` names the file in error messages. Relative paths in the file
/// (`tftp.root`, `journal.dir`) are resolved against `base_dir`, normally the
/// directory holding the file. Pure: reads no files, so a profile's
/// `template-file` is refused (use [`parse_with`] to allow it).
pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigError> {
    parse_with(text, origin, base_dir, &|_| {
        Err("template files are not read here; give the template inline with `template`".to_owned())
    })
}

/// As [`parse`], reading each profile's `template-file` (resolved against
/// `base_dir`) through `read_file`, which returns the text or why it could
/// not be read. The caller decides what reading a file means (the data
/// plane reads the disk; tests hand in strings).
pub fn parse_with(
    text: &str,
    origin: &str,
    base_dir: &Path,
    read_file: &dyn Fn(&Path) -> Result<String, String>,
) -> Result<Config, ConfigError> {
    let mut file: file::FileConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        location: Location::new(origin, text, e.span()),
        message: e.message().trim().to_owned(),
    })?;
    for profile in &mut file.profiles {
        if let Some(path) = &profile.template_file {
            profile.loaded = Some(read_file(&base_dir.join(path.get_ref())));
        }
    }
    let mut config = Config::try_from(file).map_err(|r| r.locate(origin, text))?;
    for script in config.profiles.iter_mut().filter_map(|p| p.script.as_mut()) {
        if let Some(path) = &mut script.template_file {
            *path = base_dir.join(&*path);
        }
    }
    config.tftp.root = base_dir.join(&config.tftp.root);
    config.journal.dir = base_dir.join(&config.journal.dir);
    Ok(config)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod profile_tests;
