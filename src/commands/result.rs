use crate::client::{Client, ClientError, ClientOpts, Code, finish, print_json};
use clap::Args;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Show an asynchronous invocation: its state, attempts and result.
///
///   weft result 0193...        # state; the result body once succeeded
///   weft result 0193... --wait # until it has succeeded or is dead
#[derive(Args)]
pub(crate) struct Result {
    /// The invocation's id, as printed by `weft invoke --async`.
    id: String,
    /// Wait until the invocation has succeeded or is dead (polls).
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this long, e.g. 30s.
    #[arg(long, default_value = "60s")]
    timeout: humantime::Duration,
    #[command(flatten)]
    opts: ClientOpts,
}

impl Result {
    pub(crate) async fn run(self) -> ExitCode {
        let json = self.opts.json;
        finish(self.go().await, json)
    }

    async fn go(self) -> crate::client::ClientResult<()> {
        let c = Client::new(&self.opts)?;
        let path = format!("/v1/invocations/{}", self.id);
        let until = Instant::now() + *self.timeout;
        let v = loop {
            let v = c.get(&path).await?;
            let state = v["state"].as_str().unwrap_or_default();
            if !self.wait || state == "succeeded" || state == "dead" {
                break v;
            }
            if Instant::now() >= until {
                return Err(ClientError::local(
                    Code::Timeout,
                    format!(
                        "invocation {} is still {state} after {}",
                        self.id, self.timeout
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if self.opts.json {
            print_json(&v);
            return Ok(());
        }
        let state = v["state"].as_str().unwrap_or_default();
        match state {
            "succeeded" => {
                match v["result_text"].as_str() {
                    Some(t) => crate::client::write_stdout(t.as_bytes())?,
                    None => crate::client::copy_to_stdout(&c, &format!("{path}/result")).await?,
                }
                Ok(())
            }
            "dead" => {
                let err = &v["last_error"];
                Err(ClientError::local(
                    Code::InvocationDead,
                    format!(
                        "invocation {} failed after {} attempts and is in the dead-letter list: {}",
                        self.id,
                        v["attempts"],
                        err["message"].as_str().unwrap_or_default()
                    ),
                ))
            }
            other => {
                println!(
                    "{other} (attempt {} of {}{})",
                    v["attempts"],
                    v["max_attempts"],
                    v["last_error"]["message"]
                        .as_str()
                        .map(|m| format!("; last error: {m}"))
                        .unwrap_or_default()
                );
                Ok(())
            }
        }
    }
}
