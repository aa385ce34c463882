//! Wire messages ↔ validated domain values, and the desired state → data-plane
//! [`Config`](bootwave_protocol::config::Config).
//!
//! Every wire message is checked by `TryFrom` into the domain types of
//! `domain`; a refusal is a [`ConvertError`] naming the field
//! (`host.mac: "zz" is not a MAC address`). A whole [`State`] is then built
//! into a `Config` by [`State::to_config`], which renders the configuration
//! file schema and runs `bootwave_protocol::config::parse` on it: the checks
//! are exactly the data plane's own.

mod delta;
mod domain;
mod from_config;
mod render;
mod wire;

pub use delta::Delta;
pub use domain::{DhcpSpec, HostSpec, ProfileSpec, RuleSource, State, SubnetSpec};
pub use wire::{net_field, rule_from_wire, rule_to_wire};

/// Why a wire message or a desired state was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConvertError {
    /// The field path, e.g. `host.mac` or `subnet 10.0.0.0/24: ranges[0]`.
    pub field: String,
    /// What is wrong with its value.
    pub reason: String,
}

impl ConvertError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error with `prefix.` in front of the field path.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}.{}", self.field);
        self
    }
}

impl From<ConvertError> for tonic::Status {
    fn from(e: ConvertError) -> Self {
        Self::invalid_argument(e.to_string())
    }
}

/// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let sep = if text.contains('-') { '-' } else { ':' };
    let mut mac = [0u8; 6];
    let mut parts = text.split(sep);
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Parses a MAC, or says which field is not one.
pub fn mac_field(field: &str, text: &str) -> Result<[u8; 6], ConvertError> {
    parse_mac(text)
        .ok_or_else(|| ConvertError::new(field, format!("{text:?} is not a MAC address")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
