use crate::client::{Client, ClientOpts, finish, print_json};
use clap::{Args, Subcommand};
use std::process::ExitCode;

/// The state of a key of a stateful function, as the node keeps it: shown
/// or removed (an actor's in its turn). A `client` function's state is its
/// clients'.
#[derive(Args)]
pub(crate) struct State {
    #[command(subcommand)]
    command: StateCommand,
}

#[derive(Subcommand)]
enum StateCommand {
    /// Show a key's state: its entries.
    Get {
        /// The function.
        function: String,
        /// The state key.
        key: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Remove a key's state (its entries are printed one last time).
    Rm {
        /// The function.
        function: String,
        /// The state key.
        key: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

impl State {
    pub(crate) async fn run(self) -> ExitCode {
        let (method, function, key, opts) = match self.command {
            StateCommand::Get {
                function,
                key,
                opts,
            } => (reqwest::Method::GET, function, key, opts),
            StateCommand::Rm {
                function,
                key,
                opts,
            } => (reqwest::Method::DELETE, function, key, opts),
        };
        let json = opts.json;
        finish(show(method, &function, &key, &opts).await, json)
    }
}

async fn show(
    method: reqwest::Method,
    function: &str,
    key: &str,
    opts: &ClientOpts,
) -> crate::client::ClientResult<()> {
    let c = Client::new(opts)?;
    let encoded = percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC);
    let path = format!("/v1/functions/{function}/state/{encoded}");
    let v = c.json(c.request(method, &path)).await?;
    if opts.json {
        print_json(&v);
        return Ok(());
    }
    let entries = v["entries"].as_array().cloned().unwrap_or_default();
    let cleared = v["cleared"] == true;
    match (entries.is_empty(), cleared) {
        (true, false) => println!("key `{key}` of `{function}` has no state"),
        (true, true) => println!("key `{key}` of `{function}` had no state"),
        (false, _) => {
            for e in &entries {
                let value = e["value"].as_str().unwrap_or_default();
                let shown = if e["encoding"] == "base64" {
                    format!("(base64) {value}")
                } else {
                    value.to_string()
                };
                println!("{} = {shown}", e["key"].as_str().unwrap_or_default());
            }
            if cleared {
                println!("removed: {} entries of key `{key}`", entries.len());
            }
        }
    }
    Ok(())
}
