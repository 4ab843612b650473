//! Busy-waits on `Instant` for the number of milliseconds given on stdin
//! (default 200), then prints `slept`. Needs a monotonic clock.
use std::hint::black_box;
use std::io::{self, Read};
use std::time::{Duration, Instant};

fn main() {
    let mut input = String::new();
    let _ = io::stdin().read_to_string(&mut input);
    let millis = input.trim().parse::<u64>().unwrap_or(200);
    let deadline = Duration::from_millis(millis);
    let start = Instant::now();
    let mut spins: u64 = 0;
    while start.elapsed() < deadline {
        spins = black_box(spins.wrapping_add(1));
    }
    println!("slept");
}
