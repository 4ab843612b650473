//! Key-value stores behind the guest interface `wasi:keyvalue@0.2.0-draft`
//! (`store`, `atomics`, `batch`).
//!
//! The node operator maps store labels to backends in the node config;
//! every function that declares a label shares that store. Two backends:
//!
//! - [`BackendSpec::Embedded`] (the default): one [redb] file owned by the
//!   node, one table per label; every write is a durable transaction.
//! - [`BackendSpec::Redis`]: a Redis server, keys stored as
//!   `{prefix}{key}`. The connection is made lazily and re-made after a
//!   failure; while the server is down, operations fail fast (within 2 s at
//!   most) with [`KvError::Unavailable`] instead of hanging.
//!
//! Listing is paged with an opaque `u64` cursor. The embedded store returns
//! at most 1000 keys per page in the order of a 64-bit hash of the key (the
//! cursor is the hash to resume from); Redis uses `SCAN … COUNT 1000`, whose
//! pages hold about 1000 keys (`COUNT` is a hint: a page can exceed it
//! slightly, or be empty while the cursor is not yet `None`). On
//! both, a key present for the whole listing is returned exactly once, even
//! if the caller deletes each page as it arrives.
//!
//! Limits ([`KvLimits`]) are checked before a backend is touched, the same
//! way for every backend.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft_kv::KvError> {
//! use std::collections::BTreeMap;
//! use weft_kv::{BackendSpec, KvLimits, Stores};
//!
//! let mut specs = BTreeMap::new();
//! specs.insert("default".to_owned(), BackendSpec::Embedded);
//! specs.insert(
//!     "cache".to_owned(),
//!     BackendSpec::Redis {
//!         url: "redis://127.0.0.1:6379".to_owned(),
//!         prefix: "weft:cache:".to_owned(),
//!     },
//! );
//! let stores = Stores::open("/var/lib/weft/kv.redb".as_ref(), specs, KvLimits::default()).await?;
//! if let Some(bucket) = stores.bucket("default") {
//!     bucket.set("greeting", b"hello").await?;
//!     assert_eq!(bucket.increment("visits", 1).await?, 1);
//!     assert_eq!(bucket.get("visits").await?, Some(b"1".to_vec()));
//! }
//! # Ok(()) }
//! ```

mod deferred;
mod embedded;
mod limits;
mod redis_store;
mod state;

pub use embedded::{key_hash, parse_counter};
pub use limits::limited;
pub use state::{Held, Keyed, Traffic, state_prefix};

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
pub use weft_codes::Code;

/// Where a store's data lives, as configured by the node operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendSpec {
    /// A table in the node's embedded redb file.
    Embedded,
    /// A Redis server.
    Redis {
        /// `redis://[user:password@]host[:port][/db]` (or `unix://…`).
        url: String,
        /// Prepended to every key, e.g. `weft:{label}:`; stores that share a
        /// server must use prefixes that are not prefixes of each other.
        prefix: String,
    },
    /// A store whose backend is bound after opening, with [`Stores::bind`]
    /// (the fabric's JetStream key-value, once the node has joined);
    /// until then every operation is [`KvError::Unavailable`].
    Deferred,
}

/// Size limits enforced on every operation before a backend is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// Longest key, in bytes of UTF-8. Default 1024.
    pub max_key: usize,
    /// Largest value, in bytes. Default 1 MiB.
    pub max_value: usize,
    /// Most keys in one `get_many`/`set_many`/`delete_many`. Default 1000.
    pub max_batch: usize,
}

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            max_key: 1024,
            max_value: 1024 * 1024,
            max_batch: 1000,
        }
    }
}

/// One page of [`Bucket::list_keys`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys in this page; may be empty even when `cursor` is `Some`.
    pub keys: Vec<String>,
    /// Pass back to get the next page; `None` when the listing is complete.
    pub cursor: Option<u64>,
}

/// Key-value errors. Each has a stable machine-readable [`code`](KvError::code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key is longer than [`KvLimits::max_key`].
    #[error("key of {len} bytes exceeds the limit of {limit} bytes")]
    KeyTooLarge {
        /// Length of the key in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The value is larger than [`KvLimits::max_value`].
    #[error("value of {len} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// Size of the value in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A batch names more keys than [`KvLimits::max_batch`].
    #[error("batch of {len} keys exceeds the limit of {limit} keys")]
    BatchTooLarge {
        /// Number of keys in the batch.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The key is not acceptable (for example, empty).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// `increment` found a value that is not a decimal integer.
    #[error("value of key `{key}` is not a decimal integer")]
    NotANumber {
        /// The key.
        key: String,
    },
    /// `increment` would leave the range `0..=i64::MAX`.
    #[error("incrementing key `{key}` would overflow")]
    Overflow {
        /// The key.
        key: String,
    },
    /// The backend cannot be reached right now; retrying later may succeed.
    #[error("store `{store}` is unavailable: {message}")]
    Unavailable {
        /// The store label.
        store: String,
        /// What failed, naming the backend's address.
        message: String,
    },
    /// The backend failed or refused the operation, or the store's
    /// configuration is invalid.
    #[error("store `{store}`: {message}")]
    Backend {
        /// The store label.
        store: String,
        /// What failed.
        message: String,
    },
}

impl KvError {
    /// The error's stable code, for APIs and guests.
    pub fn code(&self) -> Code {
        match self {
            KvError::KeyTooLarge { .. } => Code::KeyTooLarge,
            KvError::ValueTooLarge { .. } => Code::ValueTooLarge,
            KvError::BatchTooLarge { .. } => Code::BatchTooLarge,
            KvError::InvalidKey(_) => Code::InvalidKey,
            KvError::NotANumber { .. } => Code::NotANumber,
            KvError::Overflow { .. } => Code::Overflow,
            KvError::Unavailable { .. } => Code::StoreUnavailable,
            KvError::Backend { .. } => Code::StoreError,
        }
    }
}

/// A key and its new value; `None`: removed.
pub type Change = (String, Option<Vec<u8>>);

/// `changes` with each key once, at its last change: what to write, and
/// what to remove.
pub fn last_changes(changes: &[Change]) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let last: BTreeMap<&str, &Option<Vec<u8>>> =
        changes.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut sets = Vec::new();
    let mut dels = Vec::new();
    for (k, v) in last {
        match v {
            Some(v) => sets.push((k.to_string(), v.clone())),
            None => dels.push(k.to_string()),
        }
    }
    (sets, dels)
}

/// Result of key-value operations.
pub type Result<T, E = KvError> = std::result::Result<T, E>;

/// One store, as seen by the functions that declare its label.
///
/// Buckets returned by [`Stores::bucket`] check [`KvLimits`] before every
/// operation.
#[async_trait::async_trait]
pub trait Bucket: Send + Sync {
    /// The store's label.
    fn label(&self) -> &str;

    /// The value of `key`, or `None` if it is not set.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;

    /// Sets `key` to `value`, replacing any previous value.
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;

    /// Removes `key`; removing a missing key succeeds.
    async fn delete(&self, key: &str) -> Result<(), KvError>;

    /// Whether `key` is set.
    async fn exists(&self, key: &str) -> Result<bool, KvError>;

    /// One page of keys: start with `None`, then pass back the returned
    /// cursor until it is `None`. Keys present for the whole listing are
    /// returned exactly once; keys added or removed meanwhile may or may not
    /// be. Cursors are opaque and only meaningful to the same store.
    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, KvError>;

    /// Adds delta; a missing key counts as 0; the value is stored as ASCII
    /// decimal (so Redis INCRBY and the embedded store agree and `get`
    /// returns e.g. b"42").
    ///
    /// The stored value must be a canonical decimal `i64` (no sign `+`, no
    /// leading zeros or spaces) or [`KvError::NotANumber`] is returned. A
    /// `delta` above `i64::MAX` or a sum above it gives
    /// [`KvError::Overflow`] and stores nothing; a sum below zero (the stored
    /// value was negative) is stored, as Redis does, but reported as
    /// [`KvError::Overflow`] since the result cannot be a `u64`.
    async fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError>;

    /// The values of `keys`, in order: `Some((key, value))` for keys that are
    /// set, `None` for the others.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError>;

    /// Sets every entry, all or nothing; a repeated key takes its last value.
    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), KvError>;

    /// Removes every key, all or nothing.
    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError>;

    /// Sets `key` to `value` if it holds `expected` (`None`: if it is not
    /// set), with the changes of `also` (`None`: remove; a key repeated takes
    /// its last change); returns whether it did, and writes nothing of `key`
    /// when it did not. What one writer
    /// uses to tell it still owns what it writes.
    ///
    /// On a store with transactions (embedded, Redis) `also` is applied in
    /// the same step, or not at all. On the others (JetStream) it is
    /// applied first, so it may be applied even when this returns `false`:
    /// change there only records that no value of `key` names.
    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        also: &[Change],
    ) -> Result<bool, KvError>;
}

/// Every store configured on the node, by label.
#[derive(Clone)]
pub struct Stores {
    buckets: BTreeMap<String, Arc<dyn Bucket>>,
    deferred: BTreeMap<String, deferred::Deferred>,
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores")
            .field("labels", &self.labels())
            .finish()
    }
}

impl Stores {
    /// Opens every configured store.
    ///
    /// The embedded stores share one redb file at `embedded_path` (created,
    /// with its parent directories, if missing, and only if at least one
    /// store is embedded), one table per label.
    ///
    /// Redis stores do not fail to open when the server is down: they
    /// connect lazily and reconnect with exponential backoff; operations
    /// while it is down fail fast with [`KvError::Unavailable`] naming the
    /// store and the URL (without credentials), after at most 2 s. A
    /// malformed Redis URL is a [`KvError::Backend`] error naming the label,
    /// and so is an empty label.
    pub async fn open(
        embedded_path: &Path,
        specs: BTreeMap<String, BackendSpec>,
        limits: KvLimits,
    ) -> Result<Stores, KvError> {
        let mut embedded_labels = Vec::new();
        let mut buckets: BTreeMap<String, Arc<dyn Bucket>> = BTreeMap::new();
        let mut deferred = BTreeMap::new();
        for (label, spec) in specs {
            if label.is_empty() {
                return Err(KvError::Backend {
                    store: label,
                    message: "store labels must not be empty".to_owned(),
                });
            }
            match spec {
                BackendSpec::Embedded => embedded_labels.push(label),
                BackendSpec::Redis { url, prefix } => {
                    let bucket = redis_store::RedisBucket::open(&label, &url, &prefix)?;
                    buckets.insert(label, Arc::new(limits::Limited::new(bucket, limits)));
                }
                BackendSpec::Deferred => {
                    let slot = deferred::Deferred::new(&label);
                    deferred.insert(label.clone(), slot.clone());
                    buckets.insert(label, Arc::new(limits::Limited::new(slot, limits)));
                }
            }
        }
        if !embedded_labels.is_empty() {
            for bucket in embedded::open(embedded_path, embedded_labels).await? {
                let label = bucket.label().to_owned();
                buckets.insert(label, Arc::new(limits::Limited::new(bucket, limits)));
            }
        }
        Ok(Stores { buckets, deferred })
    }

    /// Binds the backend of a [`BackendSpec::Deferred`] store. Binding a
    /// label that is not deferred, or twice, is an error.
    pub fn bind(&self, label: &str, backend: Arc<dyn Bucket>) -> Result<(), KvError> {
        let slot = self.deferred.get(label).ok_or_else(|| KvError::Backend {
            store: label.to_owned(),
            message: "not a deferred store".to_owned(),
        })?;
        slot.bind(backend)
    }

    /// Labels of the deferred stores.
    pub fn deferred_labels(&self) -> Vec<String> {
        self.deferred.keys().cloned().collect()
    }

    /// The store with this label, if configured.
    pub fn bucket(&self, label: &str) -> Option<Arc<dyn Bucket>> {
        self.buckets.get(label).cloned()
    }

    /// Every configured label, sorted.
    pub fn labels(&self) -> Vec<String> {
        self.buckets.keys().cloned().collect()
    }
}
