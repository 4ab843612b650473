use crate::client::{ClientError, finish, print_json};
use clap::{Args, Subcommand};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use weft_codes::Code;

/// The continuum simulator: the placement and state models in a simulated
/// world, deterministic by seed.
#[derive(Args)]
pub(crate) struct Sim {
    #[command(subcommand)]
    command: SimCommand,
}

#[derive(Subcommand)]
enum SimCommand {
    /// Rerun a paper's evaluation and write its results (`summary.csv`,
    /// `by_chain_length.csv`, `latency_cdf.csv`, the figures as SVG).
    Reproduce {
        /// The evaluation: `seed-003` (Cicconetti et al.: four state
        /// models, Load and Load+net, two topologies, 100 to 500 jobs).
        study: String,
        /// The directory to write the results to (created if needed).
        #[arg(long)]
        out: PathBuf,
        /// Replications per point, from seed 1.
        #[arg(long, default_value_t = 200)]
        replications: u64,
        /// Print a JSON summary instead of the progress and a table.
        #[arg(long)]
        json: bool,
    },
    /// Run chains through the discrete-event continuum under each policy
    /// and state model, and write `summary.csv`, `by_chain_length.csv` and
    /// `chains.csv`.
    Run(Box<RunArgs>),
}

/// `weft sim run`'s flags.
#[derive(Args)]
struct RunArgs {
    /// The topology: `iiot` or `urban` (seed 003's, in the binary), or the
    /// path of StateSim files without their extension (`DIR/NAME` reads
    /// `DIR/NAME.nodes`, `.links` and `.edges`).
    #[arg(long, default_value = "iiot")]
    topology: String,
    /// The chains: `synthetic` (generated), `seed-003` (the seed's Spår
    /// pool), `spar:PATH` (a Spår `batch_task.csv` of your own, turned into
    /// chains as the seed's) or the path of a CSV trace
    /// (`chain,arrival_s,client,key,function,ops,arg_bytes,out_bytes,state_bytes`,
    /// optionally `,deadline_ms`).
    #[arg(long, default_value = "synthetic")]
    workload: String,
    /// Chains per replication (synthetic, seed-003, spar:PATH).
    #[arg(long)]
    jobs: Option<usize>,
    /// Chains arriving per second (synthetic, seed-003, spar:PATH).
    #[arg(long, allow_negative_numbers = true)]
    rate: Option<f64>,
    /// Policies, comma-separated: `load`, `load+net`, `weft`.
    #[arg(long, default_value = "load,load+net,weft")]
    policy: String,
    /// State models, comma-separated: `external`, `edge`, `function`, `client`.
    #[arg(long, default_value = "external,edge,function,client")]
    model: String,
    /// Replications, seeds `--seed` onwards.
    #[arg(long, default_value_t = 10)]
    replications: u64,
    /// The first replication's seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Workers per node, sharing its speed.
    #[arg(long, default_value_t = 1)]
    slots: u32,
    /// How often nodes share their load and learned times, ms (0: every
    /// decision sees the world as it is).
    #[arg(long, default_value_t = 1000)]
    heartbeat_ms: u64,
    /// One-way latency to the cloud store, ms.
    #[arg(long, default_value_t = 60.0, allow_negative_numbers = true)]
    cloud_latency_ms: f64,
    /// Rate to the cloud store, Mb/s.
    #[arg(long, default_value_t = 50.0, allow_negative_numbers = true)]
    cloud_rate_mbps: f64,
    /// A deadline for every step without its own (ms from its sending to
    /// its output back at the client); adds `deadline_met_pct` and
    /// `refused_pct` to the summary.
    #[arg(long, allow_negative_numbers = true)]
    deadline_ms: Option<f64>,
    /// The order ready steps get a worker in: `edf` or `fifo` (a node's
    /// `scheduler`).
    #[arg(long, default_value = "edf")]
    scheduler: String,
    /// What a node does with a step it cannot finish by its deadline:
    /// `refuse` or `run` (a node's `unmeetable`).
    #[arg(long, default_value = "refuse")]
    unmeetable: String,
    /// The percentile of a node's recent runs admission plans with (a
    /// function's `admission`).
    #[arg(long, default_value = "p90")]
    admission: String,
    /// The directory to write the results to (created if needed).
    #[arg(long)]
    out: PathBuf,
    /// Print a JSON summary instead of the progress and a table.
    #[arg(long)]
    json: bool,
}

impl Sim {
    pub(crate) async fn run(self) -> ExitCode {
        let (json, work) = match self.command {
            SimCommand::Reproduce {
                study,
                out,
                replications,
                json,
            } => (
                json,
                tokio::task::spawn_blocking(move || reproduce(&study, &out, replications, json)),
            ),
            SimCommand::Run(args) => (args.json, tokio::task::spawn_blocking(move || run(*args))),
        };
        match work.await {
            Ok(r) => finish(r, json),
            Err(e) => finish(Err(ClientError::local(Code::Internal, e)), json),
        }
    }
}

/// Prints `what: done/total`, the time taken and an estimate of the time
/// left on stderr every 2 % (nothing with `--json`).
fn progress(what: &'static str, json: bool) -> impl Fn(usize, usize) + Sync {
    let shown = std::sync::atomic::AtomicUsize::new(0);
    let started = std::time::Instant::now();
    move |done: usize, total: usize| {
        let pct = done * 50 / total.max(1);
        if !json && shown.fetch_max(pct, std::sync::atomic::Ordering::Relaxed) < pct {
            let took = started.elapsed().as_secs_f64();
            let left = took * (total.saturating_sub(done)) as f64 / done.max(1) as f64;
            eprint!("\r{what}: {done}/{total}, {took:.1} s, about {left:.0} s left ");
            let _ = std::io::stderr().flush();
        }
    }
}

/// Writes each `(file, text)`.
fn write_all(files: &[(PathBuf, String)]) -> crate::client::ClientResult<()> {
    for (file, text) in files {
        std::fs::write(file, text).map_err(|e| {
            ClientError::local(
                Code::InvalidInput,
                format!("--out: cannot write {}: {e}", file.display()),
            )
        })?;
    }
    Ok(())
}

/// Creates `--out`.
fn create_out(out: &std::path::Path) -> crate::client::ClientResult<()> {
    std::fs::create_dir_all(out).map_err(|e| {
        ClientError::local(
            Code::InvalidInput,
            format!("--out: cannot create {}: {e}", out.display()),
        )
    })
}

fn bad(message: String) -> ClientError {
    ClientError::local(Code::InvalidInput, message)
}

fn run(a: RunArgs) -> crate::client::ClientResult<()> {
    use weft_sim::study::{self, Source, Study};
    use weft_sim::{Synthetic, Topology};
    let topology = match a.topology.as_str() {
        "iiot" | "urban" => Topology::seed003(&a.topology)
            .ok_or_else(|| ClientError::local(Code::Internal, "the built-in topology is bad"))?,
        path => {
            let stem = path.strip_suffix(".nodes").unwrap_or(path);
            let file = |ext: &str| PathBuf::from(format!("{stem}.{ext}"));
            Topology::from_files(&file("nodes"), &file("links"), &file("edges"))
                .map_err(|e| bad(format!("--topology: {e}")))?
        }
    };
    let topology_name = std::path::Path::new(&a.topology)
        .file_name()
        .map_or(a.topology.clone(), |n| n.to_string_lossy().into_owned());
    let topology_name = topology_name
        .strip_suffix(".nodes")
        .unwrap_or(&topology_name)
        .to_string();
    if let Some(j) = a.jobs
        && !(1..=1_000_000).contains(&j)
    {
        return Err(bad(format!("--jobs: {j} is not between 1 and 1000000")));
    }
    if let Some(r) = a.rate
        && !(r.is_finite() && r > 0.0 && r <= 1e6)
    {
        return Err(bad(format!(
            "--rate: {r} is not a rate of chains per second above 0 (at most 1000000)"
        )));
    }
    let source = match a.workload.as_str() {
        "synthetic" => Source::Synthetic(Synthetic {
            chains: a.jobs.unwrap_or(500),
            rate_per_s: a.rate.unwrap_or(5.0),
            ..Synthetic::default()
        }),
        "seed-003" => Source::Pool {
            pool: weft_sim::Pool::seed003().map_err(|e| ClientError::local(Code::Internal, e))?,
            jobs: a.jobs.unwrap_or(500),
            rate_per_s: a.rate.unwrap_or(5.0),
            functions: 10,
        },
        spar if spar.starts_with("spar:") => Source::Pool {
            pool: weft_sim::Pool::from_spar(
                std::path::Path::new(&spar["spar:".len()..]),
                weft_sim::Factors::default(),
            )
            .map_err(|e| bad(format!("--workload: {e}")))?,
            jobs: a.jobs.unwrap_or(500),
            rate_per_s: a.rate.unwrap_or(5.0),
            functions: 10,
        },
        path => {
            if a.jobs.is_some() || a.rate.is_some() {
                return Err(bad(
                    "--jobs and --rate apply to the synthetic, seed-003 and spar:PATH workloads: \
                     a trace gives its own chains and arrivals"
                        .into(),
                ));
            }
            let w = weft_sim::Workload::from_csv(std::path::Path::new(path), &topology)
                .map_err(|e| bad(format!("--workload: {e}")))?;
            Source::Trace(w)
        }
    };
    let policies: Vec<String> = a.policy.split(',').map(|p| p.trim().to_string()).collect();
    for p in &policies {
        if !weft_sim::study::POLICIES.contains(&p.as_str()) {
            return Err(bad(format!(
                "--policy: unknown policy `{p}`: expected load, load+net or weft"
            )));
        }
    }
    let models = a
        .model
        .split(',')
        .map(|m| {
            weft_sim::seed003::Model::ALL
                .into_iter()
                .find(|x| x.as_str() == m.trim())
                .ok_or_else(|| {
                    bad(format!(
                        "--model: unknown state model `{}`: expected external, edge, function or client",
                        m.trim()
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !(1..=100_000).contains(&a.replications) {
        return Err(bad(format!(
            "--replications: {} is not between 1 and 100000",
            a.replications
        )));
    }
    if !(1..=1024).contains(&a.slots) {
        return Err(bad(format!(
            "--slots: {} is not between 1 and 1024",
            a.slots
        )));
    }
    if a.heartbeat_ms > 3_600_000 {
        return Err(bad(format!(
            "--heartbeat-ms: {} is more than an hour",
            a.heartbeat_ms
        )));
    }
    if !(a.cloud_latency_ms.is_finite() && (0.0..=60_000.0).contains(&a.cloud_latency_ms)) {
        return Err(bad(format!(
            "--cloud-latency-ms: {} is not between 0 and 60000",
            a.cloud_latency_ms
        )));
    }
    if !(a.cloud_rate_mbps.is_finite() && a.cloud_rate_mbps > 0.0) {
        return Err(bad(format!(
            "--cloud-rate-mbps: {} is not a rate above 0",
            a.cloud_rate_mbps
        )));
    }
    let deadline = match a.deadline_ms {
        None => None,
        Some(ms) if ms.is_finite() && ms > 0.0 && ms <= 3.6e6 => {
            Some(weft_sim::des::nanos(ms / 1e3))
        }
        Some(ms) => {
            return Err(bad(format!(
                "--deadline-ms: {ms} is not a deadline in ms above 0 (at most an hour)"
            )));
        }
    };
    use weft_sim::continuum::{Percentile, Scheduler, Unmeetable};
    let scheduler = match a.scheduler.as_str() {
        "edf" => Scheduler::Edf,
        "fifo" => Scheduler::Fifo,
        other => {
            return Err(bad(format!(
                "--scheduler: unknown scheduler `{other}`: expected edf or fifo"
            )));
        }
    };
    let unmeetable = match a.unmeetable.as_str() {
        "refuse" => Unmeetable::Refuse,
        "run" => Unmeetable::Run,
        other => {
            return Err(bad(format!(
                "--unmeetable: `{other}`: expected refuse or run"
            )));
        }
    };
    let admission: Percentile = a
        .admission
        .parse()
        .map_err(|e| bad(format!("--admission: {e}")))?;
    create_out(&a.out)?;
    let s = Study {
        topology_name,
        topology,
        source,
        policies,
        models,
        replications: a.replications,
        seed: a.seed,
        config: weft_sim::continuum::Config {
            cloud_latency_s: a.cloud_latency_ms / 1e3,
            cloud_rate_mbps: a.cloud_rate_mbps,
            slots: a.slots,
            heartbeat: a.heartbeat_ms * 1_000_000,
            scheduler,
            unmeetable,
            admission,
            ..Default::default()
        },
        deadline,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = std::time::Instant::now();
    let results = study::run(&s, &study::builtin, threads, &progress("runs", a.json))
        .map_err(|e| bad(format!("--policy: {e}")))?;
    let (summary, chains, lengths) = (
        a.out.join("summary.csv"),
        a.out.join("chains.csv"),
        a.out.join("by_chain_length.csv"),
    );
    write_all(&[
        (summary.clone(), weft_sim::summary::csv(&results.rows)),
        (chains.clone(), results.chains_csv.clone()),
        (
            lengths.clone(),
            weft_sim::summary::length_csv(&results.lengths),
        ),
    ])?;
    let secs = started.elapsed().as_secs_f64();
    if a.json {
        print_json(&serde_json::json!({
            "topology": s.topology_name, "workload": a.workload, "jobs": s.source.jobs(),
            "replications": a.replications, "rows": results.rows.len(),
            "events": results.events, "seconds": secs,
            "summary": summary, "chains": chains, "by_chain_length": lengths,
        }));
        return Ok(());
    }
    eprintln!();
    println!(
        "{} rows in {}, by chain length in {}, the first replication's chains in {} ({} events in {secs:.1} s on {threads} threads)",
        results.rows.len(),
        summary.display(),
        lengths.display(),
        chains.display(),
        results.events
    );
    println!(
        "\n{}, {} chains: latency ms mean / p99, traffic MB per chain (mean over {} replications)",
        s.topology_name,
        s.source.jobs(),
        a.replications
    );
    let deadlines = results.rows.iter().any(|r| r.metric == "deadline_met_pct");
    let width = if deadlines { 46 } else { 26 };
    if deadlines {
        println!("(and of the steps with a deadline, those back by it; chains refused)");
    }
    print!("{:<10}", "model");
    for p in &s.policies {
        print!(" {p:>width$}");
    }
    println!();
    for model in &s.models {
        print!("{:<10}", model.as_str());
        for p in &s.policies {
            let get = |metric: &str| {
                results
                    .rows
                    .iter()
                    .find(|r| &r.policy == p && r.model == *model && r.metric == metric)
                    .map_or(f64::NAN, |r| r.mean)
            };
            let mut cell = format!(
                "{:.1} / {:.1}, {:.2}",
                get("latency_ms"),
                get("latency_p99_ms"),
                get("traffic_mb_per_chain")
            );
            if deadlines {
                cell = format!(
                    "{cell}, {:.1}% met, {:.1}% refused",
                    get("deadline_met_pct"),
                    get("refused_pct")
                );
            }
            print!(" {cell:>width$}");
        }
        println!();
    }
    Ok(())
}

fn reproduce(
    study: &str,
    out: &std::path::Path,
    replications: u64,
    json: bool,
) -> crate::client::ClientResult<()> {
    if study != "seed-003" {
        return Err(ClientError::local(
            Code::InvalidInput,
            format!("unknown study `{study}`: the one this build reproduces is `seed-003`"),
        ));
    }
    if !(1..=100_000).contains(&replications) {
        return Err(ClientError::local(
            Code::InvalidInput,
            format!("--replications: {replications} is not between 1 and 100000"),
        ));
    }
    create_out(out)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = std::time::Instant::now();
    let progress = progress("runs", json);
    let sweep = weft_sim::reproduce::seed003(replications, threads, &progress)
        .map_err(|e| ClientError::local(Code::Internal, e))?;
    let rows = &sweep.rows;
    let path = out.join("summary.csv");
    let mut files = vec![
        (path.clone(), weft_sim::summary::csv(rows)),
        (
            out.join("by_chain_length.csv"),
            weft_sim::summary::length_csv(&sweep.lengths),
        ),
        (
            out.join("latency_cdf.csv"),
            weft_sim::reproduce::cdf_csv(&sweep.cdf),
        ),
    ];
    files.push((
        out.join("table.md"),
        weft_sim::reproduce::table(&sweep, replications),
    ));
    for (name, svg) in weft_sim::reproduce::figures(&sweep) {
        files.push((out.join(name), svg));
    }
    write_all(&files)?;
    let secs = started.elapsed().as_secs_f64();
    if json {
        print_json(&serde_json::json!({
            "study": study, "replications": replications, "rows": rows.len(),
            "summary": path, "seconds": secs,
        }));
        return Ok(());
    }
    eprintln!();
    println!(
        "{} rows in {} ({replications} replications per point, {secs:.1} s on {threads} threads); \
         the paper's statements checked in {}",
        rows.len(),
        path.display(),
        out.join("table.md").display()
    );
    // The paper's Fig. 4 and 5 points, IIoT at 500 jobs.
    println!("\niiot, 500 jobs:  net latency ms / traffic MB per chain (mean)");
    println!("{:<10} {:>22} {:>22}", "model", "load", "load+net");
    for model in weft_sim::seed003::Model::ALL {
        let cell = |policy: weft_sim::seed003::Alloc| {
            let get = |metric: &str| {
                rows.iter()
                    .find(|r| {
                        r.topology == "iiot"
                            && r.jobs == 500
                            && r.model == model
                            && r.policy == policy.as_str()
                            && r.metric == metric
                    })
                    .map_or(f64::NAN, |r| r.mean)
            };
            format!(
                "{:.1} / {:.2}",
                get("net_latency_ms"),
                get("traffic_mb_per_chain")
            )
        };
        println!(
            "{:<10} {:>22} {:>22}",
            model.as_str(),
            cell(weft_sim::seed003::Alloc::Load),
            cell(weft_sim::seed003::Alloc::LoadNet)
        );
    }
    Ok(())
}
