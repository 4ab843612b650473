//! Guests' `weft:fabric`: calls, async calls and publishes, through the
//! router like any other invocation. Injected into the runtime (which
//! cannot import the router) as its `Fabric`.

use crate::error::Error;
use crate::request::{Body, Chain, Request};
use crate::router::Router;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::{Arc, Weak};
use std::time::Instant;
use weft_codes::Code;
use weft_runtime::{CallContext, Durable, Fabric, FabricCode, FabricError, Trigger};

/// The router, as the guests' host.
pub(crate) struct Guests {
    router: Weak<Router>,
}

impl Guests {
    pub(crate) fn new(router: &Arc<Router>) -> Guests {
        Guests {
            router: Arc::downgrade(router),
        }
    }

    fn router(&self) -> Result<Arc<Router>, FabricError> {
        self.router
            .upgrade()
            .ok_or_else(|| FabricError::new(FabricCode::Unavailable, "the node is shutting down"))
    }
}

/// A request from the guest running under `from`, to `callee`.
fn request(from: &CallContext, callee: &str, payload: Bytes) -> Request {
    Request {
        subject: from.chain.last().cloned().unwrap_or_default(),
        chain: Chain {
            calls: from.chain.clone(),
            ancestors: from.ancestors.clone(),
        },
        body: Body::Bytes(payload),
        // A callee runs with its caller's key: a chain keeps one key's state.
        state_key: from.state_key.clone(),
        chain_state: from.chain_state.clone(),
        ..Request::new(callee, Trigger::Call)
    }
}

/// The class a guest sees of an error whose code is `code`
/// (`weft:fabric/types.error-code`), where the code alone decides it;
/// `deadline_passed`: the caller's deadline had passed.
pub fn guest_class(code: Code, deadline_passed: bool) -> Option<FabricCode> {
    Some(match code {
        Code::FunctionNotFound => FabricCode::NotFound,
        Code::CallCycle => FabricCode::Cycle,
        Code::ChainTooDeep => FabricCode::TooDeep,
        Code::QueueTimeout if deadline_passed => FabricCode::DeadlineExceeded,
        Code::QueueFull | Code::QueueTimeout | Code::NodeAtCapacity | Code::DeadlineUnmeetable => {
            FabricCode::Busy
        }
        Code::ShuttingDown => FabricCode::Unavailable,
        Code::RequestTooLarge
        | Code::RequestTimeout
        | Code::RequestAborted
        | Code::StepOutputTooLarge => FabricCode::TooLarge,
        Code::DeadlineExceeded | Code::DeadlineExpired => FabricCode::DeadlineExceeded,
        Code::FabricUnavailable | Code::NoEligibleNode | Code::NodeUnreachable => {
            FabricCode::Unavailable
        }
        _ => return None,
    })
}

/// How an error looks to the calling guest: the class of its code.
fn guest_error(e: &Error, deadline: Option<Instant>) -> FabricError {
    let passed = deadline.is_some_and(|d| Instant::now() >= d);
    let code = match e {
        Error::Controller(weft_controller::Error::Queue(_)) => FabricCode::Unavailable,
        _ => match guest_class(e.code(), passed) {
            Some(c) => c,
            None => match e {
                Error::Controller(weft_controller::Error::Invoke { .. }) | Error::Remote { .. } => {
                    FabricCode::Failed
                }
                _ => FabricCode::Internal,
            },
        },
    };
    FabricError::new(code, e.to_string())
}

impl Fabric for Guests {
    fn call(
        &self,
        from: &CallContext,
        deadline: Instant,
        callee: &str,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, FabricError>> {
        let router = self.router();
        let mut req = request(from, callee, payload);
        req.deadline = Some(deadline);
        req.inherited_deadline = from.due;
        let callee = callee.to_string();
        Box::pin(async move {
            let resp = router?
                .invoke(req)
                .await
                .map_err(|e| guest_error(&e, Some(deadline)))?;
            let node = resp.served.node.clone();
            let c = resp
                .collect()
                .await
                .map_err(|e| FabricError::new(FabricCode::Failed, format!("`{callee}`: {e}")))?;
            if c.status.as_u16() >= 500 {
                return Err(FabricError::new(
                    FabricCode::Failed,
                    format!("`{callee}` on node `{node}` answered {}", c.status.as_u16()),
                ));
            }
            Ok(c.body)
        })
    }

    fn call_async(
        &self,
        from: &CallContext,
        callee: &str,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<String, FabricError>> {
        let router = self.router();
        let req = request(from, callee, payload);
        Box::pin(async move {
            router?
                .submit(req, None)
                .await
                .map(|a| a.id)
                .map_err(|e| guest_error(&e, None))
        })
    }

    fn durable(&self) -> Option<Arc<dyn Durable>> {
        self.router.upgrade()?.durable()
    }

    fn publish(
        &self,
        from: &CallContext,
        topic: &str,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<(), FabricError>> {
        let router = self.router();
        let chain = Chain {
            calls: from.chain.clone(),
            ancestors: from.ancestors.clone(),
        };
        let topic = topic.to_string();
        Box::pin(async move {
            router?
                .publish(&topic, payload, chain)
                .await
                .map(|_| ())
                .map_err(|e| guest_error(&e, None))
        })
    }
}
