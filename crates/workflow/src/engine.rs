//! Runs workflows: one task per run drives its graph, starting each step
//! whose predecessors are recorded and recording each step's result before
//! any step after it starts.

use crate::code::{CodeRun, EVENT_POLL, Wake};
use crate::error::{Error, Result};
use crate::journal::{
    CodeState, DefRecord, Failure, Head, Journal, MAX_STEP_OUTPUT, RunRecord, RunState, StepEnd,
    StepRecord, input_key, item_key, now_ms, output_key, step_changes, step_removal,
};
use crate::outcome::{Failed, Ran, StepOutcome};
use crate::types::as_json;
use crate::view::{RunView, Running, StepView};
use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;
use weft_codes::Code;
use weft_controller::Function;
use weft_controller::{Jitter, RetryPolicy, backoff, retry_policy};
use weft_manifest::{FunctionSpec, KvStoreConfig};
use weft_manifest::{MAX_MAP_ITEMS, MapPlan, Name, Plan, PlannedStep, StepDecl, WorkflowSpec};
use weft_router::{Body, Request, Router, Trigger};
use weft_runtime::{CallContext, Durable, DurableError, DurableOp, FabricCode};
use weft_sched::Privacy;

/// How long a step turned away for want of capacity (or of a node) waits
/// before it is tried again; such a try spends no attempt.
const TURNED_AWAY_WAIT: Duration = Duration::from_millis(100);
/// Tries of a journal write that failed (the store down) before the run is
/// left for the next start to resume.
const COMMIT_TRIES: u32 = 5;

/// A workflow's version, checked.
pub(crate) struct Def {
    pub(crate) rec: DefRecord,
    pub(crate) plan: Plan,
}

/// A run being driven here.
struct Live {
    abort: Option<tokio::task::AbortHandle>,
    /// Steps running now, by index: attempt and when it started.
    running: BTreeMap<usize, Running>,
    ended: watch::Sender<bool>,
}

/// The workflows of a node: deploys, runs, repairs.
pub struct Workflows {
    router: Arc<Router>,
    journal: Journal,
    live: Mutex<HashMap<String, Live>>,
    versions: Mutex<HashMap<(String, u32), Arc<Def>>>,
    jitter: Mutex<Jitter>,
    /// Orchestrators' invocations under way, by invocation id (`RUN.F`).
    code: Mutex<HashMap<String, Arc<tokio::sync::Mutex<CodeRun>>>>,
    /// What wakes a run waiting for an event sent here, by run id.
    wakers: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
}

/// A deploy's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Deployed {
    /// The definition now current.
    #[serde(flatten)]
    pub def: DefRecord,
    /// Whether this deploy made a new version.
    pub changed: bool,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this workflow's.
    pub workflow: Option<String>,
    /// Only runs in this state.
    pub state: Option<RunState>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

/// A JSON value as the bytes a function takes: a string as its text,
/// anything else as JSON.
fn json_bytes(v: &Value) -> Bytes {
    match v {
        Value::String(s) => Bytes::from(s.clone()),
        other => Bytes::from(serde_json::to_vec(other).unwrap_or_default()),
    }
}

fn failure(code: Code, message: impl Into<String>) -> Failure {
    Failure {
        code: code.as_str().to_string(),
        message: message.into(),
        step: None,
    }
}

fn entropy() -> u64 {
    getrandom::u64().unwrap_or_else(|_| now_ms())
}

/// A new run's id: the start's milliseconds and 32 random bits, in hex, so
/// ids sort by start.
fn new_run_id() -> String {
    format!("{:012x}{:08x}", now_ms(), entropy() as u32)
}

/// The step at `i` of `spec` as its field path: `steps[i]` for a bare
/// name, `steps[i].function` for a table.
fn function_field(spec: &WorkflowSpec, i: usize) -> String {
    match spec.steps.get(i) {
        Some(StepDecl::Step(_)) => format!("steps[{i}].function"),
        _ => format!("steps[{i}]"),
    }
}

/// Every step downstream of `k` (it included), by index.
fn downstream(plan: &Plan, k: usize) -> Vec<usize> {
    let mut marked = vec![false; plan.steps.len()];
    marked[k] = true;
    // `after` points back; a step is downstream once any predecessor is.
    // Steps may be listed in any order: sweep until nothing changes.
    loop {
        let mut grew = false;
        for (i, s) in plan.steps.iter().enumerate() {
            if !marked[i] && s.after.iter().any(|&p| marked[p]) {
                marked[i] = true;
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    (0..plan.steps.len()).filter(|&i| marked[i]).collect()
}

impl Workflows {
    /// The workflows of `router`'s node, journaled in its platform store.
    /// Every run this node was driving (a restart after a crash) is resumed
    /// in the background: the store may be a fabric's, not reachable yet,
    /// and the node serves meanwhile (it tries again every few seconds).
    pub async fn start(router: Arc<Router>) -> Result<Arc<Workflows>> {
        let journal = Journal::new(router.controller().platform_store().clone());
        let wf = Arc::new(Workflows {
            router,
            journal,
            live: Mutex::new(HashMap::new()),
            versions: Mutex::new(HashMap::new()),
            jitter: Mutex::new(Jitter::seeded(entropy())),
            code: Mutex::new(HashMap::new()),
            wakers: Mutex::new(HashMap::new()),
        });
        wf.router
            .set_durable(Arc::new(Orchestrators(Arc::downgrade(&wf))));
        if let Some(down_after) = wf.router.down_after() {
            tokio::spawn(watch_fabric(Arc::downgrade(&wf), down_after));
        }
        let weak = Arc::downgrade(&wf);
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(200);
            loop {
                let Some(wf) = weak.upgrade() else { return };
                match wf.resume_all().await {
                    Ok(0) => return,
                    Ok(n) => {
                        tracing::info!(runs = n, "workflow runs resumed");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!("resuming workflow runs: {e}; trying again in {wait:?}");
                    }
                }
                drop(wf);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        });
        Ok(wf)
    }

    /// Resumes every run whose head says this node drives it and that is
    /// not driven yet; returns how many.
    async fn resume_all(self: &Arc<Self>) -> Result<usize> {
        let me = self.node();
        let mut resumed = 0;
        for run in self.journal.runs().await? {
            if run.state != RunState::Running
                || run.node != me
                || self.live.lock().contains_key(&run.id)
            {
                continue;
            }
            // In a fabric another node may be taking the run over: claim
            // it first. Standalone, nobody else drives this node's runs.
            let head = if self.router.down_after().is_some() {
                self.claim(&run.id, &me).await?
            } else {
                self.journal.head(&run.id).await?
            };
            if let Some(head) = head {
                self.resume(head).await?;
                resumed += 1;
            }
        }
        Ok(resumed)
    }

    /// Takes over the runs driven by nodes gone from the fabric: each such
    /// run goes to one of the nodes `up` (this one among them), the first
    /// by rendezvous rank of the run's id, so the survivors share them out
    /// without talking; returns how many this node took.
    async fn take_over(self: &Arc<Self>, up: &[String]) -> Result<usize> {
        let me = self.node();
        let mut taken = 0;
        for run in self.journal.runs().await? {
            if run.state != RunState::Running
                || up.contains(&run.node)
                || self.live.lock().contains_key(&run.id)
            {
                continue;
            }
            // Confined runs go only to a node within their privacy; with
            // none up, they wait for one.
            let taker = up
                .iter()
                .filter(|n| self.may_drive(&run, n))
                .max_by_key(|n| weft_sched::owner_rank("workflow", &run.id, n));
            if taker != Some(&me) {
                continue;
            }
            if let Some(head) = self.claim(&run.id, &run.node).await? {
                tracing::info!(run = %run.id, from = %run.node, "workflow run taken over from a node gone from the fabric");
                self.resume(head).await?;
                taken += 1;
            }
        }
        Ok(taken)
    }

    /// Claims run `id` for this node while it is running and its head says
    /// `from` drives it (this node, restarted; or a node gone): one write
    /// of the head, after which whoever drove it before writes nothing
    /// more (its next commit finds the head changed). `None` when the run
    /// ended or another node claimed it first.
    async fn claim(&self, id: &str, from: &str) -> Result<Option<Head>> {
        let me = self.node();
        let claimed = self
            .change(id, |head| {
                if head.run.state != RunState::Running || head.run.node != from {
                    return Err(Error::Conflict(id.to_string()));
                }
                let mut run = head.run.clone();
                run.node = me.clone();
                Ok((run, Vec::new()))
            })
            .await;
        match claimed {
            Ok(head) => Ok(Some(head)),
            Err(Error::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn node(&self) -> String {
        self.router.node_name().to_string()
    }

    /// Whether this node keeps the journal within `spec`'s privacy: its
    /// platform store is this node's own, or kept by a node of this site
    /// (tier); not a store that may be anywhere (the fabric's JetStream,
    /// Redis). The error says where it is.
    fn journal_within(&self, spec: &WorkflowSpec) -> std::result::Result<(), String> {
        let privacy = Privacy::named(spec.privacy.as_deref());
        if privacy == Privacy::None {
            return Ok(());
        }
        let config = self.router.controller().config();
        let Some(label) = &config.state.function else {
            return Ok(()); // the node's own embedded store
        };
        let me = self.node();
        let place = |n: &str| self.router.node_place(n);
        let keeper = match config.kv.get(label) {
            Some(KvStoreConfig::Embedded {}) => return Ok(()),
            Some(KvStoreConfig::Node { node }) => node,
            Some(KvStoreConfig::Fabric {}) => {
                return Err(format!(
                    "a run keeps its data within its {}, and this node's journal store `{label}` is the fabric's JetStream bucket, which may be anywhere: name in `[state] function` a store of this node's (`backend = \"embedded\"`) or of a node of its {} (`backend = \"node\"`)",
                    privacy.as_str(),
                    privacy.as_str()
                ));
            }
            Some(KvStoreConfig::Redis { .. }) | None => {
                return Err(format!(
                    "a run keeps its data within its {}, and this node's journal store `{label}` is a Redis server, which may be anywhere: name in `[state] function` a store of this node's or of a node of its {}",
                    privacy.as_str(),
                    privacy.as_str()
                ));
            }
        };
        if *keeper == me {
            return Ok(());
        }
        let within = match (place(&me), place(keeper)) {
            (Some((t1, s1)), Some((t2, s2))) => match privacy {
                Privacy::Site => s1.is_some() && s1 == s2,
                _ => t1 == t2,
            },
            _ => false,
        };
        if within {
            Ok(())
        } else {
            Err(format!(
                "a run keeps its data within its {}, and this node's journal store `{label}` is kept by node `{keeper}`, which is not of this node's {} (or not heard from)",
                privacy.as_str(),
                privacy.as_str()
            ))
        }
    }

    /// A new run's confinement: `spec`'s privacy, relative to this node.
    fn confined(&self, spec: &WorkflowSpec) -> Option<crate::journal::Confined> {
        let privacy = Privacy::named(spec.privacy.as_deref());
        if privacy == Privacy::None {
            return None;
        }
        let me = self.node();
        let (tier, site) = self
            .router
            .node_place(&me)
            .map(|(t, s)| (t.as_str().to_string(), s))
            .unwrap_or_default();
        Some(crate::journal::Confined {
            privacy: privacy.as_str().to_string(),
            tier,
            site,
            origin: me,
        })
    }

    /// Whether node `n` may drive run `run`: any node, unless the run is
    /// confined; then one of its origin's site (or tier).
    fn may_drive(&self, run: &RunRecord, n: &str) -> bool {
        let Some(c) = &run.confined else {
            return true;
        };
        if n == c.origin {
            return true;
        }
        let Some((tier, site)) = self.router.node_place(n) else {
            return false;
        };
        match c.privacy.as_str() {
            "site" => c.site.is_some() && site == c.site,
            _ => tier.as_str() == c.tier,
        }
    }

    /// The orchestrator's invocation `invocation`, if it is under way here.
    fn code_run(&self, invocation: &str) -> Option<Arc<tokio::sync::Mutex<CodeRun>>> {
        self.code.lock().get(invocation).cloned()
    }

    /// Reads run `id`'s durable steps for its orchestrator's invocation
    /// `invocation`, about to start; answers when it ends.
    async fn code_begin(self: &Arc<Self>, invocation: &str, mut run: CodeRun) -> Result<CodeGuard> {
        run.steps = self.journal.code_steps(&run.run, 0).await?;
        self.code.lock().insert(
            invocation.to_string(),
            Arc::new(tokio::sync::Mutex::new(run)),
        );
        Ok(CodeGuard {
            wf: self.clone(),
            invocation: invocation.to_string(),
        })
    }

    /// How the orchestrator's invocation `invocation` that just returned
    /// left its run: what it waits for, if one of its operations suspended
    /// it, and why an operation was refused, if one was.
    async fn code_outcome(&self, invocation: &str) -> (Option<Wake>, Option<String>) {
        let Some(run) = self.code_run(invocation) else {
            return (None, None);
        };
        let run = run.lock().await;
        (run.suspended.clone(), run.refused.clone())
    }

    fn waker(&self, id: &str) -> Arc<tokio::sync::Notify> {
        self.wakers
            .lock()
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    /// Waits until a suspended run can go on: its time came, or its event
    /// was sent (here: at once; through another node: within
    /// [`EVENT_POLL`]).
    async fn wait_wake(&self, id: &str, wake: &Wake) {
        let sleep_for = wake
            .until_ms
            .map(|u| Duration::from_millis(u.saturating_sub(now_ms())));
        let Some(event) = &wake.event else {
            tokio::time::sleep(sleep_for.unwrap_or(Duration::ZERO)).await;
            return;
        };
        let notify = self.waker(id);
        let until = sleep_for.map(|d| Instant::now() + d);
        loop {
            if matches!(self.journal.event(id, event).await, Ok(Some(_))) {
                return;
            }
            let mut wait = EVENT_POLL;
            if let Some(u) = until {
                let left = u.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return;
                }
                wait = wait.min(left);
            }
            let _ = tokio::time::timeout(wait, notify.notified()).await;
        }
    }

    /// Sends event `name` with `payload` to run `id`, which may be waiting
    /// for it (or will: an event sent before the run waits is kept). Each
    /// name is sent once.
    pub async fn signal(&self, id: &str, name: &str, payload: Bytes) -> Result<()> {
        let invalid = |message: String| Error::Event {
            run: id.to_string(),
            event: name.to_string(),
            message,
        };
        Name::new(name).map_err(|e| invalid(e.message().to_string()))?;
        if payload.len() > MAX_STEP_OUTPUT {
            return Err(invalid(format!(
                "{} bytes: an event carries at most {MAX_STEP_OUTPUT}",
                payload.len()
            )));
        }
        let head = self.head(id).await?;
        if head.run.state != RunState::Running {
            return Err(Error::RunEnded {
                run: id.to_string(),
                state: head.run.state.as_str(),
                what: format!("event `{name}` goes to a run still going"),
            });
        }
        let def = self.version(&head.run.workflow, head.run.version).await?;
        if !def.plan.code {
            return Err(invalid(format!(
                "workflow `{}` has steps, which wait for no events (a workflow in code waits for them)",
                head.run.workflow
            )));
        }
        if !self.journal.put_event(id, name, &payload).await? {
            return Err(Error::EventSent {
                run: id.to_string(),
                event: name.to_string(),
            });
        }
        // Driven here: woken now (driven elsewhere, its driver polls).
        if self.live.lock().contains_key(id) {
            self.waker(id).notify_one();
        }
        Ok(())
    }

    // ---- definitions ---------------------------------------------------

    /// Checks `spec` (its graph, and that every step's function is
    /// deployed) and stores it as `name`'s next version (unless unchanged).
    pub async fn deploy(&self, name: &str, spec: WorkflowSpec) -> Result<Deployed> {
        let invalid = |field: String, message: String| Error::Invalid {
            field: format!("workflows.{name}{field}"),
            message,
        };
        Name::new(name).map_err(|e| invalid(String::new(), e.message().to_string()))?;
        let plan = spec.plan().map_err(|e| {
            invalid(
                if e.field().is_empty() {
                    String::new()
                } else {
                    format!(".{}", e.field())
                },
                e.message().to_string(),
            )
        })?;
        let mut functions = Vec::with_capacity(plan.steps.len());
        for (i, s) in plan.steps.iter().enumerate() {
            match self.router.controller().function(s.function.as_str()) {
                Ok(f) => functions.push(f),
                Err(e) => {
                    let message = match e.code() {
                        Code::FunctionNotFound => format!(
                            "function `{}` is not deployed on this node: deploy it first",
                            s.function
                        ),
                        _ => e.to_string(),
                    };
                    let field = if plan.code {
                        "function".to_string()
                    } else {
                        function_field(&spec, i)
                    };
                    return Err(invalid(format!(".{field}"), message));
                }
            }
        }
        let specs: Vec<&FunctionSpec> = functions.iter().map(|f| f.spec()).collect();
        if let Some((k, message)) = crate::types::mismatch(&plan, &specs) {
            return Err(invalid(format!(".steps[{k}]"), message));
        }
        self.journal_within(&spec)
            .map_err(|message| invalid(".privacy".into(), message))?;
        let (def, changed) = self.journal.put_def(name, spec).await?;
        Ok(Deployed { def, changed })
    }

    /// The current definition of `name`.
    pub async fn definition(&self, name: &str) -> Result<DefRecord> {
        self.journal
            .def(name)
            .await?
            .ok_or_else(|| Error::WorkflowNotFound(name.to_string()))
    }

    /// Every current definition, by name.
    pub async fn definitions(&self) -> Result<Vec<DefRecord>> {
        self.journal.defs().await
    }

    /// Removes `name`; runs already started keep their version.
    pub async fn remove(&self, name: &str) -> Result<DefRecord> {
        self.journal
            .remove_def(name)
            .await?
            .ok_or_else(|| Error::WorkflowNotFound(name.to_string()))
    }

    /// Version `v` of `name`, checked (cached: versions never change).
    async fn version(&self, name: &str, v: u32) -> Result<Arc<Def>> {
        if let Some(d) = self.versions.lock().get(&(name.to_string(), v)) {
            return Ok(d.clone());
        }
        let rec = self
            .journal
            .def_version(name, v)
            .await?
            .ok_or_else(|| Error::Corrupt {
                key: format!("wf/ver/{name}/{v}"),
                message: "a run names this version and it is gone".into(),
            })?;
        let plan = rec.spec.plan().map_err(|e| Error::Corrupt {
            key: format!("wf/ver/{name}/{v}"),
            message: e.to_string(),
        })?;
        let def = Arc::new(Def { rec, plan });
        self.versions
            .lock()
            .insert((name.to_string(), v), def.clone());
        Ok(def)
    }

    // ---- runs ----------------------------------------------------------

    /// Starts a run of `name`'s current version with `input`; returns once
    /// the run is recorded (its id is durable), its first steps started.
    pub async fn run(self: &Arc<Self>, name: &str, input: Bytes) -> Result<RunRecord> {
        let current = self.definition(name).await?;
        if input.len() > MAX_STEP_OUTPUT {
            return Err(Error::Invalid {
                field: "input".into(),
                message: format!(
                    "{} bytes: a run's input is at most {MAX_STEP_OUTPUT} bytes",
                    input.len()
                ),
            });
        }
        let def = self.version(name, current.version).await?;
        self.journal_within(&def.rec.spec)
            .map_err(|message| Error::Invalid {
                field: format!("workflows.{name}.privacy"),
                message,
            })?;
        // A function redeployed since with another schema may no longer
        // fit its neighbours: checked again, as at the workflow's deploy
        // (a step whose function is gone fails when it runs, as before).
        let functions: Vec<Option<Arc<Function>>> = def
            .plan
            .steps
            .iter()
            .map(|s| self.router.controller().function(s.function.as_str()).ok())
            .collect();
        let specs: Option<Vec<&FunctionSpec>> = functions
            .iter()
            .map(|f| f.as_ref().map(|f| f.spec()))
            .collect();
        if let Some(specs) = specs
            && let Some((k, message)) = crate::types::mismatch(&def.plan, &specs)
        {
            return Err(Error::Invalid {
                field: format!("workflows.{name}.steps[{k}]"),
                message: format!(
                    "{message} (a function was redeployed since version {} of the workflow: deploy the workflow or the function again to fit)",
                    def.rec.version
                ),
            });
        }
        for (k, (s, f)) in def.plan.steps.iter().zip(&functions).enumerate() {
            let Some(f) = f else { continue };
            if let Some(message) = crate::types::unfit_input(&def.plan, k, f.spec(), &input) {
                return Err(Error::Input {
                    step: s.name.to_string(),
                    message,
                });
            }
        }
        let now = now_ms();
        let run = RunRecord {
            id: new_run_id(),
            workflow: name.to_string(),
            version: def.rec.version,
            state: RunState::Running,
            created_ms: now,
            updated_ms: now,
            ended_ms: None,
            deadline_ms: def.plan.deadline.map(|d| now + millis(d)),
            node: self.node(),
            error: None,
            recorded: 0,
            seq: 0,
            confined: self.confined(&def.rec.spec),
        };
        let head = self.journal.create(run, &input).await?;
        let run = head.run.clone();
        let steps = vec![None; def.plan.steps.len()];
        self.drive(head, def, steps, Some(input));
        Ok(run)
    }

    /// Resumes a recorded run: its recorded steps stand, the others run.
    async fn resume(self: &Arc<Self>, head: Head) -> Result<()> {
        let def = self.version(&head.run.workflow, head.run.version).await?;
        let names: Vec<&str> = def.plan.steps.iter().map(|s| s.name.as_str()).collect();
        let steps = self.journal.steps(&head.run.id, &names).await?;
        self.drive(head, def, steps, None);
        Ok(())
    }

    /// Spawns the task that drives a run, and registers it as live.
    fn drive(
        self: &Arc<Self>,
        head: Head,
        def: Arc<Def>,
        steps: Vec<Option<StepRecord>>,
        input: Option<Bytes>,
    ) {
        let id = head.run.id.clone();
        let (ended, _) = watch::channel(false);
        // Registered before the task runs, so its end always finds it.
        self.live.lock().insert(
            id.clone(),
            Live {
                abort: None,
                running: BTreeMap::new(),
                ended,
            },
        );
        let me = self.clone();
        let task = tokio::spawn(async move {
            let id = head.run.id.clone();
            Driver {
                wf: me.clone(),
                head,
                def,
                steps,
                input,
                outputs: HashMap::new(),
            }
            .drive()
            .await;
            me.ended(&id);
        });
        if let Some(l) = self.live.lock().get_mut(&id) {
            l.abort = Some(task.abort_handle());
        }
    }

    fn ended(&self, id: &str) {
        self.wakers.lock().remove(id);
        if let Some(l) = self.live.lock().remove(id) {
            let _ = l.ended.send(true);
        }
    }

    fn set_running(&self, id: &str, step: usize, attempt: Option<Running>) {
        if let Some(l) = self.live.lock().get_mut(id) {
            match attempt {
                Some(a) => l.running.insert(step, a),
                None => l.running.remove(&step),
            };
        }
    }

    /// Waits until run `id` is no longer driven here (it ended, or it
    /// awaits a repair), at most `timeout`; returns how it stands.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<RunView> {
        let rx = self.live.lock().get(id).map(|l| l.ended.subscribe());
        if let Some(mut rx) = rx {
            let _ = tokio::time::timeout(timeout, rx.wait_for(|ended| *ended)).await;
        }
        self.show(id).await
    }

    /// A run, with each step's state, timing and node, and its output once
    /// it succeeded.
    pub async fn show(&self, id: &str) -> Result<RunView> {
        let head = self.head(id).await?;
        let def = self.version(&head.run.workflow, head.run.version).await?;
        let names: Vec<&str> = def.plan.steps.iter().map(|s| s.name.as_str()).collect();
        let records = self.journal.steps(id, &names).await?;
        let running = self
            .live
            .lock()
            .get(id)
            .map(|l| l.running.clone())
            .unwrap_or_default();
        let steps = def
            .plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                StepView::new(s, &def.plan, records[i].as_ref(), running.get(&i).cloned())
            })
            .chain(if def.plan.code {
                self.journal
                    .code_steps(id, 0)
                    .await?
                    .iter()
                    .map(|s| StepView::durable(&s.rec))
                    .collect()
            } else {
                Vec::new()
            })
            .collect();
        let output = self.output_of(&head, &def).await?;
        Ok(RunView::new(head.run, steps, output))
    }

    /// A run's recorded head.
    async fn head(&self, id: &str) -> Result<Head> {
        self.journal
            .head(id)
            .await?
            .ok_or_else(|| Error::RunNotFound(id.to_string()))
    }

    /// The output of a run that succeeded (`None` before).
    async fn output_of(&self, head: &Head, def: &Def) -> Result<Option<Vec<u8>>> {
        if head.run.state != RunState::Succeeded {
            return Ok(None);
        }
        let out = &def.plan.steps[def.plan.output];
        let key = output_key(&head.run.id, out.name.as_str());
        Ok(Some(self.journal.raw(&key).await?.unwrap_or_default()))
    }

    /// The output of a run that succeeded (`None` before).
    pub async fn output(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let head = self.head(id).await?;
        let def = self.version(&head.run.workflow, head.run.version).await?;
        self.output_of(&head, &def).await
    }

    /// Runs, newest first.
    pub async fn list(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let mut runs: Vec<RunRecord> = self
            .journal
            .runs()
            .await?
            .into_iter()
            .filter(|r| filter.workflow.as_deref().is_none_or(|w| r.workflow == w))
            .filter(|r| filter.state.is_none_or(|s| r.state == s))
            .collect();
        runs.sort_by(|a, b| b.id.cmp(&a.id));
        if let Some(n) = filter.limit {
            runs.truncate(n);
        }
        Ok(runs)
    }

    fn stop(&self, id: &str) {
        let abort = self.live.lock().get(id).and_then(|l| l.abort.clone());
        if let Some(a) = abort {
            a.abort();
        }
        self.ended(id);
    }

    /// Changes a run's head with `change` (which may refuse), re-reading it
    /// when another writer changed it meanwhile.
    async fn change(
        &self,
        id: &str,
        change: impl Fn(&Head) -> Result<(RunRecord, Vec<weft_kv::Change>)>,
    ) -> Result<Head> {
        for _ in 0..COMMIT_TRIES {
            let head = self.head(id).await?;
            let (run, also) = change(&head)?;
            if let Some(h) = self.journal.commit(&head, run, &also).await? {
                return Ok(h);
            }
        }
        Err(Error::Conflict(id.to_string()))
    }

    /// Cancels a running run: its steps in flight are stopped, nothing
    /// more runs; it can be retried.
    pub async fn cancel(&self, id: &str) -> Result<RunView> {
        self.stop(id);
        self.change(id, |head| {
            if head.run.state != RunState::Running {
                return Err(Error::RunEnded {
                    run: id.to_string(),
                    state: head.run.state.as_str(),
                    what: "it cannot be cancelled".into(),
                });
            }
            let mut run = head.run.clone();
            run.state = RunState::Cancelled;
            run.ended_ms = Some(now_ms());
            run.error = Some(failure(Code::RunEnded, "cancelled by an operator"));
            Ok((run, Vec::new()))
        })
        .await?;
        self.show(id).await
    }

    /// Runs a run that ended again from where it stopped: its failed steps
    /// (or `step` and every step after it) are forgotten and run anew; its
    /// deadline counts again from now.
    pub async fn retry(self: &Arc<Self>, id: &str, step: Option<&str>) -> Result<RunView> {
        self.repair(id, step, None).await
    }

    /// Records `output` as the output of `step` of a run that ended,
    /// without running it (every step after it runs anew), and resumes it.
    pub async fn skip(self: &Arc<Self>, id: &str, step: &str, output: Bytes) -> Result<RunView> {
        if output.len() > MAX_STEP_OUTPUT {
            return Err(Error::Invalid {
                field: "output".into(),
                message: format!(
                    "{} bytes: a step's output is at most {MAX_STEP_OUTPUT} bytes",
                    output.len()
                ),
            });
        }
        self.repair(id, Some(step), Some(output)).await
    }

    async fn repair(
        self: &Arc<Self>,
        id: &str,
        step: Option<&str>,
        skip_with: Option<Bytes>,
    ) -> Result<RunView> {
        let first = self.head(id).await?;
        let def = self.version(&first.run.workflow, first.run.version).await?;
        if def.plan.code {
            let orchestrator = def.plan.steps[0].name.as_str();
            if step == Some(orchestrator) {
                return self.repair_steps(id, step, skip_with).await;
            }
            self.repair_code(&first, step, skip_with).await?;
            // The orchestrator runs again, and replays what stands.
            return self.repair_steps(id, Some(orchestrator), None).await;
        }
        self.repair_steps(id, step, skip_with).await
    }

    /// Forgets an orchestrator's durable step `step` (or its first failed
    /// one) and every one after it, recording `skip_with` as the step's
    /// value instead when given.
    async fn repair_code(
        &self,
        head: &Head,
        step: Option<&str>,
        skip_with: Option<Bytes>,
    ) -> Result<()> {
        let id = head.run.id.as_str();
        if head.run.state == RunState::Running {
            return Err(Error::RunActive {
                run: id.to_string(),
                what: if skip_with.is_some() {
                    "skip a step".into()
                } else {
                    "retry it".into()
                },
            });
        }
        let steps = self.journal.code_steps(id, 0).await?;
        let from = match step {
            Some(name) => steps
                .iter()
                .position(|s| s.rec.name == name)
                .ok_or_else(|| Error::StepNotFound {
                    run: id.to_string(),
                    step: name.to_string(),
                })?,
            None => match steps.iter().position(|s| s.rec.state == CodeState::Failed) {
                Some(n) => n,
                None => return Ok(()),
            },
        };
        self.journal.remove_code(id, &steps, from).await?;
        if let Some(out) = skip_with {
            let mut rec = steps[from].rec.clone();
            rec.state = CodeState::Skipped;
            rec.error = None;
            rec.attempts = 0;
            rec.node = String::new();
            rec.ended_ms = now_ms();
            self.journal.put_code(id, from, rec, &out, None).await?;
        }
        Ok(())
    }

    async fn repair_steps(
        self: &Arc<Self>,
        id: &str,
        step: Option<&str>,
        skip_with: Option<Bytes>,
    ) -> Result<RunView> {
        let what = if skip_with.is_some() {
            "skip a step"
        } else {
            "retry it"
        };
        let first = self.head(id).await?;
        let def = self.version(&first.run.workflow, first.run.version).await?;
        let names: Vec<&str> = def.plan.steps.iter().map(|s| s.name.as_str()).collect();
        let records = self.journal.steps(id, &names).await?;
        let reset: Vec<usize> = match step {
            Some(s) => {
                let k = names
                    .iter()
                    .position(|n| *n == s)
                    .ok_or_else(|| Error::StepNotFound {
                        run: id.to_string(),
                        step: s.to_string(),
                    })?;
                downstream(&def.plan, k)
            }
            None => (0..names.len())
                .filter(|&i| {
                    records[i]
                        .as_ref()
                        .is_some_and(|r| r.state == StepEnd::Failed)
                })
                .collect(),
        };
        let active = || Error::RunActive {
            run: id.to_string(),
            what: what.into(),
        };
        if first.run.state == RunState::Running {
            return Err(active());
        }
        // Items a reset map step recorded would be taken as done.
        for &i in &reset {
            if def.plan.steps[i].map.is_some() {
                self.journal.remove_items(id, names[i]).await?;
            }
        }
        let now = now_ms();
        let node = self.node();
        let head = self
            .change(id, |head| {
                if head.run.state == RunState::Running {
                    return Err(active());
                }
                let mut run = head.run.clone();
                let mut also = Vec::new();
                for &i in &reset {
                    also.extend(step_removal(id, names[i]));
                }
                let mut recorded = records
                    .iter()
                    .enumerate()
                    .filter(|(i, r)| r.is_some() && !reset.contains(i))
                    .count();
                if let (Some(out), Some(s)) = (&skip_with, step) {
                    let rec = StepRecord {
                        state: StepEnd::Skipped,
                        attempts: 0,
                        started_ms: now,
                        ended_ms: now,
                        node: String::new(),
                        bytes: out.len() as u64,
                        error: None,
                    };
                    also.extend(step_changes(
                        id,
                        s,
                        &rec,
                        Some(out).filter(|o| !o.is_empty()).map(|o| &o[..]),
                    ));
                    recorded += 1;
                }
                run.state = RunState::Running;
                run.error = None;
                run.ended_ms = None;
                run.deadline_ms = def.plan.deadline.map(|d| now + millis(d));
                run.node = node.clone();
                run.recorded = u32::try_from(recorded).unwrap_or(u32::MAX);
                Ok((run, also))
            })
            .await?;
        self.resume(head).await?;
        self.show(id).await
    }
}

/// How often, at most, every run's head is read to find runs of nodes gone
/// (besides whenever a node goes).
const RESCAN: Duration = Duration::from_secs(30);

/// Watches the fabric for nodes that go, and takes over their runs. A node
/// looks gone when it has not beaten for `down_after`; this node waits that
/// long after it joins (or after it was cut off from the fabric's server)
/// before it judges, so that it has heard every peer still up.
async fn watch_fabric(wf: std::sync::Weak<Workflows>, down_after: Duration) {
    let mut tick = tokio::time::interval((down_after / 6).max(Duration::from_millis(20)));
    let mut heard_since = Instant::now();
    let mut last: Option<(Vec<String>, Instant)> = None;
    loop {
        tick.tick().await;
        let Some(wf) = wf.upgrade() else { return };
        let Some(mut up) = wf.router.nodes_up() else {
            heard_since = Instant::now();
            continue;
        };
        if heard_since.elapsed() < down_after {
            continue;
        }
        up.sort();
        let due = last
            .as_ref()
            .is_none_or(|(was, at)| was.iter().any(|n| !up.contains(n)) || at.elapsed() >= RESCAN);
        if !due {
            last = last.map(|(_, at)| (up, at));
            continue;
        }
        match wf.take_over(&up).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "workflow runs taken over"),
            Err(e) => {
                // Tried again at the next beat: `last` still holds the
                // node that went.
                tracing::warn!("taking over workflow runs: {e}");
                continue;
            }
        }
        last = Some((up, Instant::now()));
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One run being driven.
struct Driver {
    wf: Arc<Workflows>,
    head: Head,
    def: Arc<Def>,
    /// Each step's record, by index, once recorded.
    steps: Vec<Option<StepRecord>>,
    /// The run's input, once read.
    input: Option<Bytes>,
    /// Outputs read or produced, by step index, while a step still needs
    /// them.
    outputs: HashMap<usize, Bytes>,
}

impl Driver {
    fn id(&self) -> String {
        self.head.run.id.clone()
    }

    async fn drive(mut self) {
        let def = self.def.clone();
        let plan = &def.plan;
        let n = plan.steps.len();
        let mut started = vec![false; n];
        let mut running: JoinSet<(usize, StepOutcome)> = JoinSet::new();
        let deadline = self
            .head
            .run
            .deadline_ms
            .map(|at| Instant::now() + Duration::from_millis(at.saturating_sub(now_ms())));
        loop {
            // Steps recorded as not taken here make others ready: look again.
            let mut bypassed = false;
            for (k, began) in started.iter_mut().enumerate() {
                let ready = !*began
                    && self.steps[k].is_none()
                    && plan.steps[k].after.iter().all(|&p| {
                        self.steps[p]
                            .as_ref()
                            .is_some_and(|r| r.state.lets_through())
                    });
                if !ready {
                    continue;
                }
                *began = true;
                let after = &plan.steps[k].after;
                let taken = after.is_empty()
                    || after.iter().any(|&p| {
                        self.steps[p]
                            .as_ref()
                            .is_some_and(|r| r.state != StepEnd::NotTaken)
                    });
                let input = if taken {
                    match self.input_of(k).await {
                        Ok(input) => Some(input),
                        Err(failure) => {
                            let failed = Failed {
                                failure,
                                attempts: 0,
                                started_ms: now_ms(),
                            };
                            self.step_failed(k, failed).await;
                            return;
                        }
                    }
                } else {
                    None
                };
                let passes = |input: &Bytes| {
                    plan.steps[k]
                        .when
                        .as_ref()
                        .is_none_or(|c| c.holds(&as_json(input).unwrap_or(Value::Null)))
                };
                match input {
                    Some(input) if passes(&input) => {
                        let wf = self.wf.clone();
                        let (id, workflow) = (self.id(), self.head.run.workflow.clone());
                        let def = def.clone();
                        running.spawn(async move {
                            let step = &def.plan.steps[k];
                            let kind = (
                                def.plan.code,
                                Privacy::named(def.rec.spec.privacy.as_deref()),
                            );
                            let out =
                                run_step(&wf, &id, &workflow, k, step, input, deadline, kind).await;
                            (k, out)
                        });
                    }
                    _ => {
                        if !self.not_taken(k).await {
                            return;
                        }
                        bypassed = true;
                    }
                }
            }
            if bypassed {
                continue;
            }
            if running.is_empty() {
                self.finish().await;
                return;
            }
            let next = match deadline {
                Some(at) => match tokio::time::timeout_at(at.into(), running.join_next()).await {
                    Ok(n) => n,
                    Err(_) => {
                        let left: Vec<&str> = (0..n)
                            .filter(|&k| started[k] && self.steps[k].is_none())
                            .map(|k| plan.steps[k].name.as_str())
                            .collect();
                        let f = failure(
                            Code::DeadlineExpired,
                            format!(
                                "the run's deadline passed with {} still running",
                                left.join(", ")
                            ),
                        );
                        self.run_failed(f).await;
                        return;
                    }
                },
                None => running.join_next().await,
            };
            match next {
                Some(Ok((k, Ok(ran)))) => {
                    if self.step_succeeded(k, ran).await {
                        continue;
                    }
                    return;
                }
                Some(Ok((k, Err(failed)))) => {
                    self.step_failed(k, failed).await;
                    return;
                }
                Some(Err(e)) => {
                    self.run_failed(failure(
                        Code::Internal,
                        format!("a step's task failed: {e}"),
                    ))
                    .await;
                    return;
                }
                None => {}
            }
        }
    }

    /// A step's input: the run's input, its one predecessor's output, or a
    /// JSON object of its predecessors' outputs by name.
    async fn input_of(&mut self, k: usize) -> std::result::Result<Bytes, Failure> {
        let def = self.def.clone();
        let plan = &def.plan;
        let after = plan.steps[k].after.clone();
        match after.as_slice() {
            [] => {
                if self.input.is_none() {
                    let raw = self
                        .wf
                        .journal
                        .raw(&input_key(&self.head.run.id))
                        .await
                        .map_err(|e| failure(e.code(), e.to_string()))?;
                    self.input = Some(Bytes::from(raw.unwrap_or_default()));
                }
                Ok(self.input.clone().unwrap_or_default())
            }
            [p] => self.output_of(*p).await,
            many => {
                let mut joined = serde_json::Map::new();
                for &p in many {
                    if self.steps[p]
                        .as_ref()
                        .is_some_and(|r| r.state == StepEnd::NotTaken)
                    {
                        continue;
                    }
                    let out = self.output_of(p).await?;
                    let name = plan.steps[p].name.to_string();
                    let value = match as_json(&out) {
                        Some(v) => v,
                        None => {
                            return Err(failure(
                                Code::InvalidStepInput,
                                format!(
                                    "step `{}` joins the outputs of {}, and `{name}`'s is neither JSON nor text",
                                    plan.steps[k].name,
                                    many.iter()
                                        .map(|&i| format!("`{}`", plan.steps[i].name))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            ));
                        }
                    };
                    joined.insert(name, value);
                }
                Ok(Bytes::from(
                    serde_json::to_vec(&Value::Object(joined)).unwrap_or_default(),
                ))
            }
        }
    }

    async fn output_of(&mut self, p: usize) -> std::result::Result<Bytes, Failure> {
        if let Some(b) = self.outputs.get(&p) {
            return Ok(b.clone());
        }
        let name = self.def.plan.steps[p].name.as_str();
        let raw = self
            .wf
            .journal
            .raw(&output_key(&self.head.run.id, name))
            .await
            .map_err(|e| failure(e.code(), e.to_string()))?;
        let b = Bytes::from(raw.unwrap_or_default());
        self.outputs.insert(p, b.clone());
        Ok(b)
    }

    /// Writes `run` with `also` over the head; false when the run is no
    /// longer this driver's (nothing written) or the store kept failing
    /// (the run is left as recorded, for the next start to resume).
    async fn commit(&mut self, run: RunRecord, also: &[weft_kv::Change]) -> bool {
        let mut wait = Duration::from_millis(50);
        for tried in 1..=COMMIT_TRIES {
            match self.wf.journal.commit(&self.head, run.clone(), also).await {
                Ok(Some(h)) => {
                    self.head = h;
                    return true;
                }
                Ok(None) => {
                    tracing::info!(run = %self.head.run.id, "run changed by another writer: no longer driven here");
                    return false;
                }
                Err(e) if tried < COMMIT_TRIES => {
                    tracing::warn!(run = %self.head.run.id, "journal write failed ({e}); retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    tracing::error!(run = %self.head.run.id, "journal write failed ({e}); the run resumes at the next start");
                }
            }
        }
        false
    }

    async fn step_succeeded(&mut self, k: usize, ran: Ran) -> bool {
        let def = self.def.clone();
        let plan = &def.plan;
        let step = &plan.steps[k];
        let id = self.id();
        let rec = StepRecord {
            state: StepEnd::Succeeded,
            attempts: ran.attempts,
            started_ms: ran.started_ms,
            ended_ms: now_ms(),
            node: ran.node,
            bytes: ran.output.len() as u64,
            error: None,
        };
        let mut run = self.head.run.clone();
        run.recorded += 1;
        let mut also = step_changes(
            &id,
            step.name.as_str(),
            &rec,
            Some(&ran.output[..]).filter(|o| !o.is_empty()),
        );
        also.extend((0..ran.items).map(|i| (item_key(&id, step.name.as_str(), i), None)));
        if !self.commit(run, &also).await {
            return false;
        }
        self.steps[k] = Some(rec);
        self.outputs.insert(k, ran.output);
        // Forget outputs no step still waits for.
        let waiting = |p: usize, steps: &[Option<StepRecord>]| {
            plan.steps
                .iter()
                .enumerate()
                .any(|(i, s)| steps[i].is_none() && s.after.contains(&p))
        };
        let steps = &self.steps;
        self.outputs.retain(|&p, _| waiting(p, steps));
        true
    }

    /// Records step `k` as not taken; false when the run is no longer
    /// this driver's.
    async fn not_taken(&mut self, k: usize) -> bool {
        let now = now_ms();
        let rec = StepRecord {
            state: StepEnd::NotTaken,
            attempts: 0,
            started_ms: now,
            ended_ms: now,
            node: String::new(),
            bytes: 0,
            error: None,
        };
        let mut run = self.head.run.clone();
        run.recorded += 1;
        let also = step_changes(&self.id(), self.def.plan.steps[k].name.as_str(), &rec, None);
        if !self.commit(run, &also).await {
            return false;
        }
        self.steps[k] = Some(rec);
        true
    }

    async fn step_failed(&mut self, k: usize, failed: Failed) {
        let name = self.def.plan.steps[k].name.to_string();
        let id = self.id();
        let mut f = failed.failure;
        let rec = StepRecord {
            state: StepEnd::Failed,
            attempts: failed.attempts,
            started_ms: failed.started_ms,
            ended_ms: now_ms(),
            node: String::new(),
            bytes: 0,
            error: Some(f.clone()),
        };
        f.step = Some(name.clone());
        let mut run = self.head.run.clone();
        run.state = RunState::Failed;
        run.ended_ms = Some(now_ms());
        run.error = Some(f);
        let also = step_changes(&id, &name, &rec, None);
        self.commit(run, &also).await;
    }

    async fn run_failed(&mut self, f: Failure) {
        let mut run = self.head.run.clone();
        run.state = RunState::Failed;
        run.ended_ms = Some(now_ms());
        run.error = Some(f);
        self.commit(run, &[]).await;
    }

    /// Nothing runs and nothing is ready: every step is recorded (the run
    /// succeeded), or one failed.
    async fn finish(&mut self) {
        if let Some((k, r)) = self.steps.iter().enumerate().find_map(|(k, r)| {
            r.as_ref()
                .filter(|r| !r.state.lets_through())
                .map(|r| (k, r))
        }) {
            let mut f = r
                .error
                .clone()
                .unwrap_or_else(|| failure(Code::Internal, "failed"));
            f.step = Some(self.def.plan.steps[k].name.to_string());
            self.run_failed(f).await;
            return;
        }
        let mut run = self.head.run.clone();
        run.state = RunState::Succeeded;
        run.ended_ms = Some(now_ms());
        self.commit(run, &[]).await;
    }
}

/// Runs one step's attempts: each through the router (placement,
/// admission, deadlines, like any invocation), under the step's id
/// `RUN.STEP` (the same on every attempt: the guest's idempotency key),
/// within the step's timeout and the run's deadline, retried with backoff
/// per the step's (or its function's) retry policy while the error may go
/// away. Turned away for want of capacity or of a node, it waits without
/// spending an attempt.
/// A map step's item is invoked as `RUN.STEP.I`, and shown as its step;
/// an orchestrator's durable call as `RUN.F.NAME`.
///
/// An orchestrator (a workflow in code) runs on this node, with its
/// journal read for it; when one of its durable operations suspended the
/// run, its answer is dropped, and it is invoked again (no attempt spent)
/// once the run can go on.
pub(crate) async fn attempts(
    wf: &Arc<Workflows>,
    id: &str,
    workflow: &str,
    target: Attempt,
    step: &PlannedStep,
    input: Bytes,
    run_deadline: Option<Instant>,
) -> StepOutcome {
    let function = step.function.as_str();
    let policy: RetryPolicy = match &step.retry {
        Some(r) => retry_policy(r),
        None => wf
            .router
            .controller()
            .function(function)
            .map(|f| f.retry())
            .unwrap_or_else(|_| retry_policy(&weft_manifest::RetrySpec::default())),
    };
    let Attempt {
        invocation,
        what,
        shown,
        orchestrator,
        privacy,
    } = target;
    let mut attempt = 1;
    loop {
        let started_ms = now_ms();
        if let Some(k) = shown {
            wf.set_running(id, k, Some(Running::new(attempt, started_ms)));
        }
        let _code = if orchestrator {
            let run = CodeRun {
                run: id.to_string(),
                workflow: workflow.to_string(),
                function: function.to_string(),
                deadline: run_deadline,
                privacy,
                steps: Vec::new(),
                cursor: 0,
                suspended: None,
                refused: None,
            };
            match wf.code_begin(&invocation, run).await {
                Ok(g) => Some(g),
                Err(e) => {
                    // The journal unreadable: tried again, as a step
                    // turned away is.
                    tracing::warn!(run = %id, "reading the run's durable steps: {e}");
                    tokio::time::sleep(TURNED_AWAY_WAIT).await;
                    continue;
                }
            }
        } else {
            None
        };
        let now = Instant::now();
        let mut req = Request::new(function, Trigger::Workflow);
        req.subject = format!("{workflow}/{}", step.name);
        req.id = Some(invocation.clone());
        req.attempt = attempt;
        req.body = Body::Bytes(input.clone());
        req.pinned = orchestrator;
        req.privacy = privacy;
        req.inherited_deadline = run_deadline;
        req.deadline = match (step.timeout.map(|t| now + t), run_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let ran = match step.timeout {
            Some(t) => match tokio::time::timeout(t, wf.router.invoke_to_end(req)).await {
                Ok(r) => r.map_err(Some),
                Err(_) => Err(None),
            },
            None => wf.router.invoke_to_end(req).await.map_err(Some),
        };
        if let Some(k) = shown {
            wf.set_running(id, k, None);
        }
        let refused = if orchestrator {
            let (wake, refused) = wf.code_outcome(&invocation).await;
            if let Some(wake) = wake {
                if let Some(k) = shown {
                    let mut waits = Running::new(attempt, started_ms);
                    waits.suspended = true;
                    wf.set_running(id, k, Some(waits));
                }
                wf.wait_wake(id, &wake).await;
                continue;
            }
            refused
        } else {
            None
        };
        let (mut f, retryable, spends) = match ran {
            Ok(out) if out.body.len() > MAX_STEP_OUTPUT => (
                failure(
                    Code::StepOutputTooLarge,
                    format!(
                        "{what} answered {} bytes; a run records at most {MAX_STEP_OUTPUT} per step",
                        out.body.len()
                    ),
                ),
                false,
                true,
            ),
            Ok(out) => match wf
                .router
                .controller()
                .function(function)
                .ok()
                .and_then(|f| crate::types::unkept_output(f.spec(), &out.body))
            {
                Some(message) => (
                    failure(
                        Code::InvalidStepOutput,
                        format!(
                            "{what} answered what function `{function}` declares it does not: {message}"
                        ),
                    ),
                    false,
                    true,
                ),
                None => {
                    return Ok(Ran {
                        output: out.body,
                        node: out.served.node,
                        attempts: attempt,
                        started_ms,
                        items: 0,
                    });
                }
            },
            Err(None) => (
                failure(
                    Code::DeadlineExceeded,
                    format!(
                        "{what} took longer than its timeout of {} ms",
                        step.timeout.map_or(0, millis)
                    ),
                ),
                true,
                true,
            ),
            Err(Some(e)) => {
                let turned_away = e.code().turned_away() || e.found_no_node();
                (
                    failure(e.code(), e.to_string()),
                    e.retryable(),
                    !turned_away,
                )
            }
        };
        if let Some(why) = refused {
            f.message = format!("{} ({why})", f.message);
        }
        let spent = attempt;
        let failed = move |failure| Failed {
            failure,
            attempts: spent,
            started_ms,
        };
        // Stopped by the run's deadline (its own): the run's failure.
        if run_deadline.is_some_and(|d| Instant::now() >= d) {
            let f = failure(
                Code::DeadlineExpired,
                format!("the run's deadline passed while {what} ran ({})", f.message),
            );
            return Err(failed(f));
        }
        if !retryable || (spends && attempt >= policy.max_attempts) {
            return Err(failed(f));
        }
        let wait = if spends {
            let random = wf.jitter.lock().next_u64();
            let wait = backoff(&policy, attempt, random);
            attempt += 1;
            wait
        } else {
            TURNED_AWAY_WAIT
        };
        if run_deadline.is_some_and(|d| Instant::now() + wait >= d) {
            return Err(failed(f));
        }
        tracing::debug!(run = %id, code = %f.code, "{what}: attempt failed; retrying in {wait:?}");
        if let Some(k) = shown {
            let mut waits = Running::new(attempt, started_ms);
            waits.last_error = Some(f);
            wf.set_running(id, k, Some(waits));
        }
        tokio::time::sleep(wait).await;
    }
}

/// Which invocation an attempt loop runs.
pub(crate) struct Attempt {
    /// Its id: the guest's idempotency key.
    pub(crate) invocation: String,
    /// How errors name it.
    pub(crate) what: String,
    /// The step shown running while it runs (a step's own attempts; not a
    /// map item's, nor a durable step's).
    pub(crate) shown: Option<usize>,
    /// Whether it is a workflow's orchestrator.
    pub(crate) orchestrator: bool,
    /// Where its data may go: the workflow's `privacy`.
    pub(crate) privacy: Privacy,
}

/// An orchestrator's invocation registered as under way; unregistered
/// when dropped.
pub(crate) struct CodeGuard {
    wf: Arc<Workflows>,
    invocation: String,
}

impl Drop for CodeGuard {
    fn drop(&mut self) {
        self.wf.code.lock().remove(&self.invocation);
    }
}

/// The engine as the orchestrators' host (`weft:fabric/durable`), set on
/// the router, which hands it every durable operation.
struct Orchestrators(std::sync::Weak<Workflows>);

impl Durable for Orchestrators {
    fn durable(
        &self,
        from: &CallContext,
        op: DurableOp,
    ) -> BoxFuture<'static, std::result::Result<Option<Bytes>, DurableError>> {
        let wf = self.0.upgrade();
        let from = from.clone();
        Box::pin(async move {
            let wf = wf.ok_or_else(|| {
                crate::code::failed(FabricCode::Unavailable, "the node is shutting down")
            })?;
            let run = (from.trigger == weft_runtime::Trigger::Workflow)
                .then(|| wf.code_run(&from.id))
                .flatten()
                .ok_or_else(|| {
                    crate::code::failed(
                        FabricCode::Denied,
                        "durable steps are for a workflow's orchestrator: this invocation is not one (declare `[workflows.NAME] function = \"...\"` and start a run)",
                    )
                })?;
            let mut run = run.lock().await;
            crate::code::step(&wf.journal, &wf, &mut run, op).await
        })
    }
}

impl crate::code::Caller for Arc<Workflows> {
    fn call(
        &self,
        run: &CodeRun,
        invocation: String,
        step: PlannedStep,
        payload: Bytes,
    ) -> BoxFuture<'static, StepOutcome> {
        let (wf, id, workflow, deadline, privacy) = (
            self.clone(),
            run.run.clone(),
            run.workflow.clone(),
            run.deadline,
            run.privacy,
        );
        Box::pin(async move {
            let target = Attempt {
                invocation,
                what: format!("durable step `{}`", step.name),
                shown: None,
                orchestrator: false,
                privacy,
            };
            attempts(&wf, &id, &workflow, target, &step, payload, deadline).await
        })
    }
}

/// Runs step `k`: its function once, or once per item for a map step.
#[allow(clippy::too_many_arguments)]
async fn run_step(
    wf: &Arc<Workflows>,
    id: &str,
    workflow: &str,
    k: usize,
    step: &PlannedStep,
    input: Bytes,
    run_deadline: Option<Instant>,
    (orchestrator, privacy): (bool, Privacy),
) -> StepOutcome {
    match &step.map {
        None => {
            let target = Attempt {
                invocation: format!("{id}.{}", step.name),
                what: format!("step `{}`", step.name),
                shown: Some(k),
                orchestrator,
                privacy,
            };
            attempts(wf, id, workflow, target, step, input, run_deadline).await
        }
        Some(m) => {
            let started_ms = now_ms();
            wf.set_running(id, k, Some(Running::new(1, started_ms)));
            let out = map_items(wf, id, workflow, step, m, input, run_deadline, privacy).await;
            wf.set_running(id, k, None);
            out.map_err(|(failure, attempts)| Failed {
                failure,
                attempts,
                started_ms,
            })
        }
    }
}

/// Runs a map step: its function once per item of the list in `input`,
/// at most `m.concurrency` at once, each item's output recorded as it
/// ends (a resumed map runs only the items not recorded); the output is
/// the list of the items' outputs, in order. On failure, the failure and
/// the attempts of the item that failed.
#[allow(clippy::too_many_arguments)]
async fn map_items(
    wf: &Arc<Workflows>,
    id: &str,
    workflow: &str,
    step: &PlannedStep,
    m: &MapPlan,
    input: Bytes,
    run_deadline: Option<Instant>,
    privacy: Privacy,
) -> std::result::Result<Ran, (Failure, u32)> {
    let started_ms = now_ms();
    let name = step.name.as_str();
    let invalid = |message: String| (failure(Code::InvalidStepInput, message), 0);
    let Some(value) = serde_json::from_slice::<Value>(&input).ok() else {
        return Err(invalid(format!(
            "step `{name}` maps over a list, and its input is not JSON"
        )));
    };
    let list = match value.pointer(&m.items) {
        Some(Value::Array(list)) => list,
        Some(other) => {
            let kind = match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Object(_) => "an object",
                Value::Array(_) => "a list",
            };
            return Err(invalid(format!(
                "step `{name}` maps over the list at `{}` of its input, and finds {kind}",
                m.items
            )));
        }
        None => {
            return Err(invalid(format!(
                "step `{name}` maps over the list at `{}` of its input, and nothing is there",
                m.items
            )));
        }
    };
    if list.len() > MAX_MAP_ITEMS {
        return Err(invalid(format!(
            "step `{name}` maps over {} items; a map step takes at most {MAX_MAP_ITEMS}",
            list.len()
        )));
    }
    let journal_error = |e: Error| (failure(e.code(), e.to_string()), 0);
    let mut outputs = wf
        .journal
        .items(id, name, list.len())
        .await
        .map_err(journal_error)?;
    let sem = Arc::new(tokio::sync::Semaphore::new(m.concurrency));
    let mut running = JoinSet::new();
    for (i, item) in list.iter().enumerate() {
        if outputs[i].is_some() {
            continue;
        }
        let (wf, id, workflow, step, sem) = (
            wf.clone(),
            id.to_string(),
            workflow.to_string(),
            step.clone(),
            sem.clone(),
        );
        let item = json_bytes(item);
        running.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let target = Attempt {
                invocation: format!("{id}.{}.{i}", step.name),
                what: format!("item {i} of step `{}`", step.name),
                shown: None,
                orchestrator: false,
                privacy,
            };
            let out = attempts(&wf, &id, &workflow, target, &step, item, run_deadline).await;
            if let Ok(ran) = &out
                && let Err(e) = wf.journal.put_item(&id, step.name.as_str(), i, &ran.output).await
            {
                // Only a resumed map pays for it: it runs the item again.
                tracing::warn!(run = %id, step = %step.name, item = i, "recording a map item failed: {e}");
            }
            (i, out)
        });
    }
    let mut attempts_max = 1;
    let mut nodes: Vec<String> = Vec::new();
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok((i, Ok(ran))) => {
                attempts_max = attempts_max.max(ran.attempts);
                if !nodes.contains(&ran.node) {
                    nodes.push(ran.node);
                }
                outputs[i] = Some(ran.output.to_vec());
            }
            Ok((_, Err(failed))) => return Err((failed.failure, failed.attempts)),
            Err(e) => {
                return Err((
                    failure(Code::Internal, format!("a map item's task failed: {e}")),
                    0,
                ));
            }
        }
    }
    let mut values = Vec::with_capacity(outputs.len());
    for (i, out) in outputs.iter().enumerate() {
        let out = out.as_deref().unwrap_or_default();
        match as_json(out) {
            Some(v) => values.push(v),
            None => {
                return Err((
                    failure(
                        Code::InvalidStepInput,
                        format!(
                            "item {i} of step `{name}` answered bytes that are neither JSON nor text; a map's output is a JSON list"
                        ),
                    ),
                    attempts_max,
                ));
            }
        }
    }
    let output = serde_json::to_vec(&Value::Array(values)).unwrap_or_default();
    if output.len() > MAX_STEP_OUTPUT {
        return Err((
            failure(
                Code::StepOutputTooLarge,
                format!(
                    "step `{name}`'s {} items answered {} bytes together; a run records at most {MAX_STEP_OUTPUT} per step",
                    outputs.len(),
                    output.len()
                ),
            ),
            attempts_max,
        ));
    }
    Ok(Ran {
        output: Bytes::from(output),
        node: nodes.join(","),
        attempts: attempts_max,
        started_ms,
        items: list.len(),
    })
}
