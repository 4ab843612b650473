//! Reports whether state survives between runs of the same instance, or
//! between instances that reuse a memory slot.
//!
//! Prints `count=<n> leaked=<bool>`: `n` is a static counter incremented on
//! every run, and `leaked` tells whether a marker had already been set by an
//! earlier run, in a static buffer or in a 4 MiB heap allocation the
//! allocator believes fresh (grown memory, which must read as zero: part of
//! it lies within what the node keeps resident between instances, part
//! beyond). A fresh instance prints exactly `count=1 leaked=false`.
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);
static BUFFER: Mutex<[u8; 64]> = Mutex::new([0; 64]);
const MARKER: &[u8] = b"weft-was-here";
const HEAP: usize = 4 << 20;

fn main() {
    let count = COUNTER.fetch_add(1, Ordering::SeqCst) + 1;
    let in_static = {
        let mut buffer = BUFFER.lock().unwrap_or_else(|e| e.into_inner());
        let already = &buffer[..MARKER.len()] == MARKER;
        buffer[..MARKER.len()].copy_from_slice(MARKER);
        already
    };
    // `vec![0; n]` asks for zeroed memory; fresh memory from `memory.grow`
    // is taken as zero without being written, so a slot that was not reset
    // shows the last instance's markers here.
    let mut heap = vec![0u8; HEAP];
    let mut in_heap = false;
    for at in [0, HEAP / 4, HEAP / 2, HEAP - MARKER.len()] {
        in_heap |= heap[at..at + MARKER.len()] != [0; MARKER.len()];
        heap[at..at + MARKER.len()].copy_from_slice(MARKER);
    }
    std::hint::black_box(&heap);
    println!("count={count} leaked={}", in_static || in_heap);
}
