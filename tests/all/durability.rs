use crate::harness::{Node, WEFT, guest};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn acknowledged_deploys_survive_kill_9_at_any_moment() {
    let mut node = Node::start();
    let fixtures: Vec<String> = [
        "echo.wasm",
        "rust-command.wasm",
        "c-command.wasm",
        "stateful.wasm",
    ]
    .iter()
    .map(|f| guest(f).to_string_lossy().into_owned())
    .collect();
    // Highest acknowledged version of each function, and every acked version.
    let acked: Arc<Mutex<BTreeMap<String, Vec<u64>>>> = Arc::default();
    for round in 0..6u64 {
        let stop = Arc::new(AtomicBool::new(false));
        let url = node.url.clone();
        let (stop2, acked2, fixtures2) = (stop.clone(), acked.clone(), fixtures.clone());
        let deployer = std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop2.load(Ordering::Relaxed) {
                let name = format!("f{}", i % 3);
                let module = &fixtures2[(i + round as usize) % fixtures2.len()];
                let out = std::process::Command::new(WEFT)
                    .args(["deploy", &name, module, "--json"])
                    .env("WEFT_URL", &url)
                    .output()
                    .unwrap();
                if !out.status.success() {
                    break; // the node died under us
                }
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let version = v[0]["active"].as_u64().unwrap();
                acked2
                    .lock()
                    .unwrap()
                    .entry(name)
                    .or_default()
                    .push(version);
                i += 1;
            }
        });
        // Kill while deploys are flowing: after this round's first
        // acknowledgement (however slow the machine), at a varying moment.
        let before: usize = acked.lock().unwrap().values().map(Vec::len).sum();
        crate::harness::eventually(Duration::from_secs(60), || {
            acked.lock().unwrap().values().map(Vec::len).sum::<usize>() > before
        });
        std::thread::sleep(Duration::from_millis(20 + round * 37));
        node.kill9();
        stop.store(true, Ordering::Relaxed);
        deployer.join().unwrap();
        node.restart();

        for (name, versions) in acked.lock().unwrap().iter() {
            let f = node.json(&["ls", name]);
            let have: Vec<u64> = f["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["version"].as_u64().unwrap())
                .collect();
            // History keeps the newest versions only (weft_store::MAX_VERSIONS = 50).
            let newest = *versions.iter().max().unwrap();
            for v in versions.iter().filter(|&&v| v + 50 > newest) {
                assert!(
                    have.contains(v),
                    "round {round}: {name} v{v} acknowledged but lost; have {have:?}"
                );
            }
            assert!(f["active"].as_u64().unwrap() >= *versions.iter().max().unwrap());
            // What is visible is whole: the active version runs.
            let out = node.cli(&["invoke", name, "--data", "x"]);
            assert!(
                out.status.success(),
                "round {round}: {name} does not run: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let total: usize = acked.lock().unwrap().values().map(Vec::len).sum();
    assert!(
        total >= 6,
        "only {total} deploys acknowledged over six rounds"
    );
}
