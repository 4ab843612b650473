use crate::client::{Client, ClientError, ClientOpts, ClientResult, Code, finish, print_json};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::process::ExitCode;

/// Durable workflows: start runs, follow them, repair them. Workflows are
/// declared in a manifest's `[workflows.NAME]` and deployed with
/// `weft deploy --manifest`.
///
///   weft workflow start thumbnail --data-file cat.png --wait 30s
///   weft workflow ls --state failed
///   weft workflow show 0193f2a1b2c3d4e5f6a7
///   weft workflow retry 0193f2a1b2c3d4e5f6a7 --step detect
///   weft workflow signal 0193f2a1b2c3d4e5f6a7 approve --data yes
#[derive(Args)]
pub(crate) struct Workflow {
    #[command(subcommand)]
    command: WorkflowCommand,
}

#[derive(Subcommand)]
enum WorkflowCommand {
    /// Start a run; prints its id once it is recorded (durable). With
    /// --wait, prints its output, and fails if the run does not succeed.
    Start {
        /// The workflow.
        name: String,
        /// The run's input.
        #[arg(long, short = 'd', conflicts_with = "data_file")]
        data: Option<String>,
        /// Read the run's input from a file (`-` for stdin).
        #[arg(long)]
        data_file: Option<String>,
        /// Wait up to this long for the run to end, then show it (its
        /// output goes to stdout), e.g. 30s.
        #[arg(long, value_name = "DURATION")]
        wait: Option<humantime::Duration>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// List runs, newest first.
    Ls {
        /// Only this workflow's runs.
        #[arg(long)]
        workflow: Option<String>,
        /// Only runs in this state: running, succeeded, failed, cancelled.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Show a run: its graph with each step's state, timing and node.
    Show {
        /// The run's id.
        id: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Cancel a running run: its steps in flight are stopped.
    Cancel {
        /// The run's id.
        id: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Run a run that ended again: its failed steps, or STEP and every
    /// step after it.
    Retry {
        /// The run's id.
        id: String,
        /// Run this step (and every step after it) again.
        #[arg(long)]
        step: Option<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Send an event to a run of a workflow in code, which waits for it
    /// (`durable::await_event`) or will; each name is sent once.
    Signal {
        /// The run's id.
        id: String,
        /// The event's name.
        name: String,
        /// Its payload.
        #[arg(long, short = 'd', conflicts_with = "data_file")]
        data: Option<String>,
        /// Read its payload from a file (`-` for stdin).
        #[arg(long)]
        data_file: Option<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Record an output for a step of a run that ended, without running
    /// it, and resume the run from there.
    Skip {
        /// The run's id.
        id: String,
        /// The step.
        #[arg(long)]
        step: String,
        /// The output to record for it.
        #[arg(long, default_value = "")]
        output: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

impl Workflow {
    pub(crate) async fn run(self) -> ExitCode {
        match self.command {
            WorkflowCommand::Start {
                name,
                data,
                data_file,
                wait,
                opts,
            } => {
                let r = start(&name, data.as_deref(), data_file.as_deref(), wait, &opts).await;
                finish(r, opts.json)
            }
            WorkflowCommand::Ls {
                workflow,
                state,
                limit,
                opts,
            } => finish(ls(workflow, state, limit, &opts).await, opts.json),
            WorkflowCommand::Show { id, opts } => finish(show(&id, &opts).await, opts.json),
            WorkflowCommand::Cancel { id, opts } => {
                finish(act(&id, "cancel", None, &opts).await, opts.json)
            }
            WorkflowCommand::Retry { id, step, opts } => {
                let body = step.map(|s| json!({ "step": s }));
                finish(act(&id, "retry", body, &opts).await, opts.json)
            }
            WorkflowCommand::Signal {
                id,
                name,
                data,
                data_file,
                opts,
            } => finish(
                signal(&id, &name, data.as_deref(), data_file.as_deref(), &opts).await,
                opts.json,
            ),
            WorkflowCommand::Skip {
                id,
                step,
                output,
                opts,
            } => {
                let body = json!({ "step": step, "output": output });
                finish(act(&id, "skip", Some(body), &opts).await, opts.json)
            }
        }
    }
}

async fn start(
    name: &str,
    data: Option<&str>,
    file: Option<&str>,
    wait: Option<humantime::Duration>,
    opts: &ClientOpts,
) -> ClientResult<()> {
    let c = Client::new(opts)?;
    let input = crate::client::read_data(data, file)?;
    let mut rb = c
        .request(reqwest::Method::POST, &format!("/v1/workflows/{name}/runs"))
        .body(input);
    if let Some(w) = wait {
        rb = rb.query(&[("wait", w.to_string())]);
    }
    let v = c.json(rb).await?;
    let id = v["id"].as_str().unwrap_or_default();
    if opts.json {
        print_json(&v);
    }
    if wait.is_none() {
        if !opts.json {
            println!("{id}");
        }
        return Ok(());
    }
    // Waited for: the command fails when the run did not succeed.
    match v["state"].as_str().unwrap_or_default() {
        "succeeded" if opts.json => Ok(()),
        "succeeded" => write_output(&c, id).await,
        "running" => Err(ClientError::local(
            Code::Timeout,
            format!(
                "run {id} is still running after {}; `weft workflow show {id}` follows it",
                wait.map(|w| w.to_string()).unwrap_or_default()
            ),
        )),
        state => {
            if !opts.json {
                draw(&v);
            }
            Err(ClientError::local(
                v["error"]["code"]
                    .as_str()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(Code::HandlerError),
                format!(
                    "run {id} {state}: {}",
                    v["error"]["message"].as_str().unwrap_or_default()
                ),
            ))
        }
    }
}

async fn signal(
    id: &str,
    name: &str,
    data: Option<&str>,
    file: Option<&str>,
    opts: &ClientOpts,
) -> ClientResult<()> {
    let c = Client::new(opts)?;
    let payload = crate::client::read_data(data, file)?;
    let rb = c
        .request(
            reqwest::Method::POST,
            &format!("/v1/runs/{id}/events/{name}"),
        )
        .body(payload);
    let v = c.json(rb).await?;
    if opts.json {
        print_json(&v);
    } else {
        println!("event {name} sent to run {id} ({} bytes)", v["bytes"]);
    }
    Ok(())
}

/// Writes a run's raw output to stdout.
async fn write_output(c: &Client, id: &str) -> ClientResult<()> {
    crate::client::copy_to_stdout(c, &format!("/v1/runs/{id}/output")).await
}

async fn ls(
    workflow: Option<String>,
    state: Option<String>,
    limit: usize,
    opts: &ClientOpts,
) -> ClientResult<()> {
    let c = Client::new(opts)?;
    let mut rb = c
        .request(reqwest::Method::GET, "/v1/runs")
        .query(&[("limit", limit.to_string())]);
    if let Some(w) = &workflow {
        rb = rb.query(&[("workflow", w)]);
    }
    if let Some(s) = &state {
        rb = rb.query(&[("state", s)]);
    }
    let v = c.json(rb).await?;
    if opts.json {
        print_json(&v);
        return Ok(());
    }
    let runs = v["runs"].as_array().cloned().unwrap_or_default();
    if runs.is_empty() {
        println!("no runs");
        return Ok(());
    }
    println!(
        "{:<22} {:<20} {:<10} {:>6} {:>10}  NODE",
        "ID", "WORKFLOW", "STATE", "STEPS", "TIME"
    );
    for r in runs {
        println!(
            "{:<22} {:<20} {:<10} {:>6} {:>10}  {}",
            r["id"].as_str().unwrap_or_default(),
            format!(
                "{} v{}",
                r["workflow"].as_str().unwrap_or_default(),
                r["version"]
            ),
            r["state"].as_str().unwrap_or_default(),
            r["recorded"],
            took(&r),
            r["node"].as_str().unwrap_or_default(),
        );
    }
    Ok(())
}

async fn show(id: &str, opts: &ClientOpts) -> ClientResult<()> {
    let c = Client::new(opts)?;
    let v = c.get(&format!("/v1/runs/{id}")).await?;
    if opts.json {
        print_json(&v);
    } else {
        draw(&v);
    }
    Ok(())
}

async fn act(id: &str, action: &str, body: Option<Value>, opts: &ClientOpts) -> ClientResult<()> {
    let c = Client::new(opts)?;
    let mut rb = c.request(reqwest::Method::POST, &format!("/v1/runs/{id}/{action}"));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let v = c.json(rb).await?;
    if opts.json {
        print_json(&v);
    } else {
        draw(&v);
    }
    Ok(())
}

/// `12 ms`, from a record's start and end (or now, while it runs).
fn took(v: &Value) -> String {
    let start = v["started_ms"].as_u64().or(v["created_ms"].as_u64());
    let end = v["ended_ms"].as_u64();
    match (start, end) {
        (Some(s), Some(e)) => format!("{} ms", e.saturating_sub(s)),
        (Some(s), None) if v["state"] == "running" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            format!("{} ms…", now.saturating_sub(s))
        }
        _ => String::new(),
    }
}

/// Draws a run: its head, then its graph, one step a line, indented by
/// its depth (the longest way from a step that starts from the input).
fn draw(v: &Value) {
    let steps = v["steps"].as_array().cloned().unwrap_or_default();
    println!(
        "run {}  {} v{}  {}  {}  ({}/{} steps recorded; node {})",
        v["id"].as_str().unwrap_or_default(),
        v["workflow"].as_str().unwrap_or_default(),
        v["version"],
        v["state"].as_str().unwrap_or_default(),
        took(v),
        v["recorded"],
        steps.len(),
        v["node"].as_str().unwrap_or_default(),
    );
    let names: Vec<&str> = steps
        .iter()
        .map(|s| s["name"].as_str().unwrap_or(""))
        .collect();
    let after = |s: &Value| -> Vec<usize> {
        s["after"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| names.iter().position(|x| Some(*x) == n.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Depth by relaxation: the graph is acyclic and at most 1,000 steps.
    // An orchestrator's durable steps (they have a `kind`) sit below it.
    let durable = |s: &Value| s["kind"].is_string();
    let mut depth: Vec<usize> = steps.iter().map(|s| usize::from(durable(s))).collect();
    for _ in 0..steps.len() {
        let mut changed = false;
        for (i, s) in steps.iter().enumerate() {
            let d = after(s).iter().map(|&p| depth[p] + 1).max().unwrap_or(0);
            if d > depth[i] {
                depth[i] = d;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut order: Vec<usize> = (0..steps.len()).collect();
    order.sort_by_key(|&i| (depth[i], i));
    let suffix = |s: &Value| match s["kind"].as_str() {
        Some("call") => format!(" (call {})", s["function"].as_str().unwrap_or_default()),
        Some(kind) => format!(" ({kind})"),
        None => String::new(),
    };
    let width = steps
        .iter()
        .zip(&names)
        .map(|(s, n)| n.chars().count() + suffix(s).chars().count())
        .max()
        .unwrap_or(4)
        + 2 * depth.iter().max().copied().unwrap_or(0)
        + 2;
    for (row, &i) in order.iter().enumerate() {
        let s = &steps[i];
        let mark = match s["state"].as_str().unwrap_or_default() {
            "succeeded" => "✓",
            "failed" => "✗",
            "running" => "▶",
            "suspended" => "⏸",
            "skipped" => "↷",
            "not_taken" => "–",
            "waiting" => "…",
            _ => "·",
        };
        let preds = after(s);
        let shown_after = match preds.as_slice() {
            [] => String::new(),
            [p] if row > 0 && order[row - 1] == *p => String::new(),
            ps => format!(
                "  after {}",
                ps.iter().map(|&p| names[p]).collect::<Vec<_>>().join(", ")
            ),
        };
        let indent = if depth[i] == 0 {
            String::new()
        } else {
            format!("{}└ ", "  ".repeat(depth[i] - 1))
        };
        let label = format!("{indent}{mark} {}{}", names[i], suffix(s));
        let attempts = s["attempts"].as_u64().unwrap_or(0);
        println!(
            "  {label:<width$} {:<10} {:>10}  {:<12} {}{}",
            s["state"].as_str().unwrap_or_default(),
            took(s),
            s["node"].as_str().unwrap_or_default(),
            if attempts > 1 {
                format!("{attempts} attempts")
            } else {
                String::new()
            },
            shown_after,
        );
        if let Some(e) = s["error"]["message"].as_str() {
            println!(
                "  {:width$}   {}: {e}",
                "",
                s["error"]["code"].as_str().unwrap_or_default()
            );
        }
        if let Some(e) = s["last_error"]["message"].as_str() {
            println!(
                "  {:width$}   to be tried again after {}: {e}",
                "",
                s["last_error"]["code"].as_str().unwrap_or_default()
            );
        }
    }
    if let Some(e) = v["error"]["message"].as_str() {
        println!(
            "error: {}: {e}",
            v["error"]["code"].as_str().unwrap_or_default()
        );
    }
    match (&v["output"], v["output_encoding"].as_str()) {
        (Value::Null, _) => {}
        (Value::String(s), Some("utf8" | "base64")) => println!("output: {s}"),
        (o, _) => println!("output: {o}"),
    }
}
