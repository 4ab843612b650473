//! The `function` state model: the state of a key lives in this node's
//! memory, as an actor. One writer: the key's invocations take turns, in
//! arrival order (a fair lock per key). A turn runs on a copy of the
//! state; when the sandbox ends well and the state changed, the new state
//! is checkpointed, durably, before the response goes out, and becomes the
//! actor's; a failed turn leaves the state as it was.
//!
//! A checkpoint is the whole state, encoded (`u32` length-prefixed keys and
//! values), in chunks of at most [`CHUNK`] bytes under `ac/FUNCTION/KEY/N`
//! plus a head `ac/FUNCTION/KEY/` holding the count, written in one batch
//! (atomic on the node's embedded store). An actor not in memory is loaded
//! from its checkpoint at its first turn.

use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::OwnedMutexGuard;
use weft_kv::{Bucket, Held, Traffic, state_prefix};

/// Largest checkpoint value.
const CHUNK: usize = 512 << 10;
/// Most bytes of keys and values an actor may hold.
pub const MAX_ACTOR_STATE: u64 = 64 << 20;

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
    /// earlier), loads its state if it is not in memory, and opens a copy
    /// for the guest as `label`.
    pub(crate) async fn turn(
        &self,
        function: &str,
        key: &str,
        label: &str,
        traffic: Arc<Traffic>,
    ) -> Result<Turn> {
        let actor = self
            .live
            .lock()
            .entry((function.to_string(), key.to_string()))
            .or_default()
            .clone();
        let mut guard = actor.lock_owned().await;
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
        let Some(count) = self.store.get(head).await.map_err(read)? else {
            return Ok(State::new());
        };
        let count: usize = std::str::from_utf8(&count)
            .ok()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| corrupt("its head is not a count"))?;
        let keys: Vec<String> = (0..count).map(|i| format!("{head}{i}")).collect();
        let mut bytes = Vec::new();
        for chunk in self.store.get_many(&keys).await.map_err(read)? {
            let (_, v) = chunk.ok_or_else(|| corrupt("a chunk is missing"))?;
            bytes.extend_from_slice(&v);
        }
        decode(&bytes).ok_or_else(|| corrupt("it does not decode"))
    }
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
    /// The sandbox ended well: its state, if it changed, is checkpointed
    /// and becomes the actor's.
    pub async fn checkpoint(mut self) -> Result<()> {
        if !self.held.changed() {
            return Ok(());
        }
        let state = self.held.entries();
        let bytes = encode(&state);
        let mut entries: Vec<(String, Vec<u8>)> = bytes
            .chunks(CHUNK)
            .enumerate()
            .map(|(i, c)| (format!("{}{i}", self.head), c.to_vec()))
            .collect();
        entries.push((self.head.clone(), entries.len().to_string().into_bytes()));
        self.store
            .set_many(&entries)
            .await
            .map_err(|e| Error::Internal(format!("checkpointing {}: {e}", self.head)))?;
        *self.guard = Some(state);
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
}
