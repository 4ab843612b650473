//! What each sandbox's store holds: the WASI context, the host side of
//! Weft's interfaces, the memory limiter, and the outbound-HTTP policy.

use crate::host::{Capabilities, HostCtx, HostView};
use crate::io::LogFn;
use crate::limits::Limiter;
use http_body_util::BodyExt;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Store data of a command sandbox.
pub(crate) struct CommandState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: Limiter,
}

/// Store data of a component sandbox (HTTP or command).
pub(crate) struct ComponentState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: Outbound,
    pub(crate) limiter: Limiter,
    host: HostCtx,
}

impl ComponentState {
    /// The state of a sandbox whose host side is `host`, with at most
    /// `memory` bytes of linear memory.
    pub(crate) fn new(wasi: WasiCtx, host: HostCtx, memory: u64) -> Self {
        ComponentState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: Outbound {
                function: host.function.clone(),
                caps: host.caps.clone(),
                log: host.log.clone(),
            },
            limiter: Limiter::new(memory),
            host,
        }
    }

    pub(crate) fn host_view(&mut self) -> HostView<'_> {
        HostView {
            ctx: &mut self.host,
            table: &mut self.table,
        }
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Outbound HTTP: a request goes out only to a host the function's
/// `allowed_outbound_hosts` names; any other is denied with
/// `HTTP-request-denied`, and the denial is logged.
struct Outbound {
    function: String,
    caps: Arc<Capabilities>,
    log: LogFn,
}

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_string();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        if !self
            .caps
            .outbound
            .iter()
            .any(|p| p.allows(&scheme, &host, port))
        {
            let line = format!(
                "denied: outbound HTTP to {scheme}://{host}:{port} is not in the allowed_outbound_hosts of function `{}`",
                self.function
            );
            tracing::warn!(function = %self.function, "{line}");
            (self.log)(line);
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}
