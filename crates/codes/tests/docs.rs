//! The error table of `docs/architecture.md` ("## Errors") and [`Code`]
//! must agree: every code once, with its status and `Retry-After`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use weft_codes::Code;

/// `code -> (status, retry-after)` from the table's rows: `| `code` | 429 | 1 | … |`.
fn documented() -> BTreeMap<String, (u16, Option<u32>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/architecture.md");
    let text = std::fs::read_to_string(path).unwrap();
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Errors"))
        .expect("docs/architecture.md has an `## Errors` section");
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert!(cells.len() >= 3, "row `{line}` has too few cells");
        let code = cells[0].trim_matches('`').to_string();
        let status = cells[1]
            .parse()
            .unwrap_or_else(|_| panic!("row `{code}`: status `{}`", cells[1]));
        let retry = match cells[2] {
            "—" | "-" | "" => None,
            n => Some(
                n.parse()
                    .unwrap_or_else(|_| panic!("row `{code}`: Retry-After `{n}`")),
            ),
        };
        assert!(
            rows.insert(code.clone(), (status, retry)).is_none(),
            "`{code}` is in the table twice"
        );
    }
    rows
}

#[test]
fn the_docs_table_is_the_enum() {
    let docs = documented();
    let mut problems = Vec::new();
    for &c in Code::ALL {
        match docs.get(c.as_str()) {
            None => problems.push(format!("`{c}` is missing from the table")),
            Some(&(status, retry)) if (status, retry) != (c.status(), c.retry_after()) => problems
                .push(format!(
                    "`{c}`: the table says {status} / {retry:?}, the code {} / {:?}",
                    c.status(),
                    c.retry_after()
                )),
            Some(_) => {}
        }
    }
    for code in docs.keys() {
        if code.parse::<Code>().is_err() {
            problems.push(format!("`{code}` is in the table but is no code"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
