//! The `function` state model: the state of a key lives in one node's
//! memory, as an actor. One writer: the key's invocations take turns, in
//! arrival order (a fair lock per key). A turn runs on a copy of the
//! state; when the sandbox ends well and the state changed, the new state
//! is checkpointed, durably, before the response goes out, and becomes the
//! actor's; a failed turn leaves the state as it was.
//!
//! A checkpoint writes only what the turn changed. Each entry is its own
//! record, `ac/FUNCTION/KEY/e/HASH/GEN.WRITER` (HASH: the first 16 bytes of
//! the SHA-256 of its key, in hex; GEN: the generation that wrote it;
//! WRITER: the node's id and a nonce of this start of it), so any
//! value the store takes fits; the head `ac/FUNCTION/KEY/` holds the
//! generation and, per key, the generation of its record. A turn writes its
//! changed entries as new records and the head with a compare-and-set on
//! the head it loaded: on the node's embedded store in one transaction, on
//! a shared store (JetStream) records first, the head last, so a record
//! counts only once a head names it. A writer whose compare-and-set fails
//! has lost the key to another node (the key's owner changed while it ran):
//! its turn fails with `state_conflict`, keeps nothing, and its copy is
//! dropped. Records a new head no longer names are removed after it.
//!
//! An actor not in memory is loaded from its checkpoint at its first turn.
//! When the fabric's membership changes (ownership may have moved and come
//! back), the next turn of each actor first checks that the head is still
//! the one it loaded, and loads it again if not.

use crate::error::{Error, Result};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::OwnedMutexGuard;
use weft_codes::Code;
use weft_kv::{Bucket, Held, Traffic, state_prefix};

/// What a head starts with.
const HEAD_MAGIC: &[u8] = b"weft-actor-2\n";
/// Most bytes of keys and values an actor may hold.
pub const MAX_ACTOR_STATE: u64 = 64 << 20;
/// Actors kept in memory before idle ones are let go (their checkpoints
/// hold them; the next turn loads them again).
const MAX_LIVE: usize = 10_000;
/// Loads of a checkpoint that changed under the reader before it gives up.
const LOAD_ATTEMPTS: usize = 4;

type State = BTreeMap<String, Vec<u8>>;

/// An actor's state as it was loaded or last checkpointed.
struct Loaded {
    state: State,
    /// What its head says.
    head: Head,
    /// The head's bytes (`None`: there was none).
    bytes: Option<Vec<u8>>,
    /// The membership epoch it was loaded or checked in.
    epoch: u64,
}

/// One key's actor: its state once loaded, behind its turn.
type Actor = Arc<tokio::sync::Mutex<Option<Loaded>>>;

/// The actors of this node.
pub(crate) struct Actors {
    store: Arc<dyn Bucket>,
    /// This node's id, in the names of the records it writes.
    writer: String,
    live: Mutex<HashMap<(String, String), Actor>>,
    /// Bumped when the fabric's membership changes.
    epoch: AtomicU64,
}

fn head(function: &str, key: &str) -> String {
    format!(
        "ac/{}",
        state_prefix(function, key).trim_start_matches("st/")
    )
}

/// Length-prefixed pairs: `state` as bytes.
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

/// What a head says.
#[derive(Debug, Default, PartialEq)]
struct Head {
    generation: u64,
    /// Each entry's record, under the head's key.
    records: BTreeMap<String, String>,
    /// Records no head names any more, that the next checkpoint removes.
    garbage: Vec<String>,
}

impl Head {
    fn encode(&self) -> Vec<u8> {
        let records: State = self
            .records
            .iter()
            .map(|(k, r)| (k.clone(), r.as_bytes().to_vec()))
            .collect();
        let records = encode(&records);
        let garbage: State = self
            .garbage
            .iter()
            .map(|r| (r.clone(), Vec::new()))
            .collect();
        let mut out = HEAD_MAGIC.to_vec();
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&(records.len() as u32).to_be_bytes());
        out.extend_from_slice(&records);
        out.extend_from_slice(&encode(&garbage));
        out
    }

    fn decode(bytes: &[u8]) -> Option<Head> {
        let (generation, rest) = bytes.strip_prefix(HEAD_MAGIC)?.split_first_chunk::<8>()?;
        let (len, rest) = rest.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        let (records, garbage) = rest.split_at(len);
        let records = decode(records)?
            .into_iter()
            .map(|(k, r)| Some((k, String::from_utf8(r).ok()?)))
            .collect::<Option<_>>()?;
        Some(Head {
            generation: u64::from_be_bytes(*generation),
            records,
            garbage: decode(garbage)?.into_keys().collect(),
        })
    }
}

impl Actors {
    pub(crate) fn new(store: Arc<dyn Bucket>, writer: &str) -> Self {
        Actors {
            store,
            writer: writer.to_string(),
            live: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        }
    }

    /// The store of the checkpoints.
    pub(crate) fn home(&self) -> &str {
        self.store.label()
    }

    /// The fabric's membership changed: a key this node holds may have had
    /// another owner meanwhile, so each actor checks its checkpoint at its
    /// next turn.
    pub(crate) fn membership_changed(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Waits for `key`'s turn (after every invocation of it that arrived
    /// earlier), at most `wait`, loads its state if it is not in memory (or
    /// may be stale), and opens a copy for the guest as `label`.
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
        let epoch = self.epoch.load(Ordering::Acquire);
        if let Some(loaded) = guard.as_mut()
            && loaded.epoch != epoch
        {
            let now =
                self.store.get(&head).await.map_err(|e| {
                    Error::Internal(format!("checking the checkpoint of {head}: {e}"))
                })?;
            if now == loaded.bytes {
                loaded.epoch = epoch;
            } else {
                *guard = None;
            }
        }
        if guard.is_none() {
            *guard = Some(self.load(function, key, &head, epoch).await?);
        }
        let state = guard.as_ref().map(|l| l.state.clone()).unwrap_or_default();
        Ok(Turn {
            held: Arc::new(Held::new(label, state, Some(MAX_ACTOR_STATE), traffic)),
            guard,
            store: self.store.clone(),
            writer: self.writer.clone(),
            function: function.to_string(),
            key: key.to_string(),
            head,
        })
    }

    async fn load(&self, function: &str, key: &str, head: &str, epoch: u64) -> Result<Loaded> {
        let corrupt = |why: &str| {
            Error::Internal(format!(
                "the checkpoint of function `{function}`, key `{key}`: {why}"
            ))
        };
        let read = |e: weft_kv::KvError| corrupt(&format!("reading it: {e}"));
        for _ in 0..LOAD_ATTEMPTS {
            let Some(bytes) = self.store.get(head).await.map_err(read)? else {
                return Ok(Loaded {
                    state: State::new(),
                    head: Head::default(),
                    bytes: None,
                    epoch,
                });
            };
            let decoded =
                Head::decode(&bytes).ok_or_else(|| corrupt("its head does not decode"))?;
            let records: Vec<String> = decoded
                .records
                .values()
                .map(|r| format!("{head}{r}"))
                .collect();
            let got = self.store.get_many(&records).await.map_err(read)?;
            if got.iter().any(Option::is_none) {
                // A newer head replaced this one and its records were
                // removed meanwhile: read the newer one.
                continue;
            }
            let state = decoded
                .records
                .keys()
                .cloned()
                .zip(got.into_iter().flatten().map(|(_, v)| v))
                .collect();
            return Ok(Loaded {
                state,
                head: decoded,
                bytes: Some(bytes),
                epoch,
            });
        }
        Err(corrupt(&format!(
            "entries its head names are missing ({LOAD_ATTEMPTS} reads)"
        )))
    }
}

/// The record of entry `k` written by generation `g` of writer `w`, under
/// its head: no two writers' records share a name.
fn record(k: &str, g: u64, w: &str) -> String {
    let hash = Sha256::digest(k.as_bytes());
    format!("e/{}/{g:x}.{w}", hex::encode(&hash[..16]))
}

/// One invocation's turn at its key's actor: it holds the key until it is
/// checkpointed or dropped.
pub struct Turn {
    pub(crate) held: Arc<Held>,
    guard: OwnedMutexGuard<Option<Loaded>>,
    store: Arc<dyn Bucket>,
    writer: String,
    function: String,
    key: String,
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
        let Some(before) = self.guard.as_ref() else {
            return Err(Error::Internal("an actor's turn without its state".into()));
        };
        let generation = before.head.generation + 1;
        let mut records = before.head.records.clone();
        // The records the last head left to remove go with this write; the
        // ones this head stops naming, with the next.
        let mut writes: Vec<weft_kv::Change> = before
            .head
            .garbage
            .iter()
            .map(|r| (format!("{}{r}", self.head), None))
            .collect();
        let mut garbage = Vec::new();
        for (k, v) in touched {
            if let Some(old) = before.head.records.get(&k) {
                garbage.push(old.clone());
            }
            match v {
                Some(v) => {
                    let r = record(&k, generation, &self.writer);
                    writes.push((format!("{}{r}", self.head), Some(v)));
                    records.insert(k, r);
                }
                None => {
                    records.remove(&k);
                }
            }
        }
        let head = Head {
            generation,
            records,
            garbage,
        };
        let bytes = head.encode();
        let done = self
            .store
            .compare_and_set(&self.head, before.bytes.as_deref(), &bytes, &writes)
            .await
            .map_err(|e| Error::Internal(format!("checkpointing {}: {e}", self.head)))?;
        if !done {
            // Another node wrote the key since this one loaded it: it is
            // theirs now. Forget the copy; the next turn here loads theirs.
            *self.guard = None;
            let written: Vec<String> = writes
                .into_iter()
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| k)
                .collect();
            if let Err(e) = self.store.delete_many(&written).await {
                tracing::warn!("removing the records of a lost turn of {}: {e}", self.head);
            }
            return Err(Error::State {
                name: self.function.clone(),
                code: Code::StateConflict,
                message: format!(
                    "key `{}` was written by another node while this invocation ran \
                     (its actor moved); nothing it wrote was kept",
                    self.key
                ),
            });
        }
        let epoch = before.epoch;
        *self.guard = Some(Loaded {
            state: self.held.entries(),
            head,
            bytes: Some(bytes),
            epoch,
        });
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

    #[test]
    fn heads_encode_and_decode() {
        let h = Head {
            generation: 7,
            records: [("count".to_string(), record("count", 7, "n1"))].into(),
            garbage: vec![record("count", 6, "n1")],
        };
        assert_eq!(Head::decode(&h.encode()), Some(h));
        assert_eq!(Head::decode(b"weft-actor-1\n"), None);
    }

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

    fn store() -> Arc<dyn Bucket> {
        // Any store will do: an in-memory one stands for the node's file.
        Arc::new(Held::new("weft.state", State::new(), None, Arc::default()))
    }

    #[tokio::test]
    async fn checkpoints_write_what_changed_and_a_restart_loads_the_latest() {
        let store = store();
        let a = Actors::new(store.clone(), "n1");
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
        let b = Actors::new(store.clone(), "n1");
        let t = turn(&b).await;
        assert_eq!(t.held.entries().len(), 2);
        t.held.delete("a").await.unwrap();
        t.held.set("c", b"3").await.unwrap();
        t.checkpoint().await.unwrap();
        let records = store.list_keys(None).await.unwrap().keys;
        assert_eq!(
            records.len(),
            4,
            "the head, b, c, and a's record until the next checkpoint: {records:?}"
        );
        let c = Actors::new(store.clone(), "n1");
        let t = turn(&c).await;
        let keys: Vec<String> = t.held.entries().into_keys().collect();
        assert_eq!(keys, ["b", "c"]);
        t.held.set("c", b"4").await.unwrap();
        t.checkpoint().await.unwrap();
        let records = store.list_keys(None).await.unwrap().keys;
        assert_eq!(records.len(), 4, "a's went, c's old one waits: {records:?}");
    }

    #[tokio::test]
    async fn a_node_that_lost_the_key_fails_its_turn_and_loads_the_winners_state() {
        let store = store();
        let (one, two) = (Actors::new(store.clone(), "n1"), Actors::new(store, "n2"));
        let t = turn(&one).await;
        t.held.set("n", b"1").await.unwrap();
        t.checkpoint().await.unwrap();
        // The key moves to `two` while `one` still holds a turn.
        let late = turn(&one).await;
        let t = turn(&two).await;
        assert_eq!(t.held.get("n").await.unwrap(), Some(b"1".to_vec()));
        t.held.set("n", b"2").await.unwrap();
        t.checkpoint().await.unwrap();
        late.held.set("n", b"2 again").await.unwrap();
        let e = late.checkpoint().await.unwrap_err();
        assert_eq!(e.code(), Code::StateConflict, "{e}");
        // Its copy is gone: its next turn reads the winner's.
        assert_eq!(
            turn(&one).await.held.get("n").await.unwrap(),
            Some(b"2".to_vec())
        );
        // Back at `two`, which still holds its copy: a change of membership
        // makes it check the checkpoint first.
        let t = turn(&one).await;
        t.held.set("n", b"3").await.unwrap();
        t.checkpoint().await.unwrap();
        two.membership_changed();
        assert_eq!(
            turn(&two).await.held.get("n").await.unwrap(),
            Some(b"3".to_vec())
        );
    }
}
