//! Per-host iPXE scripts in front of the file store.
//!
//! [`ScriptResolver`] is the resolver every shard's TFTP core asks. For a
//! path that is the script path of the requesting host's profile it
//! renders that profile's template with the host's values
//! ([`script_for`]); every other request, including one for a script path
//! from a client whose MAC is unknown or whose host has another profile,
//! goes to the [`FileStore`] (a file of that name in the TFTP root, or
//! "not found").
//!
//! Profiles, hosts, labels and templates come from the configuration
//! snapshot current at the RRQ (one lock-free load), so a `SIGHUP` reload
//! or a state pushed by the agent changes what the next request gets.
//! Scripts are rendered per request: a template is parsed once at load, and
//! rendering one costs about as much as copying it, once per transfer and
//! never per DATA packet. The rendered bytes are the transfer's file, so
//! `tsize` and the block count are those of the host's own script.

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use bootwave_protocol::config::format_mac;
use bootwave_protocol::dhcp::SharedSnapshot;
use bootwave_protocol::template::{MAX_TEMPLATE_LEN, script_for};
use bootwave_protocol::tftp::{ResolveRequest, Resolved, Resolver};

use crate::store::FileStore;

/// Rendered per-host scripts first, then the file store.
#[derive(Debug, Clone)]
pub struct ScriptResolver {
    store: Arc<FileStore>,
    snapshot: SharedSnapshot,
}

impl ScriptResolver {
    /// A resolver rendering scripts from the current configuration in
    /// `snapshot` and serving every other path from `store`.
    pub fn new(store: Arc<FileStore>, snapshot: SharedSnapshot) -> Self {
        Self { store, snapshot }
    }

    /// The file store behind the scripts.
    pub fn store(&self) -> &Arc<FileStore> {
        &self.store
    }
}

impl Resolver for ScriptResolver {
    fn resolve(&self, request: &ResolveRequest<'_>) -> Resolved {
        let Some(script) = script_for(&self.snapshot.load(), request) else {
            return self.store.resolve(request);
        };
        tracing::debug!(
            path = request.path,
            client = %request.client,
            mac = request.mac.as_ref().map(format_mac).unwrap_or_default(),
            bytes = script.len(),
            "tftp: per-host script rendered"
        );
        Resolved::File(Arc::new(script))
    }
}

/// Reads a profile's `template-file` for
/// [`parse_with`](bootwave_protocol::config::parse_with): the text, or why
/// it cannot be used. Reads at most one byte past the template size limit,
/// so a huge file is refused without being loaded.
pub fn read_template(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_TEMPLATE_LEN).unwrap_or(u64::MAX) + 1;
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() > MAX_TEMPLATE_LEN {
        return Err(format!("larger than {MAX_TEMPLATE_LEN} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}
