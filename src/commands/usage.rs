use crate::client::{ClientOpts, finish, get_listing};
use clap::Args;
use std::process::ExitCode;

/// Show metered usage: invocations, errors, CPU time, memory × time, and
/// what stateful functions moved (state, arguments; by model in `--json`).
#[derive(Args)]
pub(crate) struct Usage {
    /// Only this function.
    name: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

impl Usage {
    pub(crate) async fn run(self) -> ExitCode {
        let json = self.opts.json;
        finish(self.go().await, json)
    }

    async fn go(self) -> crate::client::ClientResult<()> {
        let Some(v) = get_listing(&self.opts, "/v1/usage", self.name.as_deref()).await? else {
            return Ok(());
        };
        println!(
            "{:<24} {:>11} {:>7} {:>8} {:>6} {:>12} {:>12} {:>14} {:>10} {:>10}",
            "NAME",
            "INVOCATIONS",
            "ERRORS",
            "REJECTED",
            "COLD",
            "CPU-MS",
            "WALL-MS",
            "MEM-MIB-S",
            "STATE-KIB",
            "ARGS-KIB"
        );
        for (name, u) in v["functions"].as_object().into_iter().flatten() {
            let ms = |k: &str| u[k].as_u64().unwrap_or(0) as f64 / 1e6;
            // Over every model it ran under: state read + written, and
            // arguments in + results out.
            let moved = |keys: [&str; 2]| {
                let bytes: u64 = u["moved_bytes"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .flat_map(|(_, m)| keys.map(|k| m[k].as_u64().unwrap_or(0)))
                    .sum();
                bytes as f64 / 1024.0
            };
            println!(
                "{:<24} {:>11} {:>7} {:>8} {:>6} {:>12.3} {:>12.3} {:>14.3} {:>10.1} {:>10.1}",
                name,
                u["invocations"].to_string(),
                u["errors"].to_string(),
                u["rejected"].to_string(),
                u["cold_starts"].to_string(),
                ms("cpu_ns"),
                ms("wall_ns"),
                u["memory_byte_seconds"].as_f64().unwrap_or(0.0) / (1 << 20) as f64,
                moved(["state_read", "state_written"]),
                moved(["args_in", "args_out"]),
            );
        }
        Ok(())
    }
}
