use crate::client::{ClientOpts, finish, get_listing};
use crate::commands::ls::short_time;
use clap::Args;
use serde_json::Value;
use std::process::ExitCode;

/// Show how functions keep their deadlines: met, missed, refused, expired,
/// latency against the deadline, overruns of the estimate.
#[derive(Args)]
pub(crate) struct Slo {
    /// Only this function.
    name: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

impl Slo {
    pub(crate) async fn run(self) -> ExitCode {
        let json = self.opts.json;
        finish(self.go().await, json)
    }

    async fn go(self) -> crate::client::ClientResult<()> {
        let Some(v) = get_listing(&self.opts, "/v1/slo", self.name.as_deref()).await? else {
            return Ok(());
        };
        println!(
            "{:<24} {:>9} {:>8} {:>7} {:>8} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "NAME",
            "DEADLINE",
            "MET",
            "MISSED",
            "REFUSED",
            "EXPIRED",
            "MET-%",
            "P50",
            "P99",
            "EXPECTED",
            "OVERRUNS"
        );
        for f in v["functions"].as_array().into_iter().flatten() {
            println!("{}", row(f));
        }
        Ok(())
    }
}

/// One function's line.
fn row(f: &Value) -> String {
    let time = |k: &str| {
        f[k].as_f64().map_or_else(
            || "-".to_string(),
            |ms| short_time((ms * 1000.0).round() as u64),
        )
    };
    let mut deadline = time("deadline_ms");
    if f["declared"] != true {
        // Its timeout stands in.
        deadline.push('*');
    }
    let met = f["met_ratio"]
        .as_f64()
        .map_or_else(|| "-".to_string(), |r| format!("{:.1}", r * 100.0));
    let mut overruns = f["overruns"].to_string();
    if f["flagged"].as_u64().unwrap_or(0) > 0 {
        overruns.push_str(&format!(" !{}", f["flagged"]));
    }
    format!(
        "{:<24} {:>9} {:>8} {:>7} {:>8} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
        f["name"].as_str().unwrap_or("?"),
        deadline,
        f["met"].to_string(),
        f["missed"].to_string(),
        f["refused"].to_string(),
        f["expired"].to_string(),
        met,
        time("p50_ms"),
        time("p99_ms"),
        time("expected_ms"),
        overruns
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_row_marks_a_timeout_standing_in_and_a_flagged_overrunner() {
        let f = serde_json::json!({
            "name": "fib", "deadline_ms": 2.0, "declared": false, "met": 98, "missed": 2,
            "refused": 5, "expired": 0, "met_ratio": 0.98, "p50_ms": 0.7, "p99_ms": 2.5,
            "expected_ms": null, "overruns": 7, "flagged": 2,
        });
        let line = super::row(&f);
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "fib", "2ms*", "98", "2", "5", "0", "98.0", "700us", "2.5ms", "-", "7", "!2"
            ]
        );
    }
}
