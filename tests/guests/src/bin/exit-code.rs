//! Writes `failing` to stderr and exits with the code given in decimal on
//! stdin (default 3).
use std::io::{self, Read, Write};

fn main() {
    let mut input = String::new();
    let _ = io::stdin().read_to_string(&mut input);
    let code = input.trim().parse::<i32>().unwrap_or(3);
    let _ = io::stderr().write_all(b"failing\n");
    std::process::exit(code);
}
