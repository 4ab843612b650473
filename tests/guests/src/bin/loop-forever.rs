//! Spins forever without returning or calling into the host.
use std::hint::black_box;

fn main() {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}
