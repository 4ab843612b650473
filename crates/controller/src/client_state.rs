//! The `client` state model: the state goes back to the caller with the
//! response (header `x-weft-state`) and comes back with the next request,
//! sealed by the node so that a client can neither forge it, present
//! another key's or function's, nor present an older one.
//!
//! A sealed state is `v1.PAYLOAD.MAC`: PAYLOAD is base64url (no padding)
//! of a JSON envelope (function, key, version, entries in base64), MAC the
//! HMAC-SHA256 of PAYLOAD under a secret kept in the store of `[state]
//! function` (the node's own store by default, a shared one in a fabric:
//! the first node to need it keeps one, by compare-and-set, and every node
//! that shares the store seals alike). The store remembers only the latest
//! version issued per function and key (its decimal text), which is how an
//! older state is told from the latest: a request must carry the latest,
//! or none (the client starts over; it may drop its state, never roll it
//! back). One request per key runs at a time on a node (a set of the keys
//! in flight), and the next version is kept by compare-and-set on the one
//! the request carried: of two requests carrying the same state, on one
//! node or two, one is refused as stale, and a key's client state has one
//! writer at a time.

use crate::error::{Error, Result};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use weft_codes::Code;
use weft_kv::{Bucket, Held, Traffic, state_prefix};

/// The header a client state travels in, both ways.
pub const STATE_HEADER: &str = "x-weft-state";

/// What a sealed state says.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The function the client called.
    f: String,
    /// The key.
    k: String,
    /// The version, from 1.
    n: u64,
    /// The entries, values in base64, per function: the one called and
    /// the `client`-model functions it called, with the same key.
    s: BTreeMap<String, BTreeMap<String, String>>,
}

type Entries = BTreeMap<String, Vec<u8>>;

/// The client state a chain of calls carries: every function's entries,
/// for one key. The function the client called seals it all.
pub(crate) struct Chain {
    key: String,
    states: Mutex<BTreeMap<String, Entries>>,
}

impl Chain {
    /// Joins the chain for `function`: a copy of its entries, written back
    /// when it ends well (its [`Joined`]), as the called one's are sealed.
    pub(crate) fn join(
        self: &Arc<Self>,
        function: &str,
        key: &str,
        label: &str,
        limit: u64,
        traffic: Arc<Traffic>,
    ) -> Option<Joined> {
        if key != self.key {
            return None;
        }
        let entries = self
            .states
            .lock()
            .get(function)
            .cloned()
            .unwrap_or_default();
        traffic.add_read(entries.values().map(Vec::len).sum());
        Some(Joined {
            held: Arc::new(Held::new(label, entries, Some(limit), traffic)),
            function: function.to_string(),
            chain: self.clone(),
        })
    }
}

/// A callee's part of a chain's client state.
pub struct Joined {
    pub(crate) held: Arc<Held>,
    function: String,
    pub(crate) chain: Arc<Chain>,
}

impl Joined {
    /// It ended well: its entries go back into the chain's state.
    pub fn settle(self) {
        if self.held.changed() {
            self.chain
                .states
                .lock()
                .insert(self.function.clone(), self.held.entries());
        }
    }
}

/// Where the seal's secret is kept, in the store of the versions.
const SECRET_KEY: &str = "cs-secret";

/// The node's client states: its secret, and the latest version issued per
/// function and key.
pub(crate) struct ClientStates {
    /// The seal's secret: the store's, once read (every node that shares
    /// the store seals alike).
    secret: tokio::sync::OnceCell<[u8; 32]>,
    /// The secret this node keeps there if the store has none yet.
    proposed: [u8; 32],
    /// Most bytes of keys and values a state may hold.
    limit: u64,
    /// Function and key of the requests in flight: one at a time per key.
    in_flight: Mutex<HashSet<(String, String)>>,
    /// Where the secret and the latest version per function and key are
    /// kept: the node's own store, or one its fabric shares.
    store: Arc<dyn Bucket>,
}

fn hmac(secret: &[u8; 32], message: &[u8]) -> [u8; 32] {
    // RFC 2104 with SHA-256 (64-byte blocks; the key fits in one).
    let mut inner = Sha256::new();
    let mut outer = Sha256::new();
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, b) in secret.iter().enumerate() {
        ipad[i] ^= b;
        opad[i] ^= b;
    }
    inner.update(ipad);
    inner.update(message);
    outer.update(opad);
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Equal bytes, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn version_key(function: &str, key: &str) -> String {
    format!(
        "cs/{}",
        state_prefix(function, key).trim_start_matches("st/")
    )
}

impl ClientStates {
    /// `proposed`: the secret to keep if `store` holds none yet.
    pub(crate) fn new(proposed: [u8; 32], limit: u64, store: Arc<dyn Bucket>) -> Self {
        ClientStates {
            secret: tokio::sync::OnceCell::new(),
            proposed,
            limit,
            in_flight: Mutex::new(HashSet::new()),
            store,
        }
    }

    /// Most bytes of keys and values a state may hold.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// The largest sealed state accepted: the limit in base64, with room
    /// for the envelope.
    fn max_sealed(&self) -> usize {
        usize::try_from(self.limit.saturating_mul(2).saturating_add(1024)).unwrap_or(usize::MAX)
    }

    /// The store's label.
    pub(crate) fn home(&self) -> &str {
        self.store.label()
    }

    /// The seal's secret: the one in the store, kept there by the first
    /// node to need it.
    async fn secret(&self) -> Result<&[u8; 32]> {
        self.secret
            .get_or_try_init(|| async {
                let failed =
                    |e: weft_kv::KvError| Error::Internal(format!("the client-state secret: {e}"));
                let corrupt =
                    || Error::Internal("the stored client-state secret is corrupt".into());
                for _ in 0..2 {
                    if let Some(s) = self.store.get(SECRET_KEY).await.map_err(failed)? {
                        return <[u8; 32]>::try_from(s).map_err(|_| corrupt());
                    }
                    if self
                        .store
                        .compare_and_set(SECRET_KEY, None, &self.proposed, &[])
                        .await
                        .map_err(failed)?
                    {
                        return Ok(self.proposed);
                    }
                    // Another node kept one first: read it.
                }
                Err(corrupt())
            })
            .await
    }

    fn seal(secret: &[u8; 32], env: &Envelope) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(env).unwrap_or_default());
        let mac = URL_SAFE_NO_PAD.encode(hmac(secret, payload.as_bytes()));
        format!("v1.{payload}.{mac}")
    }

    /// The envelope of `sealed`, if this node sealed it for `function` and
    /// `key`.
    fn unseal(
        &self,
        secret: &[u8; 32],
        sealed: &str,
        function: &str,
        key: &str,
    ) -> Result<Envelope> {
        let bad = |code: Code, message: String| Error::State {
            name: function.to_string(),
            code,
            message,
        };
        if sealed.len() > self.max_sealed() {
            return Err(bad(
                Code::ClientStateTooLarge,
                format!(
                    "{STATE_HEADER} is {} bytes; this node takes states of at most {} bytes",
                    sealed.len(),
                    self.limit
                ),
            ));
        }
        let forged = || {
            bad(
                Code::InvalidClientState,
                format!(
                    "{STATE_HEADER} is not a state this node or its fabric sealed (altered, or malformed)"
                ),
            )
        };
        let mut parts = sealed.split('.');
        let (Some("v1"), Some(payload), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(forged());
        };
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| forged())?;
        if !same(&mac, &hmac(secret, payload.as_bytes())) {
            return Err(forged());
        }
        let env: Envelope = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(forged)?;
        if env.f != function || env.k != key {
            return Err(bad(
                Code::InvalidClientState,
                format!(
                    "{STATE_HEADER} holds the state of function `{}`, key `{}`, not of function `{function}`, key `{key}` here",
                    env.f, env.k
                ),
            ));
        }
        Ok(env)
    }

    /// The latest version issued for `function` and `key` (0: none yet).
    async fn latest(&self, function: &str, key: &str) -> Result<u64> {
        let stored = self
            .store
            .get(&version_key(function, key))
            .await
            .map_err(|e| Error::Internal(format!("reading client state versions: {e}")))?;
        Ok(stored
            .and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok())
            .unwrap_or(0))
    }

    /// Opens the state a request carries (`None`: it starts empty), and
    /// takes the key until it is sealed or given back; `traffic` counts
    /// what the guest writes.
    pub(crate) async fn begin(
        self: &Arc<Self>,
        function: &str,
        key: &str,
        label: &str,
        sealed: Option<&str>,
        traffic: Arc<Traffic>,
    ) -> Result<Pending> {
        let secret = self.secret().await?;
        let env = sealed
            .map(|s| self.unseal(secret, s, function, key))
            .transpose()?;
        let stale = |message: String| Error::State {
            name: function.to_string(),
            code: Code::StaleClientState,
            message,
        };
        let taken = Taken::take(self, function, key).ok_or_else(|| {
            stale(format!(
                "a request with the state of key `{key}` is in flight; its answer carries the next one"
            ))
        })?;
        let latest = self.latest(function, key).await?;
        if let Some(env) = &env
            && env.n != latest
        {
            return Err(stale(format!(
                "{STATE_HEADER} holds version {} of key `{key}`; version {latest} is newer",
                env.n
            )));
        }
        let mut states: BTreeMap<String, Entries> = BTreeMap::new();
        let mut read = 0;
        for (f, kvs) in env.map(|e| e.s).unwrap_or_default() {
            let mut entries = Entries::new();
            for (k, v) in kvs {
                let v = STANDARD.decode(v).map_err(|_| Error::State {
                    name: function.to_string(),
                    code: Code::InvalidClientState,
                    message: format!("{STATE_HEADER}: the value of `{k}` is not base64"),
                })?;
                read += v.len();
                entries.insert(k, v);
            }
            states.insert(f, entries);
        }
        traffic.add_read(read);
        let own = states.get(function).cloned().unwrap_or_default();
        Ok(Pending {
            held: Arc::new(Held::new(label, own, Some(self.limit), traffic)),
            previous: latest,
            chain: Arc::new(Chain {
                key: key.to_string(),
                states: Mutex::new(states),
            }),
            taken,
        })
    }
}

/// A key of a function taken by the request in flight with its state: the
/// next request may take it once this is dropped, whatever happened.
struct Taken {
    states: Arc<ClientStates>,
    id: (String, String),
}

impl Taken {
    /// The key, unless a request in flight has it.
    fn take(states: &Arc<ClientStates>, function: &str, key: &str) -> Option<Taken> {
        let id = (function.to_string(), key.to_string());
        states.in_flight.lock().insert(id.clone()).then(|| Taken {
            states: states.clone(),
            id,
        })
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        self.states.in_flight.lock().remove(&self.id);
    }
}

/// A client state an invocation runs with: sealed again when it succeeds,
/// its version given back when it fails (or is dropped).
pub struct Pending {
    pub(crate) held: Arc<Held>,
    previous: u64,
    /// The state its callees carry (theirs, with the same key).
    pub(crate) chain: Arc<Chain>,
    /// Its function and key, until it is sealed or dropped.
    taken: Taken,
}

impl Pending {
    /// The state to send back to the client, sealed: the invocation
    /// succeeded. Its version is kept durably first.
    pub async fn seal(self) -> Result<String> {
        let (seals, (function, key)) = (&self.taken.states, &self.taken.id);
        let mut states = std::mem::take(&mut *self.chain.states.lock());
        states.insert(function.clone(), self.held.entries());
        let size: u64 = states.values().map(Held::size_of).sum();
        if size > seals.limit {
            return Err(Error::State {
                name: function.clone(),
                code: Code::ClientStateTooLarge,
                message: format!(
                    "the state of key `{}` with its callees' is {size} bytes; this node seals at most {}",
                    key, seals.limit
                ),
            });
        }
        let n = self.previous + 1;
        let previous = (self.previous > 0).then(|| self.previous.to_string());
        // One writer per key here (the key is taken); across nodes that
        // share the versions, the first to seal the next version wins.
        let kept = seals
            .store
            .compare_and_set(
                &version_key(function, key),
                previous.as_deref().map(str::as_bytes),
                n.to_string().as_bytes(),
                &[],
            )
            .await
            .map_err(|e| Error::Internal(format!("keeping the client state's version: {e}")))?;
        if !kept {
            return Err(Error::State {
                name: function.clone(),
                code: Code::StaleClientState,
                message: format!(
                    "another node sealed a newer state of key `{key}` while this invocation ran; \
                     nothing it wrote was kept"
                ),
            });
        }
        let env = Envelope {
            f: function.clone(),
            k: key.clone(),
            n,
            s: states
                .into_iter()
                .filter(|(_, e)| !e.is_empty())
                .map(|(f, e)| {
                    let e = e
                        .into_iter()
                        .map(|(k, v)| (k, STANDARD.encode(v)))
                        .collect();
                    (f, e)
                })
                .collect(),
        };
        Ok(ClientStates::seal(seals.secret().await?, &env))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // Test case 2 has a short key; ours are 32 bytes, zero-padded alike.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            hex::encode(hmac(&key, b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn equal_bytes_only() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
