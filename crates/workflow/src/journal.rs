//! The journal: workflows' definitions and runs' records in the platform's
//! store (a `weft_kv::Bucket`: the node's embedded one, or the fabric's
//! JetStream bucket that `[state] function` names), one key each:
//!
//! | key | value |
//! | --- | --- |
//! | `wf/def/NAME` | the current definition (JSON: spec, version) |
//! | `wf/ver/NAME/N` | version N of it, kept while runs may need it |
//! | `wf/run/ID` | the run's head (JSON): workflow, version, state, `seq` |
//! | `wf/in/ID` | the run's input, raw |
//! | `wf/step/ID/STEP` | a recorded step (JSON): how it ended, attempts, node, times |
//! | `wf/out/ID/STEP` | a recorded step's output, raw |
//! | `wf/item/ID/STEP/I` | item I's output of a map step under way, raw |
//!
//! Every change to a run is one `compare_and_set` of its head against the
//! head its writer last read, with the step's records as companions: the
//! step's result, its record and the head land together or not at all
//! (one durable commit on the embedded store), and a writer that lost the
//! run (an operator cancelled it, another node took it over) writes
//! nothing. A map step's items are recorded one by one as they end, by a
//! plain write (an item's output is the same whoever writes it): a map
//! resumed runs only the items not recorded, and the step's own record
//! removes them. A step is recorded once: nothing a run does re-reads more
//! than its own steps' records, so step 1,000 costs what step 10 does.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use weft_kv::{Bucket, Change};
use weft_manifest::WorkflowSpec;

/// The largest step output (and run input) a run records: the store's
/// largest value.
pub const MAX_STEP_OUTPUT: usize = 1 << 20;

/// Milliseconds since the UNIX epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A workflow's definition, as deployed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DefRecord {
    /// Its name.
    pub name: String,
    /// Its version, from 1; a deploy with a changed spec makes the next.
    pub version: u32,
    /// When that version was deployed, ms since the epoch.
    pub deployed_ms: u64,
    /// The spec.
    pub spec: WorkflowSpec,
}

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Steps are running or due.
    Running,
    /// Every step ended well; the output is recorded.
    Succeeded,
    /// A step failed every attempt, or the run's deadline passed.
    Failed,
    /// An operator cancelled it.
    Cancelled,
}

impl RunState {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    /// Parses an API name.
    pub fn parse(s: &str) -> Option<RunState> {
        [
            RunState::Running,
            RunState::Succeeded,
            RunState::Failed,
            RunState::Cancelled,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// Why a step or a run failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The error's code (`handler_error`, `deadline_exceeded`, …).
    pub code: String,
    /// What happened.
    pub message: String,
    /// The step at fault, for a run's failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// A run's head.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub id: String,
    /// The workflow.
    pub workflow: String,
    /// The workflow's version it runs (fixed at its start).
    pub version: u32,
    /// How it stands.
    pub state: RunState,
    /// When it started, ms since the epoch.
    pub created_ms: u64,
    /// When it last changed.
    pub updated_ms: u64,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    /// When its deadline falls, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// The node that drives it.
    pub node: String,
    /// Why it failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// Steps recorded so far.
    pub recorded: u32,
    /// Bumped on every change: what a writer's compare-and-set compares.
    pub seq: u64,
}

/// How a recorded step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepEnd {
    /// Its output is recorded.
    Succeeded,
    /// It failed every attempt (the run failed with it).
    Failed,
    /// An operator gave its output instead.
    Skipped,
    /// It did not run: its test (`when`) did not hold, or every step it
    /// waits for was not taken.
    NotTaken,
}

impl StepEnd {
    /// Whether the steps after it may start.
    pub fn lets_through(self) -> bool {
        matches!(
            self,
            StepEnd::Succeeded | StepEnd::Skipped | StepEnd::NotTaken
        )
    }

    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            StepEnd::Succeeded => "succeeded",
            StepEnd::Failed => "failed",
            StepEnd::Skipped => "skipped",
            StepEnd::NotTaken => "not_taken",
        }
    }
}

/// A recorded step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    /// How it ended.
    pub state: StepEnd,
    /// Attempts it took (0 for a skipped step).
    pub attempts: u32,
    /// When its last attempt started, ms since the epoch.
    pub started_ms: u64,
    /// When it ended.
    pub ended_ms: u64,
    /// The node its last attempt ran on.
    #[serde(default)]
    pub node: String,
    /// Its output's size.
    pub bytes: u64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

fn def_key(name: &str) -> String {
    format!("wf/def/{name}")
}
fn version_key(name: &str, v: u32) -> String {
    format!("wf/ver/{name}/{v}")
}
fn run_key(id: &str) -> String {
    format!("wf/run/{id}")
}
pub(crate) fn input_key(id: &str) -> String {
    format!("wf/in/{id}")
}
pub(crate) fn step_key(id: &str, step: &str) -> String {
    format!("wf/step/{id}/{step}")
}
pub(crate) fn output_key(id: &str, step: &str) -> String {
    format!("wf/out/{id}/{step}")
}

pub(crate) fn item_key(id: &str, step: &str, i: usize) -> String {
    format!("wf/item/{id}/{step}/{i}")
}

/// A run's head as its writer last read it: what its next change is
/// compared against.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) run: RunRecord,
    raw: Vec<u8>,
}

/// The journal over one bucket.
#[derive(Clone)]
pub(crate) struct Journal {
    bucket: Arc<dyn Bucket>,
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Our own records: plain structs of strings and numbers.
    serde_json::to_vec(v).unwrap_or_default()
}

impl Journal {
    pub(crate) fn new(bucket: Arc<dyn Bucket>) -> Journal {
        Journal { bucket }
    }

    /// Every key with `prefix` (a scan of the store: listing only).
    async fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.bucket.list_keys(cursor).await?;
            out.extend(page.keys.into_iter().filter(|k| k.starts_with(prefix)));
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Values of `keys`, decoded, in batches the store accepts.
    async fn many<T: DeserializeOwned>(&self, keys: &[String]) -> Result<Vec<Option<T>>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(500) {
            for (k, v) in chunk.iter().zip(self.bucket.get_many(chunk).await?) {
                out.push(match v {
                    Some((_, bytes)) => Some(decode(k, &bytes)?),
                    None => None,
                });
            }
        }
        Ok(out)
    }

    // ---- definitions

    pub(crate) async fn def(&self, name: &str) -> Result<Option<DefRecord>> {
        let key = def_key(name);
        match self.bucket.get(&key).await? {
            Some(b) => Ok(Some(decode(&key, &b)?)),
            None => Ok(None),
        }
    }

    pub(crate) async fn def_version(&self, name: &str, v: u32) -> Result<Option<DefRecord>> {
        let key = version_key(name, v);
        match self.bucket.get(&key).await? {
            Some(b) => Ok(Some(decode(&key, &b)?)),
            None => Ok(None),
        }
    }

    /// Stores `spec` as `name`'s next version unless it is the current one;
    /// returns the record and whether it changed.
    pub(crate) async fn put_def(
        &self,
        name: &str,
        spec: WorkflowSpec,
    ) -> Result<(DefRecord, bool)> {
        let key = def_key(name);
        let current = self.bucket.get(&key).await?;
        let version = match &current {
            Some(b) => {
                let d: DefRecord = decode(&key, b)?;
                if d.spec == spec {
                    return Ok((d, false));
                }
                d.version + 1
            }
            None => 1,
        };
        let rec = DefRecord {
            name: name.to_string(),
            version,
            deployed_ms: now_ms(),
            spec,
        };
        let bytes = encode(&rec);
        let also = [(version_key(name, version), Some(bytes.clone()))];
        if !self
            .bucket
            .compare_and_set(&key, current.as_deref(), &bytes, &also)
            .await?
        {
            return Err(Error::Conflict(format!("workflow {name}")));
        }
        Ok((rec, true))
    }

    /// Removes the current definition (versions stay for the runs that
    /// use them).
    pub(crate) async fn remove_def(&self, name: &str) -> Result<Option<DefRecord>> {
        let Some(d) = self.def(name).await? else {
            return Ok(None);
        };
        self.bucket.delete(&def_key(name)).await?;
        Ok(Some(d))
    }

    pub(crate) async fn defs(&self) -> Result<Vec<DefRecord>> {
        let mut keys: Vec<String> = self
            .keys("wf/def/")
            .await?
            .into_iter()
            .filter(|k| !k["wf/def/".len()..].contains('/'))
            .collect();
        keys.sort();
        Ok(self.many(&keys).await?.into_iter().flatten().collect())
    }

    // ---- runs

    /// Records a new run with its input.
    pub(crate) async fn create(&self, run: RunRecord, input: &[u8]) -> Result<Head> {
        let raw = encode(&run);
        let also = [(input_key(&run.id), Some(input.to_vec()))];
        if !self
            .bucket
            .compare_and_set(&run_key(&run.id), None, &raw, &also)
            .await?
        {
            return Err(Error::Conflict(run.id));
        }
        Ok(Head { run, raw })
    }

    pub(crate) async fn head(&self, id: &str) -> Result<Option<Head>> {
        let key = run_key(id);
        match self.bucket.get(&key).await? {
            Some(raw) => Ok(Some(Head {
                run: decode(&key, &raw)?,
                raw,
            })),
            None => Ok(None),
        }
    }

    /// Every run's head.
    pub(crate) async fn runs(&self) -> Result<Vec<RunRecord>> {
        let keys = self.keys("wf/run/").await?;
        Ok(self.many(&keys).await?.into_iter().flatten().collect())
    }

    /// The records of a run's steps, by name, in order.
    pub(crate) async fn steps(&self, id: &str, names: &[&str]) -> Result<Vec<Option<StepRecord>>> {
        let keys: Vec<String> = names.iter().map(|s| step_key(id, s)).collect();
        self.many(&keys).await
    }

    /// The recorded outputs of a map step's first `n` items.
    pub(crate) async fn items(
        &self,
        id: &str,
        step: &str,
        n: usize,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let keys: Vec<String> = (0..n).map(|i| item_key(id, step, i)).collect();
        let mut out = Vec::with_capacity(n);
        for chunk in keys.chunks(500) {
            out.extend(
                self.bucket
                    .get_many(chunk)
                    .await?
                    .into_iter()
                    .map(|v| v.map(|(_, b)| b)),
            );
        }
        Ok(out)
    }

    /// Records item `i`'s output of a map step.
    pub(crate) async fn put_item(
        &self,
        id: &str,
        step: &str,
        i: usize,
        output: &[u8],
    ) -> Result<()> {
        Ok(self.bucket.set(&item_key(id, step, i), output).await?)
    }

    /// Forgets the items recorded of a map step (a scan of the store: for
    /// a repair only).
    pub(crate) async fn remove_items(&self, id: &str, step: &str) -> Result<()> {
        for k in self.keys(&format!("wf/item/{id}/{step}/")).await? {
            self.bucket.delete(&k).await?;
        }
        Ok(())
    }

    /// A raw value: a run's input or a step's output.
    pub(crate) async fn raw(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.bucket.get(key).await?)
    }

    /// Writes `run` over `head` with `also`, if the head is still what
    /// `head` read; returns the new head, or `None` when another writer
    /// changed it first (nothing written).
    pub(crate) async fn commit(
        &self,
        head: &Head,
        mut run: RunRecord,
        also: &[Change],
    ) -> Result<Option<Head>> {
        run.seq = head.run.seq + 1;
        run.updated_ms = now_ms();
        let raw = encode(&run);
        let done = self
            .bucket
            .compare_and_set(&run_key(&run.id), Some(&head.raw), &raw, also)
            .await?;
        Ok(done.then_some(Head { run, raw }))
    }
}

/// A step's record and output as companions of a commit.
pub(crate) fn step_changes(
    id: &str,
    step: &str,
    rec: &StepRecord,
    output: Option<&[u8]>,
) -> Vec<Change> {
    let mut c = vec![(step_key(id, step), Some(encode(rec)))];
    if let Some(out) = output {
        c.push((output_key(id, step), Some(out.to_vec())));
    }
    c
}

/// Removes a step's records (for a retry).
pub(crate) fn step_removal(id: &str, step: &str) -> [Change; 2] {
    [(step_key(id, step), None), (output_key(id, step), None)]
}
