//! The CLI's text output, against a golden transcript: a session of
//! commands on one node, each with what it printed (stdout, then stderr),
//! with what changes from run to run (digests, ids, times, durations, sizes,
//! paths) replaced by a placeholder. `BLESS=1 cargo test --test all golden`
//! rewrites `tests/all/golden/cli.txt` from what the CLI prints now.

use crate::harness::{Node, guests_dir};
use regex::Regex;
use std::path::Path;

/// Replaces what differs between runs with stable placeholders.
fn normalize(text: &str, dir: &Path) -> String {
    let mut s = text.replace(&guests_dir().display().to_string(), "<guests>");
    s = s.replace(&dir.display().to_string(), "<dir>");
    for (pattern, with) in [
        (r"sha256:[0-9a-f]{12,64}", "sha256:<digest>"),
        (r"\b[0-9a-f]{8}-[0-9a-f]{8}\b", "<invocation>"),
        (r"\b0[0-9a-f]{27}\b", "<async-id>"),
        (r"\b[0-9a-f]{12}\b", "<node-id>"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>"),
        (r"in [0-9.]+(ns|µs|ms|s)\b", "in <duration>"),
        (r"\(\d+(\.\d+)?(B|KiB|MiB)\)", "(<size>)"),
        (r" +\d+\.\d{3}\b", " <n>"),
    ] {
        s = Regex::new(pattern)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .replace_all(&s, with)
            .into_owned();
    }
    s
}

#[test]
fn the_cli_says_what_it_said() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("weft.toml");
    std::fs::write(
        &bad,
        "manifest_version = 1\n[functions.tick]\nmodule = \"tick.wasm\"\n\
         [[functions.tick.cron]]\nschedule = \"*/5 * * 13 *\"\n",
    )
    .unwrap();
    let g = |f: &str| format!("{}/{f}", guests_dir().display());
    let (hello, trees, web) = (
        g("rust-command.wasm"),
        g("bench-binarytrees.wasm"),
        g("http-hello.wasm"),
    );
    let bad = bad.display().to_string();
    let session: Vec<Vec<&str>> = vec![
        vec![
            "deploy",
            "hello",
            &hello,
            "--timeout",
            "5s",
            "--memory",
            "64MiB",
        ],
        vec![
            "deploy",
            "trees",
            &trees,
            "--arg",
            "4",
            "--kv",
            "default",
            "--retries",
            "2",
        ],
        vec!["deploy", "web", &web, "--route", "/web/...", "--public"],
        vec!["ls"],
        vec!["ls", "trees"],
        vec!["invoke", "hello", "--data", "golden"],
        vec!["invoke", "trees"],
        vec!["invoke", "web", "--path", "/a/b?c=d", "-X", "GET"],
        vec!["invoke", "nope"],
        vec!["explain", "hello"],
        vec!["nodes"],
        vec!["dlq", "ls"],
        vec!["rollback", "hello"],
        vec!["deploy", "moon", &hello, "--tier", "moon"],
        vec!["deploy", "--manifest", &bad],
        vec!["rm", "web"],
        vec!["ls"],
    ];
    let mut transcript = String::new();
    for args in &session {
        let out = node.cli(args);
        transcript.push_str(&format!("$ weft {}\n", args.join(" ")));
        transcript.push_str(&String::from_utf8_lossy(&out.stdout));
        transcript.push_str(&String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            transcript.push_str(&format!("[exit {}]\n", out.status.code().unwrap_or(-1)));
        }
        transcript.push('\n');
    }
    let got = normalize(&transcript, dir.path());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/all/golden/cli.txt");
    if std::env::var_os("BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (BLESS=1 writes it)", path.display()));
    if want != got {
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .enumerate()
            .filter(|(_, (w, g))| w != g)
            .take(10)
            .map(|(i, (w, g))| format!("line {}:\n  want: {w}\n  got:  {g}", i + 1))
            .collect();
        panic!(
            "the CLI's output changed (BLESS=1 to accept it):\n{}\n--- got ---\n{got}",
            diff.join("\n")
        );
    }
}
