//! The `function` state model: the state of a key lives in this node's
//! memory, as an actor. One writer: the key's invocations take turns, in
//! arrival order (a fair lock per key). A turn runs on a copy of the
//! state; when the sandbox ends well and the state changed, the new state
//! is checkpointed, durably, before the response goes out, and becomes the
//! actor's; a failed turn leaves the state as it was.
//!
//! A checkpoint writes only what the turn changed: each entry is its own
//! record, `ac/FUNCTION/KEY/e/HASH` (the first 16 bytes of the SHA-256 of
//! its key, in hex) holding its value (so any value the store takes fits);
//! the head `ac/FUNCTION/KEY/` lists the keys. A turn's changed entries, and the head
//! when the set of keys changed, are written in one batch (atomic on the
//! node's embedded store); records of deleted entries are removed after it
//! (until then they are garbage the head no longer names). An actor not in
//! memory is loaded from its checkpoint at its first turn.

use crate::error::{Error, Result};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::OwnedMutexGuard;
use weft_kv::{Bucket, Held, Traffic, state_prefix};

/// What a head starts with.
const HEAD_MAGIC: &[u8] = b"weft-actor-1\n";
/// Most bytes of keys and values an actor may hold.
pub const MAX_ACTOR_STATE: u64 = 64 << 20;
/// Actors kept in memory before idle ones are let go (their checkpoints
/// hold them; the next turn loads them again).
const MAX_LIVE: usize = 10_000;

type State = BTreeMap<String, Vec<u8>>;

/// One key's actor: its state once loaded, behind its turn.
type Actor = Arc<tokio::sync::Mutex<Option<State>>>;

/// The actors of this node.
pub(crate) struct Actors {
    store: Arc<dyn Bucket>,
    live: Mutex<HashMap<(String, String), Actor>>,
}

fn head(function: &str, key: &str) -> String {
    format!(
        "ac/{}",
        state_prefix(function, key).trim_start_matches("st/")
    )
}

/// `state` as bytes.
fn encode(state: &State) -> Vec<u8> {
    let mut out = Vec::with_capacity(Held::size_of(state) as usize + 8 * state.len());
    for (k, v) in state {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// The state `bytes` encode, or `None` when they are not one.
fn decode(mut bytes: &[u8]) -> Option<State> {
    let mut state = State::new();
    let take = |b: &mut &[u8]| -> Option<Vec<u8>> {
        let (len, rest) = b.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        let (v, rest) = rest.split_at(len);
        *b = rest;
        Some(v.to_vec())
    };
    while !bytes.is_empty() {
        let k = String::from_utf8(take(&mut bytes)?).ok()?;
        let v = take(&mut bytes)?;
        state.insert(k, v);
    }
    Some(state)
}

impl Actors {
    pub(crate) fn new(store: Arc<dyn Bucket>) -> Self {
        Actors {
            store,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for `key`'s turn (after every invocation of it that arrived
    /// earlier), at most `wait`, loads its state if it is not in memory,
    /// and opens a copy for the guest as `label`.
    pub(crate) async fn turn(
        &self,
        function: &str,
        key: &str,
        label: &str,
        traffic: Arc<Traffic>,
        wait: std::time::Duration,
    ) -> Result<Turn> {
        let actor = {
            let mut live = self.live.lock();
            if live.len() >= MAX_LIVE {
                // Idle: nobody holds or waits for it (the map's own handle
                // is the only one).
                live.retain(|_, a| Arc::strong_count(a) > 1);
            }
            live.entry((function.to_string(), key.to_string()))
                .or_default()
                .clone()
        };
        let mut guard = tokio::time::timeout(wait, actor.lock_owned())
            .await
            .map_err(|_| Error::QueueTimeout {
                name: function.to_string(),
                waited: wait,
            })?;
        let head = head(function, key);
        if guard.is_none() {
            *guard = Some(self.load(function, key, &head).await?);
        }
        let state = guard.as_ref().cloned().unwrap_or_default();
        Ok(Turn {
            held: Arc::new(Held::new(label, state, Some(MAX_ACTOR_STATE), traffic)),
            guard,
            store: self.store.clone(),
            head,
        })
    }

    async fn load(&self, function: &str, key: &str, head: &str) -> Result<State> {
        let corrupt = |why: &str| {
            Error::Internal(format!(
                "the checkpoint of function `{function}`, key `{key}`: {why}"
            ))
        };
        let read = |e: weft_kv::KvError| corrupt(&format!("reading it: {e}"));
        let Some(listed) = self.store.get(head).await.map_err(read)? else {
            return Ok(State::new());
        };
        let keys = listed
            .strip_prefix(HEAD_MAGIC)
            .and_then(decode)
            .ok_or_else(|| corrupt("its head does not decode"))?;
        let records: Vec<String> = keys.keys().map(|k| record(head, k)).collect();
        let mut state = State::new();
        for (k, got) in keys
            .into_keys()
            .zip(self.store.get_many(&records).await.map_err(read)?)
        {
            let (_, v) = got.ok_or_else(|| corrupt(&format!("the entry `{k}` is missing")))?;
            state.insert(k, v);
        }
        Ok(state)
    }
}

/// The record of entry `k` under `head`.
fn record(head: &str, k: &str) -> String {
    let hash = Sha256::digest(k.as_bytes());
    format!("{head}e/{}", hex::encode(&hash[..16]))
}

/// One invocation's turn at its key's actor: it holds the key until it is
/// checkpointed or dropped.
pub struct Turn {
    pub(crate) held: Arc<Held>,
    guard: OwnedMutexGuard<Option<State>>,
    store: Arc<dyn Bucket>,
    head: String,
}

impl Turn {
    /// The sandbox ended well: what it changed is checkpointed, and the
    /// state becomes the actor's.
    pub async fn checkpoint(mut self) -> Result<()> {
        let touched = self.held.touched();
        if touched.is_empty() {
            return Ok(());
        }
        let before = self.guard.as_ref();
        let keys_changed = touched
            .iter()
            .any(|(k, v)| v.is_some() != before.is_some_and(|b| b.contains_key(k)));
        let state = self.held.entries();
        let mut writes = Vec::new();
        let mut removed = Vec::new();
        for (k, v) in touched {
            match v {
                Some(v) => writes.push((record(&self.head, &k), v)),
                None => removed.push(record(&self.head, &k)),
            }
        }
        if keys_changed {
            let keys: State = state.keys().map(|k| (k.clone(), Vec::new())).collect();
            let mut head = HEAD_MAGIC.to_vec();
            head.extend_from_slice(&encode(&keys));
            writes.push((self.head.clone(), head));
        }
        let failed =
            |e: weft_kv::KvError| Error::Internal(format!("checkpointing {}: {e}", self.head));
        if !writes.is_empty() {
            self.store.set_many(&writes).await.map_err(failed)?;
        }
        *self.guard = Some(state);
        if !removed.is_empty()
            && let Err(e) = self.store.delete_many(&removed).await
        {
            // The head no longer names them: garbage, not state.
            tracing::warn!("removing deleted entries of {}: {e}", self.head);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_encode_and_decode_and_garbage_does_not() {
        let mut s = State::new();
        s.insert("count".into(), b"41".to_vec());
        s.insert("".into(), vec![]);
        s.insert("blob".into(), vec![7; 1000]);
        assert_eq!(decode(&encode(&s)), Some(s));
        assert_eq!(decode(&[0, 0, 0, 9, b'a']), None);
        assert_eq!(decode(&[]), Some(State::new()));
    }

    #[tokio::test]
    async fn checkpoints_write_what_changed_and_a_restart_loads_the_latest() {
        // Any store will do: an in-memory one stands for the node's file.
        let store: Arc<dyn Bucket> =
            Arc::new(Held::new("weft.state", State::new(), None, Arc::default()));
        async fn turn(actors: &Actors) -> Turn {
            actors
                .turn(
                    "f",
                    "k/1",
                    "state",
                    Arc::default(),
                    std::time::Duration::from_secs(5),
                )
                .await
                .unwrap()
        }
        let a = Actors::new(store.clone());
        let t = turn(&a).await;
        t.held.set("a", b"1").await.unwrap();
        t.held.set("b", &[7; 2000]).await.unwrap();
        t.checkpoint().await.unwrap();
        // A turn that fails leaves nothing.
        let t = turn(&a).await;
        t.held.set("a", b"lost").await.unwrap();
        drop(t);
        assert_eq!(
            turn(&a).await.held.get("a").await.unwrap(),
            Some(b"1".to_vec())
        );
        // As after a restart: another process, the same store.
        let b = Actors::new(store.clone());
        let t = turn(&b).await;
        assert_eq!(t.held.entries().len(), 2);
        t.held.delete("a").await.unwrap();
        t.held.set("c", b"3").await.unwrap();
        t.checkpoint().await.unwrap();
        let records = store.list_keys(None).await.unwrap().keys;
        assert_eq!(records.len(), 3, "the head and two entries: {records:?}");
        let c = Actors::new(store);
        let keys: Vec<String> = turn(&c).await.held.entries().into_keys().collect();
        assert_eq!(keys, ["b", "c"]);
    }
}
