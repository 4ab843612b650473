//! The dispatcher of asynchronous invocations: it reserves slots, claims
//! due work from the durable queue for them, and hands each invocation to
//! the router like any other.
//!
//! Slots come first: a function's due work is claimed only as far as both
//! its own slots and the node's are reserved for it, so a function at its
//! limit, a full node or a function scaled to zero keeps its work queued,
//! and capacity never spends an attempt. Functions claim in the order of
//! their heads' deadlines (when the oldest due work became due, plus the
//! function's deadline, or its timeout without one), so when slots are
//! short the most urgent function is served first; within a function, work
//! is claimed in the order it became due. The dispatcher sleeps until woken
//! (an enqueue, a freed slot, the next retry due); an idle node stays idle.

use crate::error::Error;
use crate::request::Request;
use crate::router::Router;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};
use weft_controller::{AfterFailure, Claimed, DeadlineOutcome, Failure, Reservation};

/// The longest the dispatcher sleeps without being woken.
const IDLE_WAKE: Duration = Duration::from_secs(30);
/// How long queued work that found no node to run on waits before it is
/// placed again (no attempt is spent meanwhile).
const PLACEMENT_RETRY: Duration = Duration::from_secs(1);
/// Most invocations of one function claimed in one round.
const CLAIM_MAX: usize = 64;

/// Starts the dispatcher; it ends with the router.
pub(crate) fn start(router: &Arc<Router>) {
    let weak = Arc::downgrade(router);
    let queued = router.controller.queue_notifier();
    let freed = router.controller.slot_freed();
    tokio::spawn(async move {
        loop {
            let work = queued.notified();
            let slot = freed.notified();
            tokio::pin!(work, slot);
            work.as_mut().enable();
            // Before looking for slots, so that one freed meanwhile counts.
            freed.want();
            let next = {
                let Some(r) = weak.upgrade() else { break };
                if r.controller.draining() {
                    break;
                }
                round(&r).await
            };
            if !next.on_free {
                // Nothing waits for capacity: a freed slot (every finished
                // invocation frees one) need not wake the dispatcher.
                freed.unwant();
            }
            tokio::select! {
                _ = &mut work => {}
                _ = &mut slot, if next.on_free => {}
                _ = tokio::time::sleep(next.wait) => {}
            }
        }
    });
}

/// When the dispatcher looks again.
struct Next {
    /// At the latest after this long.
    wait: Duration,
    /// As soon as a slot frees: due work waits for capacity.
    on_free: bool,
}

impl Next {
    fn after(wait: Duration) -> Self {
        Next {
            wait,
            on_free: false,
        }
    }
}

/// One pass: reserve, claim and start due work of every function with free
/// slots. Returns when to look again.
async fn round(router: &Arc<Router>) -> Next {
    let c = &router.controller;
    let due = match c.due_functions().await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("reading the queue: {e}");
            return Next::after(Duration::from_secs(1));
        }
    };
    let mut heads = Vec::with_capacity(due.len());
    for (name, since) in due {
        match c.function(&name) {
            Ok(f) => {
                let by = since + f.slo().deadline;
                heads.push((by, name, f));
            }
            Err(_) => {
                if let Err(e) = c.dead_letter_function(&name).await {
                    tracing::error!(function = %name, "dead-lettering invocations of a removed function: {e}");
                }
            }
        }
    }
    // Earliest deadline first among the functions' heads: when slots are
    // short, the function whose oldest work is due soonest claims first.
    heads.sort_by_key(|(by, _, _)| *by);
    let mut started = 0;
    for (_, name, f) in heads {
        let mut reserved: Vec<Reservation> = Vec::new();
        while reserved.len() < CLAIM_MAX {
            match c.try_reserve(&f) {
                Some(r) => reserved.push(r),
                None => break,
            }
        }
        if reserved.is_empty() {
            continue;
        }
        let claimed = match c.claim(&name, reserved.len()).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(function = %name, "claiming queued invocations: {e}");
                continue;
            }
        };
        started += claimed.len();
        // Reservations beyond what was claimed are dropped here: freed.
        for (work, r) in claimed.into_iter().zip(reserved) {
            let router = Arc::downgrade(router);
            tokio::spawn(async move { run_queued(router, r, work).await });
        }
    }
    if started > 0 {
        // More may be due than one round claims.
        return Next::after(Duration::ZERO);
    }
    match c.next_due().await {
        // Due but not started: every function with due work is at its
        // limit (or the node is full); a freed slot wakes us.
        Ok(Some(t)) if t <= SystemTime::now() => Next {
            wait: IDLE_WAKE,
            on_free: true,
        },
        Ok(Some(t)) => Next::after(
            t.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
                .clamp(Duration::from_millis(1), IDLE_WAKE),
        ),
        // Nothing queued: an enqueue wakes the dispatcher; this is only a
        // safety net.
        _ => Next::after(IDLE_WAKE),
    }
}

/// Runs one claimed invocation and records how it went.
async fn run_queued(router: Weak<Router>, reserved: Reservation, work: Claimed) {
    let Some(router) = router.upgrade() else {
        return;
    };
    let c = router.controller.clone();
    let (id, function, attempt) = (work.id.clone(), work.function.clone(), work.attempt);
    let req = Request::from_queued(work);
    let respond_to = req.respond_to.clone();
    let late = req
        .queued_deadline
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    let ran = if let Some(late) = late {
        // Its deadline passed while it waited: it ends so, not late.
        c.count_deadline(reserved.function(), DeadlineOutcome::Expired, None);
        drop(reserved);
        Err(Error::Expired {
            name: function.clone(),
            late_ms: late.as_millis(),
        })
    } else {
        let run = router.run_reserved(req, reserved).await;
        crate::router::to_end(run, &function, &id).await
    };
    match ran {
        Err(e) if e.found_no_node() => {
            // It did not run: no node to run it on right now. It waits,
            // durably, without spending an attempt.
            let why = Failure {
                code: e.code().as_str().to_string(),
                message: e.to_string(),
            };
            match c.defer(&id, why, SystemTime::now() + PLACEMENT_RETRY).await {
                Ok(()) => c.log_line(
                    &function,
                    &id,
                    format!(
                        "not run: {e}; waiting {} ms for a node",
                        PLACEMENT_RETRY.as_millis()
                    ),
                ),
                Err(err) => {
                    tracing::error!(function = %function, invocation = %id, "deferring: {err}")
                }
            }
        }
        Ok(out) => {
            if let (Some(topic), Some(responder)) = (&respond_to, router.responder()) {
                responder
                    .respond(&function, &id, topic, out.body.clone())
                    .await;
            }
            if let Err(e) = c.complete(&id, out.body.to_vec()).await {
                tracing::error!(function = %function, invocation = %id, "recording success: {e}");
            }
        }
        Err(e) => {
            let retryable = e.retryable();
            let failure = Failure {
                code: e.code().as_str().to_string(),
                message: e.to_string(),
            };
            match c.fail(&id, failure, retryable).await {
                Ok(AfterFailure::Retry { at }) => {
                    let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
                    c.log_line(
                        &function,
                        &id,
                        format!(
                            "attempt {attempt} failed ({}); retrying in {} ms",
                            e.code(),
                            wait.as_millis()
                        ),
                    );
                }
                Ok(AfterFailure::Dead) => c.log_line(
                    &function,
                    &id,
                    format!(
                        "attempt {attempt} failed ({}); moved to the dead-letter list",
                        e.code()
                    ),
                ),
                Err(err) => {
                    tracing::error!(function = %function, invocation = %id, "recording failure: {err}");
                }
            }
        }
    }
}
