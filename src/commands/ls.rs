use crate::client::{Client, ClientOpts, finish, human_bytes, print_json};
use clap::Args;
use std::process::ExitCode;

/// List functions: kind, active version, state, limits.
#[derive(Args)]
pub(crate) struct Ls {
    /// Only this function, with all its versions.
    name: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

impl Ls {
    pub(crate) async fn run(self) -> ExitCode {
        let json = self.opts.json;
        finish(self.go().await, json)
    }

    async fn go(self) -> crate::client::ClientResult<()> {
        let c = Client::new(&self.opts)?;
        if let Some(name) = &self.name {
            let f = c.get(&format!("/v1/functions/{name}")).await?;
            if self.opts.json {
                print_json(&f);
                return Ok(());
            }
            print_table(std::slice::from_ref(&f));
            print_slo(&f);
            print_declarations(&f);
            println!();
            println!("{:<8} {:<72} DEPLOYED", "VERSION", "MODULE");
            for v in f["versions"].as_array().into_iter().flatten() {
                let active = if v["version"] == f["active"] {
                    " *"
                } else {
                    ""
                };
                let at = std::time::UNIX_EPOCH
                    + std::time::Duration::from_millis(v["deployed_at"].as_u64().unwrap_or(0));
                println!(
                    "{:<8} sha256:{:<65} {}{active}",
                    v["version"].to_string(),
                    v["digest"].as_str().unwrap_or("?"),
                    humantime::format_rfc3339_seconds(at)
                );
            }
            return Ok(());
        }
        let v = c.get("/v1/functions").await?;
        if self.opts.json {
            print_json(&v);
        } else {
            print_table(
                v["functions"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            );
        }
        Ok(())
    }
}

fn print_table(functions: &[serde_json::Value]) {
    println!(
        "{:<24} {:<8} {:>7} {:<5} {:>8} {:>8} {:>7} {:>5} PUBLIC",
        "NAME", "KIND", "VERSION", "STATE", "TIMEOUT", "MEMORY", "CONCUR", "QUEUE"
    );
    for f in functions {
        let l = &f["limits"];
        println!(
            "{:<24} {:<8} {:>7} {:<5} {:>8} {:>8} {:>7} {:>5} {}",
            f["name"].as_str().unwrap_or("?"),
            f["kind"].as_str().unwrap_or("?"),
            f["active"].to_string(),
            f["state"].as_str().unwrap_or("?"),
            human_ms(l["timeout_ms"].as_u64().unwrap_or(0)),
            human_bytes(l["memory"].as_u64().unwrap_or(0)),
            l["max_concurrency"].to_string(),
            l["max_queue"].to_string(),
            f["public"],
        );
    }
}

/// A time in µs as one short figure: `850us`, `2ms`, `161.4ms`, `10s`,
/// `1.25s`.
pub(crate) fn short_time(us: u64) -> String {
    match us {
        0..1_000 => format!("{us}us"),
        1_000..1_000_000 if us.is_multiple_of(1_000) => format!("{}ms", us / 1_000),
        1_000..1_000_000 => format!("{:.1}ms", us as f64 / 1e3),
        _ if us.is_multiple_of(1_000_000) => format!("{}s", us / 1_000_000),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

/// The deadline in force, and what admission plans with.
fn print_slo(f: &serde_json::Value) {
    let l = &f["limits"];
    let ms = |v: &serde_json::Value| {
        v.as_f64()
            .map(|ms| short_time((ms * 1000.0).round() as u64))
    };
    let deadline = ms(&l["deadline_ms"]).unwrap_or_else(|| "?".into());
    let mut line = if l["deadline_declared"] == true {
        deadline
    } else {
        format!("{deadline} (its timeout: none declared)")
    };
    line.push_str(&format!(
        ", admission at {}",
        l["admission"].as_str().unwrap_or("?")
    ));
    if let Some(e) = ms(&l["expected_ms"]) {
        line.push_str(&format!(", first estimate {e}"));
    }
    println!();
    println!("{:<17} {line}", "deadline");
    let learned = &f["learned"];
    let runs = learned["runs"].as_u64().unwrap_or(0);
    let line = if runs == 0 {
        "nothing yet (no run here)".to_string()
    } else {
        let at = |k: &str| ms(&learned[k]).unwrap_or_else(|| "?".into());
        format!(
            "p50 {}, p90 {}, p99 {}, max {} (last {runs} runs here)",
            at("p50_ms"),
            at("p90_ms"),
            at("p99_ms"),
            at("max_ms")
        )
    };
    println!("{:<17} {line}", "learned");
}

/// What the active version declares: capabilities and triggers.
fn print_declarations(f: &serde_json::Value) {
    let Some(spec) = f["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["version"] == f["active"]))
        .map(|v| &v["spec"])
    else {
        return;
    };
    let list = |key: &str| -> Vec<String> {
        spec[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .or_else(|| v["schedule"].as_str().map(str::to_string))
                    .or_else(|| v["topic"].as_str().map(str::to_string))
            })
            .collect()
    };
    let config: Vec<String> = spec["config"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let state = match &f["stateful"] {
        serde_json::Value::Null => Vec::new(),
        s => vec![format!(
            "{} (bucket `{}`, key from {}, kept in {})",
            s["model"].as_str().unwrap_or("?"),
            s["bucket"].as_str().unwrap_or("?"),
            s["key"].as_str().unwrap_or("?"),
            s["home"].as_str().unwrap_or("?")
        )],
    };
    let rows = [
        ("state", state),
        ("args", list("args")),
        ("key-value stores", list("key_value_stores")),
        ("config keys", config),
        ("outbound hosts", list("allowed_outbound_hosts")),
        ("calls", list("calls")),
        ("publishes", list("publishes")),
        ("subscribes", list("subscribes")),
        ("routes", list("routes")),
        ("cron", list("cron")),
        ("mqtt", list("mqtt")),
    ];
    let shown: Vec<_> = rows.iter().filter(|(_, v)| !v.is_empty()).collect();
    if shown.is_empty() {
        return;
    }
    println!();
    for (label, values) in shown {
        println!("{label:<17} {}", values.join(", "));
    }
}

fn human_ms(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_one_short_figure() {
        let shown: Vec<String> = [850, 2_000, 161_378, 10_000_000, 1_250_000]
            .map(super::short_time)
            .into();
        assert_eq!(shown, ["850us", "2ms", "161.4ms", "10s", "1.25s"]);
    }
}
