//! Reports whether state survives between runs of the same instance.
//!
//! Prints `count=<n> leaked=<bool>`: `n` is a static counter incremented on
//! every run, and `leaked` tells whether a marker in a static buffer had
//! already been set by an earlier run. A fresh instance prints exactly
//! `count=1 leaked=false`.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

static COUNTER: AtomicU64 = AtomicU64::new(0);
static BUFFER: Mutex<[u8; 64]> = Mutex::new([0; 64]);
const MARKER: &[u8] = b"weft-was-here";

fn main() {
    let count = COUNTER.fetch_add(1, Ordering::SeqCst) + 1;
    let leaked = {
        let mut buffer = BUFFER.lock().unwrap_or_else(|e| e.into_inner());
        let already = &buffer[..MARKER.len()] == MARKER;
        buffer[..MARKER.len()].copy_from_slice(MARKER);
        already
    };
    println!("count={count} leaked={leaked}");
}
