//! A key-value store kept by one node and reached by the others over the
//! fabric (`backend = "node"`): a site's own store, in the designated
//! node's embedded file, served on `weft.node.<node>.kv` by request/reply.
//! Inside a site, that traffic stays on the site's leaf server, so the
//! store keeps serving the site while its uplink is cut.
//!
//! One request per operation: JSON, values in base64. The store's size
//! limits are checked on both sides (the caller's store wraps this one in
//! its limits; the serving node's store has its own).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use weft_codes::Code;
use weft_kv::{Bucket, KeyPage, KvError};

/// Longest an operation may take before the store counts as unavailable.
const OP_TIMEOUT: Duration = Duration::from_secs(3);

/// Bytes as base64 text, for JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
struct B64(String);

impl B64 {
    fn of(b: &[u8]) -> B64 {
        B64(STANDARD.encode(b))
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        STANDARD
            .decode(&self.0)
            .map_err(|e| format!("a value is not base64: {e}"))
    }
}

/// One operation on the store `label`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KvRequest {
    label: String,
    op: Op,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Op {
    Get {
        key: String,
    },
    Set {
        key: String,
        value: B64,
    },
    Delete {
        key: String,
    },
    Exists {
        key: String,
    },
    List {
        cursor: Option<u64>,
    },
    Increment {
        key: String,
        delta: u64,
    },
    GetMany {
        keys: Vec<String>,
    },
    SetMany {
        entries: Vec<(String, B64)>,
    },
    DeleteMany {
        keys: Vec<String>,
    },
    CompareAndSet {
        key: String,
        expected: Option<B64>,
        value: B64,
        also: Vec<(String, Option<B64>)>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Reply {
    Value(Option<B64>),
    Done,
    Bool(bool),
    Page {
        keys: Vec<String>,
        cursor: Option<u64>,
    },
    Number(u64),
    Values(Vec<Option<(String, B64)>>),
    /// The serving node's error: its code and message.
    Error {
        code: String,
        message: String,
    },
}

/// Answers one request with the stores this node serves (`exported`).
pub(crate) async fn serve(
    exported: &(dyn Fn(&str) -> Option<Arc<dyn Bucket>> + Sync),
    payload: &[u8],
) -> Vec<u8> {
    let reply = match serde_json::from_slice::<KvRequest>(payload) {
        Err(e) => Reply::Error {
            code: Code::StoreError.as_str().into(),
            message: format!("a malformed store request: {e}"),
        },
        Ok(req) => match exported(&req.label) {
            None => Reply::Error {
                code: Code::StoreUnavailable.as_str().into(),
                message: format!("this node does not serve store `{}`", req.label),
            },
            Some(b) => run(b.as_ref(), req.op).await.unwrap_or_else(|e| e),
        },
    };
    serde_json::to_vec(&reply).unwrap_or_default()
}

async fn run(b: &dyn Bucket, op: Op) -> Result<Reply, Reply> {
    let fail = |e: KvError| Reply::Error {
        code: e.code().as_str().to_string(),
        message: e.to_string(),
    };
    let bad = |message: String| Reply::Error {
        code: Code::StoreError.as_str().into(),
        message,
    };
    Ok(match op {
        Op::Get { key } => Reply::Value(b.get(&key).await.map_err(fail)?.map(|v| B64::of(&v))),
        Op::Set { key, value } => {
            b.set(&key, &value.bytes().map_err(bad)?)
                .await
                .map_err(fail)?;
            Reply::Done
        }
        Op::Delete { key } => {
            b.delete(&key).await.map_err(fail)?;
            Reply::Done
        }
        Op::Exists { key } => Reply::Bool(b.exists(&key).await.map_err(fail)?),
        Op::List { cursor } => {
            let p = b.list_keys(cursor).await.map_err(fail)?;
            Reply::Page {
                keys: p.keys,
                cursor: p.cursor,
            }
        }
        Op::Increment { key, delta } => {
            Reply::Number(b.increment(&key, delta).await.map_err(fail)?)
        }
        Op::GetMany { keys } => Reply::Values(
            b.get_many(&keys)
                .await
                .map_err(fail)?
                .into_iter()
                .map(|v| v.map(|(k, v)| (k, B64::of(&v))))
                .collect(),
        ),
        Op::SetMany { entries } => {
            b.set_many(&entries_of(entries).map_err(bad)?)
                .await
                .map_err(fail)?;
            Reply::Done
        }
        Op::CompareAndSet {
            key,
            expected,
            value,
            also,
        } => {
            let expected = expected.map(|e| e.bytes()).transpose().map_err(bad)?;
            Reply::Bool(
                b.compare_and_set(
                    &key,
                    expected.as_deref(),
                    &value.bytes().map_err(bad)?,
                    &changes_of(also).map_err(bad)?,
                )
                .await
                .map_err(fail)?,
            )
        }
        Op::DeleteMany { keys } => {
            b.delete_many(&keys).await.map_err(fail)?;
            Reply::Done
        }
    })
}

fn entries_of(entries: Vec<(String, B64)>) -> Result<Vec<(String, Vec<u8>)>, String> {
    entries
        .into_iter()
        .map(|(k, v)| v.bytes().map(|v| (k, v)))
        .collect()
}

fn changes_of(changes: Vec<(String, Option<B64>)>) -> Result<Vec<weft_kv::Change>, String> {
    changes
        .into_iter()
        .map(|(k, v)| v.map(|v| v.bytes()).transpose().map(|v| (k, v)))
        .collect()
}

fn b64_entries(entries: &[(String, Vec<u8>)]) -> Vec<(String, B64)> {
    entries
        .iter()
        .map(|(k, v)| (k.clone(), B64::of(v)))
        .collect()
}

/// The store `label` that the node `node` keeps, reached over the fabric's
/// connection `client` (`Mesh::node_bucket`).
pub(crate) fn bucket(client: async_nats::Client, label: &str, node: &str) -> Arc<dyn Bucket> {
    Arc::new(NodeBucket {
        client,
        label: label.to_string(),
        node: node.to_string(),
    })
}

struct NodeBucket {
    client: async_nats::Client,
    label: String,
    node: String,
}

impl NodeBucket {
    /// One request to the stores the node keeps; its answer, or why none
    /// came within [`OP_TIMEOUT`].
    async fn request(&self, body: Bytes) -> Result<Bytes, String> {
        let subject = format!("weft.node.{}.kv", self.node);
        match tokio::time::timeout(OP_TIMEOUT, self.client.request(subject, body)).await {
            Ok(Ok(msg)) => Ok(msg.payload),
            Ok(Err(e)) => Err(format!("is unreachable: {e}")),
            Err(_) => Err(format!(
                "did not answer within {} ms",
                OP_TIMEOUT.as_millis()
            )),
        }
    }

    async fn ask(&self, op: Op) -> Result<Reply, KvError> {
        let unavailable = |why: String| KvError::Unavailable {
            store: self.label.clone(),
            message: format!("node `{}`, which keeps it, {why}", self.node),
        };
        let body = serde_json::to_vec(&KvRequest {
            label: self.label.clone(),
            op,
        })
        .map_err(|e| unavailable(format!("could not be asked: {e}")))?;
        let answer = self.request(Bytes::from(body)).await.map_err(unavailable)?;
        match serde_json::from_slice::<Reply>(&answer) {
            Ok(Reply::Error { code, message }) if code == Code::StoreUnavailable.as_str() => {
                Err(unavailable(format!("answered: {message}")))
            }
            Ok(Reply::Error { code, message }) => Err(KvError::Backend {
                store: self.label.clone(),
                message: format!("{code}: {message}"),
            }),
            Ok(r) => Ok(r),
            Err(e) => Err(unavailable(format!("answered something else: {e}"))),
        }
    }

    fn unexpected(&self, r: Reply) -> KvError {
        KvError::Backend {
            store: self.label.clone(),
            message: format!("node `{}` answered out of turn: {r:?}", self.node),
        }
    }

    fn decode(&self, v: &B64) -> Result<Vec<u8>, KvError> {
        v.bytes().map_err(|message| KvError::Backend {
            store: self.label.clone(),
            message,
        })
    }
}

#[async_trait::async_trait]
impl Bucket for NodeBucket {
    fn label(&self) -> &str {
        &self.label
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self.ask(Op::Get { key: key.into() }).await? {
            Reply::Value(v) => v.map(|v| self.decode(&v)).transpose(),
            r => Err(self.unexpected(r)),
        }
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        match self
            .ask(Op::Set {
                key: key.into(),
                value: B64::of(value),
            })
            .await?
        {
            Reply::Done => Ok(()),
            r => Err(self.unexpected(r)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        match self.ask(Op::Delete { key: key.into() }).await? {
            Reply::Done => Ok(()),
            r => Err(self.unexpected(r)),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        match self.ask(Op::Exists { key: key.into() }).await? {
            Reply::Bool(b) => Ok(b),
            r => Err(self.unexpected(r)),
        }
    }

    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        match self.ask(Op::List { cursor }).await? {
            Reply::Page { keys, cursor } => Ok(KeyPage { keys, cursor }),
            r => Err(self.unexpected(r)),
        }
    }

    async fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError> {
        match self
            .ask(Op::Increment {
                key: key.into(),
                delta,
            })
            .await?
        {
            Reply::Number(n) => Ok(n),
            r => Err(self.unexpected(r)),
        }
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        match self
            .ask(Op::GetMany {
                keys: keys.to_vec(),
            })
            .await?
        {
            Reply::Values(vs) => vs
                .into_iter()
                .map(|v| v.map(|(k, v)| self.decode(&v).map(|v| (k, v))).transpose())
                .collect(),
            r => Err(self.unexpected(r)),
        }
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        let entries = b64_entries(entries);
        match self.ask(Op::SetMany { entries }).await? {
            Reply::Done => Ok(()),
            r => Err(self.unexpected(r)),
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        match self
            .ask(Op::DeleteMany {
                keys: keys.to_vec(),
            })
            .await?
        {
            Reply::Done => Ok(()),
            r => Err(self.unexpected(r)),
        }
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        also: &[weft_kv::Change],
    ) -> Result<bool, KvError> {
        match self
            .ask(Op::CompareAndSet {
                key: key.into(),
                expected: expected.map(B64::of),
                value: B64::of(value),
                also: also
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_deref().map(B64::of)))
                    .collect(),
            })
            .await?
        {
            Reply::Bool(done) => Ok(done),
            r => Err(self.unexpected(r)),
        }
    }
}
