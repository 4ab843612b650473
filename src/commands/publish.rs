use crate::client::{Client, ClientOpts, finish, print_json};
use clap::Args;
use std::process::ExitCode;

/// Publish an event on a node topic: every subscribed function is invoked
/// asynchronously with the data as its request.
#[derive(Args)]
pub(crate) struct Publish {
    /// The topic, e.g. orders.created.
    topic: String,
    /// The event's payload.
    #[arg(long, short = 'd', default_value = "")]
    data: String,
    #[command(flatten)]
    opts: ClientOpts,
}

impl Publish {
    pub(crate) async fn run(self) -> ExitCode {
        let json = self.opts.json;
        finish(self.go().await, json)
    }

    async fn go(self) -> crate::client::ClientResult<()> {
        let c = Client::new(&self.opts)?;
        let v = c
            .json(
                c.request(reqwest::Method::POST, &format!("/v1/topics/{}", self.topic))
                    .body(self.data.clone()),
            )
            .await?;
        if self.opts.json {
            print_json(&v);
        } else {
            println!(
                "published on {} to {} subscribers",
                self.topic, v["subscribers"]
            );
        }
        Ok(())
    }
}
