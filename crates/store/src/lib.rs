//! The node's embedded store: the function registry (every version of every
//! function), the modules it references, usage totals, and node metadata,
//! in one crash-safe [redb] file.
//!
//! Every mutation is one redb write transaction committed with immediate
//! durability: after `deploy` returns, the version survives `kill -9`; a
//! deploy interrupted before its commit leaves no trace.
//!
//! ```no_run
//! # fn demo() -> Result<(), weft_store::Error> {
//! let store = weft_store::Store::open("/tmp/weft/registry.redb".as_ref())?;
//! for f in store.list()? {
//!     println!("{} v{}", f.name, f.active);
//! }
//! # Ok(()) }
//! ```

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use weft_manifest::FunctionSpec;

const FUNCTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("functions");
const MODULES: TableDefinition<&str, &[u8]> = TableDefinition::new("modules");
const USAGE: TableDefinition<&str, &[u8]> = TableDefinition::new("usage");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Versions kept per function; older ones are pruned on deploy.
pub const MAX_VERSIONS: usize = 50;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error("store: {0}")]
    Db(#[from] redb::Error),
    /// A record could not be encoded or decoded.
    #[error("store: corrupt record `{key}`: {message}")]
    Corrupt {
        /// The key of the record.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// No function with that name.
    #[error("function `{0}` not found")]
    FunctionNotFound(String),
    /// No such version of a function.
    #[error("function `{name}` has no version {version}")]
    VersionNotFound {
        /// The function.
        name: String,
        /// The version asked for.
        version: u32,
    },
    /// A rollback with no version before the active one.
    #[error("function `{name}` has no version before {active} to roll back to")]
    NoEarlierVersion {
        /// The function.
        name: String,
        /// Its active version.
        active: u32,
    },
}

/// Result of store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self { Error::Db(e.into()) }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// One deployed version of a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// 1, 2, 3, … in deploy order.
    pub version: u32,
    /// sha256 of the module.
    pub digest: String,
    /// `command` or `http`.
    pub kind: String,
    /// The function's declaration, `module` being `sha256:<digest>`.
    pub spec: FunctionSpec,
    /// Milliseconds since the UNIX epoch.
    pub deployed_at: u64,
}

/// A function and its versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRecord {
    /// The function's name.
    pub name: String,
    /// The version that serves invocations.
    pub active: u32,
    /// Versions, oldest first (at most [`MAX_VERSIONS`]).
    pub versions: Vec<VersionRecord>,
    /// Milliseconds since the UNIX epoch of the first deploy.
    pub created_at: u64,
}

impl FunctionRecord {
    /// The active version.
    pub fn active_version(&self) -> Option<&VersionRecord> {
        self.versions.iter().find(|v| v.version == self.active)
    }

    /// `existing` (or a new function) with one more version, made active;
    /// at most [`MAX_VERSIONS`] are kept.
    pub fn with_version(
        existing: Option<FunctionRecord>,
        name: &str,
        digest: &str,
        kind: &str,
        spec: &FunctionSpec,
        now: u64,
    ) -> FunctionRecord {
        let mut rec = existing.unwrap_or(FunctionRecord {
            name: name.to_string(),
            active: 0,
            versions: Vec::new(),
            created_at: now,
        });
        let next = rec.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        rec.versions.push(VersionRecord {
            version: next,
            digest: digest.to_string(),
            kind: kind.to_string(),
            spec: spec.clone(),
            deployed_at: now,
        });
        if rec.versions.len() > MAX_VERSIONS {
            let drop = rec.versions.len() - MAX_VERSIONS;
            rec.versions.drain(..drop);
        }
        rec.active = next;
        rec
    }

    /// Makes another version active: `to`, or else the version deployed
    /// before the active one.
    pub fn rolled_back(mut self, to: Option<u32>) -> Result<FunctionRecord> {
        let target = match to {
            Some(v) => v,
            None => self
                .versions
                .iter()
                .map(|v| v.version)
                .filter(|&v| v < self.active)
                .max()
                .ok_or(Error::NoEarlierVersion {
                    name: self.name.clone(),
                    active: self.active,
                })?,
        };
        if !self.versions.iter().any(|v| v.version == target) {
            return Err(Error::VersionNotFound {
                name: self.name.clone(),
                version: target,
            });
        }
        self.active = target;
        Ok(self)
    }

    /// Checks a record that came from elsewhere (the fabric registry):
    /// named `key`, every version's spec valid, the active one present.
    pub fn check(&self, key: &str) -> Result<(), String> {
        if self.name != key {
            return Err(format!("record of `{}` under the key `{key}`", self.name));
        }
        if self.active_version().is_none() {
            return Err(format!("active version {} is missing", self.active));
        }
        if self.versions.len() > MAX_VERSIONS {
            return Err(format!(
                "{} versions (at most {MAX_VERSIONS})",
                self.versions.len()
            ));
        }
        for v in &self.versions {
            v.spec
                .validate()
                .map_err(|e| format!("version {}: {e}", v.version))?;
            if v.spec.module != format!("sha256:{}", v.digest) {
                return Err(format!(
                    "version {}: module `{}` is not its digest {}",
                    v.version, v.spec.module, v.digest
                ));
            }
            if !["command", "http"].contains(&v.kind.as_str()) {
                return Err(format!("version {}: unknown kind `{}`", v.version, v.kind));
            }
        }
        Ok(())
    }
}

/// A stored module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRecord {
    /// sha256 of the binary.
    pub digest: String,
    /// `command` or `http`.
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// Milliseconds since the UNIX epoch.
    pub stored_at: u64,
}

/// Usage totals of one function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageTotals {
    /// Invocations that ran (admitted), successful or not.
    pub invocations: u64,
    /// Of which failed.
    pub errors: u64,
    /// Invocations refused before running (queue full, no capacity).
    pub rejected: u64,
    /// Cold starts: the function was loaded from disk.
    pub cold_starts: u64,
    /// CPU time, nanoseconds.
    pub cpu_ns: u64,
    /// Wall time, nanoseconds.
    pub wall_ns: u64,
    /// Peak linear memory × wall time, in byte-seconds.
    pub memory_byte_seconds: f64,
    /// Fuel consumed, when metered.
    pub fuel: u64,
    /// Bytes of state read (stateful functions).
    #[serde(default)]
    pub state_read_bytes: u64,
    /// Bytes of state written (stateful functions).
    #[serde(default)]
    pub state_written_bytes: u64,
    /// What a stateful function's invocations moved, by its state model
    /// (`external`, `edge`, `function`, `client`: the model it ran under).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub moved_bytes: BTreeMap<String, MovedBytes>,
}

/// Bytes a stateful function's invocations moved under one state model:
/// its state read and written, its arguments in and its results out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedBytes {
    /// State read from its home (or carried in, for `client`).
    pub state_read: u64,
    /// State written to its home (or carried out).
    pub state_written: u64,
    /// Arguments (request bodies) in.
    pub args_in: u64,
    /// Results (response bodies) out.
    pub args_out: u64,
}

impl MovedBytes {
    /// Adds another's.
    pub fn add(&mut self, o: &MovedBytes) {
        self.state_read += o.state_read;
        self.state_written += o.state_written;
        self.args_in += o.args_in;
        self.args_out += o.args_out;
    }
}

impl UsageTotals {
    /// Adds another total to this one.
    pub fn add(&mut self, o: &UsageTotals) {
        self.invocations += o.invocations;
        self.errors += o.errors;
        self.rejected += o.rejected;
        self.cold_starts += o.cold_starts;
        self.cpu_ns += o.cpu_ns;
        self.wall_ns += o.wall_ns;
        self.memory_byte_seconds += o.memory_byte_seconds;
        self.fuel += o.fuel;
        self.state_read_bytes += o.state_read_bytes;
        self.state_written_bytes += o.state_written_bytes;
        for (model, m) in &o.moved_bytes {
            self.moved_bytes.entry(model.clone()).or_default().add(m);
        }
    }
}

/// Milliseconds since the UNIX epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn encode<T: Serialize>(key: &str, v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}

/// The embedded store.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the store file. redb recovers a file left by a
    /// crash to its last committed transaction.
    pub fn open(path: &Path) -> Result<Store> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        for t in [FUNCTIONS, MODULES, USAGE, META] {
            tx.open_table(t)?;
        }
        tx.commit()?;
        Ok(Store { db })
    }

    /// Records a stored module.
    pub fn put_module(&self, rec: &ModuleRecord) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(MODULES)?;
            t.insert(rec.digest.as_str(), encode(&rec.digest, rec)?.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A stored module's record.
    pub fn module(&self, digest: &str) -> Result<Option<ModuleRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(MODULES)?;
        let got = t.get(digest)?;
        got.map(|v| decode(digest, v.value())).transpose()
    }

    /// Every stored module.
    pub fn modules(&self) -> Result<Vec<ModuleRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(MODULES)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Forgets modules.
    pub fn remove_modules(&self, digests: &[String]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(MODULES)?;
            for d in digests {
                t.remove(d.as_str())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Adds a version of `name` (creating the function) and makes it active.
    pub fn deploy(
        &self,
        name: &str,
        digest: &str,
        kind: &str,
        spec: &FunctionSpec,
    ) -> Result<FunctionRecord> {
        let tx = self.db.begin_write()?;
        let rec = {
            let mut t = tx.open_table(FUNCTIONS)?;
            let existing: Option<FunctionRecord> = match t.get(name)? {
                Some(v) => Some(decode(name, v.value())?),
                None => None,
            };
            let rec = FunctionRecord::with_version(existing, name, digest, kind, spec, now_ms());
            t.insert(name, encode(name, &rec)?.as_slice())?;
            rec
        };
        tx.commit()?;
        Ok(rec)
    }

    /// Makes another version active: `to`, or else the version deployed
    /// before the active one.
    pub fn rollback(&self, name: &str, to: Option<u32>) -> Result<FunctionRecord> {
        let tx = self.db.begin_write()?;
        let rec = {
            let mut t = tx.open_table(FUNCTIONS)?;
            let rec: FunctionRecord = match t.get(name)? {
                Some(v) => decode(name, v.value())?,
                None => return Err(Error::FunctionNotFound(name.to_string())),
            };
            let rec = rec.rolled_back(to)?;
            t.insert(name, encode(name, &rec)?.as_slice())?;
            rec
        };
        tx.commit()?;
        Ok(rec)
    }

    /// Replaces a function's record with one from the fabric registry.
    pub fn put_record(&self, rec: &FunctionRecord) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(FUNCTIONS)?;
            t.insert(rec.name.as_str(), encode(&rec.name, rec)?.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes a function with all its versions and its usage.
    pub fn remove(&self, name: &str) -> Result<FunctionRecord> {
        let tx = self.db.begin_write()?;
        let rec = {
            let mut t = tx.open_table(FUNCTIONS)?;
            let rec: FunctionRecord = match t.remove(name)? {
                Some(v) => decode(name, v.value())?,
                None => return Err(Error::FunctionNotFound(name.to_string())),
            };
            tx.open_table(USAGE)?.remove(name)?;
            rec
        };
        tx.commit()?;
        Ok(rec)
    }

    /// One function.
    pub fn get(&self, name: &str) -> Result<Option<FunctionRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(FUNCTIONS)?;
        let got = t.get(name)?;
        got.map(|v| decode(name, v.value())).transpose()
    }

    /// Every function, by name.
    pub fn list(&self) -> Result<Vec<FunctionRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(FUNCTIONS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Digests referenced by any version of any function.
    pub fn referenced_digests(&self) -> Result<BTreeSet<String>> {
        Ok(self
            .list()?
            .into_iter()
            .flat_map(|f| f.versions.into_iter().map(|v| v.digest))
            .collect())
    }

    /// Adds usage deltas to the stored totals, in one transaction. Deltas of
    /// functions that no longer exist are dropped.
    pub fn add_usage(&self, deltas: &BTreeMap<String, UsageTotals>) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let functions = tx.open_table(FUNCTIONS)?;
            let mut t = tx.open_table(USAGE)?;
            for (name, d) in deltas {
                if functions.get(name.as_str())?.is_none() {
                    continue;
                }
                let mut total: UsageTotals = match t.get(name.as_str())? {
                    Some(v) => decode(name, v.value())?,
                    None => UsageTotals::default(),
                };
                total.add(d);
                t.insert(name.as_str(), encode(name, &total)?.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Stored usage totals, by function.
    pub fn usage(&self) -> Result<BTreeMap<String, UsageTotals>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(USAGE)?;
        let mut out = BTreeMap::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.insert(k.value().to_string(), decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// A node metadata value.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(META)?;
        let got = t.get(key)?;
        Ok(got.map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    /// Sets a node metadata value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(META)?.insert(key, value.as_bytes())?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FunctionSpec {
        FunctionSpec {
            module: format!("sha256:{}", "a".repeat(64)),
            ..FunctionSpec::default()
        }
    }

    #[test]
    fn versions_and_rollback() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::Corrupt {
            key: "tmp".into(),
            message: e.to_string(),
        })?;
        let path = dir.path().join("r.redb");
        {
            let s = Store::open(&path)?;
            s.deploy("f", "d1", "command", &spec())?;
            let r = s.deploy("f", "d2", "command", &spec())?;
            assert_eq!(r.active, 2);
            let r = s.rollback("f", None)?;
            assert_eq!(r.active, 1);
            assert!(matches!(
                s.rollback("f", None),
                Err(Error::NoEarlierVersion { active: 1, .. })
            ));
            assert!(matches!(
                s.rollback("f", Some(9)),
                Err(Error::VersionNotFound { version: 9, .. })
            ));
            let r = s.deploy("f", "d3", "command", &spec())?;
            assert_eq!(r.active, 3);
        }
        // Reopened, everything is there.
        let s = Store::open(&path)?;
        let f = s.get("f")?.ok_or(Error::FunctionNotFound("f".into()))?;
        assert_eq!(f.versions.len(), 3);
        assert_eq!(f.active_version().map(|v| v.digest.as_str()), Some("d3"));
        assert_eq!(s.referenced_digests()?.len(), 3);
        s.remove("f")?;
        assert!(s.get("f")?.is_none());
        assert!(matches!(s.remove("f"), Err(Error::FunctionNotFound(_))));
        Ok(())
    }

    #[test]
    fn usage_accumulates_for_live_functions_only() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::Corrupt {
            key: "tmp".into(),
            message: e.to_string(),
        })?;
        let s = Store::open(&dir.path().join("r.redb"))?;
        s.deploy("f", "d1", "command", &spec())?;
        let mut d = BTreeMap::new();
        d.insert(
            "f".to_string(),
            UsageTotals {
                invocations: 2,
                cpu_ns: 10,
                ..Default::default()
            },
        );
        d.insert(
            "gone".to_string(),
            UsageTotals {
                invocations: 1,
                ..Default::default()
            },
        );
        s.add_usage(&d)?;
        s.add_usage(&d)?;
        let u = s.usage()?;
        assert_eq!(u.get("f").map(|t| t.invocations), Some(4));
        assert!(!u.contains_key("gone"));
        Ok(())
    }

    #[test]
    fn version_history_is_bounded() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::Corrupt {
            key: "tmp".into(),
            message: e.to_string(),
        })?;
        let s = Store::open(&dir.path().join("r.redb"))?;
        for i in 0..(MAX_VERSIONS + 5) {
            s.deploy("f", &format!("d{i}"), "command", &spec())?;
        }
        let f = s.get("f")?.ok_or(Error::FunctionNotFound("f".into()))?;
        assert_eq!(f.versions.len(), MAX_VERSIONS);
        assert_eq!(f.active as usize, MAX_VERSIONS + 5);
        Ok(())
    }
}
