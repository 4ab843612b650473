use crate::client::{Client, ClientOpts, finish, print_json};
use clap::Args;
use std::process::ExitCode;

/// Say where an invocation of a function would run now, and why: the
/// node, the reason, and the expected completion (queue + execution +
/// transfer) against the runner-up; then each node ruled out, by the first
/// requirement it fails (tier, labels, privacy, or a store, broker or topic
/// the function declares).
#[derive(Args)]
pub(crate) struct Explain {
    /// The function.
    name: String,
    /// Request body size to place for.
    #[arg(long, default_value_t = 0)]
    bytes: u64,
    /// The state key to place for (a `function`-model function's
    /// invocations run on their key's owner).
    #[arg(long)]
    key: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

impl Explain {
    pub(crate) async fn run(self) -> ExitCode {
        let json = self.opts.json;
        finish(self.go().await, json)
    }

    async fn go(self) -> crate::client::ClientResult<()> {
        let c = Client::new(&self.opts)?;
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("bytes", &self.bytes.to_string());
        if let Some(k) = &self.key {
            query.append_pair("key", k);
        }
        let v = c
            .get(&format!(
                "/v1/functions/{}/placement?{}",
                self.name,
                query.finish()
            ))
            .await?;
        if self.opts.json {
            print_json(&v);
            return Ok(());
        }
        println!("{}", v["explain"].as_str().unwrap_or(""));
        let excluded = v["excluded"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if !excluded.is_empty() {
            println!();
            println!("{:<24} {:<12} DETAIL", "EXCLUDED", "BY");
            for e in excluded {
                println!(
                    "{:<24} {:<12} {}",
                    e["node"].as_str().unwrap_or("?"),
                    e["constraint"].as_str().unwrap_or("?"),
                    e["detail"].as_str().unwrap_or("")
                );
            }
        }
        Ok(())
    }
}
