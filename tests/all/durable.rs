//! Workflows in code: an orchestrator (`examples/orchestrator`) takes
//! durable steps through `weft:fabric/durable`; each is journaled, a
//! replay answers it from the journal, sleeps and waits for events
//! suspend the run, and kill -9 loses nothing recorded.

use crate::harness::{Node, eventually, guest, json_error};
use crate::workflows::{COUNTER, deploy, newest_run, note_recorded, ran, show, step, wait_state};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Writes a manifest: functions `a`, `b` and `slow` (workflow-step, each
/// counting its executions; `slow` takes 150 ms), `bad` (always fails,
/// once), `counter`, and `orch`, the orchestrator, whose plan is `plan`
/// (`orch_extra`: more TOML for its table); and the workflow `flow`
/// orchestrated by it.
fn manifest(dir: &tempfile::TempDir, plan: &str, orch_extra: &str) -> PathBuf {
    let step = guest("workflow-step.wasm").display().to_string();
    let orch = guest("orchestrator.wasm").display().to_string();
    let counted = "key_value_stores = [\"default\"]";
    let mut text = String::from("manifest_version = 1\n");
    for (name, body) in [
        ("a", counted.to_string()),
        ("b", counted.to_string()),
        (
            "slow",
            format!("{counted}\nclock = true\nconfig = {{ sleep_ms = \"150\" }}"),
        ),
        (
            "bad",
            "retry = { attempts = 1 }\nconfig = { fail_attempts = \"100\" }".to_string(),
        ),
        (COUNTER.0, COUNTER.1.to_string()),
    ] {
        text.push_str(&format!("[functions.{name}]\nmodule = {step:?}\n{body}\n"));
    }
    text.push_str(&format!(
        "[functions.orch]\nmodule = {orch:?}\ncalls = [\"a\", \"b\", \"slow\", \"bad\"]\n\
         key_value_stores = [\"default\"]\nconfig = {{ plan = {plan:?} }}\n{orch_extra}\n\
         [workflows.flow]\nfunction = \"orch\"\n"
    ));
    let path = dir.path().join("weft.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(node: &Node, data: &str) -> String {
    node.ok(&["workflow", "start", "flow", "--data", data])
        .trim()
        .to_string()
}

/// Waits until run `id` shows durable step `name` in `state`.
fn wait_step(node: &Node, id: &str, name: &str, state: &str) -> Value {
    let mut last = Value::Null;
    let ok = eventually(Duration::from_secs(30), || {
        last = show(node, id);
        last["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == name && s["state"] == state)
    });
    assert!(
        ok,
        "step {name} of {id} never {state}: {last}\n{}",
        node.log()
    );
    last
}

#[test]
fn a_workflow_in_code_takes_durable_steps_and_shows_each() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    deploy(&node, &manifest(&dir, "call:a,value,call:b", ""));

    let out = node.ok(&["workflow", "start", "flow", "--data", "x", "--wait", "30s"]);
    assert_eq!(out, "x-a-v1-b");

    let id = start(&node, "y");
    let run = wait_state(&node, &id, "succeeded");
    assert_eq!(run["output"], "y-a-v1-b", "{run}");
    let orch = step(&run, "orch");
    assert_eq!(orch["state"], "succeeded", "{orch}");
    assert!(orch.get("kind").is_none(), "{orch}");
    let a = step(&run, "a-0");
    assert_eq!(
        (
            a["kind"].as_str(),
            a["function"].as_str(),
            a["state"].as_str()
        ),
        (Some("call"), Some("a"), Some("succeeded")),
        "{a}"
    );
    assert!(a["node"].as_str().is_some_and(|n| !n.is_empty()), "{a}");
    assert_eq!(a["bytes"], 3, "{a}");
    assert_eq!(step(&run, "value-1")["kind"], "value");
    assert_eq!(step(&run, "b-2")["kind"], "call");
    // The callee's invocation id is `RUN.ORCHESTRATOR.STEP`: it ran once.
    assert_eq!(ran(&node, &format!("{id}.orch.a-0")), 1);
    assert_eq!(ran(&node, &format!("{id}.orch.b-2")), 1);

    let text = node.ok(&["workflow", "show", &id]);
    for s in ["✓ orch", "a-0 (call a)", "value-1 (value)", "b-2 (call b)"] {
        assert!(text.contains(s), "{s} missing from:\n{text}");
    }

    // The orchestrator invoked on its own has no run to take steps in:
    // refused, and its log says why.
    let out = node.cli(&["invoke", "orch", "--data", "z"]);
    assert!(!out.status.success());
    let logs = node.ok(&["logs", "orch"]);
    assert!(
        logs.contains("denied: durable steps are for a workflow's orchestrator"),
        "{logs}"
    );
}

#[test]
fn a_durable_sleep_suspends_the_run_and_outlives_kill_9() {
    let mut node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    deploy(&node, &manifest(&dir, "call:a,sleep:2000,call:b", ""));
    let began = Instant::now();
    let id = start(&node, "x");
    let run = wait_step(&node, &id, "sleep-1", "succeeded");
    let sleep = step(&run, "sleep-1");
    assert_eq!(sleep["kind"], "sleep");
    let until = sleep["until_ms"].as_u64().unwrap();
    assert_eq!(
        until - sleep["started_ms"].as_u64().unwrap(),
        2000,
        "{sleep}"
    );
    assert_eq!(run["state"], "running");
    assert!(
        run["steps"].as_array().unwrap().len() == 3,
        "b ran before the sleep ended: {run}"
    );
    // Killed while it sleeps: the clock goes on from the journal.
    node.kill9();
    node.restart();
    let run = wait_state(&node, &id, "succeeded");
    assert_eq!(run["output"], "x-a-b", "{run}");
    assert!(began.elapsed() >= Duration::from_millis(2000));
    let b = step(&run, "b-2");
    assert!(
        b["started_ms"].as_u64().unwrap() >= until,
        "{b} before {until}"
    );
    assert_eq!(ran(&node, &format!("{id}.orch.a-0")), 1, "a ran again");
}

#[test]
fn an_event_wakes_a_waiting_run_and_bad_events_are_refused() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    deploy(&node, &manifest(&dir, "call:a,event:approve,call:b", ""));
    let id = start(&node, "x");
    let run = wait_step(&node, &id, "approve", "waiting");
    assert_eq!(step(&run, "approve")["kind"], "event");
    // No instance lives while the run waits: the orchestrator is suspended.
    let run = wait_step(&node, &id, "orch", "suspended");
    assert_eq!(run["state"], "running");
    assert!(
        node.ok(&["workflow", "show", &id])
            .contains("… approve (event)")
    );

    let sent = node.json(&["workflow", "signal", &id, "approve", "--data", "yes"]);
    assert_eq!(
        (sent["event"].as_str(), sent["bytes"].as_u64()),
        (Some("approve"), Some(3))
    );
    let run = wait_state(&node, &id, "succeeded");
    assert_eq!(run["output"], "x-a+yes-b", "{run}");
    assert_eq!(step(&run, "approve")["state"], "succeeded");

    // To a run that ended; a bad name; no such run: each refused, named.
    let refused = |args: &[&str], code: &str| {
        let e = json_error(&node.cli(&[args, &["--json"]].concat()))["error"].clone();
        assert_eq!(e["code"], code, "{args:?}: {e}");
        e
    };
    let e = refused(
        &["workflow", "signal", &id, "approve", "--data", "again"],
        "run_ended",
    );
    assert!(e["message"].as_str().unwrap().contains("succeeded"), "{e}");
    refused(&["workflow", "signal", &id, "Not A Name"], "invalid_event");
    refused(
        &["workflow", "signal", "nosuchrun", "approve"],
        "run_not_found",
    );

    // Sent before the run waits for it, it is kept; sent twice, refused.
    deploy(&node, &manifest(&dir, "sleep:600,event:approve,call:b", ""));
    let id = start(&node, "w");
    node.ok(&["workflow", "signal", &id, "approve", "--data", "early"]);
    refused(
        &["workflow", "signal", &id, "approve", "--data", "late"],
        "event_sent",
    );
    let run = wait_state(&node, &id, "succeeded");
    assert_eq!(run["output"], "w+early-b", "{run}");

    // Over HTTP, an event of more than 1 MiB.
    deploy(&node, &manifest(&dir, "event:big,call:b", ""));
    let id = start(&node, "v");
    let resp = node
        .http()
        .post(format!("{}/v1/runs/{id}/events/big", node.url))
        .body(vec![b'x'; (1 << 20) + 1])
        .send()
        .unwrap();
    let (status, e) = crate::harness::error_of(resp);
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("invalid_event")),
        "{e}"
    );
    let resp = node
        .http()
        .post(format!("{}/v1/runs/{id}/events/big", node.url))
        .body("ok")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    assert_eq!(wait_state(&node, &id, "succeeded")["output"], "v+ok-b");

    // A wait that times out answers nothing.
    deploy(&node, &manifest(&dir, "event:never:300,call:b", ""));
    let id = start(&node, "t");
    let run = wait_state(&node, &id, "succeeded");
    assert_eq!(run["output"], "t+none-b", "{run}");
    assert_eq!(step(&run, "never")["state"], "not_taken");

    // A workflow of steps waits for no events.
    let steps = dir.path().join("steps.toml");
    std::fs::write(
        &steps,
        format!(
            "manifest_version = 1\n[functions.nap]\nmodule = {:?}\nclock = true\n\
             config = {{ sleep_ms = \"1500\" }}\n[workflows.plain]\nsteps = [\"nap\"]\n",
            guest("workflow-step.wasm").display().to_string()
        ),
    )
    .unwrap();
    deploy(&node, &steps);
    let id = node.ok(&["workflow", "start", "plain"]).trim().to_string();
    let e = refused(&["workflow", "signal", &id, "approve"], "invalid_event");
    assert!(e["message"].as_str().unwrap().contains("plain"), "{e}");
    wait_state(&node, &id, "succeeded");
}

#[test]
fn a_failed_durable_call_is_recorded_and_an_operator_retries_it() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    // `try:` hands the failure to the orchestrator, which goes on.
    deploy(&node, &manifest(&dir, "call:a,try:bad,call:b", ""));
    let out = node.ok(&["workflow", "start", "flow", "--data", "x", "--wait", "30s"]);
    assert_eq!(out, "x-a!failed-b");
    let id = newest_run(&node);
    let run = show(&node, &id);
    let bad = step(&run, "bad-1");
    assert_eq!(bad["state"], "failed", "{bad}");
    assert_eq!(bad["error"]["code"], "function_exit", "{bad}");

    // `call:` fails the run with it. Skipping the step with an output
    // goes on from there; a retry runs the failed step and what follows,
    // and not what was recorded before it.
    deploy(
        &node,
        &manifest(&dir, "call:a,call:bad,call:b", "retry = { attempts = 1 }"),
    );
    let failing = |data: &str| {
        let out = node.cli(&[
            "workflow", "start", "flow", "--data", data, "--wait", "30s", "--json",
        ]);
        assert!(!out.status.success());
        let run: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(run["state"], "failed", "{run}");
        assert_eq!(step(&run, "bad-1")["state"], "failed", "{run}");
        run["id"].as_str().unwrap().to_string()
    };
    let id = failing("s");
    node.ok(&[
        "workflow", "skip", &id, "--step", "bad-1", "--output", "fixed",
    ]);
    let run = wait_state(&node, &id, "succeeded");
    assert_eq!(run["output"], "fixed-b", "{run}");
    assert_eq!(step(&run, "bad-1")["state"], "skipped", "{run}");
    assert_eq!(ran(&node, &format!("{id}.orch.a-0")), 1, "a ran again");

    let id = failing("y");
    deploy(
        &node,
        &manifest(&dir, "call:a,call:b,call:b", "retry = { attempts = 1 }"),
    );
    // The orchestrator changed: the journal's `bad-1` is not what it asks
    // for now. The operator forgets `bad-1` and what came after it.
    node.ok(&["workflow", "retry", &id, "--step", "bad-1"]);
    let run = wait_state(&node, &id, "succeeded");
    assert_eq!(run["output"], "y-a-b-b", "{run}");
    assert_eq!(ran(&node, &format!("{id}.orch.a-0")), 1, "a ran again");
    assert!(
        run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != "bad-1")
    );

    // An orchestrator whose steps no longer match its journal fails the
    // run, saying so.
    deploy(
        &node,
        &manifest(&dir, "call:a,event:go,call:b", "retry = { attempts = 1 }"),
    );
    let id = start(&node, "z");
    wait_step(&node, &id, "go", "waiting");
    deploy(
        &node,
        &manifest(&dir, "call:b,event:go,call:b", "retry = { attempts = 1 }"),
    );
    node.ok(&["workflow", "signal", &id, "go"]);
    let run = wait_state(&node, &id, "failed");
    let why = run["error"]["message"].as_str().unwrap();
    assert!(
        why.contains("not deterministic")
            && why.contains("`a-0` (a call of `a`)")
            && why.contains("`b-0` (a call of `b`)"),
        "{run}"
    );
    // Put back, a retry replays the journal and goes on.
    deploy(
        &node,
        &manifest(&dir, "call:a,event:go,call:b", "retry = { attempts = 1 }"),
    );
    node.ok(&["workflow", "retry", &id]);
    let run = wait_state(&node, &id, "succeeded");
    assert_eq!(run["output"], "z-a+-b", "{run}");
    assert_eq!(ran(&node, &format!("{id}.orch.a-0")), 1, "a ran again");
}

#[test]
fn bad_workflows_in_code_are_refused_naming_the_field() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(&dir, "call:a", "");
    let text = std::fs::read_to_string(&path).unwrap();
    for (extra, field, says) in [
        ("steps = [\"a\"]\n", "workflows.flow.function", "not both"),
        ("output = \"a\"\n", "workflows.flow.output", "no `output`"),
    ] {
        std::fs::write(&path, format!("{text}{extra}")).unwrap();
        let e = json_error(&node.cli(&["deploy", "--manifest", path.to_str().unwrap(), "--json"]))
            ["error"]
            .clone();
        assert_eq!(e["code"], "invalid_manifest", "{e}");
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains(field) && msg.contains(says), "{e}");
    }
    let unknown = text.replace("function = \"orch\"", "function = \"nope\"");
    std::fs::write(&path, unknown).unwrap();
    let e =
        json_error(&node.cli(&["deploy", "--manifest", path.to_str().unwrap(), "--json"]))["error"]
            .clone();
    assert!(e["message"].as_str().unwrap().contains("nope"), "{e}");
    assert_eq!(
        node.json(&["workflow", "ls"])["runs"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn kill_9_mid_workflow_in_code_runs_no_recorded_step_again() {
    let mut node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    deploy(
        &node,
        &manifest(&dir, "call:slow,call:slow,value,call:slow,call:slow", ""),
    );
    let runs: Vec<String> = (0..6).map(|i| start(&node, &format!("r{i}"))).collect();
    let mut seen: std::collections::BTreeMap<String, u64> = Default::default();
    // Runs found part-way (some calls recorded, not all) after a kill.
    let mut cut = 0;
    for round in 0..4 {
        std::thread::sleep(Duration::from_millis(200 + 90 * round));
        node.kill9();
        node.restart();
        for id in &runs {
            let run = show(&node, id);
            let calls = run["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["kind"] == "call" && s["state"] == "succeeded")
                .count();
            if (1..4).contains(&calls) && run["state"] == "running" {
                cut += 1;
            }
            note_recorded(&node, id, &run, Some("orch"), &mut seen);
        }
    }
    for (i, id) in runs.iter().enumerate() {
        let run = wait_state(&node, id, "succeeded");
        // `value`'s code runs again only if a kill fell between it and its
        // record (at least once): its count is in its output.
        let out = run["output"].as_str().unwrap();
        let (head, tail) = out.split_once("-v").unwrap_or_else(|| panic!("{run}"));
        assert_eq!(head, format!("r{i}-slow-slow"), "{run}");
        assert!(tail.ends_with("-slow-slow"), "{run}");
    }
    for (key, before) in &seen {
        assert_eq!(
            ran(&node, key),
            *before,
            "{key} ran again after it was recorded"
        );
    }
    assert!(cut > 0, "no kill landed mid-run");
}

#[test]
fn in_a_fabric_events_reach_a_run_through_any_node_and_its_runs_outlive_its_node() {
    let nats = crate::servers::Nats::hub();
    let mut nodes = [
        crate::workflows::fabric_node(&nats.url(), "edge-1"),
        crate::workflows::fabric_node(&nats.url(), "edge-2"),
    ];
    let long = Duration::from_secs(30);
    assert!(eventually(long, || crate::fabric::sees(
        &nodes[0], "edge-2", true
    ) && crate::fabric::sees(
        &nodes[1], "edge-1", true
    )));
    let dir = tempfile::tempdir().unwrap();
    deploy(
        &nodes[0],
        &manifest(&dir, "call:slow,event:go,call:slow,call:slow", ""),
    );
    assert!(eventually(long, || crate::fabric::lists(&nodes[1], "orch")
        && crate::fabric::lists(&nodes[1], "counter")));
    let start_on = |node: &Node, data: &str| {
        node.ok(&["workflow", "start", "flow", "--data", data])
            .trim()
            .to_string()
    };

    // Sent through the node that does not drive the run: its driver finds
    // the event in the shared journal.
    let id = start_on(&nodes[0], "p");
    wait_step(&nodes[0], &id, "go", "waiting");
    nodes[1].ok(&["workflow", "signal", &id, "go", "--data", "ok"]);
    let run = wait_state(&nodes[0], &id, "succeeded");
    assert_eq!(run["output"], "p-slow+ok-slow-slow", "{run}");
    assert_eq!(run["node"], "edge-1", "{run}");

    // Runs waiting at a node killed -9 go on at the other, which replays
    // their journals: the event sent meanwhile reaches them, and no call
    // recorded before runs again.
    let runs: Vec<String> = (0..4)
        .map(|i| start_on(&nodes[0], &format!("r{i}")))
        .collect();
    for id in &runs {
        wait_step(&nodes[0], id, "go", "waiting");
    }
    nodes[0].kill9();
    for id in &runs {
        nodes[1].ok(&["workflow", "signal", id, "go", "--data", "late"]);
    }
    for (i, id) in runs.iter().enumerate() {
        let run = wait_state(&nodes[1], id, "succeeded");
        assert_eq!(run["output"], format!("r{i}-slow+late-slow-slow"), "{run}");
        assert_eq!(run["node"], "edge-2", "{run}");
        assert_eq!(
            ran(&nodes[1], &format!("{id}.orch.slow-0")),
            1,
            "slow-0 ran again"
        );
    }
}

#[test]
fn a_long_run_replays_its_journal_in_batches() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    // 300 values (more than one batch of records), then a sleep: the
    // orchestrator runs again and replays all 300 from the journal, none
    // of whose code runs again (each counts its runs in its value).
    let plan = format!("{}sleep:10,call:a", "value,".repeat(300));
    deploy(&node, &manifest(&dir, &plan, ""));
    let out = node.ok(&["workflow", "start", "flow", "--data", "x", "--wait", "60s"]);
    assert_eq!(out, format!("x{}-a", "-v1".repeat(300)));
    let run = show(&node, &newest_run(&node));
    assert_eq!(run["steps"].as_array().unwrap().len(), 1 + 300 + 2, "{run}");
}
