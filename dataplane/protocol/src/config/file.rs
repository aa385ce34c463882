//! The configuration file's shape: serde structs that mirror the TOML text.
//!
//! Nothing here is validated beyond TOML types; every leaf keeps its byte
//! span so that validation errors can name the line and column.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct FileConfig {
    #[serde(default)]
    pub(crate) interfaces: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) dhcp: FileDhcp,
    #[serde(default)]
    pub(crate) tftp: FileTftp,
    pub(crate) http: Option<FileHttp>,
    #[serde(default)]
    pub(crate) journal: FileJournal,
    #[serde(default)]
    pub(crate) ipv6: FileIpv6,
    #[serde(default)]
    pub(crate) subnets: Vec<FileSubnet>,
    #[serde(default)]
    pub(crate) hosts: Vec<FileHost>,
    #[serde(default)]
    pub(crate) profiles: Vec<FileProfile>,
}

/// `[dhcp]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct FileDhcp {
    pub(crate) port: Option<Spanned<u16>>,
    pub(crate) default_lease_time: Option<Spanned<Scalar>>,
    pub(crate) max_lease_time: Option<Spanned<Scalar>>,
    pub(crate) min_lease_time: Option<Spanned<Scalar>>,
    pub(crate) offer_hold: Option<Spanned<Scalar>>,
    pub(crate) decline_quarantine: Option<Spanned<Scalar>>,
    pub(crate) authoritative: Option<bool>,
    pub(crate) allow_bootp: Option<bool>,
    pub(crate) use_host_decl_names: Option<bool>,
    pub(crate) ping_check: Option<bool>,
    pub(crate) ping_timeout: Option<Spanned<Scalar>>,
    pub(crate) unknown_clients: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) relays: Vec<Spanned<String>>,
}

/// `[tftp]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct FileTftp {
    pub(crate) port: Option<Spanned<u16>>,
    pub(crate) root: Option<Spanned<String>>,
    pub(crate) max_blksize: Option<Spanned<u16>>,
    pub(crate) mtu: Option<Spanned<u16>>,
    pub(crate) max_windowsize: Option<Spanned<u16>>,
    pub(crate) min_timeout: Option<Spanned<Scalar>>,
    pub(crate) max_timeout: Option<Spanned<Scalar>>,
    pub(crate) max_retries: Option<Spanned<u8>>,
    pub(crate) max_transfers: Option<Spanned<u32>>,
    pub(crate) max_transfers_per_client: Option<Spanned<u32>>,
    pub(crate) new_transfers_per_second: Option<Spanned<u32>>,
    pub(crate) new_transfers_burst: Option<Spanned<u32>>,
}

/// `[http]`: present means served unless `enabled = false`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct FileHttp {
    pub(crate) enabled: Option<bool>,
    pub(crate) port: Option<Spanned<u16>>,
    pub(crate) max_connections_per_client: Option<Spanned<u32>>,
    pub(crate) max_connections: Option<Spanned<u32>>,
    pub(crate) header_timeout: Option<Spanned<Scalar>>,
    pub(crate) idle_timeout: Option<Spanned<Scalar>>,
    pub(crate) max_request_size: Option<Spanned<u32>>,
}

/// `[journal]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct FileJournal {
    pub(crate) dir: Option<Spanned<String>>,
    pub(crate) fsync: Option<Spanned<String>>,
    pub(crate) fsync_interval: Option<Spanned<Scalar>>,
}

/// `[ipv6]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct FileIpv6 {
    pub(crate) router_advertisements: Option<Spanned<String>>,
}

/// One `[[subnets]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct FileSubnet {
    pub(crate) network: Spanned<String>,
    #[serde(default)]
    pub(crate) ranges: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) routers: Vec<Spanned<String>>,
    pub(crate) broadcast: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) dns_servers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) ntp_servers: Vec<Spanned<String>>,
    pub(crate) domain_name: Option<Spanned<String>>,
    pub(crate) time_offset: Option<Spanned<i32>>,
    pub(crate) next_server: Option<Spanned<String>>,
    pub(crate) default_lease_time: Option<Spanned<Scalar>>,
    pub(crate) max_lease_time: Option<Spanned<Scalar>>,
    pub(crate) unknown_clients: Option<Spanned<String>>,
    pub(crate) dynamic_bootp: Option<bool>,
    pub(crate) dynamic_bootp_lease_length: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub(crate) boot_rules: Vec<FileBootRule>,
}

/// One `[[subnets.boot-rules]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct FileBootRule {
    pub(crate) profile: Option<Spanned<String>>,
    pub(crate) arch: Option<Spanned<ArchList>>,
    pub(crate) user_class: Option<Spanned<String>>,
    pub(crate) ipxe_encap: Option<bool>,
    pub(crate) filename: Spanned<String>,
    pub(crate) next_server: Option<Spanned<String>>,
    pub(crate) http: Option<bool>,
}

/// One `[[hosts]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct FileHost {
    pub(crate) name: Spanned<String>,
    pub(crate) mac: Spanned<String>,
    pub(crate) fixed_address: Option<Spanned<String>>,
    pub(crate) hostname: Option<Spanned<String>>,
    pub(crate) profile: Option<Spanned<String>>,
    pub(crate) labels: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
}

/// One `[[profiles]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct FileProfile {
    pub(crate) name: Spanned<String>,
    pub(crate) script: Option<Spanned<String>>,
    pub(crate) template: Option<Spanned<String>>,
    pub(crate) template_file: Option<Spanned<String>>,
    /// The text of `template-file` (or why it could not be read), filled in
    /// by the caller of the conversion, which may read files.
    #[serde(skip)]
    pub(crate) loaded: Option<Result<String, String>>,
}

/// A value written either as an integer or as a string (durations,
/// architectures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scalar {
    /// `7200`
    Int(i64),
    /// `"2h"`
    Str(String),
}

/// `arch = 7`, `arch = "efi-x64"` or `arch = [7, "efi-x64-alt"]`. Elements
/// of a list keep their own span; a lone value uses the key's.
#[derive(Debug)]
pub(crate) struct ArchList(pub(crate) Vec<(Scalar, Option<std::ops::Range<usize>>)>);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        i64::try_from(v)
            .map(Scalar::Int)
            .map_err(|_| E::custom("integer too large"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }
}

impl<'de> Deserialize<'de> for ArchList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ArchVisitor)
    }
}

struct ArchVisitor;

impl<'de> Visitor<'de> for ArchVisitor {
    type Value = ArchList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an architecture (number or name) or a list of them")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ArchList, E> {
        Ok(ArchList(vec![(Scalar::Int(v), None)]))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ArchList, E> {
        ScalarVisitor
            .visit_u64(v)
            .map(|s| ArchList(vec![(s, None)]))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ArchList, E> {
        Ok(ArchList(vec![(Scalar::Str(v.to_owned()), None)]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ArchList, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Scalar>>()? {
            let span = item.span();
            items.push((item.into_inner(), Some(span)));
        }
        Ok(ArchList(items))
    }
}
