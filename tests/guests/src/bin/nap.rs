//! Sleeps in the host (`poll_oneoff`) for the number of milliseconds given on
//! stdin (default 60000), then prints `rested`. Used to check that a guest
//! blocked in a host call is still stopped at its deadline.

use std::io::Read;
use std::time::Duration;

fn main() {
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    let ms: u64 = input.trim().parse().unwrap_or(60_000);
    std::thread::sleep(Duration::from_millis(ms));
    println!("rested");
}
