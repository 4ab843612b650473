//! The embedded backend: one redb file shared by every embedded store, one
//! table per label.
//!
//! Rows are keyed by `(hash, key)`, where `hash` is the first 8 bytes of the
//! key's SHA-256 read big-endian. `list_keys` walks the table in that order
//! and its cursor is the hash to resume from, so a listing is stateless
//! (it survives a node restart) and, like Redis `SCAN`, returns every key
//! that is present throughout exactly once even when other keys are added
//! or deleted meanwhile (for example, deleting each page as it arrives).
//!
//! redb is synchronous: writes and scans run on `spawn_blocking`, point reads
//! (`get`, `exists`) in place. Writes are group-committed: every write waiting
//! when a commit starts (of any store of the file) is applied, in arrival
//! order, in one transaction committed with [`Durability::Immediate`] (one
//! fsync), and each is answered once that commit is on disk. Each write
//! sees the ones before it in the batch, so a compare-and-set or an
//! increment behaves as if alone. A write refused for what it found (an
//! increment of a value that is not a number) writes nothing and leaves the
//! others be; a failure of the database fails the whole batch, and nothing
//! of it is written.

use crate::{Bucket, KeyPage, KvError};
use parking_lot::Mutex;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Most keys in one `list_keys` page (more only if the 64-bit hashes of
/// two keys collide at a page boundary).
const PAGE: usize = 1000;

type Table<'a> = TableDefinition<'a, (u64, &'static str), &'static [u8]>;

/// Most writes in one group commit.
const MAX_BATCH: usize = 1024;

/// Why a blocking operation failed.
enum Failure {
    Db(redb::Error),
    Kv(KvError),
    /// The group commit it was part of failed.
    Batch(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self { Failure::Db(e.into()) }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// One embedded store.
pub(crate) struct EmbeddedBucket {
    label: String,
    /// The redb table name: `kv/{label}`.
    table: Arc<str>,
    db: Arc<Database>,
    writes: Arc<Group>,
}

/// A write waiting for the next group commit.
trait Job: Send {
    /// Applies the write to the batch's transaction; false when the
    /// database failed (the batch is given up).
    fn apply(&mut self, txn: &WriteTransaction) -> bool;
    /// Answers the writer: with its outcome once the batch committed, or
    /// with why the batch failed.
    fn answer(self: Box<Self>, batch: Result<(), String>);
}

/// A write and its writer's answer.
struct Write<T, F> {
    table: Arc<str>,
    apply: Option<F>,
    outcome: Option<Result<T, Failure>>,
    tx: oneshot::Sender<Result<T, Failure>>,
}

impl<T, F> Job for Write<T, F>
where
    T: Send,
    F: FnOnce(&WriteTransaction, Table<'_>) -> Result<T, Failure> + Send,
{
    fn apply(&mut self, txn: &WriteTransaction) -> bool {
        let Some(apply) = self.apply.take() else {
            return true;
        };
        let outcome = apply(txn, Table::new(&self.table));
        let ok = !matches!(outcome, Err(Failure::Db(_)));
        self.outcome = Some(outcome);
        ok
    }

    fn answer(self: Box<Self>, batch: Result<(), String>) {
        let answer = match (self.outcome, batch) {
            // Refused for what it found: it wrote nothing, whatever the
            // batch did.
            (Some(Err(Failure::Kv(e))), _) => Err(Failure::Kv(e)),
            (_, Err(message)) => Err(Failure::Batch(message)),
            (Some(outcome), Ok(())) => outcome,
            (None, Ok(())) => Err(Failure::Batch("the write was not applied".into())),
        };
        let _ = self.tx.send(answer);
    }
}

/// The writes of one redb file waiting for their group commit, and whether
/// a commit is under way (which takes them when it ends).
struct Group {
    db: Arc<Database>,
    queue: Mutex<(Vec<Box<dyn Job>>, bool)>,
}

impl Group {
    /// Queues `job`; starts a committer on the blocking pool unless one is
    /// under way.
    fn submit(self: &Arc<Self>, job: Box<dyn Job>) {
        let start = {
            let mut q = self.queue.lock();
            q.0.push(job);
            !std::mem::replace(&mut q.1, true)
        };
        if start {
            let group = self.clone();
            tokio::task::spawn_blocking(move || drain(group));
        }
    }

    /// Applies `batch` in one transaction and commits it: the outcome for
    /// all of it.
    fn commit(&self, batch: &mut [Box<dyn Job>]) -> Result<(), String> {
        let txn = begin(&self.db).map_err(|e| describe(&e))?;
        for job in batch.iter_mut() {
            if !job.apply(&txn) {
                return Err("a write of the batch failed; nothing of it was written".into());
            }
        }
        txn.commit().map_err(|e| e.to_string())
    }
}

/// Commits batches until no write waits. The last batch is answered only
/// after this committer let go of the file, so a writer answered may close
/// and reopen it at once.
fn drain(group: Arc<Group>) {
    loop {
        let mut batch = {
            let mut q = group.queue.lock();
            let take = q.0.len().min(MAX_BATCH);
            let rest = q.0.split_off(take);
            std::mem::replace(&mut q.0, rest)
        };
        let outcome = group.commit(&mut batch);
        let last = {
            let mut q = group.queue.lock();
            if q.0.is_empty() {
                q.1 = false;
            }
            !q.1
        };
        if last {
            drop(group);
            for job in batch {
                job.answer(outcome.clone());
            }
            return;
        }
        for job in batch {
            job.answer(outcome.clone());
        }
    }
}

fn describe(f: &Failure) -> String {
    match f {
        Failure::Db(e) => e.to_string(),
        Failure::Kv(e) => e.to_string(),
        Failure::Batch(m) => m.clone(),
    }
}

/// Opens (creating if needed) the file at `path` and one table per label.
pub(crate) async fn open(path: &Path, labels: Vec<String>) -> Result<Vec<EmbeddedBucket>, KvError> {
    let path = path.to_owned();
    let first = labels.first().cloned().unwrap_or_default();
    let opened = tokio::task::spawn_blocking(move || -> Result<_, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let db =
            Database::create(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let tables: Vec<Arc<str>> = labels.iter().map(|l| format!("kv/{l}").into()).collect();
        let create = || -> Result<(), Failure> {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            for t in &tables {
                txn.open_table(Table::new(t))?;
            }
            txn.commit()?;
            Ok(())
        };
        create().map_err(|e| {
            format!(
                "cannot create tables in {}: {}",
                path.display(),
                describe(&e)
            )
        })?;
        let db = Arc::new(db);
        let writes = Arc::new(Group {
            db: db.clone(),
            queue: Mutex::new((Vec::new(), false)),
        });
        Ok(labels
            .into_iter()
            .zip(tables)
            .map(|(label, table)| EmbeddedBucket {
                label,
                table,
                db: db.clone(),
                writes: writes.clone(),
            })
            .collect::<Vec<_>>())
    })
    .await;
    match opened {
        Ok(Ok(buckets)) => Ok(buckets),
        Ok(Err(message)) => Err(KvError::Backend {
            store: first,
            message,
        }),
        Err(e) => Err(KvError::Backend {
            store: first,
            message: format!("opening the embedded store failed: {e}"),
        }),
    }
}

/// The row key of `key`: the first 8 bytes of its sha256 (also the order
/// of listings, for every backend that pages by hash).
pub fn key_hash(key: &str) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head)
}

/// Parses a counter the way Redis does (`string2ll`): an optional `-`, then
/// digits without leading zeros (`0` alone is fine, `-0` is not), in range.
pub fn parse_counter(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = match digits {
        [b'0'] => bytes.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Opens the bucket's table for writing, committed durably by the caller.
fn begin(db: &Database) -> Result<WriteTransaction, Failure> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    Ok(txn)
}

impl EmbeddedBucket {
    /// Runs `f` with the database and table name on the blocking pool: for
    /// commits, which wait for the disk.
    async fn run<T, F>(&self, f: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(&Database, Table<'_>) -> Result<T, Failure> + Send + 'static,
    {
        let db = self.db.clone();
        let table = self.table.clone();
        let joined = tokio::task::spawn_blocking(move || f(&db, Table::new(&table))).await;
        match joined {
            Ok(r) => self.result(r),
            Err(e) => Err(KvError::Backend {
                store: self.label.clone(),
                message: format!("embedded store task failed: {e}"),
            }),
        }
    }

    /// Applies `f` to the next group commit's transaction; answers once
    /// that commit is on disk.
    async fn write<T, F>(&self, f: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction, Table<'_>) -> Result<T, Failure> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.writes.submit(Box::new(Write {
            table: self.table.clone(),
            apply: Some(f),
            outcome: None,
            tx,
        }));
        match rx.await {
            Ok(r) => self.result(r),
            Err(_) => Err(KvError::Backend {
                store: self.label.clone(),
                message: "embedded store: its writer stopped (the node is shutting down)".into(),
            }),
        }
    }

    /// Runs a point read right here: a redb read transaction takes well
    /// under a microsecond from cached pages, far less than the two thread
    /// hand-offs of the blocking pool (see bench/RESULTS.md).
    fn read_now<T>(
        &self,
        f: impl FnOnce(&Database, Table<'_>) -> Result<T, Failure>,
    ) -> Result<T, KvError> {
        self.result(f(&self.db, Table::new(&self.table)))
    }

    fn result<T>(&self, r: Result<T, Failure>) -> Result<T, KvError> {
        match r {
            Ok(v) => Ok(v),
            Err(Failure::Kv(e)) => Err(e),
            Err(Failure::Db(e)) => Err(KvError::Backend {
                store: self.label.clone(),
                message: format!("embedded store: {e}"),
            }),
            Err(Failure::Batch(m)) => Err(KvError::Backend {
                store: self.label.clone(),
                message: format!("embedded store: {m}"),
            }),
        }
    }
}

#[async_trait::async_trait]
impl Bucket for EmbeddedBucket {
    fn label(&self) -> &str {
        &self.label
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.read_now(|db, def| {
            let txn = db.begin_read()?;
            let table = txn.open_table(def)?;
            Ok(table.get((key_hash(key), key))?.map(|v| v.value().to_vec()))
        })
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let key = key.to_owned();
        let value = value.to_vec();
        self.write(move |txn, def| {
            txn.open_table(def)?
                .insert((key_hash(&key), key.as_str()), value.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        let key = key.to_owned();
        self.write(move |txn, def| {
            txn.open_table(def)?
                .remove((key_hash(&key), key.as_str()))?;
            Ok(())
        })
        .await
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.read_now(|db, def| {
            let txn = db.begin_read()?;
            let table = txn.open_table(def)?;
            Ok(table.get((key_hash(key), key))?.is_some())
        })
    }

    /// The cursor is the key hash to resume from (see the module docs).
    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        let start = cursor.unwrap_or(0);
        self.run(move |db, def| {
            let txn = db.begin_read()?;
            let table = txn.open_table(def)?;
            let mut keys = Vec::new();
            let mut last = None;
            for row in table.range((start, "")..)? {
                let (k, _) = row?;
                let (h, key) = k.value();
                // Never split a run of equal hashes: the cursor could not
                // tell its members apart.
                if keys.len() >= PAGE && last != Some(h) {
                    return Ok(KeyPage {
                        keys,
                        cursor: Some(h),
                    });
                }
                keys.push(key.to_owned());
                last = Some(h);
            }
            Ok(KeyPage { keys, cursor: None })
        })
        .await
    }

    async fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError> {
        let key = key.to_owned();
        self.write(move |txn, def| {
            let overflow = || Failure::Kv(KvError::Overflow { key: key.clone() });
            let delta = i64::try_from(delta).map_err(|_| overflow())?;
            let mut table = txn.open_table(def)?;
            let row = (key_hash(&key), key.as_str());
            let current = match table.get(row)? {
                None => 0,
                Some(v) => parse_counter(v.value())
                    .ok_or_else(|| Failure::Kv(KvError::NotANumber { key: key.clone() }))?,
            };
            let sum = current.checked_add(delta).ok_or_else(overflow)?;
            table.insert(row, sum.to_string().as_bytes())?;
            // Written, as Redis does, even when the sum is below zero (which
            // the answer cannot hold): not a refusal of the batch's kind.
            Ok(u64::try_from(sum).map_err(|_| KvError::Overflow { key: key.clone() }))
        })
        .await?
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        let keys = keys.to_vec();
        self.run(move |db, def| {
            let txn = db.begin_read()?;
            let table = txn.open_table(def)?;
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                let value = table
                    .get((key_hash(&key), key.as_str()))?
                    .map(|v| v.value().to_vec());
                out.push(value.map(|v| (key, v)));
            }
            Ok(out)
        })
        .await
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        let entries = entries.to_vec();
        self.write(move |txn, def| {
            let mut table = txn.open_table(def)?;
            for (key, value) in &entries {
                table.insert((key_hash(key), key.as_str()), value.as_slice())?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        let keys = keys.to_vec();
        self.write(move |txn, def| {
            let mut table = txn.open_table(def)?;
            for key in &keys {
                table.remove((key_hash(key), key.as_str()))?;
            }
            Ok(())
        })
        .await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        also: &[crate::Change],
    ) -> Result<bool, KvError> {
        let key = key.to_owned();
        let expected = expected.map(<[u8]>::to_vec);
        let value = value.to_vec();
        let also = also.to_vec();
        self.write(move |txn, def| {
            let mut table = txn.open_table(def)?;
            let row = (key_hash(&key), key.as_str());
            let current = table.get(row)?.map(|v| v.value().to_vec());
            if current != expected {
                // Nothing written.
                return Ok(false);
            }
            for (k, v) in &also {
                match v {
                    Some(v) => table.insert((key_hash(k), k.as_str()), v.as_slice())?,
                    None => table.remove((key_hash(k), k.as_str()))?,
                };
            }
            table.insert(row, value.as_slice())?;
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::parse_counter;

    #[test]
    fn counters_parse_like_redis() {
        for (text, want) in [
            ("0", Some(0)),
            ("42", Some(42)),
            ("-7", Some(-7)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("", None),
            ("-", None),
            ("-0", None),
            ("007", None),
            ("+1", None),
            (" 1", None),
            ("1 ", None),
            ("1.0", None),
            ("abc", None),
        ] {
            assert_eq!(parse_counter(text.as_bytes()), want, "{text:?}");
        }
    }
}
