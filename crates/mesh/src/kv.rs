//! A key-value store kept in the fabric's JetStream: bucket
//! `weft-kv-<label>`, shared by every node whose config maps the label to
//! `backend = "fabric"`.
//!
//! Keys are stored as `k` + hex (guest keys are any UTF-8; JetStream keys are
//! a restricted alphabet). Listing pages by the same 64-bit key hash as the
//! embedded store, so a key present for the whole listing comes exactly
//! once. `increment` is a compare-and-set loop on the key's revision. Batch
//! writes are applied key by key: JetStream 2.9 has no multi-key
//! transaction, so `set_many`/`delete_many` are not atomic on this backend.

use crate::mesh::Mesh;
use async_nats::jetstream::kv;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use weft_kv::{Bucket, KeyPage, KvError};

/// Keys per page of a listing.
const PAGE: usize = 1000;
/// Longest a store operation may take (while NATS is unreachable, every
/// operation fails after this long).
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// Operations of one batch in flight at once.
const IN_FLIGHT: usize = 32;
/// Compare-and-set attempts of one increment.
const CAS_ATTEMPTS: usize = 64;

/// A guest key as a JetStream key: `k` and its bytes in hex (never empty,
/// only `[0-9a-fk]`).
fn encode_key(key: &str) -> String {
    format!("k{}", hex::encode(key))
}

fn decode_key(stored: &str) -> Option<String> {
    let bytes = hex::decode(stored.strip_prefix('k')?).ok()?;
    String::from_utf8(bytes).ok()
}

/// One fabric store.
/// The fabric's key-value store `label` (JetStream bucket `weft-kv-<label>`),
/// shared by every node that maps the label to it.
pub fn kv_bucket(mesh: &Arc<Mesh>, label: &str) -> Arc<dyn Bucket> {
    Arc::new(FabricBucket::new(mesh.clone(), label))
}

pub(crate) struct FabricBucket {
    label: String,
    bucket: String,
    mesh: Arc<Mesh>,
    store: tokio::sync::Mutex<Option<kv::Store>>,
}

impl FabricBucket {
    pub(crate) fn new(mesh: Arc<Mesh>, label: &str) -> Self {
        FabricBucket {
            label: label.to_owned(),
            bucket: format!("weft-kv-{label}"),
            mesh,
            store: tokio::sync::Mutex::new(None),
        }
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> KvError {
        KvError::Unavailable {
            store: self.label.clone(),
            message: format!("fabric bucket {}: {e}", self.bucket),
        }
    }

    async fn store(&self) -> Result<kv::Store, KvError> {
        let mut slot = self.store.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let store = crate::mesh::open_kv_bucket(
            self.mesh.jetstream(),
            &self.bucket,
            &format!("Weft key-value store `{}`", self.label),
        )
        .await
        .map_err(|e| self.unavailable(e))?;
        *slot = Some(store.clone());
        Ok(store)
    }

    /// Runs `op` on the store within [`OP_TIMEOUT`].
    async fn with<T, F, Fut>(&self, op: F) -> Result<T, KvError>
    where
        F: FnOnce(kv::Store) -> Fut,
        Fut: std::future::Future<Output = Result<T, KvError>>,
    {
        let run = async { op(self.store().await?).await };
        tokio::time::timeout(OP_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| Err(self.unavailable(format!("no answer within {OP_TIMEOUT:?}"))))
    }

    async fn get_raw(&self, store: &kv::Store, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        store
            .get(encode_key(key))
            .await
            .map(|v| v.map(|b| b.to_vec()))
            .map_err(|e| self.unavailable(e))
    }
}

impl FabricBucket {
    /// Reads `key` and writes what `next` makes of its value (`None`: not
    /// set) at the revision read; reads again when another writer came in
    /// between, up to [`CAS_ATTEMPTS`] times. `next` answering `None`
    /// writes nothing: the answer is `None` then, else `next`'s `T`.
    async fn read_modify_write<T>(
        &self,
        key: &str,
        mut next: impl FnMut(Option<&[u8]>) -> Result<Option<(bytes::Bytes, T)>, KvError> + Send,
    ) -> Result<Option<T>, KvError>
    where
        T: Send,
    {
        self.with(|s| async move {
            let k = encode_key(key);
            for _ in 0..CAS_ATTEMPTS {
                let entry = s.entry(k.clone()).await.map_err(|e| self.unavailable(e))?;
                let (current, revision) = match &entry {
                    Some(e) if e.operation == kv::Operation::Put => {
                        (Some(e.value.as_ref()), Some(e.revision))
                    }
                    Some(e) => (None, Some(e.revision)),
                    None => (None, None),
                };
                let Some((value, out)) = next(current)? else {
                    return Ok(None);
                };
                let lost = match revision {
                    Some(r) => match s.update(&k, value, r).await {
                        Ok(_) => false,
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => true,
                        Err(e) => return Err(self.unavailable(e)),
                    },
                    None => match s.create(&k, value).await {
                        Ok(_) => false,
                        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => true,
                        Err(e) => return Err(self.unavailable(e)),
                    },
                };
                if !lost {
                    return Ok(Some(out));
                }
            }
            Err(self.unavailable(format!("`{key}` changed concurrently {CAS_ATTEMPTS} times")))
        })
        .await
    }

    async fn get_pair(
        &self,
        store: &kv::Store,
        key: &str,
    ) -> Result<Option<(String, Vec<u8>)>, KvError> {
        Ok(self.get_raw(store, key).await?.map(|v| (key.to_owned(), v)))
    }
}

#[async_trait::async_trait]
impl Bucket for FabricBucket {
    fn label(&self) -> &str {
        &self.label
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.with(|s| async move { self.get_raw(&s, key).await })
            .await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let value = bytes::Bytes::copy_from_slice(value);
        self.with(|s| async move {
            s.put(encode_key(key), value)
                .await
                .map(|_| ())
                .map_err(|e| self.unavailable(e))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.with(|s| async move {
            s.delete(encode_key(key))
                .await
                .map_err(|e| self.unavailable(e))
        })
        .await
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.get(key).await?.is_some())
    }

    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        self.with(|s| async move {
            let mut keys = s.keys().await.map_err(|e| self.unavailable(e))?;
            let mut all = Vec::new();
            while let Some(k) = keys.next().await {
                let k = k.map_err(|e| self.unavailable(e))?;
                let Some(key) = decode_key(&k) else {
                    continue;
                };
                let h = weft_kv::key_hash(&key);
                if cursor.is_none_or(|c| h > c) {
                    all.push((h, key));
                }
            }
            all.sort();
            // A page ends between two hashes, never inside one: a cursor
            // resumes after a whole hash.
            let mut end = all.len().min(PAGE);
            while end < all.len() && end > 0 && all[end].0 == all[end - 1].0 {
                end += 1;
            }
            let more = end < all.len();
            let next = if more {
                all.get(end - 1).map(|(h, _)| *h)
            } else {
                None
            };
            Ok(KeyPage {
                keys: all.into_iter().take(end).map(|(_, k)| k).collect(),
                cursor: next,
            })
        })
        .await
    }

    async fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError> {
        let overflow = || KvError::Overflow {
            key: key.to_owned(),
        };
        let delta = i64::try_from(delta).map_err(|_| overflow())?;
        let sum = self
            .read_modify_write(key, |current| {
                let n = match current {
                    Some(v) => weft_kv::parse_counter(v).ok_or_else(|| KvError::NotANumber {
                        key: key.to_owned(),
                    })?,
                    None => 0,
                };
                let sum = n.checked_add(delta).ok_or_else(overflow)?;
                Ok(Some((bytes::Bytes::from(sum.to_string()), sum)))
            })
            .await?;
        sum.and_then(|s| u64::try_from(s).ok()).ok_or_else(overflow)
    }

    /// Up to [`IN_FLIGHT`] reads at once: over a slow link a batch
    /// costs about one round trip, not one per key.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        self.with(|s| async move {
            let mut out = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(IN_FLIGHT) {
                let reads = chunk.iter().map(|k| self.get_pair(&s, k));
                out.extend(futures::future::try_join_all(reads).await?);
            }
            Ok(out)
        })
        .await
    }

    /// Up to [`IN_FLIGHT`] writes at once (a repeated key written once,
    /// with its last value).
    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        let last: std::collections::BTreeMap<&str, &[u8]> = entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let writes: Vec<(&str, &[u8])> = last.into_iter().collect();
        for chunk in writes.chunks(IN_FLIGHT) {
            futures::future::try_join_all(chunk.iter().map(|(k, v)| self.set(k, v))).await?;
        }
        Ok(())
    }

    /// Up to [`IN_FLIGHT`] removals at once.
    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        for chunk in keys.chunks(IN_FLIGHT) {
            futures::future::try_join_all(chunk.iter().map(|k| self.delete(k))).await?;
        }
        Ok(())
    }

    /// `also` first (no multi-key transaction here), then `key` on the
    /// revision its expected value was read at.
    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        also: &[weft_kv::Change],
    ) -> Result<bool, KvError> {
        let (sets, dels) = weft_kv::last_changes(also);
        self.set_many(&sets).await?;
        self.delete_many(&dels).await?;
        let done = self
            .read_modify_write(key, |current| {
                Ok((current == expected).then(|| (bytes::Bytes::copy_from_slice(value), ())))
            })
            .await?;
        Ok(done.is_some())
    }
}
