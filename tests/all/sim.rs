//! `weft sim reproduce seed-003`: the seed's sweep from the binary alone,
//! byte-identical for the same replications, its orderings, bad flags.

use crate::harness::WEFT;
use std::collections::BTreeMap;
use std::process::Command;

fn reproduce(out: &std::path::Path, reps: &str) -> std::process::Output {
    Command::new(WEFT)
        .args(["sim", "reproduce", "seed-003", "--out"])
        .arg(out)
        .args(["--replications", reps, "--json"])
        .output()
        .unwrap()
}

#[test]
fn the_seed_003_sweep_writes_its_summary_the_same_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let r = reproduce(out, "6");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        assert_eq!(v["rows"], 240, "{v}");
    }
    // The figures too, drawn by the tool: each run the same.
    for topology in ["iiot", "urban"] {
        for fig in [
            "fig4-traffic",
            "fig5-latency-cdf",
            "fig6-net-latency-by-length",
        ] {
            let name = format!("{fig}-{topology}.svg");
            let svg = std::fs::read_to_string(a.join(&name)).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.contains("<polyline"),
                "{name}"
            );
            assert_eq!(
                svg,
                std::fs::read_to_string(b.join(&name)).unwrap(),
                "{name}"
            );
        }
    }
    // The latency's distribution at 500 jobs: rising quantiles, and at the
    // median in-function below in-client below in-edge below external.
    let cdf = std::fs::read_to_string(a.join("latency_cdf.csv")).unwrap();
    let mut cdf_rows = cdf.lines();
    assert_eq!(
        cdf_rows.next(),
        Some("topology,policy,model,jobs,fraction,latency_ms")
    );
    let mut median = BTreeMap::new();
    let mut last: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for l in cdf_rows {
        let f: Vec<&str> = l.split(',').collect();
        let v: f64 = f[5].parse().unwrap();
        let k = (f[0].to_string(), f[1].to_string(), f[2].to_string());
        assert!(last.get(&k).is_none_or(|p| *p <= v), "{l}");
        last.insert(k, v);
        if f[4] == "0.50" && f[0] == "iiot" && f[1] == "load+net" {
            median.insert(f[2].to_string(), v);
        }
    }
    assert!(median["function"] < median["client"] && median["client"] < median["edge"]);
    assert!(median["edge"] < median["external"], "{median:?}");
    let text = std::fs::read_to_string(a.join("summary.csv")).unwrap();
    assert_eq!(
        text,
        std::fs::read_to_string(b.join("summary.csv")).unwrap()
    );
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("topology,policy,model,jobs,metric,mean,ci_low,ci_high")
    );
    // (topology, policy, model, jobs, metric) -> mean, with ci_low <= mean <= ci_high.
    let mut mean = BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f.len(), 8, "{l}");
        let (m, lo, hi): (f64, f64, f64) = (
            f[5].parse().unwrap(),
            f[6].parse().unwrap(),
            f[7].parse().unwrap(),
        );
        assert!(lo <= m && m <= hi, "{l}");
        mean.insert((f[0], f[1], f[2], f[3], f[4]), m);
    }
    assert_eq!(mean.len(), 240);
    // By chain length (the seed's Fig. 6): network latency grows with the
    // chain and keeps the models' order at each length.
    let by_length = std::fs::read_to_string(a.join("by_chain_length.csv")).unwrap();
    assert_eq!(
        std::fs::read_to_string(b.join("by_chain_length.csv")).unwrap(),
        by_length
    );
    let mut rows = by_length.lines();
    assert_eq!(
        rows.next(),
        Some("topology,policy,model,jobs,chain_length,jobs_seen,metric,mean,ci_low,ci_high")
    );
    let mut net = BTreeMap::new();
    for l in rows {
        let f: Vec<&str> = l.split(',').collect();
        if f[0] == "iiot" && f[1] == "load+net" && f[3] == "500" && f[6] == "net_latency_ms" {
            let len: usize = f[4].parse().unwrap();
            net.insert((f[2].to_string(), len), f[7].parse::<f64>().unwrap());
        }
    }
    for len in 2..=4 {
        let at = |m: &str| net[&(m.to_string(), len)];
        assert!(
            at("function") < at("client") && at("client") < at("edge"),
            "{len}"
        );
        assert!(at("edge") < at("external"), "{len}");
    }
    assert!(net[&("external".to_string(), 2)] < net[&("external".to_string(), 4)]);
    for topology in ["iiot", "urban"] {
        for jobs in ["100", "500"] {
            let net = |model| mean[&(topology, "load+net", model, jobs, "net_latency_ms")];
            // Latency in-function < in-client ≪ in-edge < external.
            assert!(net("function") < net("client"), "{topology} {jobs}");
            assert!(net("client") * 2.0 < net("edge"), "{topology} {jobs}");
            assert!(net("edge") < net("external"), "{topology} {jobs}");
            // Traffic under Load+net below Load's, for every model.
            for model in ["external", "edge", "function", "client"] {
                let t = |p| mean[&(topology, p, model, jobs, "traffic_mb_per_chain")];
                assert!(t("load+net") < t("load"), "{topology} {jobs} {model}");
            }
        }
    }
}

#[test]
fn bad_sim_flags_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (vec!["seed-004", "--out"], "unknown study `seed-004`"),
        (
            vec!["seed-003", "--replications", "0", "--out"],
            "--replications: 0",
        ),
    ] {
        let r = Command::new(WEFT)
            .args(["sim", "reproduce"])
            .args(&args)
            .arg(dir.path())
            .arg("--json")
            .output()
            .unwrap();
        assert!(!r.status.success());
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains("invalid_input") && err.contains(says), "{err}");
    }
    // An --out that is a file.
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let r = reproduce(&file, "1");
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--out: cannot create"));
}
