use crate::client::{Client, ClientError, ClientOpts, Code, finish, print_json};
use clap::Args;
use std::io::Write;
use std::process::ExitCode;

/// Invoke a function. The response body goes to stdout; on failure the error
/// goes to stderr and the exit status is non-zero (the guest's own exit code
/// when a command exited non-zero).
#[derive(Args)]
pub(crate) struct Invoke {
    /// The function.
    name: String,
    /// Request body.
    #[arg(long, short = 'd', conflicts_with = "data_file")]
    data: Option<String>,
    /// Read the request body from a file (`-` for stdin).
    #[arg(long)]
    data_file: Option<String>,
    /// HTTP method.
    #[arg(long, short = 'X', default_value = "POST")]
    method: String,
    /// Sub-path after /fn/NAME (HTTP components see it as their path).
    #[arg(long, default_value = "")]
    path: String,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Queue the invocation and print its id once it is durably queued;
    /// `weft result ID` shows how it went.
    #[arg(long = "async")]
    r#async: bool,
    /// With --async: a key that makes a repeat of this request return the
    /// first invocation's id instead of queueing it again.
    #[arg(long, requires = "async")]
    idempotency_key: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

impl Invoke {
    pub(crate) async fn run(self) -> ExitCode {
        let json = self.opts.json;
        finish(self.go().await, json)
    }

    async fn go(self) -> crate::client::ClientResult<()> {
        let c = Client::new(&self.opts)?;
        let body = match (&self.data, &self.data_file) {
            (Some(d), _) => d.clone().into_bytes(),
            (None, Some(p)) if p == "-" => {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).map_err(|e| {
                    ClientError::local(Code::InvalidInput, format!("reading stdin: {e}"))
                })?;
                b
            }
            (None, Some(p)) => std::fs::read(p)
                .map_err(|e| ClientError::local(Code::InvalidInput, format!("reading {p}: {e}")))?,
            (None, None) => Vec::new(),
        };
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).map_err(|_| {
            ClientError::local(
                Code::InvalidInput,
                format!("--method `{}` is not an HTTP method", self.method),
            )
        })?;
        let sub = self.path.trim_start_matches('/');
        let path = if sub.is_empty() {
            format!("/fn/{}", self.name)
        } else {
            format!("/fn/{}/{sub}", self.name)
        };
        let mut rb = c.request(method, &path).body(body);
        if self.r#async {
            rb = rb.header("prefer", "respond-async");
            if let Some(k) = &self.idempotency_key {
                rb = rb.header("idempotency-key", k);
            }
            let v = c.json(rb).await?;
            if self.opts.json {
                print_json(&v);
            } else {
                println!("{}", v["id"].as_str().unwrap_or_default());
            }
            return Ok(());
        }
        for h in &self.headers {
            let Some((k, v)) = h.split_once(':') else {
                return Err(ClientError::local(
                    Code::InvalidInput,
                    format!("--header `{h}` is not `Name: value`"),
                ));
            };
            rb = rb.header(k.trim(), v.trim());
        }
        let resp = c.send(rb).await?;
        let status = resp.status().as_u16();
        let header = |k: &str| {
            resp.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let invocation = header("x-weft-invocation-id");
        let cold = header("x-weft-cold-start");
        let cpu = header("x-weft-cpu-us");
        let node = header("x-weft-node");
        let placement = header("x-weft-placement");
        let body = resp.bytes().await.map_err(|e| {
            ClientError::local(Code::BadResponse, format!("reading the response: {e}"))
        })?;
        if self.opts.json {
            print_json(&serde_json::json!({
                "invocation": invocation,
                "status": status,
                "cold_start": cold.as_deref() == Some("true"),
                "cpu_us": cpu.and_then(|c| c.parse::<u64>().ok()),
                "node": node,
                "placement": placement,
                "body": String::from_utf8_lossy(&body),
            }));
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(&body)
                .and_then(|()| out.flush())
                .map_err(|e| ClientError::local(Code::Io, format!("writing stdout: {e}")))?;
        }
        Ok(())
    }
}
