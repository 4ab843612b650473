//! `rust-command`: a WASI preview 1 command for Weft.
//!
//! Reads all of stdin and greets it: `hello, <stdin>!` on stdout
//! (`hello, world!` when stdin is empty), plus `greeted <n> bytes` on stderr.

use std::io::{self, Read, Write};

fn main() -> io::Result<()> {
    let mut input = Vec::new();
    io::stdin().read_to_end(&mut input)?;

    let name: &[u8] = if input.is_empty() { b"world" } else { &input };

    let mut stdout = io::stdout().lock();
    stdout.write_all(b"hello, ")?;
    stdout.write_all(name)?;
    stdout.write_all(b"!")?;
    stdout.flush()?;

    writeln!(io::stderr(), "greeted {} bytes", input.len())?;
    Ok(())
}
