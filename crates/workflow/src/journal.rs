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
//! | `wf/code/ID/N` | the Nth durable step an orchestrator took (JSON: name, kind, how it ended) |
//! | `wf/cout/ID/N/NONCE` | that step's output, raw |
//! | `wf/evt/ID/NAME` | an event sent to the run, raw |
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
//!
//! An orchestrator's durable steps (a workflow in code) are recorded by
//! position, each by a compare-and-set that creates its key: the first
//! writer wins, and a writer that lost (a driver fenced off, racing the
//! one that took the run over) reads and answers the winner's record, so
//! every replay sees one history. The output goes under a key of its own
//! (a fresh nonce, named by the record), written with the record (one
//! commit on the embedded store; before it on JetStream), so the record is
//! one value and its write one atomic step on every store. A replay reads the
//! records in batches of [`CODE_BATCH`], and the outputs as it reaches
//! them, in windows of [`CODE_OUTPUT_WINDOW`] bytes: not one read a step,
//! nor a long run's whole history in memory.

use crate::error::{Error, Result};
use bytes::Bytes;
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
    /// The workflow's `privacy`, and where the run started: the nodes that
    /// may take it over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confined: Option<Confined>,
}

/// A run's privacy constraint and the place it is relative to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confined {
    /// `site` or `tier`.
    pub privacy: String,
    /// The tier of the node the run started at.
    pub tier: String,
    /// That node's `site` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// That node, which alone may drive the run if it has no `site`.
    pub origin: String,
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

/// Records of an orchestrator's durable steps read per batch.
pub const CODE_BATCH: usize = 256;

/// Bytes of durable steps' outputs read ahead at once, at most (or one
/// output, if larger): a replay reads outputs in batches without holding
/// a long run's whole history in memory.
pub const CODE_OUTPUT_WINDOW: u64 = 4 << 20;

/// What a durable step of an orchestrator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeKind {
    /// A function it called.
    Call,
    /// A value it computed and recorded.
    Value,
    /// A sleep.
    Sleep,
    /// An event it waited for.
    Event,
}

impl CodeKind {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            CodeKind::Call => "call",
            CodeKind::Value => "value",
            CodeKind::Sleep => "sleep",
            CodeKind::Event => "event",
        }
    }
}

/// How a durable step stands: ended as a step does, or waiting (an event
/// not yet sent; its record changes once, when it comes or times out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeState {
    /// Its value is recorded (a sleep: its end is).
    Succeeded,
    /// Its call failed every attempt; its failure answers every replay.
    Failed,
    /// An operator gave its value.
    Skipped,
    /// The event did not come in time.
    NotTaken,
    /// The event has not come yet.
    Waiting,
}

impl CodeState {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            CodeState::Succeeded => "succeeded",
            CodeState::Failed => "failed",
            CodeState::Skipped => "skipped",
            CodeState::NotTaken => "not_taken",
            CodeState::Waiting => "waiting",
        }
    }
}

/// A durable step of an orchestrator, at its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// The step's name.
    pub name: String,
    /// What it is.
    pub kind: CodeKind,
    /// The function a call ran.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub function: String,
    /// How it stands.
    pub state: CodeState,
    /// Attempts a call took.
    #[serde(default)]
    pub attempts: u32,
    /// When it started, ms since the epoch.
    pub started_ms: u64,
    /// When it ended (a waiting event: when it started waiting).
    pub ended_ms: u64,
    /// When a sleep ends, or a wait gives up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// The node a call's last attempt ran on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Its output's size.
    #[serde(default)]
    pub bytes: u64,
    /// The nonce of its output's key, when it has an output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out: Option<String>,
    /// Why a call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

fn code_key(id: &str, n: usize) -> String {
    format!("wf/code/{id}/{n}")
}
fn code_output_key(id: &str, n: usize, nonce: &str) -> String {
    format!("wf/cout/{id}/{n}/{nonce}")
}
fn event_key(id: &str, name: &str) -> String {
    format!("wf/evt/{id}/{name}")
}

/// A durable step as read: its record, the record's bytes (what a change
/// of a waiting step compares against) and its output, once read.
#[derive(Debug, Clone)]
pub(crate) struct CodeStep {
    pub(crate) rec: CodeRecord,
    pub(crate) raw: Vec<u8>,
    /// `None` until read ([`Journal::code_outputs`]), and for a step
    /// without one.
    pub(crate) output: Option<Bytes>,
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

    // ---- workflows in code

    /// An orchestrator's durable steps' records from position `from` on,
    /// in order (up to the first position not recorded); their outputs
    /// are read later, a window at a time.
    pub(crate) async fn code_steps(&self, id: &str, from: usize) -> Result<Vec<CodeStep>> {
        let mut out = Vec::new();
        loop {
            let start = from + out.len();
            let keys: Vec<String> = (start..start + CODE_BATCH)
                .map(|n| code_key(id, n))
                .collect();
            let mut read = 0;
            for (k, v) in keys.iter().zip(self.bucket.get_many(&keys).await?) {
                let Some((_, raw)) = v else { break };
                let rec: CodeRecord = decode(k, &raw)?;
                out.push(CodeStep {
                    rec,
                    raw,
                    output: None,
                });
                read += 1;
            }
            if read < CODE_BATCH {
                return Ok(out);
            }
        }
    }

    /// Reads the outputs of `steps` (of run `id`, from position `from`)
    /// not read yet, from the first on, up to [`CODE_OUTPUT_WINDOW`] bytes.
    pub(crate) async fn code_outputs(
        &self,
        id: &str,
        steps: &mut [CodeStep],
        from: usize,
    ) -> Result<()> {
        let mut bytes = 0;
        let mut wanted = Vec::new();
        for (n, s) in steps.iter().enumerate().skip(from).take(CODE_BATCH) {
            let Some(nonce) = &s.rec.out else { continue };
            if s.output.is_some() {
                continue;
            }
            if !wanted.is_empty() && bytes + s.rec.bytes > CODE_OUTPUT_WINDOW {
                break;
            }
            bytes += s.rec.bytes;
            wanted.push((n, code_output_key(id, n, nonce)));
        }
        let keys: Vec<String> = wanted.iter().map(|(_, k)| k.clone()).collect();
        for ((n, _), v) in wanted.iter().zip(self.bucket.get_many(&keys).await?) {
            steps[*n].output = Some(v.map(|(_, b)| Bytes::from(b)).unwrap_or_default());
        }
        Ok(())
    }

    /// Records durable step `n` as `rec` with `output`, if position `n`
    /// still holds `expected` (`None`: nothing; a waiting step's bytes:
    /// it). Answers the step as it stands after: this one, or the one
    /// another writer recorded first.
    pub(crate) async fn put_code(
        &self,
        id: &str,
        n: usize,
        mut rec: CodeRecord,
        output: &[u8],
        expected: Option<&[u8]>,
    ) -> Result<CodeStep> {
        let out_key = if output.is_empty() {
            rec.out = None;
            None
        } else {
            let nonce = format!("{:016x}", getrandom::u64().unwrap_or_else(|_| now_ms()));
            rec.out = Some(nonce.clone());
            Some(code_output_key(id, n, &nonce))
        };
        rec.bytes = output.len() as u64;
        let raw = encode(&rec);
        let key = code_key(id, n);
        // The output rides along: one commit on the embedded store; where
        // companions land first (JetStream) it is under a key no one else
        // writes, removed below if the record lost.
        let also: Vec<Change> = out_key
            .iter()
            .map(|k| (k.clone(), Some(output.to_vec())))
            .collect();
        if self
            .bucket
            .compare_and_set(&key, expected, &raw, &also)
            .await?
        {
            return Ok(CodeStep {
                rec,
                raw,
                output: Some(Bytes::copy_from_slice(output)),
            });
        }
        if let Some(k) = out_key {
            self.bucket.delete(&k).await?;
        }
        let mut now = self.code_steps_at(id, n).await?;
        now.take().ok_or_else(|| Error::Conflict(id.to_string()))
    }

    /// Durable step `n`, if recorded.
    async fn code_steps_at(&self, id: &str, n: usize) -> Result<Option<CodeStep>> {
        let key = code_key(id, n);
        let Some(raw) = self.bucket.get(&key).await? else {
            return Ok(None);
        };
        let rec: CodeRecord = decode(&key, &raw)?;
        let output = match &rec.out {
            Some(nonce) => self
                .bucket
                .get(&code_output_key(id, n, nonce))
                .await?
                .map(Bytes::from),
            None => None,
        };
        Ok(Some(CodeStep { rec, raw, output }))
    }

    /// Forgets durable steps `from..` (for a repair of a run that ended).
    pub(crate) async fn remove_code(
        &self,
        id: &str,
        steps: &[CodeStep],
        from: usize,
    ) -> Result<()> {
        // Last first: a repair cut short leaves a prefix, still a history.
        for (n, s) in steps.iter().enumerate().skip(from).rev() {
            self.bucket.delete(&code_key(id, n)).await?;
            if let Some(nonce) = &s.rec.out {
                self.bucket.delete(&code_output_key(id, n, nonce)).await?;
            }
        }
        Ok(())
    }

    /// Sends event `name` to run `id`; false when one by that name was
    /// sent before (nothing written).
    pub(crate) async fn put_event(&self, id: &str, name: &str, payload: &[u8]) -> Result<bool> {
        Ok(self
            .bucket
            .compare_and_set(&event_key(id, name), None, payload, &[])
            .await?)
    }

    /// Event `name` sent to run `id`, if sent.
    pub(crate) async fn event(&self, id: &str, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.bucket.get(&event_key(id, name)).await?)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::collections::BTreeMap;
    use weft_kv::{BackendSpec, KvLimits, Stores};

    async fn journal(dir: &tempfile::TempDir) -> Journal {
        let stores = Stores::open(
            &dir.path().join("kv.redb"),
            BTreeMap::from([("p".to_string(), BackendSpec::Embedded)]),
            KvLimits::default(),
        )
        .await
        .unwrap();
        Journal::new(stores.bucket("p").unwrap())
    }

    fn value(name: &str) -> CodeRecord {
        CodeRecord {
            name: name.into(),
            kind: CodeKind::Value,
            function: String::new(),
            state: CodeState::Succeeded,
            attempts: 0,
            started_ms: 1,
            ended_ms: 1,
            until_ms: None,
            node: String::new(),
            bytes: 0,
            out: None,
            error: None,
        }
    }

    #[tokio::test]
    async fn a_durable_step_is_recorded_once_and_its_outputs_read_a_window_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
        // Nine steps of 1 MiB less a little, one without output, one small.
        let big = vec![7u8; (1 << 20) - 10];
        for n in 0..9 {
            j.put_code("r", n, value(&format!("v{n}")), &big, None)
                .await
                .unwrap();
        }
        j.put_code("r", 9, value("none"), b"", None).await.unwrap();
        j.put_code("r", 10, value("small"), b"hi", None)
            .await
            .unwrap();

        // A second writer at a recorded position records nothing: it gets
        // the first one's step, output and all.
        let lost = j
            .put_code("r", 10, value("other"), b"other", None)
            .await
            .unwrap();
        assert_eq!(lost.rec.name, "small");
        assert_eq!(lost.output.as_deref(), Some(&b"hi"[..]));

        let mut steps = j.code_steps("r", 0).await.unwrap();
        assert_eq!(steps.len(), 11);
        assert!(steps.iter().all(|s| s.output.is_none()));
        // From 0: four outputs fit the 4 MiB window.
        j.code_outputs("r", &mut steps, 0).await.unwrap();
        let read: Vec<usize> = (0..11).filter(|&n| steps[n].output.is_some()).collect();
        assert_eq!(read, vec![0, 1, 2, 3]);
        assert_eq!(steps[3].output.as_deref(), Some(&big[..]));
        // From 8: the last big one and the small one (the one without an
        // output has none to read).
        j.code_outputs("r", &mut steps, 8).await.unwrap();
        assert!(steps[8].output.is_some() && steps[10].output.is_some());
        assert!(steps[9].output.is_none());
        assert_eq!(steps[10].output.as_deref(), Some(&b"hi"[..]));

        // Records are read in batches past the first.
        for n in 11..(CODE_BATCH + 5) {
            j.put_code("r", n, value("v"), b"", None).await.unwrap();
        }
        assert_eq!(j.code_steps("r", 0).await.unwrap().len(), CODE_BATCH + 5);
        assert_eq!(j.code_steps("r", 11).await.unwrap().len(), CODE_BATCH - 6);

        // A waiting step changes once: against its bytes as read.
        let mut wait = value("ev");
        wait.kind = CodeKind::Event;
        wait.state = CodeState::Waiting;
        let n = CODE_BATCH + 5;
        let waiting = j.put_code("r", n, wait.clone(), b"", None).await.unwrap();
        let mut came = wait.clone();
        came.state = CodeState::Succeeded;
        let settled = j
            .put_code("r", n, came.clone(), b"yes", Some(&waiting.raw))
            .await
            .unwrap();
        assert_eq!(settled.rec.state, CodeState::Succeeded);
        let mut timed_out = wait;
        timed_out.state = CodeState::NotTaken;
        let again = j
            .put_code("r", n, timed_out, b"", Some(&waiting.raw))
            .await
            .unwrap();
        assert_eq!(
            again.rec.state,
            CodeState::Succeeded,
            "the first settler wins"
        );
        assert_eq!(again.output.as_deref(), Some(&b"yes"[..]));
    }
}
