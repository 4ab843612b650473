use crate::client::{Client, ClientOpts, finish, print_json};
use clap::Args;
use std::process::ExitCode;

/// Remove a function and all its versions.
#[derive(Args)]
pub(crate) struct Rm {
    /// The function.
    name: String,
    #[command(flatten)]
    opts: ClientOpts,
}

impl Rm {
    pub(crate) async fn run(self) -> ExitCode {
        let json = self.opts.json;
        finish(self.go().await, json)
    }

    async fn go(self) -> crate::client::ClientResult<()> {
        let c = Client::new(&self.opts)?;
        let v = c
            .json(c.request(
                reqwest::Method::DELETE,
                &format!("/v1/functions/{}", self.name),
            ))
            .await?;
        if self.opts.json {
            print_json(&v);
        } else {
            let n = v["versions"].as_u64().unwrap_or(0);
            let s = if n == 1 { "" } else { "s" };
            println!("removed {} ({n} version{s})", self.name);
        }
        Ok(())
    }
}
