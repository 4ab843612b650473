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
use std::sync::atomic::{AtomicU64, Ordering};
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

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        also: &[crate::Change],
    ) -> Result<bool> {
        let full: Vec<crate::Change> = also.iter().map(|(k, v)| (self.key(k), v.clone())).collect();
        let done = self
            .home()
            .compare_and_set(&self.key(key), expected, value, &full)
            .await?;
        self.traffic.add_read(expected.map_or(0, <[u8]>::len));
        if done {
            self.traffic.add_written(written(value, also));
        }
        Ok(done)
    }
}

/// Bytes a compare-and-set writes.
fn written(value: &[u8], also: &[crate::Change]) -> usize {
    value.len()
        + also
            .iter()
            .filter_map(|(_, v)| v.as_ref())
            .map(Vec::len)
            .sum::<usize>()
}

/// Keys listed per page of a [`Held`] state.
const HELD_PAGE: usize = 256;

/// One key's state held in memory: loaded from where it lives before the
/// invocation, saved back after it when [`Held::changed`] (all of it, or
/// only [`Held::touched`] entries).
pub struct Held {
    label: String,
    inner: Mutex<HeldInner>,
    /// Most bytes of keys and values it may hold; `None`: no bound.
    limit: Option<u64>,
    traffic: Arc<Traffic>,
}

struct HeldInner {
    map: BTreeMap<String, Vec<u8>>,
    /// Bytes of keys and values in `map`.
    size: u64,
    /// Keys written or deleted since it was opened.
    touched: std::collections::BTreeSet<String>,
}

fn entry_size(k: &str, v: &[u8]) -> u64 {
    (k.len() + v.len()) as u64
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
            inner: Mutex::new(HeldInner {
                size: Held::size_of(&entries),
                map: entries,
                touched: Default::default(),
            }),
            limit,
            traffic,
        }
    }

    fn inner(&self) -> MutexGuard<'_, HeldInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the guest wrote or deleted anything.
    pub fn changed(&self) -> bool {
        !self.inner().touched.is_empty()
    }

    /// The entries now.
    pub fn entries(&self) -> BTreeMap<String, Vec<u8>> {
        self.inner().map.clone()
    }

    /// The keys written or deleted, with their value now (`None`: deleted).
    pub fn touched(&self) -> Vec<(String, Option<Vec<u8>>)> {
        let inner = self.inner();
        inner
            .touched
            .iter()
            .map(|k| (k.clone(), inner.map.get(k).cloned()))
            .collect()
    }

    /// Bytes of keys and values of `map`.
    pub fn size_of(map: &BTreeMap<String, Vec<u8>>) -> u64 {
        map.iter().map(|(k, v)| entry_size(k, v)).sum()
    }

    /// Writes `puts` and removes `removes`, all or nothing: nothing if the
    /// state would grow past its limit.
    fn apply(&self, puts: &[(&str, Vec<u8>)], removes: &[&str]) -> Result<()> {
        self.apply_to(&mut self.inner(), puts, removes)
    }

    /// [`Held::apply`] under a lock already taken.
    fn apply_to(
        &self,
        inner: &mut HeldInner,
        puts: &[(&str, Vec<u8>)],
        removes: &[&str],
    ) -> Result<()> {
        // The batch as it ends: a repeated key takes its last value.
        let mut batch: BTreeMap<&str, Option<&[u8]>> = BTreeMap::new();
        for (k, v) in puts {
            batch.insert(k, Some(v.as_slice()));
        }
        for k in removes {
            batch.insert(k, None);
        }
        let mut size = inner.size;
        for (k, v) in &batch {
            if let Some(old) = inner.map.get(*k) {
                size -= entry_size(k, old);
            }
            if let Some(v) = v {
                size += entry_size(k, v);
            }
        }
        if let Some(limit) = self.limit
            && size > limit
        {
            // The whole state, as the limit counts it.
            return Err(KvError::ValueTooLarge {
                len: usize::try_from(size).unwrap_or(usize::MAX),
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            });
        }
        for (k, v) in batch {
            match v {
                Some(v) => inner.map.insert(k.to_string(), v.to_vec()),
                None => inner.map.remove(k),
            };
            inner.touched.insert(k.to_string());
        }
        inner.size = size;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Bucket for Held {
    fn label(&self) -> &str {
        &self.label
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.inner().map.get(key).cloned())
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.apply(&[(key, value.to_vec())], &[])?;
        self.traffic.add_written(value.len());
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        if self.inner().map.contains_key(key) {
            self.apply(&[], &[key])?;
        }
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.inner().map.contains_key(key))
    }

    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage> {
        let inner = self.inner();
        let from = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        let keys: Vec<String> = inner
            .map
            .keys()
            .skip(from)
            .take(HELD_PAGE)
            .cloned()
            .collect();
        let next = from + keys.len();
        Ok(KeyPage {
            cursor: (next < inner.map.len()).then_some(next as u64),
            keys,
        })
    }

    async fn increment(&self, key: &str, delta: u64) -> Result<u64> {
        let overflow = || KvError::Overflow {
            key: key.to_string(),
        };
        let now = match self.inner().map.get(key) {
            Some(v) => parse_counter(v).ok_or_else(|| KvError::NotANumber {
                key: key.to_string(),
            })?,
            None => 0,
        };
        let sum = now
            .checked_add(i64::try_from(delta).map_err(|_| overflow())?)
            .ok_or_else(overflow)?;
        let text = sum.to_string();
        self.apply(&[(key, text.clone().into_bytes())], &[])?;
        self.traffic.add_written(text.len());
        u64::try_from(sum).map_err(|_| overflow())
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<(String, Vec<u8>)>>> {
        let inner = self.inner();
        Ok(keys
            .iter()
            .map(|k| inner.map.get(k).map(|v| (k.clone(), v.clone())))
            .collect())
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<()> {
        let puts: Vec<(&str, Vec<u8>)> = entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        self.apply(&puts, &[])?;
        for (_, v) in entries {
            self.traffic.add_written(v.len());
        }
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let present: Vec<&str> = {
            let inner = self.inner();
            keys.iter()
                .map(String::as_str)
                .filter(|k| inner.map.contains_key(*k))
                .collect()
        };
        self.apply(&[], &present)
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        also: &[crate::Change],
    ) -> Result<bool> {
        let mut inner = self.inner();
        if inner.map.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        let (sets, dels) = crate::last_changes(also);
        let mut puts: Vec<(&str, Vec<u8>)> =
            sets.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        puts.push((key, value.to_vec()));
        let removes: Vec<&str> = dels.iter().map(String::as_str).collect();
        self.apply_to(&mut inner, &puts, &removes)?;
        drop(inner);
        self.traffic.add_written(written(value, also));
        Ok(true)
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
        // What changed, for a checkpoint of only that.
        h.delete("a").await.unwrap();
        let touched: Vec<String> = h.touched().into_iter().map(|(k, _)| k).collect();
        assert_eq!(touched, ["a", "n"]);
        assert_eq!(h.touched()[0].1, None);
        // A batch past the limit changes nothing.
        let big = vec![
            ("x".to_string(), vec![0; 10]),
            ("y".to_string(), vec![0; 10]),
        ];
        assert!(h.set_many(&big).await.is_err());
        assert_eq!(h.entries().len(), 1);
    }
}
