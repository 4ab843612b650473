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
    // The table beside the paper's figures: each of its statements checked,
    // the same each run.
    let table = std::fs::read_to_string(a.join("table.md")).unwrap();
    assert_eq!(table, std::fs::read_to_string(b.join("table.md")).unwrap());
    let statements: Vec<&str> = table.lines().filter(|l| l.starts_with("- \"")).collect();
    assert_eq!(statements.len(), 16, "{table}");
    for s in &statements {
        assert!(s.contains("holds") || s.contains("does not hold"), "{s}");
    }
    for claim in [
        "\"With Load, in-client has the most traffic\": holds",
        "\"Load is much higher than Load+net for every model\": holds",
        "\"External and in-edge are much worse\": holds",
        "\"In-function is slightly better than in-client\": holds",
    ] {
        assert_eq!(table.matches(claim).count(), 2, "{claim}: {table}");
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

/// `weft sim run` with `args`, writing to `out`, `--json`.
fn sim_run(out: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(WEFT)
        .args(["sim", "run", "--out"])
        .arg(out)
        .args(args)
        .arg("--json")
        .output()
        .unwrap()
}

/// A four-node topology of StateSim files, and a trace on it, in `dir`.
fn small_world(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let files = [
        (
            "lab.nodes",
            "0;pi;1000000000;1;arm;sbc;rpi3b+\n1;nuc;8000000000;1;x86;sffc;nuci5\n\
             2;tx2;4000000000;1;arm;embai;nvidia_jetson_tx2\n3;srv;64000000000;1;x86;server;server\n",
        ),
        (
            "lab.links",
            "0;1000;l_pi;node\n1;1000;l_nuc;node\n2;1000;l_tx2;node\n3;100;l_srv;uplink\n",
        ),
        (
            "lab.edges",
            "pi l_pi\nl_pi pi sw\nnuc l_nuc\nl_nuc nuc sw\ntx2 l_tx2\nl_tx2 tx2 sw\n\
             srv l_srv\nl_srv srv sw\nsw l_pi l_nuc l_tx2 l_srv\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let mut trace =
        String::from("chain,arrival_s,client,key,function,ops,arg_bytes,out_bytes,state_bytes\n");
    for i in 0..40 {
        let client = if i % 2 == 0 { "pi" } else { "tx2" };
        for (f, ops) in [("resize", 20_000_000), ("detect", 80_000_000)] {
            trace.push_str(&format!(
                "c{i},{:.2},{client},user{},{f},{ops},200000,100000,500000\n",
                f64::from(i) * 0.05,
                i % 4
            ));
        }
    }
    let path = dir.join("trace.csv");
    std::fs::write(&path, trace).unwrap();
    (dir.join("lab").display().to_string(), path)
}

#[test]
fn sim_run_places_a_trace_on_a_topology_of_files_the_same_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let (topology, trace) = small_world(dir.path());
    let trace = trace.display().to_string();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let r = sim_run(
            out,
            &[
                "--topology",
                &topology,
                "--workload",
                &trace,
                "--replications",
                "2",
            ],
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        assert_eq!(
            (v["topology"].as_str(), v["jobs"].as_u64()),
            (Some("lab"), Some(40))
        );
        // 3 policies × 4 models × 7 metrics.
        assert_eq!(v["rows"], 84, "{v}");
        assert!(v["events"].as_u64().unwrap() > 40 * 7, "{v}");
    }
    for file in ["summary.csv", "chains.csv", "by_chain_length.csv"] {
        assert_eq!(
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
            "{file}"
        );
    }
    // The trace's chains all have 2 steps: one length per point, each of
    // the seed's three metrics over both replications' 40 chains.
    let by_length = std::fs::read_to_string(a.join("by_chain_length.csv")).unwrap();
    assert_eq!(
        by_length.lines().next(),
        Some("topology,policy,model,jobs,chain_length,jobs_seen,metric,mean,ci_low,ci_high")
    );
    let rows: Vec<&str> = by_length.lines().skip(1).collect();
    assert_eq!(rows.len(), 3 * 4 * 3, "{by_length}");
    assert!(
        rows.iter()
            .all(|r| r.split(',').nth(4) == Some("2") && r.split(',').nth(5) == Some("80")),
        "{by_length}"
    );
    let summary = std::fs::read_to_string(a.join("summary.csv")).unwrap();
    assert_eq!(
        summary.lines().next(),
        Some("topology,policy,model,jobs,metric,mean,ci_low,ci_high")
    );
    // A fixed trace: both replications alike, so the interval is a point.
    let line = summary
        .lines()
        .find(|l| l.starts_with("lab,weft,client,40,latency_ms,"))
        .unwrap();
    let f: Vec<f64> = line
        .split(',')
        .skip(5)
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(f[0] > 0.0 && f[0] == f[1] && f[1] == f[2], "{line}");
    // Every step of every chain, with the node that ran it.
    let chains = std::fs::read_to_string(a.join("chains.csv")).unwrap();
    let rows: Vec<&str> = chains.lines().skip(1).collect();
    assert_eq!(rows.len(), 3 * 4 * 40);
    for r in &rows {
        let cols: Vec<&str> = r.split(',').collect();
        let nodes: Vec<&str> = cols[13].split(' ').collect();
        assert_eq!(nodes.len(), 2, "{r}");
        assert!(
            nodes
                .iter()
                .all(|n| ["pi", "nuc", "tx2", "srv"].contains(n)),
            "{r}"
        );
    }
    // Under weft, an actor's steps run on its key's owner: one node per
    // (function, key).
    let mut owner = BTreeMap::new();
    for r in rows.iter().filter(|r| r.starts_with("weft,function,")) {
        let cols: Vec<&str> = r.split(',').collect();
        let i: usize = cols[2][1..].parse().unwrap();
        for (f, n) in ["resize", "detect"].iter().zip(cols[13].split(' ')) {
            let at = owner.entry((*f, i % 4)).or_insert(n);
            assert_eq!(*at, n, "{r}");
        }
    }
}

#[test]
fn sim_run_generates_its_chains_and_shows_the_policies_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let r = Command::new(WEFT)
        .args(["sim", "run", "--out"])
        .arg(dir.path())
        .args([
            "--jobs",
            "60",
            "--replications",
            "3",
            "--workload",
            "seed-003",
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(text.contains("iiot, 60 chains"), "{text}");
    for word in [
        "load", "load+net", "weft", "external", "edge", "function", "client",
    ] {
        assert!(text.contains(word), "{word}: {text}");
    }
    // Progress on stderr.
    assert!(String::from_utf8_lossy(&r.stderr).contains("runs: 36/36"));
    // With deadlines: how they went, per point, and per chain.
    let r = Command::new(WEFT)
        .args(["sim", "run", "--out"])
        .arg(dir.path())
        .args([
            "--jobs",
            "60",
            "--replications",
            "2",
            "--deadline-ms",
            "100",
        ])
        .args([
            "--policy",
            "weft",
            "--model",
            "client",
            "--scheduler",
            "fifo",
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stdout).contains("% met"));
    let summary = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
    let met: f64 = summary
        .lines()
        .find(|l| l.starts_with("iiot,weft,client,60,deadline_met_pct,"))
        .unwrap()
        .split(',')
        .nth(5)
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.0..=100.0).contains(&met), "{summary}");
    assert!(summary.contains(",refused_pct,"));
    let chains = std::fs::read_to_string(dir.path().join("chains.csv")).unwrap();
    for line in chains.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        let (steps, deadlines): (u32, u32) = (cols[4].parse().unwrap(), cols[10].parse().unwrap());
        assert!(cols[12] == "1" || steps == deadlines, "{line}");
    }
}

#[test]
fn bad_sim_run_inputs_are_refused_naming_the_flag_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (topology, trace) = small_world(dir.path());
    let trace_s = trace.display().to_string();
    let out = dir.path().join("out");
    // A trace naming a node the topology lacks.
    let unknown = dir.path().join("unknown.csv");
    std::fs::write(
        &unknown,
        "chain,arrival_s,client,key,function,ops,arg_bytes,out_bytes,state_bytes\n\
         c0,0,pi,k,f,1,1,1,1\nc1,0,rpi3_0,k,f,1,1,1,1\n",
    )
    .unwrap();
    let unknown_s = unknown.display().to_string();
    // A Spår trace with a task of five fields on its second line.
    let bad_spar = dir.path().join("batch_task.csv");
    std::fs::write(&bad_spar, "1,j_1,M1,10,100,0.5,1\n2,j_2,M1,10,100\n").unwrap();
    let bad_spar_s = format!("spar:{}", bad_spar.display());
    let missing_spar = dir.path().join("none.csv");
    let missing_spar_s = format!("spar:{}", missing_spar.display());
    // A topology whose server is cut off.
    let cut = dir.path().join("cut");
    for ext in ["nodes", "links"] {
        std::fs::copy(
            dir.path().join(format!("lab.{ext}")),
            dir.path().join(format!("cut.{ext}")),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("cut.edges"),
        "pi l_pi\nl_pi pi sw\nnuc l_nuc\nl_nuc nuc sw\ntx2 l_tx2\nl_tx2 tx2 sw\n\
         srv l_srv\nl_srv srv\nsw l_pi l_nuc l_tx2\n",
    )
    .unwrap();
    let cut_s = cut.display().to_string();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--topology", &topology, "--workload", &unknown_s],
            format!("--workload: {unknown_s}:3: `client` names `rpi3_0`, which is not a node"),
        ),
        (
            vec!["--topology", &cut_s],
            format!(
                "{cut_s}.nodes:4: node `srv` cannot reach node `pi` (line 1) through {cut_s}.edges: the graph is disconnected"
            ),
        ),
        (
            vec!["--topology", "/nonexistent/net"],
            "--topology: /nonexistent/net.nodes: ".into(),
        ),
        (
            vec![
                "--topology",
                &topology,
                "--workload",
                &trace_s,
                "--jobs",
                "5",
            ],
            "--jobs and --rate apply to the synthetic, seed-003 and spar:PATH workloads".into(),
        ),
        (
            vec!["--workload", &bad_spar_s],
            format!(
                "--workload: {}:2: 5 fields; a task is `arrival,job,task,duration,cpu,memory,instances`",
                bad_spar.display()
            ),
        ),
        (
            vec!["--workload", &missing_spar_s],
            format!("--workload: {}: ", missing_spar.display()),
        ),
        (
            vec!["--policy", "load,random"],
            "--policy: unknown policy `random`".into(),
        ),
        (
            vec!["--model", "edge,cache"],
            "--model: unknown state model `cache`".into(),
        ),
        (
            vec!["--jobs", "0"],
            "--jobs: 0 is not between 1 and 1000000".into(),
        ),
        (vec!["--rate", "-2"], "--rate: -2 is not a rate".into()),
        (vec!["--slots", "0"], "--slots: 0".into()),
        (vec!["--replications", "0"], "--replications: 0".into()),
        (
            vec!["--heartbeat-ms", "4000000"],
            "--heartbeat-ms: 4000000".into(),
        ),
        (
            vec!["--cloud-rate-mbps", "0"],
            "--cloud-rate-mbps: 0".into(),
        ),
        (
            vec!["--cloud-latency-ms", "-1"],
            "--cloud-latency-ms: -1 is not between 0 and 60000".into(),
        ),
        (
            vec!["--deadline-ms", "0"],
            "--deadline-ms: 0 is not a deadline".into(),
        ),
        (
            vec!["--scheduler", "lifo"],
            "--scheduler: unknown scheduler `lifo`: expected edf or fifo".into(),
        ),
        (
            vec!["--unmeetable", "drop"],
            "--unmeetable: `drop`: expected refuse or run".into(),
        ),
        (
            vec!["--admission", "p101"],
            "--admission: percentile `p101` is out of range".into(),
        ),
    ];
    for (args, says) in cases {
        let r = sim_run(&out, &args);
        assert!(!r.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            err.contains("invalid_input") && err.contains(&says),
            "{args:?}: {err}"
        );
    }
    // Nothing was written for a refused run.
    assert!(!out.join("summary.csv").exists());
    // A Spår trace of one's own: the seed's, read from its file.
    let spar = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/spar/batch_task.csv");
    let r = sim_run(
        &out,
        &[
            "--workload",
            &format!("spar:{}", spar.display()),
            "--jobs",
            "30",
            "--replications",
            "2",
            "--policy",
            "load+net",
            "--model",
            "edge",
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["jobs"], 30, "{v}");
    assert!(v["events"].as_u64().unwrap() > 30, "{v}");
}
