//! Recurses without bound, not in tail position, until the wasm call stack
//! overflows (a stack-overflow trap in the host).
//!
//! The recursion keeps its state in wasm locals only: it never touches the
//! shadow stack in linear memory, so it is the engine's call-stack limit that
//! is hit, not an out-of-bounds access at the bottom of the shadow stack.
use std::hint::black_box;

/// Read with a volatile load on every call, so the optimiser can neither
/// fold the recursion into a loop nor prove it never returns.
static STEP: u64 = 1;

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let step = unsafe { core::ptr::read_volatile(&STEP) };
    if step == 0 {
        return depth;
    }
    let below = recurse(depth.wrapping_add(step));
    // Using the callee's result after the call keeps this out of tail position.
    depth.wrapping_sub(below).rotate_left(7)
}

fn main() {
    let result = recurse(black_box(0));
    println!("{result}");
}
