use crate::client::{Client, ClientOpts, finish, print_json};
use clap::{Args, Subcommand};
use std::process::ExitCode;

/// The dead-letter list: asynchronous invocations that failed every attempt.
#[derive(Args)]
pub(crate) struct Dlq {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List dead invocations, of one function or all.
    Ls {
        /// Only this function's.
        function: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Queue a dead invocation again, with its attempts reset.
    Retry {
        /// The invocation's id.
        id: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Delete a dead invocation.
    Drop {
        /// The invocation's id.
        id: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

impl Dlq {
    pub(crate) async fn run(self) -> ExitCode {
        match self.command {
            DlqCommand::Ls {
                function,
                limit,
                opts,
            } => finish(ls(function, limit, &opts).await, opts.json),
            DlqCommand::Retry { id, opts } => finish(
                act(
                    reqwest::Method::POST,
                    &format!("/v1/dlq/{id}/retry"),
                    &opts,
                    "queued again",
                    &id,
                )
                .await,
                opts.json,
            ),
            DlqCommand::Drop { id, opts } => finish(
                act(
                    reqwest::Method::DELETE,
                    &format!("/v1/dlq/{id}"),
                    &opts,
                    "dropped",
                    &id,
                )
                .await,
                opts.json,
            ),
        }
    }
}

async fn ls(
    function: Option<String>,
    limit: usize,
    opts: &ClientOpts,
) -> crate::client::ClientResult<()> {
    let c = Client::new(opts)?;
    let mut rb = c.request(reqwest::Method::GET, "/v1/dlq");
    rb = rb.query(&[("limit", limit.to_string())]);
    if let Some(f) = &function {
        rb = rb.query(&[("function", f)]);
    }
    let v = c.json(rb).await?;
    if opts.json {
        print_json(&v);
        return Ok(());
    }
    let items = v["invocations"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("the dead-letter list is empty");
        return Ok(());
    }
    println!(
        "{:<28} {:<20} {:>8}  LAST ERROR",
        "ID", "FUNCTION", "ATTEMPTS"
    );
    for i in items {
        println!(
            "{:<28} {:<20} {:>8}  {}",
            i["id"].as_str().unwrap_or_default(),
            i["function"].as_str().unwrap_or_default(),
            i["attempts"],
            i["last_error"]["message"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

async fn act(
    method: reqwest::Method,
    path: &str,
    opts: &ClientOpts,
    done: &str,
    id: &str,
) -> crate::client::ClientResult<()> {
    let c = Client::new(opts)?;
    let v = c.json(c.request(method, path)).await?;
    if opts.json {
        print_json(&v);
    } else {
        println!("{id}: {done}");
    }
    Ok(())
}
