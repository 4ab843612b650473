//! Write a Weft function in a few lines. A function built with this crate is
//! a `wasm32-wasip2` command: the request arrives on stdin, the response
//! leaves on stdout, and a failure (an `Err` from the handler) makes the
//! invocation fail, so asynchronous invocations are retried.
//!
//! ```no_run
//! use weft_sdk::{kv, log};
//!
//! fn main() {
//!     weft_sdk::run(|request| {
//!         let store = kv::Store::open("default")?;
//!         let n = store.increment("hits", 1)?;
//!         log::info(&format!("hit {n}"));
//!         Ok(format!("{n} hits; you sent {} bytes\n", request.len()).into_bytes())
//!     });
//! }
//! ```
//!
//! Every capability must also be declared in the function's manifest
//! (`key_value_stores`, `config`, `allowed_outbound_hosts`, `calls`,
//! `publishes`); an undeclared one returns an error and is logged by the node.
//! The interfaces are the standard `wasi:keyvalue`, `wasi:config`,
//! `wasi:logging` and `wasi:http`, plus Weft's own `weft:fabric` (see the
//! repository's `wit/`), so a component written without this crate works
//! the same.

use std::fmt;
use std::io::{Read, Write};

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "weft:fabric/imports",
        generate_all,
    });
}

use bindings::weft::fabric::types::ErrorCode as WitCode;

/// The error of every call in this crate: a stable code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Stable, snake_case: `denied`, `not_found`, `cycle`, `too_deep`,
    /// `deadline_exceeded`, `busy`, `failed`, `too_large`, `unavailable`,
    /// `internal`, `no_such_store`, `store_error`, `config_error`,
    /// `http_error`, `invalid_request`; `suspended` from [`durable`].
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
}

impl Error {
    /// An error with `code` and `message`; for handlers' own failures.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }
}

impl Error {
    /// Whether a durable operation suspended the run: return it from the
    /// handler (with `?`), and [`run`] ends the invocation quietly; Weft
    /// invokes the orchestrator again when the run can go on.
    pub fn is_suspended(&self) -> bool {
        self.code == "suspended"
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<bindings::weft::fabric::types::Error> for Error {
    fn from(e: bindings::weft::fabric::types::Error) -> Self {
        let code = match e.code {
            WitCode::Denied => "denied",
            WitCode::NotFound => "not_found",
            WitCode::Cycle => "cycle",
            WitCode::TooDeep => "too_deep",
            WitCode::DeadlineExceeded => "deadline_exceeded",
            WitCode::Busy => "busy",
            WitCode::Failed => "failed",
            WitCode::TooLarge => "too_large",
            WitCode::Unavailable => "unavailable",
            WitCode::Internal => "internal",
        };
        Error::new(code, e.message)
    }
}

/// Runs a handler as the function: reads the whole request from stdin,
/// writes the handler's response to stdout. On `Err` the error goes to
/// stderr (the function's log) and the process exits with status 1.
pub fn run<F, E>(handler: F)
where
    F: FnOnce(Vec<u8>) -> Result<Vec<u8>, E>,
    E: fmt::Display,
{
    let mut request = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut request) {
        eprintln!("reading the request: {e}");
        std::process::exit(1);
    }
    match handler(request) {
        Ok(response) => {
            let mut out = std::io::stdout().lock();
            if out.write_all(&response).and_then(|()| out.flush()).is_err() {
                std::process::exit(1);
            }
        }
        Err(e) => {
            let text = e.to_string();
            // A suspended workflow's answer is dropped: nothing to say.
            if text.starts_with("suspended: ") {
                std::process::exit(0);
            }
            eprintln!("{text}");
            std::process::exit(1);
        }
    }
}

/// Key-value stores (`wasi:keyvalue`).
pub mod kv {
    use super::Error;
    use crate::bindings::wasi::keyvalue::{atomics, batch, store};

    fn err(e: store::Error) -> Error {
        match e {
            store::Error::NoSuchStore => Error::new("no_such_store", "no such key-value store"),
            store::Error::AccessDenied => Error::new(
                "denied",
                "key-value store not declared in the manifest's key_value_stores",
            ),
            store::Error::Other(m) => Error::new("store_error", m),
        }
    }

    /// An open store.
    pub struct Store(store::Bucket);

    impl Store {
        /// Opens the store the manifest declares as `label`.
        pub fn open(label: &str) -> Result<Store, Error> {
            store::open(label).map(Store).map_err(err)
        }

        /// The value of `key`, if any.
        pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
            self.0.get(key).map_err(err)
        }

        /// Sets `key` to `value`.
        pub fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
            self.0.set(key, value).map_err(err)
        }

        /// Removes `key`.
        pub fn delete(&self, key: &str) -> Result<(), Error> {
            self.0.delete(key).map_err(err)
        }

        /// Whether `key` has a value.
        pub fn exists(&self, key: &str) -> Result<bool, Error> {
            self.0.exists(key).map_err(err)
        }

        /// Every key, fetched a page at a time.
        pub fn keys(&self) -> Result<Vec<String>, Error> {
            let mut all = Vec::new();
            let mut cursor = None;
            loop {
                let page = self.0.list_keys(cursor).map_err(err)?;
                all.extend(page.keys);
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => return Ok(all),
                }
            }
        }

        /// Adds `delta` to the number at `key` (absent: 0); the new value.
        pub fn increment(&self, key: &str, delta: u64) -> Result<u64, Error> {
            atomics::increment(&self.0, key, delta).map_err(err)
        }

        /// Values of several keys, in order.
        pub fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
            let got = batch::get_many(&self.0, keys).map_err(err)?;
            Ok(got.into_iter().map(|e| e.map(|(_, v)| v)).collect())
        }

        /// Sets several keys.
        pub fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), Error> {
            batch::set_many(&self.0, entries).map_err(err)
        }

        /// Removes several keys.
        pub fn delete_many(&self, keys: &[String]) -> Result<(), Error> {
            batch::delete_many(&self.0, keys).map_err(err)
        }
    }
}

/// The function's configuration (`wasi:config`).
pub mod config {
    use super::Error;
    use crate::bindings::wasi::config0_2_0_draft::store;

    fn err(e: store::Error) -> Error {
        match e {
            store::Error::Upstream(m) | store::Error::Io(m) => Error::new("config_error", m),
        }
    }

    /// The value of `key`; an error when the manifest does not declare it.
    pub fn get(key: &str) -> Result<String, Error> {
        store::get(key)
            .map_err(err)?
            .ok_or_else(|| Error::new("config_error", format!("config key `{key}` has no value")))
    }

    /// Every declared key and value.
    pub fn all() -> Result<Vec<(String, String)>, Error> {
        store::get_all().map_err(err)
    }
}

/// Log lines with a level (`wasi:logging`); they appear in `weft logs`.
pub mod log {
    use crate::bindings::wasi::logging::logging::{log, Level};

    /// Logs at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, "", message);
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        log(Level::Info, "", message);
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, "", message);
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        log(Level::Error, "", message);
    }
}

/// Calls another function and waits for its response. The callee runs with
/// its own limits and at most the time this invocation has left; it must
/// be declared in the manifest's `calls`.
pub fn call(function: &str, payload: &[u8]) -> Result<Vec<u8>, Error> {
    Ok(bindings::weft::fabric::call::call(function, payload)?)
}

/// Queues an asynchronous invocation of another function; returns its id
/// once it is durably queued (`weft result ID` shows how it went).
pub fn call_async(function: &str, payload: &[u8]) -> Result<String, Error> {
    Ok(bindings::weft::fabric::call::call_async(function, payload)?)
}

/// Publishes an event on a node topic: every subscribed function is invoked
/// asynchronously with `payload`. The topic must match the manifest's
/// `publishes`.
pub fn publish(topic: &str, payload: &[u8]) -> Result<(), Error> {
    Ok(bindings::weft::fabric::topics::publish(topic, payload)?)
}

/// Facts about the running invocation.
pub mod invocation {
    use crate::bindings::weft::fabric::invocation as inv;
    use std::time::Duration;

    /// The invocation's id.
    pub fn id() -> String {
        inv::id()
    }
    /// This function's name.
    pub fn function() -> String {
        inv::function()
    }
    /// What started it: `http`, `route`, `cli`, `async`, `cron`, `mqtt`,
    /// `topic` or `call`.
    pub fn trigger() -> String {
        inv::trigger()
    }
    /// The MQTT topic, event topic, cron schedule, route or caller.
    pub fn subject() -> String {
        inv::subject()
    }
    /// Time left before the deadline.
    pub fn deadline_left() -> Duration {
        Duration::from_millis(inv::deadline_left_ms())
    }
    /// Attempt of an asynchronous invocation, from 1.
    pub fn attempt() -> u32 {
        inv::attempt()
    }
}

/// Workflows in code: durable steps for a workflow's orchestrator (the
/// function of `[workflows.NAME] function = "F"`). Each step has a name,
/// and its result is journaled before it answers; when the orchestrator
/// runs again (after a crash, a suspension, a retry), the steps already
/// recorded answer their recorded results without running again, so the
/// orchestrator must take the same steps in the same order each time
/// (decide on step results, not on clocks or randomness outside a step).
///
/// ```no_run
/// use weft_sdk::durable;
/// use std::time::Duration;
///
/// fn main() {
///     weft_sdk::run(|order| {
///         let paid = durable::call("pay", "payments", &order)?;
///         let ok = durable::await_event("approve", Some(Duration::from_secs(3600)))?;
///         if ok.is_none() {
///             durable::call("refund", "payments", &paid)?;
///             return Ok(b"not approved".to_vec());
///         }
///         durable::sleep("cool-off", Duration::from_secs(60))?;
///         durable::call("ship", "shipping", &paid)
///     });
/// }
/// ```
///
/// An operation that makes the run wait answers an error whose
/// [`Error::is_suspended`] holds: pass it up with `?` (do nothing else),
/// and the run goes on later from the journal.
pub mod durable {
    use super::Error;
    use crate::bindings::weft::fabric::durable as d;
    use std::time::Duration;

    fn err(e: d::DurableError) -> Error {
        match e {
            d::DurableError::Failed(e) => e.into(),
            d::DurableError::Suspended => Error::new("suspended", "the run waits"),
        }
    }

    /// Step `name`: runs `function` with `payload` (declared in the
    /// manifest's `calls`), or answers its recorded result. Its invocation
    /// id, `RUN.F.NAME`, is the same on every attempt.
    pub fn call(name: &str, function: &str, payload: &[u8]) -> Result<Vec<u8>, Error> {
        d::call(name, function, payload).map_err(err)
    }

    /// Step `name`: runs `f` once and records its value; on every later
    /// run of the orchestrator, answers the recorded value without
    /// running `f`. For work with effects outside Weft (an HTTP call),
    /// or anything not deterministic (the time, a random number).
    pub fn step<F>(name: &str, f: F) -> Result<Vec<u8>, Error>
    where
        F: FnOnce() -> Result<Vec<u8>, Error>,
    {
        if let Some(v) = d::recorded(name).map_err(err)? {
            return Ok(v);
        }
        let v = f()?;
        d::save(name, &v).map_err(err)
    }

    /// Step `name`: sleeps `duration`, counted from the first time the
    /// run gets here; the run is suspended meanwhile (no instance lives).
    pub fn sleep(name: &str, duration: Duration) -> Result<(), Error> {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        d::sleep(name, ms).map_err(err)
    }

    /// Step `name`: the payload of event `name` sent to the run, waiting
    /// for it at most `timeout` (`None`: without end); `Ok(None)` when it
    /// did not come in time.
    pub fn await_event(name: &str, timeout: Option<Duration>) -> Result<Option<Vec<u8>>, Error> {
        let ms = timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        d::await_event(name, ms).map_err(err)
    }
}

/// Outbound HTTP (`wasi:http/outgoing-handler`): only to hosts in the
/// manifest's `allowed_outbound_hosts`.
pub mod http {
    use super::Error;
    use std::io::{Read, Write};
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

    /// A response: status and body.
    #[derive(Debug)]
    pub struct Response {
        /// The status code.
        pub status: u16,
        /// The whole body.
        pub body: Vec<u8>,
    }

    fn http_err(what: &str, e: impl std::fmt::Debug) -> Error {
        Error::new("http_error", format!("{what}: {e:?}"))
    }

    /// Sends a GET request to `url`.
    pub fn get(url: &str) -> Result<Response, Error> {
        send("GET", url, &[])
    }

    /// Sends a POST request with `body` to `url`.
    pub fn post(url: &str, body: &[u8]) -> Result<Response, Error> {
        send("POST", url, body)
    }

    /// Sends a request; `method` is `GET`, `POST`, `PUT`, `DELETE`...
    pub fn send(method: &str, url: &str, body: &[u8]) -> Result<Response, Error> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| Error::new("invalid_request", format!("`{url}` is not a URL")))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let req = OutgoingRequest::new(Fields::new());
        let method = match method {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "HEAD" => Method::Head,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_string()),
        };
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => Scheme::Other(other.to_string()),
        };
        req.set_method(&method)
            .and_then(|()| req.set_scheme(Some(&scheme)))
            .and_then(|()| req.set_authority(Some(authority)))
            .and_then(|()| req.set_path_with_query(Some(path)))
            .map_err(|()| Error::new("invalid_request", format!("`{url}` is not a valid URL")))?;
        let out_body = req
            .body()
            .map_err(|()| Error::new("internal", "request body taken twice"))?;
        {
            let mut stream = out_body
                .write()
                .map_err(|()| Error::new("internal", "request body stream taken twice"))?;
            Write::write_all(&mut stream, body)
                .and_then(|()| Write::flush(&mut stream))
                .map_err(|e| http_err("writing the request body", e))?;
        }
        let pending = outgoing_handler::handle(req, None).map_err(|e| match e {
            wasi::http::types::ErrorCode::HttpRequestDenied => Error::new(
                "denied",
                format!("{url}: not in the manifest's allowed_outbound_hosts"),
            ),
            other => http_err(url, other),
        })?;
        OutgoingBody::finish(out_body, None).map_err(|e| http_err("finishing the request", e))?;
        pending.subscribe().block();
        let resp = pending
            .get()
            .ok_or_else(|| Error::new("internal", "response not ready"))?
            .map_err(|()| Error::new("internal", "response taken twice"))?
            .map_err(|e| match e {
                wasi::http::types::ErrorCode::HttpRequestDenied => Error::new(
                    "denied",
                    format!("{url}: not in the manifest's allowed_outbound_hosts"),
                ),
                other => http_err(url, other),
            })?;
        let status = resp.status();
        let mut body = Vec::new();
        let incoming = resp
            .consume()
            .map_err(|()| Error::new("internal", "response body taken twice"))?;
        {
            let mut stream = incoming
                .stream()
                .map_err(|()| Error::new("internal", "response stream taken twice"))?;
            Read::read_to_end(&mut stream, &mut body)
                .map_err(|e| http_err("reading the response", e))?;
        }
        Ok(Response { status, body })
    }
}
