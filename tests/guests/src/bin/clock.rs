//! Prints `wall=<seconds since the UNIX epoch>` and `mono_ok=true` once
//! `Instant::now()` has returned.
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    println!("wall={wall}");
    let start = Instant::now();
    let _ = std::hint::black_box(start).elapsed();
    println!("mono_ok=true");
}
