//! One request type and one response type, whatever brought the invocation
//! and wherever it runs. What travels as a string map — a queue record's
//! metadata, a call to another node — is written and read here, and only
//! here.

use crate::error::Error;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};
use weft_controller::Function;
use weft_manifest::KeySource;
use weft_mesh::{CallMeta, HttpMeta};
use weft_runtime::{BoxError, HttpBody, Trigger};

/// The call chain above an invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    /// Functions on the synchronous call stack above it, outermost first:
    /// their slots are held while it runs, so calling one again is a cycle.
    pub calls: Vec<String>,
    /// Functions that started the chain asynchronously (an async call, an
    /// event), outermost first: they hold no slot, so they count toward
    /// depth only.
    pub ancestors: Vec<String>,
}

impl Chain {
    /// Functions above, in all.
    pub fn depth(&self) -> usize {
        self.calls.len() + self.ancestors.len()
    }

    /// The chain work queued from here inherits: every function above it
    /// becomes an ancestor.
    pub fn queued(&self) -> Vec<String> {
        self.ancestors.iter().chain(&self.calls).cloned().collect()
    }

    /// `a -> b -> next`.
    pub(crate) fn text(&self, next: &str) -> String {
        let mut s: Vec<&str> = self.ancestors.iter().map(String::as_str).collect();
        s.extend(self.calls.iter().map(String::as_str));
        s.push(next);
        s.join(" -> ")
    }
}

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A client that presented the node's token, or any client of a node
    /// whose API is open (loopback).
    Authorized,
    /// A client without the token: only public functions answer it.
    Anonymous,
    /// The node itself or the fabric: a guest's call, queued work, a
    /// trigger, a peer (a member of the fabric is trusted as the node is).
    Node,
}

/// An HTTP request besides its body.
#[derive(Debug, Clone)]
pub struct HttpFacts {
    /// The method.
    pub method: Method,
    /// Path and query, as the function sees them (the sub-path after
    /// `/fn/NAME`, or the whole path of a declared route).
    pub path_and_query: String,
    /// The headers, `host` among them.
    pub headers: HeaderMap,
}

impl HttpFacts {
    /// The state key where `source` says (decoded: a path segment or a
    /// query parameter is percent-encoded).
    fn key(&self, source: &KeySource) -> Option<String> {
        let (path, query) = self
            .path_and_query
            .split_once('?')
            .unwrap_or((&self.path_and_query, ""));
        match source {
            KeySource::Header(h) => self
                .headers
                .get(h.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            KeySource::Path(n) => path
                .split('/')
                .filter(|s| !s.is_empty())
                .nth(usize::from(*n) - 1)
                .map(|s| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned()
                }),
            KeySource::Query(q) => form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == q.as_str())
                .map(|(_, v)| v.into_owned()),
        }
    }

    fn host(&self) -> &str {
        self.headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
    }

    /// The request an HTTP component is given: an absolute URI with the
    /// host the client used.
    pub(crate) fn request(&self, body: HttpBody) -> Result<http::Request<HttpBody>, http::Error> {
        let mut req = http::Request::builder()
            .method(self.method.clone())
            .uri(format!("http://{}{}", self.host(), self.path_and_query))
            .body(body)?;
        *req.headers_mut() = self.headers.clone();
        Ok(req)
    }

    /// The headers as name and text pairs (values that are not text are
    /// dropped).
    fn header_pairs(&self) -> Vec<(String, String)> {
        pairs(&self.headers)
    }
}

fn pairs(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(k, v);
        }
    }
    h
}

/// A request's body: bytes in hand, or a stream still arriving (read only
/// once the invocation is admitted, within the function's limits).
pub enum Body {
    /// The whole body.
    Bytes(Bytes),
    /// A body still arriving.
    Stream(HttpBody),
}

impl Body {
    /// No body.
    pub fn empty() -> Body {
        Body::Bytes(Bytes::new())
    }

    /// Its size, when known before reading.
    pub(crate) fn known_len(&self) -> Option<u64> {
        match self {
            Body::Bytes(b) => Some(b.len() as u64),
            Body::Stream(s) => http_body::Body::size_hint(s).exact(),
        }
    }

    /// As a body an HTTP component streams.
    pub(crate) fn into_http(self) -> HttpBody {
        match self {
            Body::Bytes(b) => full(b),
            Body::Stream(s) => s,
        }
    }
}

/// A whole body, boxed.
pub fn full(b: Bytes) -> HttpBody {
    Full::new(b)
        .map_err(|e| -> BoxError { match e {} })
        .boxed_unsync()
}

/// One invocation to run, whatever brought it.
pub struct Request {
    /// The function.
    pub function: String,
    /// What brought it.
    pub trigger: Trigger,
    /// The route, topic, schedule or caller; may be empty.
    pub subject: String,
    /// Attempt of an asynchronous invocation, from 1.
    pub attempt: u32,
    /// The functions above it.
    pub chain: Chain,
    /// When its caller gives up, if earlier than the function's timeout:
    /// the invocation gets at most what is left.
    pub deadline: Option<Instant>,
    /// A deadline tighter than the function's that the request asks for,
    /// from its arrival (`x-weft-deadline`); never a looser one.
    pub asked_deadline: Option<Duration>,
    /// For queued work: when its deadline falls, set when it was queued
    /// (wall clock: it survives a restart).
    pub queued_deadline: Option<SystemTime>,
    /// The deadline of the invocation it serves (a calling guest's, or the
    /// one the node it entered set): it inherits it when earlier than its
    /// own, never as an error.
    pub inherited_deadline: Option<Instant>,
    /// Who asks.
    pub caller: Caller,
    /// HTTP facts, for a request that came over HTTP (or was queued or sent
    /// from one): how an HTTP component is called.
    pub http: Option<HttpFacts>,
    /// The body.
    pub body: Body,
    /// The queue's id of an asynchronous invocation: it runs under it.
    pub id: Option<String>,
    /// Where an MQTT-triggered invocation's response is published.
    pub respond_to: Option<String>,
    /// Set when the request arrived from another node: it runs here.
    pub from_node: Option<String>,
    /// The version the request was resolved to by the node it entered
    /// (0: the active one here).
    pub version: u32,
    /// The key whose state a stateful function runs with: taken where the
    /// function says when the request enters, then carried (queued, sent
    /// to a peer, inherited by callees).
    pub state_key: Option<String>,
    /// The client state a calling guest's chain carries, for a callee that
    /// keeps its state with the client (this node only: not queued, not
    /// sent to peers).
    pub chain_state: Option<weft_runtime::ChainState>,
    /// Runs on this node whatever placement would choose: a workflow's
    /// orchestrator, whose journal the node driving its run answers.
    pub pinned: bool,
    /// Where its data may go by what it belongs to (a workflow run's
    /// `privacy`), relative to this node: placed within it, beside the
    /// function's own.
    pub privacy: weft_sched::Privacy,
}

impl Request {
    /// A request for `function` brought by `trigger`, from the node itself,
    /// with no body and no chain.
    pub fn new(function: impl Into<String>, trigger: Trigger) -> Request {
        Request {
            function: function.into(),
            trigger,
            subject: String::new(),
            attempt: 1,
            chain: Chain::default(),
            deadline: None,
            asked_deadline: None,
            queued_deadline: None,
            inherited_deadline: None,
            caller: Caller::Node,
            http: None,
            body: Body::empty(),
            id: None,
            respond_to: None,
            from_node: None,
            version: 0,
            state_key: None,
            chain_state: None,
            pinned: false,
            privacy: weft_sched::Privacy::None,
        }
    }

    /// Takes the state key of a stateful function's invocation from where
    /// the function says, unless the request carries one (a callee's, a
    /// queued or a peer's invocation), and checks it.
    pub(crate) fn resolve_state_key(&mut self, f: &Function) -> Result<(), Error> {
        let Some(state) = f.state() else {
            return Ok(());
        };
        if self.state_key.is_none() {
            self.state_key = self.http.as_ref().and_then(|h| h.key(&state.key));
        }
        let invalid = |message: String| Error::InvalidStateKey {
            name: f.name().to_string(),
            from: state.key.to_string(),
            message,
        };
        match &self.state_key {
            None => Err(invalid(match self.http {
                Some(_) => "is missing".to_string(),
                None => format!(
                    "is missing: a {} invocation carries none (call it over HTTP, or from a function that has a key)",
                    self.trigger.as_str()
                ),
            })),
            Some(k) => weft_manifest::validate_state_key(k).map_err(invalid),
        }
    }

    /// The same with a body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Request {
        self.body = Body::Bytes(body.into());
        self
    }

    /// The queue record's metadata of this request: subject, the chain it
    /// hands on, HTTP facts, the MQTT response topic, when its deadline
    /// falls. (The keys are the queue's stored format;
    /// [`Request::from_queued`] reads them back.)
    pub(crate) fn queue_meta(&self) -> BTreeMap<String, String> {
        let mut meta = BTreeMap::new();
        if let Some(t) = self.queued_deadline {
            let within = t.duration_since(SystemTime::now()).unwrap_or_default();
            meta.insert("deadline_us".to_string(), within.as_micros().to_string());
            set_deadline_ms(&mut meta, t);
        }
        if !self.subject.is_empty() {
            meta.insert("subject".to_string(), self.subject.clone());
        }
        match self.trigger {
            Trigger::Call if !self.subject.is_empty() => {
                meta.insert("caller".to_string(), self.subject.clone());
            }
            Trigger::Topic => {
                if let Some(p) = self.chain.calls.last() {
                    meta.insert("publisher".to_string(), p.clone());
                }
            }
            _ => {}
        }
        let chain = self.chain.queued();
        if !chain.is_empty() {
            meta.insert("chain".to_string(), chain.join(","));
        }
        if let Some(t) = &self.respond_to {
            meta.insert("response_topic".to_string(), t.clone());
        }
        if let Some(k) = &self.state_key {
            meta.insert("state_key".to_string(), k.clone());
        }
        if let Some(h) = &self.http {
            meta.insert("method".to_string(), h.method.to_string());
            meta.insert("path".to_string(), h.path_and_query.clone());
            meta.insert("host".to_string(), h.host().to_string());
            if let Some(ct) = h
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
            {
                meta.insert("content-type".to_string(), ct.to_string());
            }
        }
        meta
    }

    /// A dead-lettered record's metadata, queued again: it arrives afresh,
    /// so its deadline counts from now (`deadline_us` is kept relative for
    /// this).
    pub(crate) fn rearm(meta: &mut BTreeMap<String, String>) {
        let Some(within) = meta
            .get("deadline_us")
            .and_then(|us| us.parse::<u64>().ok())
            .map(Duration::from_micros)
        else {
            return;
        };
        set_deadline_ms(meta, SystemTime::now() + within);
    }

    /// A claimed queue record as a request: it runs under its queue id,
    /// with the chain it inherited as ancestors.
    pub(crate) fn from_queued(c: weft_controller::Claimed) -> Request {
        let meta = &c.meta;
        let get = |k: &str| meta.get(k).cloned();
        let http = get("method").map(|method| {
            let mut headers = HeaderMap::new();
            if let Ok(v) =
                HeaderValue::from_str(meta.get("host").map_or("localhost", String::as_str))
            {
                headers.insert(http::header::HOST, v);
            }
            if let Some(Ok(v)) = meta.get("content-type").map(|c| HeaderValue::from_str(c)) {
                headers.insert(http::header::CONTENT_TYPE, v);
            }
            HttpFacts {
                method: Method::from_bytes(method.as_bytes()).unwrap_or(Method::POST),
                path_and_query: get("path").unwrap_or_else(|| "/".to_string()),
                headers,
            }
        });
        Request {
            function: c.function.clone(),
            trigger: Trigger::parse(&c.trigger).unwrap_or(Trigger::Async),
            subject: get("subject").unwrap_or_default(),
            attempt: c.attempt,
            chain: Chain {
                calls: Vec::new(),
                ancestors: meta
                    .get("chain")
                    .map(|c| {
                        c.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            deadline: None,
            asked_deadline: None,
            queued_deadline: get("deadline_ms")
                .and_then(|ms| ms.parse::<u64>().ok())
                .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms)),
            inherited_deadline: None,
            caller: Caller::Node,
            http,
            body: Body::Bytes(c.payload.into()),
            id: Some(c.id),
            respond_to: get("response_topic"),
            from_node: None,
            version: 0,
            state_key: get("state_key"),
            chain_state: None,
            pinned: false,
            privacy: weft_sched::Privacy::None,
        }
    }

    /// The call another node is sent (the mesh fills in the framing).
    pub(crate) fn call_meta(&self, version: u32) -> CallMeta {
        CallMeta {
            id: String::new(),
            from: String::new(),
            function: self.function.clone(),
            trigger: self.trigger.as_str().to_string(),
            subject: self.subject.clone(),
            attempt: self.attempt,
            chain: self.chain.calls.clone(),
            ancestors: self.chain.ancestors.clone(),
            version,
            timeout_ms: 0,
            deadline_us: None,
            http: self.http.as_ref().map(|h| HttpMeta {
                method: h.method.to_string(),
                path: h.path_and_query.clone(),
                headers: h.header_pairs(),
            }),
            body_len: 0,
            chunks: 0,
            state_key: self.state_key.clone(),
        }
    }

    /// A call that arrived from another node, as a request that runs here.
    pub(crate) fn from_call(call: CallMeta, body: Bytes) -> Request {
        let http = call.http.map(|h| HttpFacts {
            method: Method::from_bytes(h.method.as_bytes()).unwrap_or(Method::POST),
            path_and_query: h.path,
            headers: header_map(&h.headers),
        });
        Request {
            function: call.function,
            trigger: Trigger::parse(&call.trigger).unwrap_or(Trigger::Fabric),
            subject: call.subject,
            attempt: call.attempt.max(1),
            chain: Chain {
                calls: call.chain,
                ancestors: call.ancestors,
            },
            // A peer's figures are bounded by the function's own timeout
            // later; one too large to add is no bound.
            deadline: Instant::now().checked_add(Duration::from_millis(call.timeout_ms)),
            asked_deadline: None,
            queued_deadline: None,
            inherited_deadline: call
                .deadline_us
                .and_then(|us| Instant::now().checked_add(Duration::from_micros(us))),
            caller: Caller::Node,
            http,
            body: Body::Bytes(body),
            id: None,
            respond_to: None,
            from_node: Some(call.from),
            version: call.version,
            state_key: call.state_key,
            chain_state: None,
            pinned: false,
            privacy: weft_sched::Privacy::None,
        }
    }
}

/// Where an invocation ran, and what it used (what is known when the
/// response starts).
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// The invocation's id (on the node that ran it).
    pub invocation: String,
    /// The function.
    pub function: String,
    /// The version that ran.
    pub version: u32,
    /// Whether it was a cold start.
    pub cold_start: bool,
    /// The node that ran it.
    pub node: String,
    /// Why there: the placement's reason (`local`, `local_overloaded`,
    /// `standalone`, …).
    pub placement: &'static str,
    /// Nodes tried before (dead or unreachable), for idempotent retries.
    pub retried_from: Vec<String>,
    /// Wall time of the run, µs (commands; and remote runs).
    pub wall_us: Option<u64>,
    /// CPU time, µs (commands).
    pub cpu_us: Option<u64>,
    /// Peak linear memory, bytes (commands run here).
    pub memory_peak: Option<u64>,
    /// Fuel used, when metered (commands run here).
    pub fuel: Option<u64>,
    /// The invocation's deadline, as the node it entered set it, and
    /// whether the response started within it.
    pub deadline: Option<DeadlineKept>,
}

/// How an invocation's deadline went.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineKept {
    /// The deadline, from arrival.
    pub within: Duration,
    /// Whether the response started within it (a command's output is
    /// whole by then; a component may go on streaming).
    pub met: bool,
}

/// An invocation's deadline: the function's (its timeout when it declares
/// none), or the tighter one its request asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    /// From arrival.
    pub(crate) within: Duration,
    /// When it falls.
    pub(crate) at: Instant,
    /// Whether it is a promise (declared by the function, asked by the
    /// request, or kept from a queued one), not only the timeout: only a
    /// promise is refused when it cannot be met.
    pub(crate) promised: bool,
}

impl Deadline {
    /// Whether it holds now.
    pub(crate) fn met(&self) -> bool {
        Instant::now() <= self.at
    }
}

/// The response of an invocation, whichever path ran it: the component's
/// own status, headers and body (a command's is `200`,
/// `application/octet-stream` and its stdout).
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (streaming, for an HTTP component run here).
    pub body: HttpBody,
    /// Where it ran and what it used.
    pub served: Served,
    /// For a component run here: how its sandbox ended, known once the
    /// body has been read.
    pub(crate) ended: Option<tokio::sync::oneshot::Receiver<Result<(), weft_runtime::InvokeError>>>,
}

/// A response read whole.
pub struct Collected {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// Where it ran.
    pub served: Served,
}

impl Collected {
    pub(crate) fn header_pairs(&self) -> Vec<(String, String)> {
        pairs(&self.headers)
    }
}

impl Response {
    /// A response whose headers came as text pairs (from another node).
    pub(crate) fn from_parts(
        status: u16,
        headers: &[(String, String)],
        body: Bytes,
        served: Served,
    ) -> Response {
        // The body is whole here: the sender's framing headers do not apply.
        let mut headers = header_map(headers);
        for h in [
            http::header::CONTENT_LENGTH,
            http::header::TRANSFER_ENCODING,
            http::header::CONNECTION,
        ] {
            headers.remove(h);
        }
        Response {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            headers,
            body: full(body),
            served,
            ended: None,
        }
    }

    /// Reads the whole body, and waits for the sandbox's end: an error
    /// after the response began (a trap mid-body) is an error here.
    pub async fn collect(self) -> Result<Collected, weft_runtime::InvokeError> {
        let Response {
            status,
            headers,
            body,
            served,
            ended,
        } = self;
        let body = body
            .collect()
            .await
            .map_err(|e| weft_runtime::InvokeError::Handler(format!("response body: {e}")))?
            .to_bytes();
        if let Some(ended) = ended
            && let Ok(Err(e)) = ended.await
        {
            return Err(e);
        }
        Ok(Collected {
            status,
            headers,
            body,
            served,
        })
    }
}

/// Stores when a queued invocation's deadline falls (`deadline_ms`, ms
/// since the UNIX epoch; [`Request::from_queued`] reads it back).
fn set_deadline_ms(meta: &mut BTreeMap<String, String>, at: SystemTime) {
    if let Ok(ms) = at.duration_since(SystemTime::UNIX_EPOCH) {
        meta.insert("deadline_ms".to_string(), ms.as_millis().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_times_too_large_to_add_bound_nothing() {
        let call = CallMeta {
            id: "c1".into(),
            from: "mallory".into(),
            function: "f".into(),
            trigger: "call".into(),
            subject: String::new(),
            attempt: 1,
            chain: Vec::new(),
            ancestors: Vec::new(),
            version: 0,
            timeout_ms: u64::MAX,
            deadline_us: Some(u64::MAX),
            http: None,
            body_len: 0,
            chunks: 1,
            state_key: None,
        };
        // No overflow, and nothing that could tighten the function's own
        // (a year away, or no bound at all).
        let req = Request::from_call(call.clone(), Bytes::new());
        let year = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        for t in [req.deadline, req.inherited_deadline] {
            assert!(t.is_none_or(|t| t > year), "{t:?}");
        }
        // Ordinary figures are kept, relative to now.
        let call = CallMeta {
            timeout_ms: 2_000,
            deadline_us: Some(500_000),
            ..call
        };
        let before = Instant::now();
        let req = Request::from_call(call, Bytes::new());
        let left = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(before));
        assert!(left(req.deadline).is_some_and(|d| d >= Duration::from_secs(2)));
        assert!(
            left(req.inherited_deadline)
                .is_some_and(|d| d >= Duration::from_millis(500) && d < Duration::from_secs(1))
        );
    }
}
