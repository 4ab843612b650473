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
}

impl Sim {
    pub(crate) async fn run(self) -> ExitCode {
        let SimCommand::Reproduce {
            study,
            out,
            replications,
            json,
        } = self.command;
        let work = tokio::task::spawn_blocking(move || reproduce(&study, &out, replications, json));
        match work.await {
            Ok(r) => finish(r, json),
            Err(e) => finish(Err(ClientError::local(Code::Internal, e)), json),
        }
    }
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
    let failed = |what: String| ClientError::local(Code::InvalidInput, what);
    std::fs::create_dir_all(out)
        .map_err(|e| failed(format!("--out: cannot create {}: {e}", out.display())))?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = std::time::Instant::now();
    let shown = std::sync::atomic::AtomicUsize::new(0);
    let progress = |done: usize, total: usize| {
        // Every 2 % on stderr (not with --json).
        let pct = done * 50 / total.max(1);
        if !json && shown.fetch_max(pct, std::sync::atomic::Ordering::Relaxed) < pct {
            eprint!("\rreplications: {done}/{total}");
            let _ = std::io::stderr().flush();
        }
    };
    let sweep = weft_sim::reproduce::seed003(replications, threads, &progress)
        .map_err(|e| ClientError::local(Code::Internal, e))?;
    let rows = &sweep.rows;
    let path = out.join("summary.csv");
    let mut files = vec![
        (path.clone(), weft_sim::reproduce::csv(rows)),
        (
            out.join("by_chain_length.csv"),
            weft_sim::reproduce::length_csv(&sweep.lengths),
        ),
        (
            out.join("latency_cdf.csv"),
            weft_sim::reproduce::cdf_csv(&sweep.cdf),
        ),
    ];
    for (name, svg) in weft_sim::reproduce::figures(&sweep) {
        files.push((out.join(name), svg));
    }
    for (file, text) in &files {
        std::fs::write(file, text)
            .map_err(|e| failed(format!("--out: cannot write {}: {e}", file.display())))?;
    }
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
        "{} rows in {} ({replications} replications per point, {secs:.1} s on {threads} threads)",
        rows.len(),
        path.display()
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
                            && r.policy == policy
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
