//! Durable workflows: declared in a manifest, run step by step with each
//! result journaled, repaired by an operator, resumed after `kill -9`.

use crate::harness::{Node, eventually, guest, json_error};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Writes a manifest whose functions all run `workflow-step.wasm`:
/// `functions` is TOML for their tables' bodies, by name.
fn manifest(dir: &tempfile::TempDir, functions: &[(&str, &str)], workflows: &str) -> PathBuf {
    let module = guest("workflow-step.wasm");
    let mut text = String::from("manifest_version = 1\n");
    for (name, body) in functions {
        text.push_str(&format!(
            "[functions.{name}]\nmodule = {:?}\n{body}\n",
            module.display().to_string()
        ));
    }
    text.push_str(workflows);
    let path = dir.path().join("weft.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub(crate) fn deploy(node: &Node, path: &std::path::Path) -> Value {
    node.json(&["deploy", "--manifest", path.to_str().unwrap()])
}

pub(crate) fn show(node: &Node, id: &str) -> Value {
    node.json(&["workflow", "show", id])
}

pub(crate) fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {run}"))
}

/// `workflow start NAME --wait 30s --json` for a run that fails: the run
/// as printed (the command exits non-zero).
fn start_failing(node: &Node, name: &str) -> Value {
    let out = node.cli(&["workflow", "start", name, "--wait", "30s", "--json"]);
    assert!(!out.status.success(), "run of {name} succeeded");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The id of the run started last.
pub(crate) fn newest_run(node: &Node) -> String {
    node.json(&["workflow", "ls"])["runs"][0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A function answering how often step `RUN.STEP` ran (see [`ran`]).
pub(crate) const COUNTER: (&str, &str) = (
    "counter",
    "key_value_stores = [\"default\"]\nconfig = { report = \"yes\" }",
);

/// A workflow definition put over HTTP: the refusal's status and error.
fn put_refused(node: &Node, name: &str, spec: Value) -> (u16, Value) {
    let resp = node
        .http()
        .put(format!("{}/v1/workflows/{name}", node.url))
        .json(&spec)
        .send()
        .unwrap();
    crate::harness::error_of(resp)
}

pub(crate) fn wait_state(node: &Node, id: &str, state: &str) -> Value {
    let mut last = Value::Null;
    let ok = eventually(Duration::from_secs(60), || {
        last = show(node, id);
        last["state"] == state
    });
    assert!(ok, "run {id} never became {state}: {last}\n{}", node.log());
    last
}

#[test]
fn a_sequence_runs_each_step_on_the_output_of_the_one_before() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        &dir,
        &[("resize", ""), ("detect", ""), ("store", "")],
        "[workflows.thumbnail]\nsteps = [\"resize\", \"detect\", \"store\"]\n",
    );
    let deployed = deploy(&node, &path);
    let wf = deployed.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (wf["name"].as_str(), wf["version"].as_u64()),
        (Some("thumbnail"), Some(1))
    );
    // Deploying the same manifest again makes no new version.
    let again = deploy(&node, &path);
    assert_eq!(again.as_array().unwrap().last().unwrap()["changed"], false);

    // `start --wait` prints the run's output.
    let out = node.ok(&[
        "workflow",
        "start",
        "thumbnail",
        "--data",
        "cat",
        "--wait",
        "30s",
    ]);
    assert_eq!(out, "cat-resize-detect-store");

    // `start` alone prints the id; `show --json` gives state and output.
    let id = node.ok(&["workflow", "start", "thumbnail", "--data", "dog"]);
    let id = id.trim();
    let run = wait_state(&node, id, "succeeded");
    assert_eq!(run["output"], "dog-resize-detect-store", "{run}");
    assert_eq!(run["recorded"], 3);
    for s in ["resize", "detect", "store"] {
        let st = step(&run, s);
        assert_eq!(st["state"], "succeeded", "{st}");
        assert_eq!(st["attempts"], 1, "{st}");
        assert!(st["node"].as_str().is_some_and(|n| !n.is_empty()), "{st}");
        assert!(st["ended_ms"].as_u64() >= st["started_ms"].as_u64(), "{st}");
    }
    assert_eq!(step(&run, "detect")["after"], serde_json::json!(["resize"]));

    // The text view draws every step with its state.
    let text = node.ok(&["workflow", "show", id]);
    for s in ["resize", "detect", "store", "succeeded", "thumbnail v1"] {
        assert!(text.contains(s), "{s} missing from:\n{text}");
    }
    assert!(text.contains("output: dog-resize-detect-store"), "{text}");

    // `ls` lists both, newest first, and filters.
    let ls = node.json(&["workflow", "ls"]);
    let ids: Vec<&str> = ls["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ls}");
    assert_eq!(ids[0], id);
    let failed = node.json(&["workflow", "ls", "--state", "failed"]);
    assert_eq!(failed["runs"].as_array().unwrap().len(), 0);
    let text = node.ok(&["workflow", "ls"]);
    assert!(
        text.contains("thumbnail v1") && text.contains("succeeded"),
        "{text}"
    );

    // The HTTP API: start with ?wait, the raw output.
    let resp = node
        .http()
        .post(format!("{}/v1/workflows/thumbnail/runs?wait=30s", node.url))
        .body("owl")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let run: Value = resp.json().unwrap();
    assert_eq!(run["state"], "succeeded");
    let raw = node
        .admin_get(&format!("/v1/runs/{}/output", run["id"].as_str().unwrap()))
        .text()
        .unwrap();
    assert_eq!(raw, "owl-resize-detect-store");
}

#[test]
fn steps_fan_out_and_join_their_outputs_by_name() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        &dir,
        &[("fetch", ""), ("score", ""), ("merge", "")],
        r#"[workflows.report]
steps = [
  "fetch",
  { name = "a", function = "score", after = ["fetch"] },
  { name = "b", function = "score", after = ["fetch"], timeout = "10s" },
  { function = "merge", after = ["a", "b"] },
]
"#,
    );
    deploy(&node, &path);
    let out = node.ok(&[
        "workflow", "start", "report", "--data", "x", "--wait", "30s",
    ]);
    assert_eq!(out, r#"{"a":"x-fetch-score","b":"x-fetch-score"}-merge"#);
    let id = newest_run(&node);
    let run = show(&node, &id);
    assert_eq!(step(&run, "merge")["after"], serde_json::json!(["a", "b"]));
    let text = node.ok(&["workflow", "show", &id]);
    assert!(text.contains("after a, b"), "{text}");
}

#[test]
fn a_failed_step_fails_the_run_and_the_operator_repairs_it() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        &dir,
        &[
            ("prepare", ""),
            ("flaky", "config = { fail_attempts = \"3\" }"),
            ("store", ""),
        ],
        r#"[workflows.pipe]
steps = ["prepare", { function = "flaky", retry = { attempts = 2, backoff = "10ms" } }, "store"]
"#,
    );
    deploy(&node, &path);
    let out = node.cli(&["workflow", "start", "pipe", "--data", "in", "--wait", "30s"]);
    assert!(!out.status.success());
    let id = newest_run(&node);
    let run = show(&node, &id);
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["error"]["step"], "flaky", "{run}");
    let flaky = step(&run, "flaky");
    assert_eq!(
        (flaky["state"].as_str(), flaky["attempts"].as_u64()),
        (Some("failed"), Some(2)),
        "{flaky}"
    );
    assert_eq!(step(&run, "prepare")["state"], "succeeded");
    assert_eq!(step(&run, "store")["state"], "pending");

    // Actions that do not fit the run's state are refused, naming why.
    let e = json_error(&node.cli(&["workflow", "cancel", &id, "--json"]));
    assert_eq!(e["error"]["code"], "run_ended", "{e}");
    let e = json_error(&node.cli(&["workflow", "retry", &id, "--step", "nope", "--json"]));
    assert_eq!(e["error"]["code"], "step_not_found", "{e}");
    let e = json_error(&node.cli(&["workflow", "show", "0000", "--json"]));
    assert_eq!(e["error"]["code"], "run_not_found", "{e}");

    // Retry: the failed step runs again, its attempts counted from 1 (so
    // it fails both again); the recorded step before it does not run.
    let retried = node.json(&["workflow", "retry", &id]);
    assert_eq!(retried["state"], "running", "{retried}");
    let run = wait_state(&node, &id, "failed");
    assert_eq!(
        step(&run, "prepare")["attempts"],
        1,
        "prepare ran again: {run}"
    );

    // Skip: the operator gives the step's output; the run goes on.
    node.json(&[
        "workflow", "skip", &id, "--step", "flaky", "--output", "fixed",
    ]);
    let run = wait_state(&node, &id, "succeeded");
    assert_eq!(run["output"], "fixed-store", "{run}");
    assert_eq!(step(&run, "flaky")["state"], "skipped");

    // Retry of a step of a run that succeeded runs it and what follows.
    node.json(&["workflow", "retry", &id, "--step", "store"]);
    let run = wait_state(&node, &id, "succeeded");
    assert_eq!(run["output"], "fixed-store");
}

#[test]
fn bad_workflows_are_refused_naming_the_field_and_keep_what_was_deployed() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let good = manifest(
        &dir,
        &[("a", ""), ("b", "")],
        "[workflows.w]\nsteps = [\"a\", \"b\"]\n",
    );
    deploy(&node, &good);

    // Refused by the CLI before anything is sent: a cycle, an unknown step.
    let dir2 = tempfile::tempdir().unwrap();
    let cyclic = manifest(
        &dir2,
        &[("a", ""), ("b", "")],
        "[workflows.w]\nsteps = [{ function = \"a\", after = [\"b\"] }, \"b\"]\n",
    );
    let e = json_error(&node.cli(&["deploy", "--manifest", cyclic.to_str().unwrap(), "--json"]));
    assert_eq!(e["error"]["code"], "invalid_manifest", "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("workflows.w.steps") && msg.contains("cycle: a -> b -> a"),
        "{msg}"
    );

    // Refused by the node: a step whose function is not deployed.
    let (status, err) = put_refused(
        &node,
        "w",
        serde_json::json!({ "steps": ["a", { "function": "ghost" }] }),
    );
    assert_eq!(status, 400);
    assert_eq!(err["code"], "invalid_workflow", "{err}");
    assert_eq!(err["field"], "workflows.w.steps[1].function", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("`ghost` is not deployed"),
        "{err}"
    );
    // Malformed JSON names the workflow.
    let (status, err) = put_refused(&node, "w", serde_json::json!({ "steps": "a" }));
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("invalid_workflow")),
        "{err}"
    );

    // What was deployed still runs, unchanged.
    let wf = node.admin_get("/v1/workflows/w").json::<Value>().unwrap();
    assert_eq!(wf["version"], 1, "{wf}");
    let out = node.ok(&["workflow", "start", "w", "--data", "z", "--wait", "30s"]);
    assert_eq!(out, "z-a-b");

    // An unknown workflow, a bad state filter, a bad wait.
    let e = json_error(&node.cli(&["workflow", "start", "nope", "--json"]));
    assert_eq!(e["error"]["code"], "workflow_not_found");
    let e = json_error(&node.cli(&["workflow", "ls", "--state", "sleeping", "--json"]));
    assert_eq!(e["error"]["code"], "invalid_query");
    let resp = node
        .http()
        .post(format!("{}/v1/workflows/w/runs?wait=1h", node.url))
        .send()
        .unwrap();
    assert_eq!(crate::harness::error_of(resp).1["code"], "invalid_query");
}

#[test]
fn an_oversized_step_output_fails_the_step_and_one_mib_passes() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        &dir,
        &[
            ("mib", "config = { output_bytes = \"1048576\" }"),
            ("over", "config = { output_bytes = \"1048577\" }"),
            ("tail", ""),
        ],
        "[workflows.fits]\nsteps = [\"mib\"]\n[workflows.big]\nsteps = [\"over\", \"tail\"]\n",
    );
    deploy(&node, &path);
    let out = node.ok(&["workflow", "start", "fits", "--wait", "30s"]);
    assert_eq!(out.len(), 1 << 20);
    let r = start_failing(&node, "big");
    assert_eq!(r["state"], "failed", "{r}");
    assert_eq!(r["error"]["code"], "step_output_too_large", "{r}");
    assert_eq!(step(&r, "over")["attempts"], 1, "not retried: {r}");
    assert_eq!(step(&r, "tail")["state"], "pending");
}

#[test]
fn a_step_that_never_returns_is_stopped_and_a_run_keeps_its_deadline() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        &dir,
        &[
            ("first", ""),
            ("stuck", "clock = true\nconfig = { sleep_ms = \"60000\" }"),
        ],
        r#"[workflows.hangs]
steps = ["first", { function = "stuck", timeout = "300ms", retry = { attempts = 2, backoff = "10ms" } }]
[workflows.late]
deadline = "500ms"
steps = ["first", "stuck"]
"#,
    );
    deploy(&node, &path);
    let r = start_failing(&node, "hangs");
    assert_eq!(r["state"], "failed", "{r}");
    let stuck = step(&r, "stuck");
    assert_eq!(stuck["error"]["code"], "deadline_exceeded", "{r}");
    assert_eq!(stuck["attempts"], 2, "{r}");
    let r = start_failing(&node, "late");
    assert_eq!(r["state"], "failed", "{r}");
    assert_eq!(r["error"]["code"], "deadline_expired", "{r}");
    assert!(
        r["ended_ms"].as_u64().unwrap() - r["created_ms"].as_u64().unwrap() < 5_000,
        "the run ended long after its deadline: {r}"
    );
}

#[test]
fn a_cancelled_run_stops_and_can_be_resumed() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        &dir,
        &[
            ("slow", "clock = true\nconfig = { sleep_ms = \"1500\" }"),
            ("after", ""),
        ],
        "[workflows.w]\nsteps = [\"slow\", \"after\"]\n",
    );
    deploy(&node, &path);
    let id = node.ok(&["workflow", "start", "w", "--data", "q"]);
    let id = id.trim();
    let mut run = Value::Null;
    let running = eventually(Duration::from_secs(10), || {
        run = show(&node, id);
        step(&run, "slow")["state"] == "running"
    });
    assert!(running, "{run}");
    let e = json_error(&node.cli(&["workflow", "retry", id, "--json"]));
    assert_eq!(e["error"]["code"], "run_active", "{e}");
    let c = node.json(&["workflow", "cancel", id]);
    assert_eq!(c["state"], "cancelled", "{c}");
    std::thread::sleep(Duration::from_millis(2000));
    let run = show(&node, id);
    assert_eq!(run["state"], "cancelled", "{run}");
    assert_eq!(
        step(&run, "after")["state"],
        "pending",
        "a step ran after the cancel: {run}"
    );
    node.json(&["workflow", "retry", id]);
    let run = wait_state(&node, id, "succeeded");
    assert_eq!(run["output"], "q-slow-after");
}

/// Deploys `five`, a sequence of steps `s1`..`s5` that each sleep
/// `sleep_ms` and count their executions, and `counter`, which reads them.
fn deploy_five(node: &Node, sleep_ms: u64) {
    let dir = tempfile::tempdir().unwrap();
    let slow = format!(
        "clock = true\nkey_value_stores = [\"default\"]\nconfig = {{ sleep_ms = \"{sleep_ms}\" }}"
    );
    let steps = ["s1", "s2", "s3", "s4", "s5"];
    let mut fns: Vec<(&str, &str)> = steps.iter().map(|s| (*s, slow.as_str())).collect();
    fns.push(COUNTER);
    let path = manifest(
        &dir,
        &fns,
        "[workflows.five]\nsteps = [\"s1\", \"s2\", \"s3\", \"s4\", \"s5\"]\n",
    );
    deploy(node, &path);
}

/// Notes each step of run `id` (as shown: `run`) recorded as succeeded
/// and not noted yet, with how often it had run then: a graph's steps
/// (`RUN.STEP`), or with `orchestrator` its durable calls
/// (`RUN.ORCHESTRATOR.STEP`).
pub(crate) fn note_recorded(
    node: &Node,
    id: &str,
    run: &Value,
    orchestrator: Option<&str>,
    seen: &mut std::collections::BTreeMap<String, u64>,
) {
    for s in run["steps"].as_array().unwrap() {
        if s["state"] != "succeeded" {
            continue;
        }
        let name = s["name"].as_str().unwrap();
        let key = match orchestrator {
            None if s["kind"].is_null() => format!("{id}.{name}"),
            Some(o) if s["kind"] == "call" => format!("{id}.{o}.{name}"),
            _ => continue,
        };
        if let std::collections::btree_map::Entry::Vacant(e) = seen.entry(key) {
            let n = ran(node, e.key());
            assert!(n >= 1, "{} recorded but never ran", e.key());
            e.insert(n);
        }
    }
}

/// Reads how many times step `RUN.STEP` ran, through the `counter` function.
pub(crate) fn ran(node: &Node, step_id: &str) -> u64 {
    let resp = node.post("counter", step_id.to_string());
    assert!(resp.status().is_success(), "counter: {}", resp.status());
    resp.text().unwrap().trim().parse().unwrap()
}

#[test]
fn kill_9_mid_workflow_loses_no_run_and_runs_no_recorded_step_again() {
    let mut node = Node::start();
    deploy_five(&node, 120);
    let runs: Vec<String> = (0..12)
        .map(|i| {
            node.ok(&["workflow", "start", "five", "--data", &format!("r{i}")])
                .trim()
                .to_string()
        })
        .collect();
    // Steps recorded at some point, with how often they had run then.
    let mut seen: std::collections::BTreeMap<String, u64> = Default::default();
    for round in 0..5 {
        std::thread::sleep(Duration::from_millis(150 + 97 * round));
        node.kill9();
        node.restart();
        for id in &runs {
            note_recorded(&node, id, &show(&node, id), None, &mut seen);
        }
    }
    for (i, id) in runs.iter().enumerate() {
        let run = wait_state(&node, id, "succeeded");
        assert_eq!(run["output"], format!("r{i}-s1-s2-s3-s4-s5"), "{run}");
    }
    for (key, before) in &seen {
        assert_eq!(
            ran(&node, key),
            *before,
            "{key} ran again after it was recorded"
        );
    }
    assert!(
        seen.len() >= runs.len(),
        "the kills landed after the runs ended: {seen:?}"
    );
}

#[test]
fn a_choice_runs_one_branch_and_prunes_the_steps_after_the_other() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        &dir,
        &[
            ("classify", ""),
            ("transcode", ""),
            ("resize", ""),
            ("thumb", ""),
            ("store", ""),
        ],
        r#"[workflows.media]
steps = [
  "classify",
  { name = "video", function = "transcode", after = ["classify"], when = { equals = "video-classify" } },
  { name = "photo", function = "resize", after = ["classify"], when = { not_equals = "video-classify" } },
  { function = "thumb", after = ["photo"] },
  { function = "store", after = ["video", "thumb"] },
]
"#,
    );
    deploy(&node, &path);
    let out = node.ok(&[
        "workflow", "start", "media", "--data", "video", "--wait", "30s",
    ]);
    assert_eq!(out, r#"{"video":"video-classify-transcode"}-store"#);
    let id = newest_run(&node);
    let run = show(&node, &id);
    let states: Vec<&str> = ["classify", "video", "photo", "thumb", "store"]
        .iter()
        .map(|s| step(&run, s)["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "succeeded",
            "succeeded",
            "not_taken",
            "not_taken",
            "succeeded"
        ]
    );
    let text = node.ok(&["workflow", "show", &id]);
    assert!(text.contains("not_taken"), "{text}");

    let out = node.ok(&[
        "workflow", "start", "media", "--data", "cat", "--wait", "30s",
    ]);
    assert_eq!(out, r#"{"thumb":"cat-classify-resize-thumb"}-store"#);
    let id = newest_run(&node);
    let run = show(&node, &id);
    assert_eq!(step(&run, "video")["state"], "not_taken");
    assert_eq!(step(&run, "thumb")["state"], "succeeded");
}

#[test]
fn a_map_step_runs_once_per_item_and_answers_their_outputs_in_order() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        &dir,
        &[("resize", "key_value_stores = [\"default\"]"), COUNTER],
        r#"[workflows.album]
steps = [{ name = "each", function = "resize", map = true, items = "/photos", concurrency = 2 }]

[workflows.flat]
steps = [{ function = "resize", map = true }]
"#,
    );
    deploy(&node, &path);
    let data = r#"{"photos": ["a", "b", {"n": 1}, "d", "e"]}"#;
    let out = node.ok(&[
        "workflow", "start", "album", "--data", data, "--wait", "30s",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        serde_json::json!([
            "a-resize",
            "b-resize",
            "{\"n\":1}-resize",
            "d-resize",
            "e-resize"
        ])
    );
    let id = newest_run(&node);
    for i in 0..5 {
        assert_eq!(ran(&node, &format!("{id}.each.{i}")), 1, "item {i}");
    }
    // An empty list maps to an empty list; a list at the top level is
    // taken whole.
    let out = node.ok(&["workflow", "start", "flat", "--data", "[]", "--wait", "30s"]);
    assert_eq!(out, "[]");
    let out = node.ok(&[
        "workflow", "start", "flat", "--data", "[\"x\"]", "--wait", "30s",
    ]);
    assert_eq!(out, r#"["x-resize"]"#);
    // Input that holds no list fails the step, naming it and the path.
    for (wf, data, want) in [
        (
            "album",
            "not json",
            "step `each` maps over a list, and its input is not JSON",
        ),
        (
            "album",
            r#"{"photos": 3}"#,
            "the list at `/photos` of its input, and finds a number",
        ),
        (
            "album",
            r#"{"other": []}"#,
            "the list at `/photos` of its input, and nothing is there",
        ),
    ] {
        let run = {
            let out = node.cli(&[
                "workflow", "start", wf, "--data", data, "--wait", "30s", "--json",
            ]);
            assert!(!out.status.success(), "{data} passed");
            serde_json::from_slice::<Value>(&out.stdout).unwrap()
        };
        assert_eq!(run["state"], "failed", "{run}");
        assert_eq!(run["error"]["code"], "invalid_step_input", "{run}");
        let message = run["error"]["message"].as_str().unwrap();
        assert!(message.contains(want), "{message}");
    }
}

#[test]
fn kill_9_mid_map_reruns_only_the_items_not_recorded() {
    let mut node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        &dir,
        &[
            (
                "resize",
                "clock = true\nkey_value_stores = [\"default\"]\nconfig = { sleep_ms = \"300\" }",
            ),
            COUNTER,
        ],
        "[workflows.album]\nsteps = [{ name = \"each\", function = \"resize\", map = true, concurrency = 1 }]\n",
    );
    deploy(&node, &path);
    let id = node
        .ok(&[
            "workflow",
            "start",
            "album",
            "--data",
            r#"["a", "b", "c", "d"]"#,
        ])
        .trim()
        .to_string();
    // Item 1 started: item 0 is recorded.
    assert!(
        eventually(Duration::from_secs(30), || ran(
            &node,
            &format!("{id}.each.1")
        ) >= 1),
        "item 1 never started\n{}",
        node.log()
    );
    node.kill9();
    node.restart();
    let run = wait_state(&node, &id, "succeeded");
    assert_eq!(
        run["output"],
        serde_json::json!(["a-resize", "b-resize", "c-resize", "d-resize"])
    );
    assert_eq!(ran(&node, &format!("{id}.each.0")), 1, "item 0 ran again");
    for i in 1..4 {
        assert!(ran(&node, &format!("{id}.each.{i}")) >= 1, "item {i}");
    }
}

#[test]
fn steps_whose_declared_types_do_not_fit_are_refused_naming_both() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let image = r#"{ type = "object", required = ["image"], properties = { image = { type = "string" } } }"#;
    let labels = r#"{ type = "object", required = ["labels"], properties = { labels = { type = "array", items = { type = "string" } } } }"#;
    let fns = [
        ("resize", format!("input = {image}\noutput = {image}")),
        ("detect", format!("input = {image}\noutput = {labels}")),
        ("store", format!("input = {labels}")),
        ("tag", "input = { type = \"string\" }".to_string()),
    ];
    let fns: Vec<(&str, &str)> = fns.iter().map(|(n, b)| (*n, b.as_str())).collect();
    let path = manifest(
        &dir,
        &fns,
        r#"[workflows.fits]
steps = ["resize", "detect", "store"]

[workflows.album]
steps = [{ function = "detect", after = [] }, { name = "each", function = "tag", map = true, items = "/labels" }]
"#,
    );
    deploy(&node, &path);

    // resize answers an image where store takes labels.
    let (status, err) = put_refused(
        &node,
        "bad",
        serde_json::json!({ "steps": ["resize", "store"] }),
    );
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("invalid_workflow")),
        "{err}"
    );
    assert_eq!(err["field"], "workflows.bad.steps[1]", "{err}");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("step `store` (function `store`) may not take what step `resize` answers")
            && msg.contains("/labels: it is required, and not always answered"),
        "{msg}"
    );
    // A map over items of the wrong type names the item.
    let (_, err) = put_refused(
        &node,
        "bad",
        serde_json::json!({ "steps": ["resize", { "function": "tag", "map": true, "items": "/image" }] }),
    );
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("may not take an item of what step `resize` answers: the value: string may be answered, and array is taken"),
        "{msg}"
    );
    // Nothing was deployed under that name.
    let resp = node.admin_get("/v1/workflows/bad");
    assert_eq!(resp.status(), 404);

    // A run whose input does not fit the first step is refused at start.
    let e = json_error(&node.cli(&[
        "workflow",
        "start",
        "fits",
        "--data",
        "{\"img\": 1}",
        "--json",
    ]));
    assert_eq!(e["error"]["code"], "invalid_step_input", "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(
            "step `resize` cannot take the run's input: /image: it is required, and missing"
        ),
        "{msg}"
    );
    assert_eq!(
        node.json(&["workflow", "ls"])["runs"],
        serde_json::json!([])
    );
    // The same from deploy flags: a schema inline or from a file.
    let module = guest("workflow-step.wasm");
    let schema = dir.path().join("labels.json");
    std::fs::write(&schema, r#"{"type": "object", "required": ["labels"]}"#).unwrap();
    let at_file = format!("@{}", schema.display());
    node.ok(&[
        "deploy",
        "count",
        module.to_str().unwrap(),
        "--input-schema",
        &at_file,
        "--output-schema",
        r#"{"type": "integer"}"#,
    ]);
    let (_, err) = put_refused(
        &node,
        "bad",
        serde_json::json!({ "steps": ["count", "tag"] }),
    );
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("step `tag` (function `tag`) may not take what step `count` answers: the value: integer may be answered, and string is taken"),
        "{msg}"
    );
    let (_, err) = put_refused(
        &node,
        "bad",
        serde_json::json!({ "steps": ["resize", "count"] }),
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("/labels: it is required"),
        "{err}"
    );
    let e = json_error(&node.cli(&[
        "deploy",
        "count",
        module.to_str().unwrap(),
        "--input-schema",
        "{not json",
        "--json",
    ]));
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("--input-schema: not JSON"),
        "{e}"
    );
    // A bad schema is refused when the function is deployed.
    let dir2 = tempfile::tempdir().unwrap();
    let bad = manifest(&dir2, &[("odd", "input = { type = \"text\" }")], "");
    let e = json_error(&node.cli(&["deploy", "--manifest", bad.to_str().unwrap(), "--json"]));
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("functions.odd.input.type") && msg.contains("`\"text\"` is not one of"),
        "{msg}"
    );
    // A step whose answer breaks its function's declared `output` fails,
    // unrecorded and not retried; one that keeps it passes it on.
    for (name, schema) in [
        ("honest", r#"{"type": "string"}"#),
        ("liar", r#"{"type": "object"}"#),
    ] {
        node.ok(&[
            "deploy",
            name,
            module.to_str().unwrap(),
            "--output-schema",
            schema,
        ]);
    }
    let put = node
        .http()
        .put(format!("{}/v1/workflows/promises", node.url))
        .json(&serde_json::json!({ "steps": ["honest", "liar"] }))
        .send()
        .unwrap();
    assert!(put.status().is_success(), "{}", put.text().unwrap());
    let run = start_failing(&node, "promises");
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(step(&run, "honest")["state"], "succeeded", "{run}");
    let liar = step(&run, "liar");
    assert_eq!(liar["state"], "failed", "{run}");
    assert_eq!(liar["attempts"], 1, "{run}");
    assert_eq!(liar["error"]["code"], "invalid_step_output", "{run}");
    let msg = liar["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("step `liar` answered what function `liar` declares it does not")
            && msg.contains("string"),
        "{msg}"
    );
    assert_eq!(run["error"]["code"], "invalid_step_output", "{run}");

    // A function redeployed with a schema its neighbour no longer fits:
    // a run of the workflow is refused at start, naming both steps.
    node.ok(&[
        "deploy",
        "store",
        module.to_str().unwrap(),
        "--input-schema",
        r#"{"type": "object", "required": ["boxes"]}"#,
    ]);
    let e = json_error(&node.cli(&[
        "workflow",
        "start",
        "fits",
        "--data",
        r#"{"image": "a.png"}"#,
        "--json",
    ]))["error"]
        .clone();
    assert_eq!(e["code"], "invalid_workflow", "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("workflows.fits.steps[2]")
            && msg.contains("may not take what step `detect` answers")
            && msg.contains("redeployed"),
        "{msg}"
    );
}

/// A node of a fabric whose platform store (the workflows' journal) and
/// `default` store (the steps' execution counts) are the fabric's
/// JetStream; beats every 300 ms, so a node that dies is seen gone within
/// about a second.
pub(crate) fn fabric_node(url: &str, name: &str) -> Node {
    Node::start_with_config(&format!(
        "[fabric]\nurl = \"{url}\"\nname = \"{name}\"\ntier = \"edge\"\nheartbeat = \"300ms\"\n\n\
         [kv.default]\nbackend = \"fabric\"\n\n[kv.shared]\nbackend = \"fabric\"\n\n\
         [state]\nfunction = \"shared\"\n"
    ))
}

/// Every step of `runs` recorded as seen from `node`, with how often it
/// had run then (counted by the guest, in the shared store).
fn recorded_steps(node: &Node, runs: &[String]) -> std::collections::BTreeMap<String, u64> {
    let mut seen = std::collections::BTreeMap::new();
    for id in runs {
        note_recorded(node, id, &show(node, id), None, &mut seen);
    }
    seen
}

#[test]
fn in_a_fabric_the_runs_of_a_node_killed_mid_workflow_go_on_elsewhere() {
    let nats = crate::servers::Nats::hub();
    let mut nodes = [
        fabric_node(&nats.url(), "edge-1"),
        fabric_node(&nats.url(), "edge-2"),
    ];
    let long = Duration::from_secs(30);
    assert!(eventually(long, || crate::fabric::sees(
        &nodes[0], "edge-2", true
    ) && crate::fabric::sees(
        &nodes[1], "edge-1", true
    )));
    deploy_five(&nodes[0], 150);
    assert!(eventually(long, || crate::fabric::lists(
        &nodes[1], "counter"
    )));
    // Twice: runs started at one node, which is killed mid-run; the other
    // takes them over and ends them, running no recorded step again. The
    // killed node comes back and drives nothing it lost.
    for (round, (dies, lives)) in [(1usize, 0usize), (0, 1)].into_iter().enumerate() {
        let (died, took) = (format!("edge-{}", dies + 1), format!("edge-{}", lives + 1));
        let runs: Vec<String> = (0..6)
            .map(|i| {
                nodes[dies]
                    .ok(&[
                        "workflow",
                        "start",
                        "five",
                        "--data",
                        &format!("r{round}{i}"),
                    ])
                    .trim()
                    .to_string()
            })
            .collect();
        // Some steps recorded, none of the runs ended.
        assert!(eventually(long, || runs.iter().all(|id| {
            step(&show(&nodes[dies], id), "s1")["state"] == "succeeded"
        })));
        nodes[dies].kill9();
        let seen = recorded_steps(&nodes[lives], &runs);
        for (i, id) in runs.iter().enumerate() {
            let run = wait_state(&nodes[lives], id, "succeeded");
            assert_eq!(
                run["output"],
                format!("r{round}{i}-s1-s2-s3-s4-s5"),
                "{run}"
            );
            assert_eq!(run["node"], took, "{run}");
        }
        for (key, before) in &seen {
            assert_eq!(
                ran(&nodes[lives], key),
                *before,
                "{key} ran again after it was recorded"
            );
        }
        let log = nodes[lives].log();
        assert!(
            log.contains("workflow run taken over") && log.contains(&died),
            "{log}"
        );
        nodes[dies].restart();
        assert!(eventually(long, || crate::fabric::sees(
            &nodes[lives],
            &died,
            true
        )));
    }
    // Nothing ran twice once recorded, after both came back either.
    let all = nodes[0].json(&["workflow", "ls"]);
    for r in all["runs"].as_array().unwrap() {
        assert_eq!(r["state"], "succeeded", "{r}");
    }
}

#[test]
fn a_workflows_privacy_keeps_its_steps_and_its_journal_within_it() {
    let nats = crate::servers::Nats::hub();
    // An edge node of site a and a cloud node of site b, each keeping its
    // journal in its own store.
    let node = |name: &str, tier: &str, site: &str| {
        Node::start_with_config(&format!(
            "[fabric]\nurl = \"{}\"\nname = \"{name}\"\ntier = \"{tier}\"\nheartbeat = \"300ms\"\n\
             labels = {{ site = \"{site}\" }}\n",
            nats.url()
        ))
    };
    let edge = node("edge-a", "edge", "a");
    let cloud = node("cloud-b", "cloud", "b");
    let long = Duration::from_secs(30);
    assert!(eventually(long, || crate::fabric::sees(
        &edge, "cloud-b", true
    )));
    // `up` runs in the cloud only; `open` may follow it there, `closed`
    // keeps its data within the site it starts at.
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        &dir,
        &[("up", "[functions.up.placement]\ntier = [\"cloud\"]")],
        "[workflows.open]\nsteps = [\"up\"]\n\n[workflows.closed]\nsteps = [\"up\"]\nprivacy = \"site\"\n",
    );
    deploy(&edge, &path);
    assert!(eventually(long, || crate::fabric::lists(&cloud, "up")));
    let out = edge.ok(&["workflow", "start", "open", "--data", "x", "--wait", "30s"]);
    assert_eq!(out, "x-up");
    assert_eq!(
        step(&show(&edge, &newest_run(&edge)), "up")["node"],
        "cloud-b"
    );
    // Its step has no node within the site: it waits for one (as a step
    // turned away does), saying why.
    let id = edge
        .ok(&["workflow", "start", "closed", "--data", "y"])
        .trim()
        .to_string();
    let mut run = Value::Null;
    assert!(
        eventually(long, || {
            run = show(&edge, &id);
            step(&run, "up")["last_error"]["code"] == "no_eligible_node"
        }),
        "{run}"
    );
    let why = step(&run, "up")["last_error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(why.contains("privacy"), "{run}");
    assert_eq!(run["confined"]["privacy"], "site", "{run}");
    assert_eq!(run["confined"]["site"], "a", "{run}");
    let text = edge.ok(&["workflow", "show", &id]);
    assert!(
        text.contains("to be tried again after no_eligible_node"),
        "{text}"
    );
    edge.ok(&["workflow", "cancel", &id]);

    // A journal in the fabric's JetStream may be anywhere: a workflow
    // with a privacy is refused there, naming the field and the store.
    let shared = crate::workflows::fabric_node(&nats.url(), "edge-s");
    let out = shared.cli(&["deploy", "--manifest", path.to_str().unwrap(), "--json"]);
    let e = json_error(&out)["error"].clone();
    let msg = e["message"].as_str().unwrap();
    assert_eq!(e["code"], "invalid_workflow", "{e}");
    assert!(
        msg.contains("workflows.closed.privacy") && msg.contains("JetStream"),
        "{e}"
    );
}
