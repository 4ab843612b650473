use crate::client::{Client, ClientOpts, finish, print_json};
use clap::Args;
use std::process::ExitCode;

/// Make an earlier version active (by default the one before the active).
#[derive(Args)]
pub(crate) struct Rollback {
    /// The function.
    name: String,
    /// The version to activate.
    #[arg(long)]
    to: Option<u32>,
    #[command(flatten)]
    opts: ClientOpts,
}

impl Rollback {
    pub(crate) async fn run(self) -> ExitCode {
        let json = self.opts.json;
        finish(self.go().await, json)
    }

    async fn go(self) -> crate::client::ClientResult<()> {
        let c = Client::new(&self.opts)?;
        let rb = c
            .request(
                reqwest::Method::POST,
                &format!("/v1/functions/{}/rollback", self.name),
            )
            .json(&serde_json::json!({ "version": self.to }));
        let v = c.json(rb).await?;
        if self.opts.json {
            print_json(&v);
        } else {
            println!("{} now serves version {}", self.name, v["active"]);
        }
        Ok(())
    }
}
