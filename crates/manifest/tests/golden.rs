//! Scenario folders: each `manifests/CASE/weft.toml` (or
//! `node-configs/CASE/node.toml`) is parsed, and the error it gives must be
//! the text of `error.txt` beside it, byte for byte; a case without
//! `error.txt` must parse. `BLESS=1 cargo test -p weft-manifest --test
//! golden` rewrites the expected files from what the code says now.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use weft_manifest::{Manifest, NodeConfig};

fn cases(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(kind);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no cases in {}", dir.display());
    out
}

/// Compares (or, with `BLESS=1`, writes) one case's outcome.
fn check(case: &Path, got: Option<String>) -> Option<String> {
    let expected = case.join("error.txt");
    let bless = std::env::var_os("BLESS").is_some();
    match got {
        Some(text) if bless => {
            std::fs::write(&expected, format!("{text}\n")).unwrap();
            None
        }
        None if bless => {
            let _ = std::fs::remove_file(&expected);
            None
        }
        Some(text) => match std::fs::read_to_string(&expected) {
            Ok(want) if want.trim_end() == text => None,
            Ok(want) => Some(format!(
                "{}: error differs\n  want: {}\n  got:  {text}",
                case.display(),
                want.trim_end()
            )),
            Err(_) => Some(format!(
                "{}: refused, but has no error.txt: {text}",
                case.display()
            )),
        },
        None if expected.exists() => Some(format!(
            "{}: accepted, but error.txt expects a refusal",
            case.display()
        )),
        None => None,
    }
}

fn run(kind: &str, file: &str, parse: impl Fn(&str, &Path) -> Option<String>) {
    let mut failures = Vec::new();
    for case in cases(kind) {
        let text = std::fs::read_to_string(case.join(file)).unwrap();
        // Errors name the file as given: the bare file name, so the
        // expected text does not depend on where the repository is.
        let got = parse(&text, Path::new(file));
        failures.extend(check(&case, got));
    }
    assert!(
        failures.is_empty(),
        "{} (BLESS=1 to accept the new outputs)",
        failures.join("\n")
    );
}

#[test]
fn manifests() {
    run("manifests", "weft.toml", |text, path| {
        Manifest::parse(text, path).err().map(|e| e.to_string())
    });
}

#[test]
fn node_configs() {
    run("node-configs", "node.toml", |text, path| {
        NodeConfig::parse(text, path).err().map(|e| e.to_string())
    });
}
