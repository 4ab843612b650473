use crate::client::{Client, ClientOpts, finish, print_json};
use clap::Args;
use std::process::ExitCode;

/// Show the fabric as this node sees it: every node with its tier, labels,
/// load, warm functions, round trip and bandwidth from here.
#[derive(Args)]
pub(crate) struct Nodes {
    #[command(flatten)]
    opts: ClientOpts,
}

fn fmt_rtt(v: &serde_json::Value) -> String {
    v.as_u64()
        .map_or_else(|| "-".into(), |us| format!("{:.1}", us as f64 / 1000.0))
}

fn fmt_bw(v: &serde_json::Value) -> String {
    v.as_u64()
        .map_or_else(|| "-".into(), |b| format!("{:.1}", b as f64 / 1e6))
}

impl Nodes {
    pub(crate) async fn run(self) -> ExitCode {
        let json = self.opts.json;
        finish(self.go().await, json)
    }

    async fn go(self) -> crate::client::ClientResult<()> {
        let c = Client::new(&self.opts)?;
        let v = c.get("/v1/nodes").await?;
        if self.opts.json {
            print_json(&v);
            return Ok(());
        }
        if v["fabric"] != serde_json::Value::Bool(true) {
            println!(
                "node {} is not in a fabric (start it with `weft up --fabric nats://HOST:PORT`)",
                v["node"].as_str().unwrap_or("?")
            );
            return Ok(());
        }
        let state = match (v["connected"].as_bool(), v["registry_joined"].as_bool()) {
            (Some(true), Some(true)) => "connected, registry joined",
            (Some(true), _) => "connected, joining the registry",
            _ => "DISCONNECTED from NATS: serving what it has",
        };
        println!(
            "fabric seen from {}: {state}",
            v["node"].as_str().unwrap_or("?")
        );
        println!(
            "{:<20} {:<5} {:<6} {:>9} {:>8} {:>9} {:>6}  {:<24} WARM",
            "NODE", "STATE", "TIER", "LOAD", "RTT-MS", "BW-MB/S", "SEEN", "LABELS"
        );
        for n in v["nodes"].as_array().into_iter().flatten() {
            let labels: Vec<String> = n["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            let warm: Vec<&str> = n["warm"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w.as_str())
                .collect();
            let name = format!(
                "{}{}",
                n["name"].as_str().unwrap_or("?"),
                if n["local"].as_bool() == Some(true) {
                    " *"
                } else {
                    ""
                }
            );
            println!(
                "{:<20} {:<5} {:<6} {:>9} {:>8} {:>9} {:>6}  {:<24} {}",
                name,
                if n["up"].as_bool() == Some(true) {
                    "up"
                } else {
                    "DOWN"
                },
                n["tier"].as_str().unwrap_or("?"),
                format!("{}+{}/{}", n["inflight"], n["queued"], n["slots"]),
                fmt_rtt(&n["rtt_us"]),
                fmt_bw(&n["bandwidth_bps"]),
                format!("{}s", n["last_seen_ms"].as_u64().unwrap_or(0) / 1000),
                labels.join(","),
                warm.join(","),
            );
        }
        Ok(())
    }
}
