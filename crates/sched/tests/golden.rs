//! Golden placement scenarios: each `tests/golden/*.json` holds a `view`, a
//! `request`, the expected `decision` (or `{"error": "..."}`), its
//! `explain` line, and in `why` the hand computation that says why that node
//! must win. `UPDATE_GOLDEN=1` (or `BLESS=1`) rewrites the expected parts
//! from what the code decides now — check the diff against `why`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use weft_sched::{Decision, Request, View, place};

struct Case {
    path: PathBuf,
    why: Value,
    view: View,
    request: Request,
    decision: Value,
    explain: Value,
}

fn cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 8, "golden scenarios missing in {dir:?}");
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut take = |k: &str| v.get_mut(k).map(Value::take).unwrap_or(Value::Null);
            let why = take("why");
            let view = serde_json::from_value(take("view"))
                .unwrap_or_else(|e| panic!("{}: view: {e}", path.display()));
            let request = serde_json::from_value(take("request"))
                .unwrap_or_else(|e| panic!("{}: request: {e}", path.display()));
            assert!(
                why.is_array() || why.is_string(),
                "{}: say in `why` why that node must win",
                path.display()
            );
            Case {
                path,
                why,
                view,
                request,
                decision: take("decision"),
                explain: take("explain"),
            }
        })
        .collect()
}

/// What the policy decides now, as it is written in a golden file.
struct Outcome {
    /// The decision, or `{"error": message}`; typed, so it is written in
    /// field order.
    decision: Result<Decision, Value>,
    /// `Decision::explain`, or null for an error.
    explain: Value,
}

impl Outcome {
    fn decision_value(&self) -> Value {
        match &self.decision {
            Ok(d) => serde_json::to_value(d).unwrap(),
            Err(e) => e.clone(),
        }
    }
}

fn outcome(view: &View, request: &Request) -> Outcome {
    match place(view, request) {
        Ok(d) => Outcome {
            explain: Value::String(d.explain()),
            decision: Ok(d),
        },
        Err(e) => Outcome {
            decision: Err(json!({ "error": e.to_string() })),
            explain: Value::Null,
        },
    }
}

/// `outcome` serialized compactly: the bytes the determinism test compares.
fn outcome_bytes(view: &View, request: &Request) -> String {
    match outcome(view, request).decision {
        Ok(d) => serde_json::to_string(&d).unwrap(),
        Err(e) => e.to_string(),
    }
}

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v)
        .unwrap()
        .replace('\n', "\n  ")
}

/// The canonical file: `why`, `view`, `request`, `decision`, `explain`.
fn render(c: &Case, decision: &Result<Decision, Value>, explain: &Value) -> String {
    let decision = match decision {
        Ok(d) => pretty(d),
        Err(e) => pretty(e),
    };
    let mut s = format!(
        "{{\n  \"why\": {},\n  \"view\": {},\n  \"request\": {},\n  \"decision\": {}",
        pretty(&c.why),
        pretty(&c.view),
        pretty(&c.request),
        decision
    );
    if !explain.is_null() {
        s.push_str(&format!(",\n  \"explain\": {}", pretty(explain)));
    }
    s.push_str("\n}\n");
    s
}

fn blessing() -> bool {
    ["UPDATE_GOLDEN", "BLESS"]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0"))
}

#[test]
fn golden_scenarios() {
    let bless = blessing();
    let mut failures = Vec::new();
    for c in cases() {
        let now = outcome(&c.view, &c.request);
        if bless {
            std::fs::write(&c.path, render(&c, &now.decision, &now.explain)).unwrap();
            continue;
        }
        let name = c.path.file_name().unwrap().to_string_lossy().into_owned();
        if now.decision_value() != c.decision || now.explain != c.explain {
            failures.push(format!(
                "{name}:\n  expected {}\n  {}\n  got      {}\n  {}",
                c.decision,
                c.explain,
                now.decision_value(),
                now.explain
            ));
            continue;
        }
        // The expected decision parses back and serializes byte for byte
        // as the one just made.
        let expected = match &now.decision {
            Ok(made) => {
                let parsed: Decision = serde_json::from_value(c.decision.clone()).unwrap();
                assert_eq!(&parsed, made, "{name}");
                assert_eq!(
                    serde_json::to_string(&parsed).unwrap(),
                    serde_json::to_string(made).unwrap(),
                    "{name}"
                );
                Ok(parsed)
            }
            Err(e) => Err(e.clone()),
        };
        // The file is in canonical form (as UPDATE_GOLDEN=1 writes it).
        let text = std::fs::read_to_string(&c.path).unwrap();
        if text != render(&c, &expected, &c.explain) {
            failures.push(format!(
                "{name}: not in canonical form (run with UPDATE_GOLDEN=1)"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden scenario(s) differ (UPDATE_GOLDEN=1 rewrites them; check against `why`):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Fixed permutations of `n` positions: reversed, rotated, evens then odds,
/// and three Fisher-Yates shuffles driven by a fixed LCG.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    let mut out = vec![(0..n).rev().collect::<Vec<_>>()];
    out.push((0..n).map(|i| (i + 3) % n).collect());
    out.push((0..n).step_by(2).chain((1..n).step_by(2)).collect());
    let mut state: u64 = 0x5eed;
    for _ in 0..3 {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            p.swap(i, (state >> 33) as usize % (i + 1));
        }
        out.push(p);
    }
    out
}

#[test]
fn same_input_same_bytes_in_any_node_order() {
    for c in cases() {
        let name = c.path.display();
        let first = outcome_bytes(&c.view, &c.request);
        let again = outcome_bytes(&c.view, &c.request);
        assert_eq!(first, again, "{name}: replay");
        // Through JSON and back: the view and request themselves round-trip.
        let view: View = serde_json::from_str(&serde_json::to_string(&c.view).unwrap()).unwrap();
        let request: Request =
            serde_json::from_str(&serde_json::to_string(&c.request).unwrap()).unwrap();
        assert_eq!(
            (&view, &request),
            (&c.view, &c.request),
            "{name}: round trip"
        );
        for perm in permutations(c.view.nodes.len()) {
            let mut shuffled = c.view.clone();
            shuffled.nodes = perm.iter().map(|&i| c.view.nodes[i].clone()).collect();
            let got = outcome_bytes(&shuffled, &c.request);
            assert_eq!(got, first, "{name}: nodes in order {perm:?}");
        }
    }
}
