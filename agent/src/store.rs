//! The desired state on disk: one `redb` database under the state directory.
//!
//! Every change is one write transaction that rewrites the changed entries
//! and bumps the generation; redb commits are durable (fsync) before
//! [`Store::commit`] returns, so an acknowledged change survives a crash at
//! any moment. Values are the protobuf encoding of the validated domain
//! value. A copy of the whole state is kept in memory for reads and pushes.

use std::path::Path;
use std::sync::{Arc, Mutex};

use bootwave_proto::convert::{ConvertError, HostSpec, ProfileSpec, State, SubnetSpec};
use bootwave_proto::v1;
use bootwave_protocol::config::{Ipv4Net, format_mac};
use prost::Message as _;
use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};

const HOSTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("hosts");
const SUBNETS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("subnets");
const PROFILES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("profiles");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const GENERATION: &str = "generation";
const DHCP: &str = "dhcp";
const HISTORY: &str = "history";

/// One change to the desired state.
#[derive(Debug, Clone)]
pub enum Change {
    /// Add or replace hosts (one generation for all).
    PutHosts(Vec<HostSpec>),
    /// Remove a host.
    DeleteHost([u8; 6]),
    /// Add or replace a subnet.
    PutSubnet(SubnetSpec),
    /// Remove a subnet.
    DeleteSubnet(Ipv4Net),
    /// Add or replace a profile.
    PutProfile(ProfileSpec),
    /// Remove a profile.
    DeleteProfile(String),
    /// Replace everything, if the current generation is the expected one
    /// (`None`: any).
    Replace(State, Option<u64>),
}

/// Why a change was not committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The resulting state would be refused by a data plane.
    #[error(transparent)]
    Invalid(#[from] ConvertError),
    /// The object to remove does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The state moved on since the caller read it.
    #[error("generation is {current}, expected {expected}")]
    Conflict {
        /// The current generation.
        current: u64,
        /// The generation the caller expected.
        expected: u64,
    },
    /// A stored value does not decode (the database was damaged or written
    /// by an incompatible version).
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt {
        /// Which entry.
        what: String,
        /// Why.
        reason: String,
    },
    /// The state directory could not be created.
    #[error("state directory: {0}")]
    Io(#[from] std::io::Error),
    /// The database failed.
    #[error("state database: {0}")]
    Db(#[from] redb::Error),
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Db(e.into())
            }
        }
    )*};
}
db_err!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The durable desired state.
#[derive(Debug)]
pub struct Store {
    db: Database,
    /// Serialises commits; held across the database commit (fsync).
    writer: Mutex<()>,
    /// The id of this state's history: created with the database, so a
    /// wiped or replaced state directory starts another history.
    history: String,
    /// The last committed snapshot; held only to copy or replace it, so
    /// readers and health checks never wait for a commit's fsync.
    current: Mutex<Snapshot>,
}

/// A generation and the state it names.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Generation number (0: nothing committed yet).
    pub generation: u64,
    /// The state.
    pub state: Arc<State>,
}

impl Store {
    /// Opens (or creates) `dir/state.redb`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        let db = Database::create(dir.join("state.redb"))?;
        let txn = db.begin_write()?;
        txn.open_table(HOSTS)?;
        for table in [SUBNETS, PROFILES, META] {
            txn.open_table(table)?;
        }
        let history = {
            let mut meta = txn.open_table(META)?;
            let stored = meta
                .get(HISTORY)?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned());
            match stored {
                Some(id) if !id.is_empty() => id,
                _ => {
                    let id = new_history_id()?;
                    meta.insert(HISTORY, id.as_bytes())?;
                    id
                }
            }
        };
        txn.commit()?;
        let current = Mutex::new(load(&db)?);
        Ok(Self {
            db,
            writer: Mutex::new(()),
            history,
            current,
        })
    }

    /// The id of this state's history.
    pub fn history(&self) -> &str {
        &self.history
    }

    /// The current generation and state.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().clone()
    }

    /// Applies `change` as one durable generation and returns the new
    /// snapshot. A change that leaves the state as it was commits nothing
    /// and returns the current generation.
    pub fn commit(&self, change: Change) -> Result<Snapshot, StoreError> {
        // Commits are serialised by `writer`; `current` changes only under
        // it, so the snapshot read here stays the latest until replaced.
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.snapshot();
        let mut next = State::clone(&current.state);
        apply(&mut next, &change, current.generation)?;
        if next == *current.state {
            return Ok(current);
        }
        next.to_config()?;
        let generation = current.generation + 1;
        let txn = self.db.begin_write()?;
        write(&txn, &change, &next)?;
        txn.open_table(META)?
            .insert(GENERATION, generation.to_be_bytes().as_slice())?;
        txn.commit()?;
        let committed = Snapshot {
            generation,
            state: Arc::new(next),
        };
        *self.lock() = committed.clone();
        Ok(committed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        // A panic while holding the lock cannot leave the snapshot half
        // written: it is replaced whole after the commit.
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Applies `change` to the in-memory state.
fn apply(state: &mut State, change: &Change, generation: u64) -> Result<(), StoreError> {
    match change {
        Change::PutHosts(hosts) => {
            for h in hosts {
                state.hosts.insert(h.mac, h.clone());
            }
        }
        Change::DeleteHost(mac) => {
            state
                .hosts
                .remove(mac)
                .ok_or_else(|| StoreError::NotFound(format!("host {}", format_mac(mac))))?;
        }
        Change::PutSubnet(s) => {
            state.subnets.insert(s.net, s.clone());
        }
        Change::DeleteSubnet(net) => {
            state
                .subnets
                .remove(net)
                .ok_or_else(|| StoreError::NotFound(format!("subnet {net}")))?;
        }
        Change::PutProfile(p) => {
            state.profiles.insert(p.name.clone(), p.clone());
        }
        Change::DeleteProfile(name) => {
            state
                .profiles
                .remove(name)
                .ok_or_else(|| StoreError::NotFound(format!("profile {name}")))?;
        }
        Change::Replace(new, expected) => {
            if let Some(expected) = *expected
                && expected != generation
            {
                return Err(StoreError::Conflict {
                    current: generation,
                    expected,
                });
            }
            *state = new.clone();
        }
    }
    Ok(())
}

/// Writes the entries `change` touched (all of them for a replace).
fn write(txn: &redb::WriteTransaction, change: &Change, next: &State) -> Result<(), StoreError> {
    let mut hosts = txn.open_table(HOSTS)?;
    let mut subnets = txn.open_table(SUBNETS)?;
    let mut profiles = txn.open_table(PROFILES)?;
    match change {
        Change::PutHosts(list) => {
            for h in list {
                hosts.insert(
                    h.mac.as_slice(),
                    v1::Host::from(h).encode_to_vec().as_slice(),
                )?;
            }
        }
        Change::DeleteHost(mac) => {
            hosts.remove(mac.as_slice())?;
        }
        Change::PutSubnet(s) => {
            let key = s.net.to_string();
            subnets.insert(key.as_str(), v1::Subnet::from(s).encode_to_vec().as_slice())?;
        }
        Change::DeleteSubnet(net) => {
            subnets.remove(net.to_string().as_str())?;
        }
        Change::PutProfile(p) => {
            profiles.insert(
                p.name.as_str(),
                v1::Profile::from(p).encode_to_vec().as_slice(),
            )?;
        }
        Change::DeleteProfile(name) => {
            profiles.remove(name.as_str())?;
        }
        Change::Replace(..) => {
            hosts.retain(|_, _| false)?;
            subnets.retain(|_, _| false)?;
            profiles.retain(|_, _| false)?;
            for h in next.hosts.values() {
                hosts.insert(
                    h.mac.as_slice(),
                    v1::Host::from(h).encode_to_vec().as_slice(),
                )?;
            }
            for s in next.subnets.values() {
                let key = s.net.to_string();
                subnets.insert(key.as_str(), v1::Subnet::from(s).encode_to_vec().as_slice())?;
            }
            for p in next.profiles.values() {
                profiles.insert(
                    p.name.as_str(),
                    v1::Profile::from(p).encode_to_vec().as_slice(),
                )?;
            }
            let dhcp = v1::DhcpSettings::from(&next.dhcp).encode_to_vec();
            txn.open_table(META)?.insert(DHCP, dhcp.as_slice())?;
        }
    }
    Ok(())
}

/// Reads the whole state back.
fn load(db: &Database) -> Result<Snapshot, StoreError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let generation = match meta.get(GENERATION)? {
        Some(v) => u64::from_be_bytes(
            v.value()
                .try_into()
                .map_err(|_| corrupt("generation", "not 8 bytes"))?,
        ),
        None => 0,
    };
    let dhcp = match meta.get(DHCP)? {
        Some(v) => Some(v1::DhcpSettings::decode(v.value()).map_err(|e| corrupt("dhcp", e))?),
        None => None,
    };
    let mut wire = v1::DesiredState {
        dhcp,
        ..Default::default()
    };
    for entry in txn.open_table(HOSTS)?.iter()? {
        let (_, v) = entry?;
        wire.hosts
            .push(v1::Host::decode(v.value()).map_err(|e| corrupt("host", e))?);
    }
    for entry in txn.open_table(SUBNETS)?.iter()? {
        let (_, v) = entry?;
        wire.subnets
            .push(v1::Subnet::decode(v.value()).map_err(|e| corrupt("subnet", e))?);
    }
    for entry in txn.open_table(PROFILES)?.iter()? {
        let (_, v) = entry?;
        wire.profiles
            .push(v1::Profile::decode(v.value()).map_err(|e| corrupt("profile", e))?);
    }
    let state = State::try_from(wire).map_err(|e| corrupt("state", e))?;
    Ok(Snapshot {
        generation,
        state: Arc::new(state),
    })
}

/// 16 random bytes from the kernel, in hex.
fn new_history_id() -> Result<String, StoreError> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn corrupt(what: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: what.to_owned(),
        reason: reason.to_string(),
    }
}
