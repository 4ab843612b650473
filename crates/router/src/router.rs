//! The router: the one entry point of every invocation, and the one place
//! its fate is decided — which version, whether the caller may, whether the
//! chain allows it, how long it has, here or on which node, retried where.

use crate::error::{Error, Result};
use crate::placer::{Placer, Sent};
use crate::request::{
    Body, Caller, Collected, Deadline, DeadlineKept, Request, Response, Served, full,
};
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use weft_codes::Code;
use weft_controller::{
    Accepted, Booking, Controller, DeadlineOutcome, Function, Input, NewInvocation, Output,
    Reservation, RunContext, STATE_HEADER, Settle, Slo,
};
use weft_manifest::{HumanDuration, StateModel};
use weft_mesh::{CallError, Mesh, ReplyOutcome};
use weft_runtime::{Kind, Trigger};
use weft_sched::{Decision, Excluded, Local};

/// Default bound of call chains.
pub(crate) const DEFAULT_MAX_DEPTH: u32 = 8;
/// How often a remote call checks that its node is still alive.
const ALIVE_EVERY: Duration = Duration::from_millis(100);

/// What publishes a queued invocation's response where its trigger asked
/// (an MQTT trigger's `response_topic`): the triggers' side, injected.
pub trait Responder: Send + Sync {
    /// Publishes `body`, the response of invocation `id` of `function`, on
    /// `topic`.
    fn respond(&self, function: &str, id: &str, topic: &str, body: Bytes)
    -> BoxFuture<'static, ()>;
}

/// Where an invocation runs.
#[derive(Debug, Clone)]
pub enum Placement {
    /// Not in a fabric: here.
    Standalone,
    /// It arrived from another node, which placed it here.
    Arrived,
    /// Its request asked to run here (a workflow's orchestrator).
    Pinned,
    /// The scheduler's decision.
    Decided(Decision),
}

impl Placement {
    /// The node chosen, if another.
    pub fn remote(&self) -> Option<&str> {
        match self {
            Placement::Decided(d) if !d.local => Some(&d.node),
            _ => None,
        }
    }

    /// A short reason, for the `x-weft-placement` header.
    pub fn reason(&self) -> &'static str {
        match self {
            Placement::Standalone => "standalone",
            Placement::Arrived => "arrived",
            Placement::Pinned => "pinned",
            Placement::Decided(d) => d.reason.kind(),
        }
    }
}

/// A decision, with every node ruled out and why (`weft explain`).
#[derive(Debug, Clone)]
pub struct Explanation {
    /// Where it would run now.
    pub placement: Placement,
    /// Nodes ruled out, with the first constraint each fails.
    pub excluded: Vec<Excluded>,
}

/// The fabric, once joined.
pub(crate) struct Fabric {
    pub(crate) mesh: Arc<Mesh>,
    pub(crate) placer: Placer,
}

/// The router of one node.
pub struct Router {
    pub(crate) controller: Arc<Controller>,
    pub(crate) fabric: OnceLock<Fabric>,
    max_depth: usize,
    node_id: String,
    responder: OnceLock<Arc<dyn Responder>>,
    durable: OnceLock<Arc<dyn weft_runtime::Durable>>,
}

impl Router {
    pub(crate) fn new(controller: Arc<Controller>) -> Router {
        Router {
            max_depth: controller
                .config()
                .max_call_depth
                .unwrap_or(DEFAULT_MAX_DEPTH) as usize,
            node_id: controller.node_id().unwrap_or_default(),
            controller,
            fabric: OnceLock::new(),
            responder: OnceLock::new(),
            durable: OnceLock::new(),
        }
    }

    /// The controller below.
    pub fn controller(&self) -> &Arc<Controller> {
        &self.controller
    }

    /// Sets who publishes responses that queued invocations' triggers ask
    /// for (once).
    pub fn set_responder(&self, r: Arc<dyn Responder>) {
        let _ = self.responder.set(r);
    }

    /// Sets who answers orchestrators' `weft:fabric/durable` (once): the
    /// workflow engine, which sits above the router.
    pub fn set_durable(&self, d: Arc<dyn weft_runtime::Durable>) {
        let _ = self.durable.set(d);
    }

    pub(crate) fn durable(&self) -> Option<Arc<dyn weft_runtime::Durable>> {
        self.durable.get().cloned()
    }

    pub(crate) fn responder(&self) -> Option<&Arc<dyn Responder>> {
        self.responder.get()
    }

    /// This node's name: its name in the fabric, else its id.
    pub fn node_name(&self) -> &str {
        match self.fabric.get() {
            Some(f) => f.mesh.name(),
            None => &self.node_id,
        }
    }

    /// The mesh, once joined.
    pub fn mesh(&self) -> Option<&Arc<Mesh>> {
        self.fabric.get().map(|f| &f.mesh)
    }

    /// The nodes of the fabric up now as placement sees them, this one
    /// first; `None` standalone, or while this node is cut off from the
    /// fabric's server (when every peer would look down).
    pub fn nodes_up(&self) -> Option<Vec<String>> {
        let f = self.fabric.get()?;
        if !f.mesh.connected() || f.mesh.name_taken() {
            return None;
        }
        let mut up = vec![f.mesh.name().to_string()];
        up.extend(
            f.mesh
                .peers()
                .into_iter()
                .map(|p| p.heartbeat.name)
                .filter(|n| f.placer.is_up(n)),
        );
        Some(up)
    }

    /// Where node `name` of the fabric stands: its tier and its `site`
    /// label (this node's from its config, a peer's from its beats);
    /// `None` standalone or for a node not heard.
    pub fn node_place(&self, name: &str) -> Option<(weft_sched::Tier, Option<String>)> {
        let f = self.fabric.get()?;
        if name == f.mesh.name() {
            let c = f.mesh.config();
            return Some((c.tier, c.labels.get("site").cloned()));
        }
        f.mesh
            .peers()
            .into_iter()
            .find(|p| p.heartbeat.name == name)
            .map(|p| (p.heartbeat.tier, p.heartbeat.labels.get("site").cloned()))
    }

    /// How long a silent peer takes to be marked down (its beat times the
    /// beats it may miss); `None` standalone.
    pub fn down_after(&self) -> Option<std::time::Duration> {
        let c = self.fabric.get()?.mesh.config();
        Some(c.heartbeat * c.down_after)
    }

    // ---- the entry points --------------------------------------------

    /// Runs one invocation, here or on another node, and answers with its
    /// response. Every synchronous invocation comes through here: `/fn/` and
    /// routes, guests' calls, calls from other nodes (they run here).
    pub async fn invoke(&self, req: Request) -> Result<Response> {
        let f = self.controller.function(&req.function)?;
        self.run(f, req, None).await
    }

    /// Runs one invocation to its end, here or elsewhere, and reads its
    /// whole response: an error after the response began (a trap mid-body)
    /// and a component's answer of 500 or above are errors here
    /// (`handler_error`). What queued work and workflow steps run by.
    pub async fn invoke_to_end(&self, req: Request) -> Result<Collected> {
        let function = req.function.clone();
        let id = req.id.clone().unwrap_or_default();
        to_end(self.invoke(req).await, &function, &id).await
    }

    /// Runs queued work for which `reserved` holds the slots (the
    /// dispatcher reserved them before it claimed the work, so capacity
    /// never spends an attempt).
    pub(crate) async fn run_reserved(
        &self,
        req: Request,
        reserved: Reservation,
    ) -> Result<Response> {
        let f = reserved.function().clone();
        self.run(f, req, Some(reserved)).await
    }

    /// Queues an invocation to run asynchronously; returns once it is
    /// durable (or, with an idempotency key seen before, the first one's
    /// id). Its body is read here, within the function's limits.
    pub async fn submit(&self, req: Request, idempotency_key: Option<String>) -> Result<Accepted> {
        let f = self.controller.function(&req.function)?;
        self.may_call(&f, &req)?;
        let deadline = deadline_of(&f, &req, self.controller.quantum())?;
        let mut req = req;
        req.resolve_state_key(&f)?;
        if f.state().is_some_and(|s| s.model == StateModel::Client) {
            return Err(Error::NotQueueable {
                name: f.name().to_string(),
            });
        }
        if req.trigger == Trigger::Call {
            self.within_depth(&req)?;
        }
        // Only a deadline declared or asked for expires queued work: held
        // to its timeout alone, it waits as long as it must.
        if f.slo().declared || req.asked_deadline.is_some() {
            req.queued_deadline = Some(SystemTime::now() + deadline.within);
        }
        let deadline = Instant::now() + f.limits().timeout;
        let meta = req.queue_meta();
        let payload = read_body(req.body, &f, deadline).await?;
        Ok(self
            .controller
            .enqueue(NewInvocation {
                function: f.name().to_string(),
                payload: payload.to_vec(),
                trigger: req.trigger.as_str().to_string(),
                meta,
                idempotency_key,
                retry: f.retry(),
                not_before: None,
            })
            .await?)
    }

    /// Queues a dead-lettered invocation again, with its attempts reset; it
    /// arrives afresh, its deadline counting from now.
    pub async fn retry_dead(&self, id: &str) -> Result<()> {
        Ok(self.controller.retry_dead(id, Request::rearm).await?)
    }

    /// Publishes an event on an internal topic: each function subscribed to
    /// a matching pattern gets an asynchronous invocation, durably queued
    /// before this returns. `chain` is the publisher's (empty for an
    /// operator). Returns how many.
    pub async fn publish(&self, topic: &str, payload: Bytes, chain: crate::Chain) -> Result<usize> {
        let probe = Request {
            chain,
            ..Request::new(format!("topic `{topic}`"), Trigger::Topic)
        };
        self.within_depth(&probe)?;
        let subscribers: Vec<String> = self
            .controller
            .functions()
            .into_iter()
            .filter(|f| {
                f.subscribes()
                    .iter()
                    .any(|p| weft_manifest::topic_matches(p, topic))
            })
            .map(|f| f.name().to_string())
            .collect();
        for name in &subscribers {
            let req = Request {
                subject: topic.to_string(),
                chain: probe.chain.clone(),
                body: Body::Bytes(payload.clone()),
                ..Request::new(name.clone(), Trigger::Topic)
            };
            self.submit(req, None).await?;
        }
        Ok(subscribers.len())
    }

    /// Where an invocation of `name` with a body of `bytes` (and, for an
    /// actor, state key `key`: it runs on the key's owner) would run now,
    /// and every node ruled out and why.
    pub fn explain(&self, name: &str, bytes: u64, key: Option<&str>) -> Result<Explanation> {
        let f = self.controller.function(name)?;
        if let Some(state) = f.state() {
            let invalid = |message: String| Error::InvalidStateKey {
                name: name.to_string(),
                from: "--key".to_string(),
                message,
            };
            match key {
                Some(k) => weft_manifest::validate_state_key(k).map_err(invalid)?,
                None if state.model == StateModel::Function && self.fabric.get().is_some() => {
                    return Err(invalid(
                        "is missing: an actor's invocations run on the owner of their key"
                            .to_string(),
                    ));
                }
                None => {}
            }
        }
        let Some(fabric) = self.fabric.get() else {
            return Ok(Explanation {
                placement: Placement::Standalone,
                excluded: Vec::new(),
            });
        };
        let exclude = self.excluded(&f, &[]);
        let (decision, excluded) =
            fabric
                .placer
                .explain(&f, bytes, key, &exclude, &self.local_load(&f));
        let decision = decision.map_err(|e| Error::NoEligibleNode {
            name: name.to_string(),
            message: e.to_string(),
        })?;
        Ok(Explanation {
            placement: Placement::Decided(decision),
            excluded,
        })
    }

    // ---- the decision ------------------------------------------------

    /// Runs `req` where it should run, under its deadline.
    async fn run(
        &self,
        f: Arc<Function>,
        mut req: Request,
        reserved: Option<Reservation>,
    ) -> Result<Response> {
        let arrived = Instant::now();
        let deadline = deadline_of(&f, &req, self.controller.quantum())?;
        req.resolve_state_key(&f)?;
        // Counted where the invocation entered the fabric, end to end.
        let entered_here = req.from_node.is_none();
        let mut resp = match self.decide(f.clone(), req, reserved, deadline).await {
            Ok(resp) => resp,
            Err(e) => {
                if entered_here && e.code() == Code::DeadlineUnmeetable {
                    self.controller
                        .count_deadline(&f, DeadlineOutcome::Refused, None);
                }
                return Err(e);
            }
        };
        // Decided once, when the response starts: what the header says is
        // what was counted.
        let met = deadline.met();
        if entered_here {
            let outcome = if met {
                DeadlineOutcome::Met
            } else {
                DeadlineOutcome::Missed
            };
            self.controller
                .count_deadline(&f, outcome, Some(arrived.elapsed()));
        }
        resp.served.deadline = Some(DeadlineKept {
            within: deadline.within,
            met,
        });
        Ok(resp)
    }

    /// `slo`: the invocation's deadline, which admits it and orders it on
    /// the workers of the node that runs it.
    async fn decide(
        &self,
        f: Arc<Function>,
        mut req: Request,
        mut reserved: Option<Reservation>,
        slo: Deadline,
    ) -> Result<Response> {
        self.may_call(&f, &req)?;
        if req.trigger == Trigger::Call && req.id.is_none() {
            if req.chain.calls.iter().any(|c| c == f.name()) {
                return Err(Error::Cycle {
                    chain: req.chain.text(f.name()),
                });
            }
            self.within_depth(&req)?;
        }
        let now = Instant::now();
        let deadline = match req.deadline {
            Some(d) => d.min(now + f.limits().timeout),
            None => now + f.limits().timeout,
        };
        if deadline <= now {
            return Err(Error::NoTimeLeft {
                name: f.name().to_string(),
                why: "the caller's deadline has passed".into(),
            });
        }
        let mut tried: Vec<String> = Vec::new();
        // The last refusal, here or a peer's: the answer when no node is left.
        let mut refused: Option<Error> = None;
        // This node could not meet the deadline: only a peer with time to
        // spare takes it.
        let mut handing_off = false;
        loop {
            let (placement, sent) = match self.place(&f, &req, &tried) {
                Ok(p) => p,
                Err(e) => return Err(refused.unwrap_or(e)),
            };
            let Some(node) = placement.remote().map(str::to_string) else {
                let reserved = reserved.take();
                // Queued work was admitted when it was claimed: booked, not
                // refused.
                let promised = slo.promised && reserved.is_none();
                let booking = match self.controller.book(&f, slo.at, promised) {
                    Ok(b) => b,
                    Err(e) if self.may_hand_off(&req, &e) => {
                        tried.push(self.node_name().to_string());
                        refused = Some(e.into());
                        handing_off = true;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                let admitted = Admitted { reserved, booking };
                let ends = Ends { by: deadline, slo };
                return self.here(&f, req, ends, admitted, placement, tried).await;
            };
            if handing_off {
                let slack = match (self.fabric.get(), &placement) {
                    (Some(fabric), Placement::Decided(d)) => fabric.placer.slack_us(&f, d, slo.at),
                    _ => i64::MIN,
                };
                if slack < 0 {
                    tracing::debug!(function = %f.name(), node = %node, slack_us = slack,
                        "deadline unmeetable here, and no peer has time to spare");
                    return Err(refused.unwrap_or_else(not_in_fabric));
                }
                tracing::debug!(function = %f.name(), node = %node, slack_us = slack,
                    "deadline unmeetable here: handed off");
            }
            // Runs elsewhere: a queued invocation keeps the function's slot
            // here (it bounds how many are out at once), not the node's.
            let _slot = reserved.take().map(Reservation::into_function_slot);
            let body = match std::mem::replace(&mut req.body, Body::empty()) {
                Body::Bytes(b) if b.len() as u64 > f.limits().max_request => {
                    return Err(too_large(&f));
                }
                Body::Bytes(b) => b,
                stream => read_body(stream, &f, deadline).await?,
            };
            req.body = Body::Bytes(body.clone());
            let mut meta = req.call_meta(f.version());
            meta.deadline_us = Some(
                u64::try_from(slo.at.saturating_duration_since(Instant::now()).as_micros())
                    .unwrap_or(u64::MAX),
            );
            let answer = self.there(&f, meta, &node, body, deadline).await;
            drop(sent);
            match answer {
                Ok(mut resp) => {
                    resp.served.placement = if handing_off {
                        "handed_off"
                    } else {
                        placement.reason()
                    };
                    resp.served.retried_from = tried;
                    return Ok(resp);
                }
                Err(There::Unreachable(why)) => {
                    tracing::warn!(function = %f.name(), node = %node, "remote invocation failed: {why}");
                    tried.push(node);
                    if !f.is_idempotent() || Instant::now() >= deadline {
                        let hint = if f.is_idempotent() {
                            ""
                        } else {
                            " (not retried elsewhere: the function is not marked idempotent)"
                        };
                        return Err(Error::NodeUnreachable {
                            name: f.name().to_string(),
                            message: format!("{why}{hint}"),
                        });
                    }
                }
                // It did not start there: the next node may run it.
                Err(There::Failed(e)) if e.code().turned_away() && Instant::now() < deadline => {
                    tracing::debug!(function = %f.name(), node = %node, "turned away: {e}");
                    tried.push(node);
                    refused = Some(e);
                }
                Err(There::Failed(e)) => return Err(e),
            }
        }
    }

    /// Whether this node's refusal `e` may be handed to a peer instead:
    /// its deadline cannot be met here, the invocation entered the fabric
    /// here (a peer's call was placed here by its own node), and there is
    /// a fabric.
    fn may_hand_off(&self, req: &Request, e: &weft_controller::Error) -> bool {
        e.code() == Code::DeadlineUnmeetable
            && req.from_node.is_none()
            && self.fabric.get().is_some()
    }

    /// Whether the caller may invoke `f`: a client without the token only
    /// public functions.
    fn may_call(&self, f: &Function, req: &Request) -> Result<()> {
        if req.caller == Caller::Anonymous && !f.is_public() {
            return Err(Error::Unauthorized {
                name: f.name().to_string(),
            });
        }
        Ok(())
    }

    /// Refuses work that would make the chain of invocations (calls, async
    /// calls, events) deeper than the node allows: an event storm or a
    /// ping-pong of async calls ends here.
    fn within_depth(&self, req: &Request) -> Result<()> {
        if req.chain.depth() >= self.max_depth {
            return Err(Error::TooDeep {
                chain: req.chain.text(&req.function),
                max: self.max_depth,
            });
        }
        Ok(())
    }

    /// This node's load for `f`, as placement counts it: the function's own
    /// slots, running and waiting (all slots taken when the node is full).
    fn local_load(&self, f: &Function) -> Local {
        let node_full = self.controller.running() >= u64::from(self.controller.max_instances());
        Local {
            slots: f.max_concurrency(),
            inflight: if node_full {
                f.max_concurrency()
            } else {
                f.in_flight()
            },
            queued: f.waiting(),
            warm: f.is_warm(),
            exec_us: f.exec_us(),
        }
    }

    /// The nodes `f`'s invocation may not run on: those `tried`, and this
    /// one when it cannot give the function its state.
    fn excluded(&self, f: &Function, tried: &[String]) -> BTreeSet<String> {
        let mut exclude: BTreeSet<String> = tried.iter().cloned().collect();
        if f.state().is_some_and(|s| s.unavailable().is_some()) {
            exclude.insert(self.node_name().to_string());
        }
        exclude
    }

    /// Where the invocation runs; when on another node, with the call
    /// counted there until the guard drops.
    fn place(
        &self,
        f: &Function,
        req: &Request,
        tried: &[String],
    ) -> Result<(Placement, Option<Sent<'_>>)> {
        if req.from_node.is_some() {
            return Ok((Placement::Arrived, None));
        }
        if req.pinned {
            return Ok((Placement::Pinned, None));
        }
        let Some(fabric) = self.fabric.get() else {
            return Ok((Placement::Standalone, None));
        };
        let bytes = req.body.known_len().unwrap_or(0);
        let exclude = self.excluded(f, tried);
        fabric
            .placer
            .place(
                f,
                bytes,
                req.state_key.as_deref(),
                &exclude,
                &self.local_load(f),
                req.privacy,
            )
            .map(|(d, sent)| (Placement::Decided(d), sent))
            .map_err(|e| Error::NoEligibleNode {
                name: f.name().to_string(),
                message: e.to_string(),
            })
    }

    // ---- here --------------------------------------------------------

    /// Runs the invocation on this node: a function slot (waiting its
    /// turn), the body (a command's, read within its limits), a node slot,
    /// a sandbox.
    async fn here(
        &self,
        f: &Arc<Function>,
        req: Request,
        ends: Ends,
        admitted: Admitted,
        placement: Placement,
        tried: Vec<String>,
    ) -> Result<Response> {
        if req.version != 0 && req.version != f.version() {
            tracing::debug!(
                function = %f.name(),
                asked = req.version,
                runs = f.version(),
                "version differs from the caller's (a redeploy in flight): the active one runs"
            );
        }
        let Request {
            trigger,
            subject,
            attempt,
            chain,
            deadline: asked,
            http,
            body,
            id,
            state_key,
            chain_state,
            ..
        } = req;
        let deadline = ends.by;
        let Admitted { reserved, booking } = admitted;
        let client_state = http
            .as_ref()
            .and_then(|h| h.headers.get(STATE_HEADER))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (mut reservation, input) = match reserved {
            Some(r) => (r, input(f, http, body, deadline).await?),
            None => {
                let slot = self.controller.function_slot(f, Some(deadline)).await?;
                let input = input(f, http, body, deadline).await?;
                (self.controller.node_slot(slot)?, input)
            }
        };
        let progress = booking.progress();
        reservation.keep(booking);
        let ctx = RunContext {
            id,
            trigger,
            subject,
            attempt,
            calls: chain.calls,
            ancestors: chain.ancestors,
            timeout_cap: asked.map(|_| deadline.saturating_duration_since(Instant::now())),
            due: Some(ends.slo.at),
            progress: Some(progress),
            state_key,
            client_state,
            chain_state,
        };
        let ran = self.controller.run(reservation, input, ctx).await?;
        let mut served = Served {
            invocation: ran.info.id,
            function: ran.info.function,
            version: ran.info.version,
            cold_start: ran.info.cold_start,
            node: self.node_name().to_string(),
            placement: placement.reason(),
            retried_from: tried,
            ..Served::default()
        };
        let resp = match ran.output {
            Output::Command { body, usage } => {
                served.wall_us = Some(usage.wall.as_micros() as u64);
                served.cpu_us = Some(usage.cpu.as_micros() as u64);
                served.memory_peak = Some(usage.peak_memory);
                served.fuel = usage.fuel;
                let mut headers = HeaderMap::new();
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                Response {
                    status: StatusCode::OK,
                    headers,
                    body: full(body),
                    served,
                    ended: None,
                }
            }
            Output::Http { response, ended } => {
                let (parts, body) = response.into_parts();
                Response {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                    served,
                    ended: Some(ended),
                }
            }
        };
        match ran.settle {
            None => Ok(resp),
            Some(settle) => settled(resp, settle, f).await,
        }
    }

    // ---- there -------------------------------------------------------

    /// Runs the invocation on `node` over the fabric. A node that dies or
    /// cannot be reached is `Unreachable` (the caller may retry elsewhere).
    async fn there(
        &self,
        f: &Function,
        meta: weft_mesh::CallMeta,
        node: &str,
        body: Bytes,
        deadline: Instant,
    ) -> std::result::Result<Response, There> {
        let Some(fabric) = self.fabric.get() else {
            return Err(There::Failed(not_in_fabric()));
        };
        let mesh = &fabric.mesh;
        let sent_at = Instant::now();
        let allowed = deadline.saturating_duration_since(sent_at);
        let call = mesh.call(node, meta, body, deadline);
        let died = watch_alive(mesh, node);
        let outcome = tokio::select! {
            r = call => r,
            () = died => Err(CallError::Unreachable(node.to_string())),
        };
        let (reply, out) = match outcome {
            Ok(r) => r,
            Err(CallError::Timeout { .. }) => {
                return Err(There::Failed(Error::Controller(
                    weft_controller::Error::Invoke {
                        name: f.name().to_string(),
                        invocation: String::new(),
                        source: weft_runtime::InvokeError::Deadline { timeout: allowed },
                    },
                )));
            }
            Err(e @ (CallError::Unreachable(_) | CallError::Malformed { .. })) => {
                return Err(There::Unreachable(e.to_string()));
            }
            Err(CallError::Transport(e)) => {
                return Err(There::Failed(Error::FabricUnavailable(e)));
            }
        };
        match reply.outcome {
            ReplyOutcome::Ok {
                invocation,
                version,
                cold_start,
                wall_us,
                cpu_us,
                status,
                headers,
            } => {
                // What the call cost beyond the run there.
                let took = u64::try_from(sent_at.elapsed().as_micros()).unwrap_or(u64::MAX);
                fabric.placer.observed(node, took.saturating_sub(wall_us));
                Ok(Response::from_parts(
                    status,
                    &headers,
                    out,
                    Served {
                        invocation,
                        function: f.name().to_string(),
                        version,
                        cold_start,
                        node: reply.node,
                        wall_us: Some(wall_us),
                        cpu_us: (cpu_us > 0).then_some(cpu_us),
                        ..Served::default()
                    },
                ))
            }
            ReplyOutcome::Err { code, message } => Err(There::Failed(Error::Remote {
                node: reply.node,
                name: f.name().to_string(),
                code: code.parse().unwrap_or(Code::RemoteError),
                message,
            })),
        }
    }

    // ---- what the fabric asks ----------------------------------------

    /// Runs a call that arrived from another node, and answers it.
    pub(crate) async fn serve(&self, req: Request) -> (ReplyOutcome, Bytes) {
        let started = Instant::now();
        let answered = async {
            let resp = self.invoke(req).await?;
            resp.collect().await.map_err(|source| {
                Error::Controller(weft_controller::Error::Invoke {
                    name: String::new(),
                    invocation: String::new(),
                    source,
                })
            })
        };
        match answered.await {
            Ok(c) => reply_ok(c, started),
            Err(e) => (
                ReplyOutcome::Err {
                    code: e.code().as_str().to_string(),
                    message: e.to_string(),
                },
                Bytes::new(),
            ),
        }
    }
}

fn reply_ok(c: Collected, started: Instant) -> (ReplyOutcome, Bytes) {
    let headers = c.header_pairs();
    (
        ReplyOutcome::Ok {
            invocation: c.served.invocation,
            version: c.served.version,
            cold_start: c.served.cold_start,
            wall_us: started.elapsed().as_micros() as u64,
            cpu_us: c.served.cpu_us.unwrap_or(0),
            status: c.status.as_u16(),
            headers,
        },
        c.body,
    )
}

/// What admits an invocation here: its booking by deadline, and the slots
/// queued work reserved when it was claimed.
struct Admitted {
    reserved: Option<Reservation>,
    booking: Booking,
}

/// A stateful response (`client`, `function` models), read whole so that
/// the state the sandbox ended with is settled before it goes out: sealed
/// into its head (`x-weft-state`), or checkpointed. A failed sandbox or a
/// 5xx settles nothing: the state stays as it was.
async fn settled(resp: Response, settle: Settle, f: &Function) -> Result<Response> {
    let invocation = resp.served.invocation.clone();
    let c = resp.collect().await.map_err(|source| {
        Error::Controller(weft_controller::Error::Invoke {
            name: f.name().to_string(),
            invocation,
            source,
        })
    })?;
    let mut headers = c.headers;
    if c.status.as_u16() < 500
        && let Some(sealed) = settle.settle().await?
        && let Ok(v) = HeaderValue::from_str(&sealed)
    {
        headers.insert(STATE_HEADER, v);
    }
    Ok(Response {
        status: c.status,
        headers,
        body: full(c.body),
        served: c.served,
        ended: None,
    })
}

fn not_in_fabric() -> Error {
    Error::FabricUnavailable("not in a fabric".into())
}

/// How a run on another node went wrong.
enum There {
    /// The node could not be reached or died: it did not answer.
    Unreachable(String),
    /// It answered, with an error (or the fabric failed).
    Failed(Error),
}

fn too_large(f: &Function) -> Error {
    Error::Controller(weft_controller::Error::RequestBody {
        name: f.name().to_string(),
        code: Code::RequestTooLarge,
        message: format!(
            "request body exceeds the limit of {} bytes",
            f.limits().max_request
        ),
    })
}

/// When an invocation run here must end, and when it should.
#[derive(Debug, Clone, Copy)]
struct Ends {
    /// Its timeout, or its caller's deadline when that is earlier.
    by: Instant,
    /// Its deadline, which admits it and orders it on the node's workers.
    slo: Deadline,
}

/// The invocation's deadline, from now (its arrival here): the function's
/// (its timeout when it declares none), or the tighter one its request
/// asked for; a looser one, or one below the scheduling `quantum`, is
/// refused.
fn deadline_of(f: &Function, req: &Request, quantum: Duration) -> Result<Deadline> {
    let own = f.slo().deadline;
    if let Some(t) = req.queued_deadline {
        // Queued work keeps the deadline it was queued with.
        let left = t.duration_since(SystemTime::now()).unwrap_or_default();
        let within = left.min(own);
        return Ok(Deadline {
            within,
            at: Instant::now() + within,
            promised: true,
        });
    }
    let invalid = |why: String| {
        Err(Error::InvalidDeadline {
            name: f.name().to_string(),
            message: format!("x-weft-deadline: {why}"),
        })
    };
    let within = match req.asked_deadline {
        None => own,
        Some(asked) if asked > own => {
            let whose = if f.slo().declared {
                "deadline"
            } else {
                "timeout (it declares no deadline)"
            };
            return invalid(format!(
                "{} is looser than the function's {whose} of {}; a request may only tighten it",
                HumanDuration(asked),
                HumanDuration(own)
            ));
        }
        Some(asked) => match Slo::below_quantum(asked, quantum) {
            Some(why) => return invalid(why),
            None => asked,
        },
    };
    let now = Instant::now();
    let own = Deadline {
        within,
        at: now + within,
        promised: f.slo().declared || req.asked_deadline.is_some(),
    };
    Ok(match req.inherited_deadline {
        // The caller's is earlier: it is this one's too, and a promise.
        Some(at) if at < own.at => Deadline {
            within: at.saturating_duration_since(now),
            at,
            promised: true,
        },
        _ => own,
    })
}

/// `deadline` (and its timeout): `request_too_large`, `request_aborted`
/// or `request_timeout` otherwise.
/// A response read whole, or why the invocation failed: see
/// [`Router::invoke_to_end`].
pub(crate) async fn to_end(run: Result<Response>, function: &str, id: &str) -> Result<Collected> {
    let out = run?.collect().await.map_err(|source| {
        Error::Controller(weft_controller::Error::Invoke {
            name: function.to_string(),
            invocation: id.to_string(),
            source,
        })
    })?;
    if out.status.as_u16() >= 500 {
        return Err(Error::Remote {
            node: out.served.node.clone(),
            name: function.to_string(),
            code: Code::HandlerError,
            message: format!(
                "the component answered {}: {}",
                out.status.as_u16(),
                String::from_utf8_lossy(&out.body[..out.body.len().min(512)])
            ),
        });
    }
    Ok(out)
}

/// Reads a whole request body within the function's size limit, by
/// `deadline` (and its timeout): `request_too_large`, `request_aborted`
/// or `request_timeout` otherwise.
pub(crate) async fn read_body(body: Body, f: &Function, deadline: Instant) -> Result<Bytes> {
    let limit = f.limits().max_request;
    let stream = match body {
        Body::Bytes(b) if b.len() as u64 > limit => return Err(too_large(f)),
        Body::Bytes(b) => return Ok(b),
        Body::Stream(s) => s,
    };
    let wait = f
        .limits()
        .timeout
        .min(deadline.saturating_duration_since(Instant::now()));
    let read = tokio::time::timeout(wait, collect_limited(stream, limit)).await;
    let (code, message) = match read {
        Ok(Ok(Some(b))) => return Ok(b),
        Ok(Ok(None)) => return Err(too_large(f)),
        Ok(Err(e)) => (
            Code::RequestAborted,
            format!("reading the request body failed: {e}"),
        ),
        Err(_) => (
            Code::RequestTimeout,
            format!(
                "the request body did not arrive within {} ms",
                wait.as_millis()
            ),
        ),
    };
    Err(Error::Controller(weft_controller::Error::RequestBody {
        name: f.name().to_string(),
        code,
        message,
    }))
}

/// The whole body, or `None` past `limit` bytes.
async fn collect_limited(
    mut body: weft_runtime::HttpBody,
    limit: u64,
) -> std::result::Result<Option<Bytes>, weft_runtime::BoxError> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if out.len() as u64 + data.len() as u64 > limit {
                return Ok(None);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Some(out.freeze()))
}

/// What the sandbox is given: a command's stdin (read now, within its
/// limits), or an HTTP component's request (its body streams in). A
/// request without HTTP facts (a guest's call, a cron fire) reaches a
/// component as `POST /`.
async fn input(
    f: &Function,
    http: Option<crate::HttpFacts>,
    body: Body,
    deadline: Instant,
) -> Result<Input> {
    match f.kind() {
        Kind::Command => Ok(Input::Command(read_body(body, f, deadline).await?)),
        Kind::Http => {
            let len = body.known_len();
            let facts = http.unwrap_or_else(|| crate::HttpFacts {
                method: http::Method::POST,
                path_and_query: "/".to_string(),
                headers: HeaderMap::new(),
            });
            let mut req = facts.request(body.into_http()).map_err(|e| {
                Error::Controller(weft_controller::Error::RequestBody {
                    name: f.name().to_string(),
                    code: Code::InvalidRequest,
                    message: format!("the request cannot be passed on: {e}"),
                })
            })?;
            if let Some(len) = len
                && !req.headers().contains_key(http::header::CONTENT_LENGTH)
                && !req.headers().contains_key(http::header::TRANSFER_ENCODING)
            {
                req.headers_mut()
                    .insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
            }
            Ok(Input::Http(Box::new(req)))
        }
    }
}

/// Resolves when `node` has been marked down (missed heartbeats).
async fn watch_alive(mesh: &Mesh, node: &str) {
    loop {
        tokio::time::sleep(ALIVE_EVERY).await;
        if !mesh.is_up(node) {
            return;
        }
    }
}
