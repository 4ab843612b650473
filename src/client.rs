//! The HTTP client every command other than `up` uses to reach a node.

use clap::Args;
use serde::Serialize;
use serde_json::Value;
use std::process::ExitCode;
pub(crate) use weft_codes::Code;

/// Where the node is, and how to print.
#[derive(Args, Debug, Clone)]
pub(crate) struct ClientOpts {
    /// URL of the node.
    #[arg(
        long,
        env = "WEFT_URL",
        default_value = "http://127.0.0.1:7777",
        global = true
    )]
    pub(crate) url: String,
    /// Admin token, for nodes that listen beyond loopback.
    #[arg(long, env = "WEFT_TOKEN", hide_env_values = true, global = true)]
    pub(crate) token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// An error answered by the node, or a failure to reach it.
#[derive(Debug)]
pub(crate) struct ClientError {
    /// The code as the node sent it (a newer node may send one this CLI
    /// does not know: it is shown as it came).
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) body: Value,
    /// The guest's exit code, for commands that exited non-zero.
    pub(crate) exit_code: Option<i32>,
}

impl ClientError {
    pub(crate) fn local(code: Code, message: impl std::fmt::Display) -> Self {
        let message = message.to_string();
        ClientError {
            code: code.as_str().into(),
            body: serde_json::json!({ "error": { "code": code.as_str(), "message": message } }),
            message,
            exit_code: None,
        }
    }

    /// The same, naming the field at fault (as the node's errors do).
    pub(crate) fn at_field(mut self, field: &str) -> Self {
        if !field.is_empty() {
            self.body["error"]["field"] = Value::from(field);
        }
        self
    }

    /// Prints the error on stderr and gives the process's exit code.
    pub(crate) fn report(&self, json: bool) -> ExitCode {
        if json {
            eprintln!("{}", self.body);
        } else {
            eprintln!("error: {} [{}]", self.message, self.code);
        }
        match self.exit_code {
            Some(c) if (1..=255).contains(&c) => ExitCode::from(c as u8),
            _ => ExitCode::FAILURE,
        }
    }

    pub(crate) async fn from_response(resp: reqwest::Response) -> Self {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
            serde_json::json!({ "error": { "code": Code::BadResponse.as_str(), "message": format!("HTTP {status}: {text}") } })
        });
        let err = &body["error"];
        ClientError {
            code: err["code"]
                .as_str()
                .unwrap_or(Code::BadResponse.as_str())
                .to_string(),
            message: err["message"]
                .as_str()
                .map_or_else(|| format!("HTTP {status}"), str::to_string),
            exit_code: err["exit_code"]
                .as_i64()
                .and_then(|c| i32::try_from(c).ok()),
            body,
        }
    }
}

pub(crate) type ClientResult<T> = Result<T, ClientError>;

/// A client of one node.
pub(crate) struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub(crate) fn new(opts: &ClientOpts) -> ClientResult<Client> {
        if let Err(e) = weft_manifest::addr::node_url(&opts.url) {
            return Err(ClientError::local(
                Code::InvalidInput,
                format!("--url `{}`: {e}", opts.url),
            ));
        }
        let base = opts.url.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| ClientError::local(Code::Internal, e.to_string()))?;
        Ok(Client {
            base,
            token: opts.token.clone(),
            http,
        })
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        rb
    }

    pub(crate) async fn send(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> ClientResult<reqwest::Response> {
        let resp = rb.send().await.map_err(|e| {
            ClientError::local(
                Code::Unreachable,
                format!("cannot reach the node at {}: {e}", self.base),
            )
        })?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(ClientError::from_response(resp).await)
        }
    }

    pub(crate) async fn json(&self, rb: reqwest::RequestBuilder) -> ClientResult<Value> {
        let resp = self.send(rb).await?;
        resp.json().await.map_err(|e| {
            ClientError::local(
                Code::BadResponse,
                format!("the node sent invalid JSON: {e}"),
            )
        })
    }

    pub(crate) async fn get(&self, path: &str) -> ClientResult<Value> {
        self.json(self.request(reqwest::Method::GET, path)).await
    }
}

/// Prints a value as pretty JSON.
pub(crate) fn print_json<T: Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: encoding JSON: {e}"),
    }
}

/// `GET {base}`, or `GET {base}/{name}` for one function. With `--json` it
/// is printed and `None` returned; otherwise the caller shows it.
pub(crate) async fn get_listing(
    opts: &ClientOpts,
    base: &str,
    name: Option<&str>,
) -> ClientResult<Option<serde_json::Value>> {
    let c = Client::new(opts)?;
    let path = match name {
        Some(n) => format!("{base}/{n}"),
        None => base.to_string(),
    };
    let v = c.get(&path).await?;
    if opts.json {
        print_json(&v);
        return Ok(None);
    }
    Ok(Some(v))
}

/// Runs a client command body and turns its result into an exit code.
pub(crate) fn finish(r: ClientResult<()>, json: bool) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(json),
    }
}

/// `GET path` and its raw body written to stdout (a result, an output).
pub(crate) async fn copy_to_stdout(c: &Client, path: &str) -> ClientResult<()> {
    let raw = c
        .send(c.request(reqwest::Method::GET, path))
        .await?
        .bytes()
        .await
        .map_err(|e| ClientError::local(Code::BadResponse, e.to_string()))?;
    write_stdout(&raw)
}

/// Writes bytes to stdout, flushed.
pub(crate) fn write_stdout(bytes: &[u8]) -> ClientResult<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| ClientError::local(Code::Io, format!("writing stdout: {e}")))
}

/// A request body from `--data` or `--data-file` (`-`: stdin); empty
/// without either.
pub(crate) fn read_data(data: Option<&str>, file: Option<&str>) -> ClientResult<Vec<u8>> {
    match (data, file) {
        (Some(d), _) => Ok(d.as_bytes().to_vec()),
        (None, Some("-")) => {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).map_err(|e| {
                ClientError::local(Code::InvalidInput, format!("reading stdin: {e}"))
            })?;
            Ok(b)
        }
        (None, Some(p)) => std::fs::read(p)
            .map_err(|e| ClientError::local(Code::InvalidInput, format!("reading {p}: {e}"))),
        (None, None) => Ok(Vec::new()),
    }
}

/// Formats a byte count for people.
pub(crate) fn human_bytes(b: u64) -> String {
    let units = [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, m) in units {
        if b >= m {
            return format!("{:.1}{unit}", b as f64 / m as f64).replace(".0", "");
        }
    }
    format!("{b}B")
}
