//! Writes `line 1` .. `line N` to stderr (N from stdin, default 3), then
//! `done` to stdout.
use std::io::{self, Read, Write};

fn main() -> io::Result<()> {
    let mut input = String::new();
    let _ = io::stdin().read_to_string(&mut input);
    let n = input.trim().parse::<u64>().unwrap_or(3);
    let mut stderr = io::stderr().lock();
    for i in 1..=n {
        writeln!(stderr, "line {i}")?;
    }
    stderr.flush()?;
    println!("done");
    Ok(())
}
