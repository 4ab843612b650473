//! The router: the one place that decides where an invocation runs. Today
//! every function runs on this node; the fabric (NATS) will let it send a
//! call to another node. It enforces what calls across functions must
//! respect wherever they run: bounded depth, no cycles, and the caller's
//! remaining deadline.

use crate::controller::{Controller, Origin};
use crate::error::Error;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Instant;
use weft_runtime::{CallContext, Fabric, FabricCode, FabricError, InvokeError};

/// Default bound of call chains.
pub(crate) const DEFAULT_MAX_DEPTH: u32 = 8;

pub(crate) struct Router {
    controller: Weak<Controller>,
}

impl Router {
    pub(crate) fn new(c: &Arc<Controller>) -> Self {
        Router {
            controller: Arc::downgrade(c),
        }
    }

    fn controller(&self) -> Result<Arc<Controller>, FabricError> {
        self.controller
            .upgrade()
            .ok_or_else(|| FabricError::new(FabricCode::Unavailable, "the node is shutting down"))
    }
}

/// How a controller error looks to the calling guest.
pub(crate) fn fabric_error(e: &Error) -> FabricError {
    let code = match e {
        Error::FunctionNotFound(_) => FabricCode::NotFound,
        Error::QueueFull { .. } | Error::QueueTimeout { .. } | Error::NodeAtCapacity { .. } => {
            FabricCode::Busy
        }
        Error::Queue(weft_queue::QueueError::Full { .. }) | Error::ShuttingDown => {
            FabricCode::Unavailable
        }
        Error::RequestBody { .. } => FabricCode::TooLarge,
        Error::Invoke {
            source: InvokeError::Deadline { .. },
            ..
        } => FabricCode::DeadlineExceeded,
        Error::Invoke { .. } | Error::Remote { .. } => FabricCode::Failed,
        Error::FabricUnavailable(_)
        | Error::NoEligibleNode { .. }
        | Error::NodeUnreachable { .. } => FabricCode::Unavailable,
        _ => FabricCode::Internal,
    };
    FabricError::new(code, e.to_string())
}

fn chain_text(chain: &[String], next: &str) -> String {
    let mut s = chain.join(" -> ");
    s.push_str(" -> ");
    s.push_str(next);
    s
}

impl Controller {
    /// A synchronous call from one function to another.
    pub(crate) async fn call_function(
        self: &Arc<Self>,
        from: &CallContext,
        deadline: Instant,
        callee: &str,
        payload: Bytes,
    ) -> Result<Bytes, FabricError> {
        if from.chain.iter().any(|f| f == callee) {
            return Err(FabricError::new(
                FabricCode::Cycle,
                format!("call cycle refused: {}", chain_text(&from.chain, callee)),
            ));
        }
        self.within_depth(from, callee)?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(FabricError::new(
                FabricCode::DeadlineExceeded,
                format!("no time left to call `{callee}`"),
            ));
        }
        if let crate::fabric::Placement::Decided(d) = self
            .place(callee, payload.len() as u64)
            .map_err(|e| fabric_error(&e))?
            && !d.local
        {
            let origin = Origin {
                trigger: "call",
                subject: from.chain.last().cloned().unwrap_or_default(),
                attempt: 1,
                chain: from.chain.clone(),
                ancestors: from.ancestors.clone(),
                timeout_cap: Some(left),
            };
            let r = self
                .invoke_remote(callee, d, &origin, BTreeMap::new(), payload)
                .await
                .map_err(|e| fabric_error(&e))?;
            if r.status >= 500 {
                return Err(FabricError::new(
                    FabricCode::Failed,
                    format!("`{callee}` on node `{}` answered {}", r.node, r.status),
                ));
            }
            return Ok(r.body);
        }
        let admitted = tokio::time::timeout(left, self.admit(callee))
            .await
            .map_err(|_| {
                FabricError::new(
                    FabricCode::DeadlineExceeded,
                    format!("the caller's deadline passed while `{callee}` was busy"),
                )
            })?;
        let (f, slot) = admitted.map_err(|e| fabric_error(&e))?;
        let origin = Origin {
            trigger: "call",
            subject: from.chain.last().cloned().unwrap_or_default(),
            attempt: 1,
            chain: from.chain.clone(),
            ancestors: from.ancestors.clone(),
            timeout_cap: Some(deadline.saturating_duration_since(Instant::now())),
        };
        self.run_payload(f, slot, payload, origin, None, &BTreeMap::new())
            .await
            .map(|(_, body)| body)
            .map_err(|e| fabric_error(&e))
    }
}

impl Fabric for Router {
    fn call(
        &self,
        from: &CallContext,
        deadline: Instant,
        callee: &str,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, FabricError>> {
        let c = self.controller();
        let (from, callee) = (from.clone(), callee.to_string());
        Box::pin(async move { c?.call_function(&from, deadline, &callee, payload).await })
    }

    fn call_async(
        &self,
        from: &CallContext,
        callee: &str,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<String, FabricError>> {
        let c = self.controller();
        let (from, callee) = (from.clone(), callee.to_string());
        Box::pin(async move {
            let c = c?;
            c.within_depth(&from, &callee)?;
            let caller = from.chain.last().cloned().unwrap_or_default();
            let mut meta = chain_meta(&from);
            meta.insert("caller".to_string(), caller.clone());
            c.enqueue(&callee, payload, "call", caller, meta, None)
                .await
                .map(|a| a.id)
                .map_err(|e| fabric_error(&e))
        })
    }

    fn publish(
        &self,
        from: &CallContext,
        topic: &str,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<(), FabricError>> {
        let c = self.controller();
        let (from, topic) = (from.clone(), topic.to_string());
        Box::pin(async move {
            let c = c?;
            c.within_depth(&from, &format!("topic `{topic}`"))?;
            let publisher = from.chain.last().cloned().unwrap_or_default();
            c.publish_with(&publisher, &topic, payload, chain_meta(&from))
                .await
                .map(|_| ())
                .map_err(|e| fabric_error(&e))
        })
    }
}

/// The chain of an invocation, carried through the queue so that work
/// started asynchronously (events, async calls) is bounded too.
fn chain_meta(from: &CallContext) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::new();
    meta.insert("chain".to_string(), full_chain(from).join(","));
    meta
}

/// Every function above the next one: asynchronous ancestors, then the
/// synchronous call stack.
fn full_chain(from: &CallContext) -> Vec<String> {
    from.ancestors.iter().chain(&from.chain).cloned().collect()
}

/// The chain an asynchronous invocation inherited, from its metadata.
pub(crate) fn chain_of(meta: &BTreeMap<String, String>) -> Vec<String> {
    meta.get("chain")
        .map(|c| {
            c.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Controller {
    /// Refuses work that would make the chain of invocations (calls, async
    /// calls, events) deeper than the node allows: an event storm or a
    /// ping-pong of async calls ends here.
    fn within_depth(&self, from: &CallContext, next: &str) -> Result<(), FabricError> {
        let max_depth = self.config.max_call_depth.unwrap_or(DEFAULT_MAX_DEPTH) as usize;
        let chain = full_chain(from);
        if chain.len() >= max_depth {
            return Err(FabricError::new(
                FabricCode::TooDeep,
                format!(
                    "chain too deep: {} exceeds the node's max_call_depth of {max_depth}",
                    chain_text(&chain, next)
                ),
            ));
        }
        Ok(())
    }
}
