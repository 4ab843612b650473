//! `weft`: a serverless computing fabric for the edge–cloud continuum.
//! One binary: `weft up` runs a node; every other command is a client of one.

mod client;
mod commands;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Weft: run WebAssembly functions on any node of the continuum.
#[derive(Parser)]
#[command(name = "weft", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a node: HTTP gateway, admin API and embedded store.
    Up(commands::up::Up),
    /// Deploy a function (a new version) from a module or a manifest.
    Deploy(Box<commands::deploy::Deploy>),
    /// Invoke a function and write its response body to stdout.
    Invoke(commands::invoke::Invoke),
    /// List functions with their versions, limits and state.
    Ls(commands::ls::Ls),
    /// Remove a function and all its versions.
    Rm(commands::rm::Rm),
    /// Make an earlier version of a function active.
    Rollback(commands::rollback::Rollback),
    /// Show metered usage per function.
    Usage(commands::usage::Usage),
    /// Show how functions keep their deadlines.
    Slo(commands::slo::Slo),
    /// Show a function's log (its stderr), by invocation.
    Logs(commands::logs::Logs),
    /// Print the JSON schema of the manifest (weft.toml).
    Schema(commands::schema::Schema),
    /// Show an asynchronous invocation's state and result.
    Result(commands::result::Result),
    /// List, retry or drop dead-lettered asynchronous invocations.
    Dlq(commands::dlq::Dlq),
    /// Show or remove the state of a key of a stateful function.
    State(commands::state::State),
    /// Publish an event on a node topic.
    Publish(commands::publish::Publish),
    /// Show the fabric: nodes, tiers, labels, load, round trips.
    Nodes(commands::nodes::Nodes),
    /// Say where a function would run now, and why.
    Explain(commands::explain::Explain),
    /// The continuum simulator: rerun a paper's evaluation.
    Sim(commands::sim::Sim),
    /// Durable workflows: start, list, show, cancel, retry and skip runs.
    Workflow(commands::workflow::Workflow),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread more than the node's default workers (one per core): at
    // most that many threads run guests at once, so one is always free to
    // read a request that arrives while every worker computes, and an
    // urgent request is read at once rather than at a guest's next tick.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(weft_runtime::default_workers() + 1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        match cli.command {
            Command::Up(c) => c.run().await,
            Command::Deploy(c) => c.run().await,
            Command::Invoke(c) => c.run().await,
            Command::Ls(c) => c.run().await,
            Command::Rm(c) => c.run().await,
            Command::Rollback(c) => c.run().await,
            Command::Usage(c) => c.run().await,
            Command::Slo(c) => c.run().await,
            Command::Logs(c) => c.run().await,
            Command::Schema(c) => c.run().await,
            Command::Result(c) => c.run().await,
            Command::Dlq(c) => c.run().await,
            Command::State(c) => c.run().await,
            Command::Publish(c) => c.run().await,
            Command::Nodes(c) => c.run().await,
            Command::Explain(c) => c.run().await,
            Command::Sim(c) => c.run().await,
            Command::Workflow(c) => c.run().await,
        }
    })
}
