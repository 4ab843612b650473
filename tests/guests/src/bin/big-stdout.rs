//! Writes the number of bytes given on stdin (default 4 GiB, effectively
//! forever) to stdout in 64 KiB chunks of `x`. Exits quietly with code 1
//! when a write fails.
use std::io::{self, Read, Write};

const CHUNK: usize = 64 * 1024;

fn main() {
    let mut input = String::new();
    let _ = io::stdin().read_to_string(&mut input);
    let mut remaining = input.trim().parse::<u64>().unwrap_or(4 << 30);

    let chunk = [b'x'; CHUNK];
    let mut stdout = io::stdout().lock();
    while remaining > 0 {
        let n = remaining.min(CHUNK as u64) as usize;
        if stdout.write_all(&chunk[..n]).is_err() {
            std::process::exit(1);
        }
        remaining -= n as u64;
    }
    if stdout.flush().is_err() {
        std::process::exit(1);
    }
}
