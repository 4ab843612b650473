use crate::client::{Client, ClientError, ClientOpts, Code, finish, print_json};
use clap::Args;
use std::io::Write;
use std::process::ExitCode;
use weft_controller::STATE_HEADER;
use weft_manifest::KeySource;

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
    /// The state key of a stateful function: sent where the function takes
    /// it from (a header, a path segment or a query parameter).
    #[arg(long)]
    key: Option<String>,
    /// Keeps a `client`-model function's state in this file: sent with the
    /// request when the file exists, replaced by the state that comes back.
    #[arg(long, value_name = "FILE", conflicts_with = "async")]
    state_file: Option<std::path::PathBuf>,
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
        let body = crate::client::read_data(self.data.as_deref(), self.data_file.as_deref())?;
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).map_err(|_| {
            ClientError::local(
                Code::InvalidInput,
                format!("--method `{}` is not an HTTP method", self.method),
            )
        })?;
        let mut sub = self.path.trim_start_matches('/').to_string();
        let mut key_header = None;
        if let Some(key) = &self.key {
            match key_source(&c, &self.name).await? {
                KeySource::Header(h) => key_header = Some((h, key.clone())),
                KeySource::Path(n) => sub = with_segment(&sub, n, key)?,
                KeySource::Query(q) => {
                    let pair: String = form_urlencoded::Serializer::new(String::new())
                        .append_pair(&q, key)
                        .finish();
                    let sep = if sub.contains('?') { '&' } else { '?' };
                    sub = format!("{sub}{sep}{pair}");
                }
            }
        }
        let path = if sub.is_empty() {
            format!("/fn/{}", self.name)
        } else {
            format!("/fn/{}/{sub}", self.name)
        };
        let mut rb = c.request(method, &path).body(body);
        for h in &self.headers {
            let Some((k, v)) = h.split_once(':') else {
                return Err(ClientError::local(
                    Code::InvalidInput,
                    format!("--header `{h}` is not `Name: value`"),
                ));
            };
            rb = rb.header(k.trim(), v.trim());
        }
        if let Some((h, k)) = key_header {
            rb = rb.header(h, k);
        }
        if let Some(path) = &self.state_file {
            match std::fs::read_to_string(path) {
                Ok(s) if !s.trim().is_empty() => rb = rb.header(STATE_HEADER, s.trim()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ClientError::local(
                        Code::InvalidInput,
                        format!("--state-file {}: {e}", path.display()),
                    ));
                }
            }
        }
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
        let state = header(STATE_HEADER);
        if let (Some(path), Some(s)) = (&self.state_file, &state) {
            // Whole or not at all: a crash leaves the old state.
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, s)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| {
                    ClientError::local(Code::Io, format!("--state-file {}: {e}", path.display()))
                })?;
        }
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
                "state": state,
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

/// Where the active version of `name` takes its state key from.
async fn key_source(c: &Client, name: &str) -> crate::client::ClientResult<KeySource> {
    let f = c.get(&format!("/v1/functions/{name}")).await?;
    let key = f["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["version"] == f["active"]))
        .map(|v| &v["spec"]["state"]);
    match key {
        Some(serde_json::Value::Null) | None => Err(ClientError::local(
            Code::InvalidInput,
            format!("--key: function `{name}` keeps no state (deploy it with --state)"),
        )),
        Some(state) => match state["key"].as_str() {
            None => Ok(KeySource::default()),
            Some(s) => s.parse().map_err(|e| {
                ClientError::local(
                    Code::BadResponse,
                    format!("the node's key source `{s}` for `{name}`: {e}"),
                )
            }),
        },
    }
}

/// `sub` with `key` (percent-encoded) as its `n`-th segment, from 1.
fn with_segment(sub: &str, n: u8, key: &str) -> crate::client::ClientResult<String> {
    let (path, query) = match sub.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (sub, None),
    };
    let mut segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let at = usize::from(n) - 1;
    if segments.len() < at {
        return Err(ClientError::local(
            Code::InvalidInput,
            format!(
                "--key: the function takes its key from path segment {n}; give the {at} segment(s) before it with --path"
            ),
        ));
    }
    let encoded =
        percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC).to_string();
    if segments.len() == at {
        segments.push(encoded);
    } else {
        segments[at] = encoded;
    }
    let mut out = segments.join("/");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::with_segment;

    #[test]
    fn a_key_goes_in_its_path_segment_encoded() {
        assert_eq!(with_segment("", 1, "alice").unwrap(), "alice");
        assert_eq!(
            with_segment("users", 2, "a b/c").unwrap(),
            "users/a%20b%2Fc"
        );
        assert_eq!(
            with_segment("users/x?v=1", 2, "bob").unwrap(),
            "users/bob?v=1"
        );
        let e = with_segment("", 3, "k").unwrap_err().message;
        assert!(e.contains("give the 2 segment(s) before it"), "{e}");
    }
}
