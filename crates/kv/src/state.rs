//! The bucket a stateful function opens for its state: one key's state of
//! one function, whatever holds it.
//!
//! - [`Keyed`]: the state lives in a shared store (the `external` and
//!   `edge` models); every operation goes through to it, under a prefix
//!   that is the function and the key, so two keys (or two functions)
//!   never see each other's entries.
//! - [`Held`]: the state is a map in memory that the caller loads and saves
//!   (the `function` model's actor, the `client` model's request); the
//!   guest's operations touch only the map.
//!
//! Both count the bytes of state that an invocation moved ([`Traffic`]).

use crate::{Bucket, KeyPage, KvError, Result, parse_counter};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes of state one invocation read and wrote: values (and counters as
/// their decimal text), not keys.
#[derive(Debug, Default)]
pub struct Traffic {
    read: AtomicU64,
    written: AtomicU64,
    trips: AtomicU64,
}

impl Traffic {
    /// Bytes read so far.
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Counts `n` bytes read.
    pub fn add_read(&self, n: usize) {
        self.read.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts `n` bytes written.
    pub fn add_written(&self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Operations that went to a shared store so far: its round trips.
    pub fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    fn trip(&self) {
        self.trips.fetch_add(1, Ordering::Relaxed);
    }
}

/// The prefix under which a shared store keeps `function`'s state of
/// `key`: `st/FUNCTION/KEY/`, with `%` and `/` of the key escaped, so no
/// key's prefix is another's.
pub fn state_prefix(function: &str, key: &str) -> String {
    let mut p = String::with_capacity(4 + function.len() + key.len() + 2);
    p.push_str("st/");
    p.push_str(function);
    p.push('/');
    for c in key.chars() {
        match c {
            '%' => p.push_str("%25"),
            '/' => p.push_str("%2F"),
            c => p.push(c),
        }
    }
    p.push('/');
    p
}

/// One key's state in a shared store.
pub struct Keyed {
    inner: Arc<dyn Bucket>,
    label: String,
    prefix: String,
    traffic: Arc<Traffic>,
}

impl Keyed {
    /// The state of `key` of `function` in `inner`, opened by the guest as
    /// `label`.
    pub fn new(
        inner: Arc<dyn Bucket>,
        label: &str,
        function: &str,
        key: &str,
        traffic: Arc<Traffic>,
    ) -> Keyed {
        Keyed {
            inner,
            label: label.to_string(),
            prefix: state_prefix(function, key),
            traffic,
        }
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    /// The home, for one more operation (a round trip) on it.
    fn home(&self) -> &Arc<dyn Bucket> {
        self.traffic.trip();
        &self.inner
    }
}

#[async_trait::async_trait]
impl Bucket for Keyed {
    fn label(&self) -> &str {
        &self.label
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let v = self.home().get(&self.key(key)).await?;
        self.traffic.add_read(v.as_ref().map_or(0, Vec::len));
        Ok(v)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.home().set(&self.key(key), value).await?;
        self.traffic.add_written(value.len());
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.home().delete(&self.key(key)).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.home().exists(&self.key(key)).await
    }

    /// One page of the store's listing with only this state's keys: a page
    /// may be empty while the cursor goes on.
    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage> {
        let page = self.home().list_keys(cursor).await?;
        Ok(KeyPage {
            keys: page
                .keys
                .into_iter()
                .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_string))
                .collect(),
            cursor: page.cursor,
        })
    }

    async fn increment(&self, key: &str, delta: u64) -> Result<u64> {
        let n = self.home().increment(&self.key(key), delta).await?;
        let len = n.to_string().len();
        self.traffic.add_read(len);
        self.traffic.add_written(len);
        Ok(n)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<(String, Vec<u8>)>>> {
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let got = self.home().get_many(&full).await?;
        Ok(got
            .into_iter()
            .zip(keys)
            .map(|(v, k)| {
                v.map(|(_, v)| {
                    self.traffic.add_read(v.len());
                    (k.clone(), v)
                })
            })
            .collect())
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<()> {
        let full: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(k, v)| (self.key(k), v.clone()))
            .collect();
        self.home().set_many(&full).await?;
        for (_, v) in entries {
            self.traffic.add_written(v.len());
        }
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        self.home().delete_many(&full).await
    }
}

/// Keys listed per page of a [`Held`] state.
const HELD_PAGE: usize = 256;

/// One key's state held in memory: loaded from where it lives before the
/// invocation, saved back after it when [`Held::changed`].
pub struct Held {
    label: String,
    map: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Most bytes of keys and values it may hold; `None`: no bound.
    limit: Option<u64>,
    changed: AtomicBool,
    traffic: Arc<Traffic>,
}

impl Held {
    /// `entries`, opened by the guest as `label`, bounded by `limit` bytes
    /// of keys and values.
    pub fn new(
        label: &str,
        entries: BTreeMap<String, Vec<u8>>,
        limit: Option<u64>,
        traffic: Arc<Traffic>,
    ) -> Held {
        Held {
            label: label.to_string(),
            map: Mutex::new(entries),
            limit,
            changed: AtomicBool::new(false),
            traffic,
        }
    }

    fn map(&self) -> MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the guest wrote or deleted anything.
    pub fn changed(&self) -> bool {
        self.changed.load(Ordering::Relaxed)
    }

    /// The entries now.
    pub fn entries(&self) -> BTreeMap<String, Vec<u8>> {
        self.map().clone()
    }

    /// Bytes of keys and values of `map`.
    pub fn size_of(map: &BTreeMap<String, Vec<u8>>) -> u64 {
        map.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
    }

    /// Applies `change` to the map if the result stays within the limit.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, Vec<u8>>) -> Result<T>,
    ) -> Result<T> {
        let mut map = self.map();
        let mut next = map.clone();
        let out = change(&mut next)?;
        if let Some(limit) = self.limit {
            let size = Held::size_of(&next);
            if size > limit {
                // The whole state, as the limit counts it.
                return Err(KvError::ValueTooLarge {
                    len: usize::try_from(size).unwrap_or(usize::MAX),
                    limit: usize::try_from(limit).unwrap_or(usize::MAX),
                });
            }
        }
        *map = next;
        self.changed.store(true, Ordering::Relaxed);
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Bucket for Held {
    fn label(&self) -> &str {
        &self.label
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.map().get(key).cloned())
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.update(|m| {
            m.insert(key.to_string(), value.to_vec());
            Ok(())
        })?;
        self.traffic.add_written(value.len());
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        if self.map().contains_key(key) {
            self.update(|m| {
                m.remove(key);
                Ok(())
            })?;
        }
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.map().contains_key(key))
    }

    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage> {
        let map = self.map();
        let from = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        let keys: Vec<String> = map.keys().skip(from).take(HELD_PAGE).cloned().collect();
        let next = from + keys.len();
        Ok(KeyPage {
            cursor: (next < map.len()).then_some(next as u64),
            keys,
        })
    }

    async fn increment(&self, key: &str, delta: u64) -> Result<u64> {
        let n = self.update(|m| {
            let now = match m.get(key) {
                Some(v) => parse_counter(v).ok_or_else(|| KvError::NotANumber {
                    key: key.to_string(),
                })?,
                None => 0,
            };
            let delta = i64::try_from(delta).map_err(|_| KvError::Overflow {
                key: key.to_string(),
            })?;
            let sum = now.checked_add(delta).ok_or_else(|| KvError::Overflow {
                key: key.to_string(),
            })?;
            m.insert(key.to_string(), sum.to_string().into_bytes());
            u64::try_from(sum).map_err(|_| KvError::Overflow {
                key: key.to_string(),
            })
        })?;
        self.traffic.add_written(n.to_string().len());
        Ok(n)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<(String, Vec<u8>)>>> {
        let map = self.map();
        Ok(keys
            .iter()
            .map(|k| map.get(k).map(|v| (k.clone(), v.clone())))
            .collect())
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<()> {
        self.update(|m| {
            for (k, v) in entries {
                m.insert(k.clone(), v.clone());
            }
            Ok(())
        })?;
        for (_, v) in entries {
            self.traffic.add_written(v.len());
        }
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.update(|m| {
            for k in keys {
                m.remove(k);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_escape_the_key_so_none_is_another_s() {
        assert_eq!(state_prefix("count", "alice"), "st/count/alice/");
        assert_eq!(state_prefix("count", "a/b"), "st/count/a%2Fb/");
        assert_eq!(state_prefix("count", "a%2Fb"), "st/count/a%252Fb/");
        assert_ne!(state_prefix("count", "a/b"), state_prefix("count", "a%2Fb"));
    }

    #[tokio::test]
    async fn held_state_is_bounded_counts_what_it_wrote_and_says_if_it_changed() {
        let traffic = Arc::new(Traffic::default());
        let h = Held::new("state", BTreeMap::new(), Some(16), traffic.clone());
        assert!(!h.changed());
        assert_eq!(h.increment("n", 41).await.unwrap(), 41);
        assert_eq!(h.increment("n", 1).await.unwrap(), 42);
        assert_eq!(h.get("n").await.unwrap(), Some(b"42".to_vec()));
        assert!(h.changed());
        let e = h.set("big", &[0; 32]).await.unwrap_err().to_string();
        assert!(e.contains("exceeds the limit of 16 bytes"), "{e}");
        // The refused write left the state as it was.
        assert_eq!(h.entries().len(), 1);
        assert_eq!(traffic.written(), 4);
        h.set("a", b"1").await.unwrap();
        let page = h.list_keys(None).await.unwrap();
        assert_eq!(page.keys, vec!["a".to_string(), "n".to_string()]);
        assert_eq!(page.cursor, None);
    }
}
