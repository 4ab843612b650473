use crate::client::{Client, ClientError, ClientOpts, Code, finish};
use clap::Args;
use futures::StreamExt;
use serde_json::Value;
use std::process::ExitCode;

/// Show a function's log: each line its guests wrote to stderr, with the
/// invocation that wrote it.
#[derive(Args)]
pub(crate) struct Logs {
    /// The function.
    name: String,
    /// Keep printing new lines as they are written.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only lines after this sequence number.
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// At most this many past lines.
    #[arg(long, default_value_t = 200)]
    limit: usize,
    #[command(flatten)]
    opts: ClientOpts,
}

impl Logs {
    pub(crate) async fn run(self) -> ExitCode {
        let json = self.opts.json;
        finish(self.go().await, json)
    }

    fn print(&self, line: &Value) {
        if self.opts.json {
            println!("{line}");
        } else {
            println!(
                "[{}] {}",
                line["invocation"].as_str().unwrap_or("?"),
                line["line"].as_str().unwrap_or_default()
            );
        }
    }

    async fn go(self) -> crate::client::ClientResult<()> {
        let c = Client::new(&self.opts)?;
        let path = format!(
            "/v1/functions/{}/logs?since={}&limit={}&follow={}",
            self.name, self.since, self.limit, self.follow
        );
        if !self.follow {
            let v = c.get(&path).await?;
            for l in v["lines"].as_array().into_iter().flatten() {
                self.print(l);
            }
            return Ok(());
        }
        let resp = c.send(c.request(reqwest::Method::GET, &path)).await?;
        let mut stream = resp.bytes_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ClientError::local(Code::BadResponse, format!("log stream broke: {e}"))
            })?;
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                    self.print(&v);
                }
            }
        }
        Ok(())
    }
}
