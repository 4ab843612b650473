//! What one invocation may use: limits on resources, and grants of ambient
//! capabilities (environment, clocks). Everything not granted is denied.

use std::time::Duration;
use wasmtime::ResourceLimiter;

/// Resource limits of one invocation. Resolved by the controller from the
/// function's configuration and the node's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Maximum linear memory, in bytes, summed over the sandbox's memories.
    pub memory: u64,
    /// Wall-clock deadline from the start of the invocation.
    pub timeout: Duration,
    /// Fuel budget, when the node meters fuel.
    pub fuel: Option<u64>,
    /// Maximum request body, in bytes.
    pub max_request: u64,
    /// Maximum response body, in bytes.
    pub max_response: u64,
    /// Maximum bytes of stderr logged per invocation.
    pub max_log: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 128 << 20,
            timeout: Duration::from_secs(10),
            fuel: None,
            max_request: 8 << 20,
            max_response: 16 << 20,
            max_log: 64 << 10,
        }
    }
}

/// Ambient capabilities granted to a function at deploy time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Arguments after `argv[0]` (the function's name); none by default.
    pub args: Vec<String>,
    /// Environment variables the guest sees; none by default.
    pub env: Vec<(String, String)>,
    /// Whether the guest reads the real wall and monotonic clocks. Without
    /// this grant both clocks are frozen at zero.
    pub clock: bool,
}

/// Enforces the memory limit and records the peak.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_limit: u64,
    /// Bytes of linear memory currently allocated, over all memories.
    current: u64,
    pub(crate) peak: u64,
    pub(crate) memory_denied: bool,
}

impl Limiter {
    pub(crate) fn new(memory_limit: u64) -> Self {
        Limiter {
            memory_limit,
            current: 0,
            peak: 0,
            memory_denied: false,
        }
    }
}

/// Maximum table elements a sandbox may grow to.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grow = desired.saturating_sub(current) as u64;
        let next = self.current.saturating_add(grow);
        if next > self.memory_limit {
            self.memory_denied = true;
            return Ok(false);
        }
        self.current = next;
        self.peak = self.peak.max(next);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// A wall clock stuck at the UNIX epoch, for guests without the clock grant.
pub(crate) struct FrozenWallClock;

impl wasmtime_wasi::HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// A monotonic clock stuck at zero, for guests without the clock grant.
pub(crate) struct FrozenMonotonicClock;

impl wasmtime_wasi::HostMonotonicClock for FrozenMonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_sums_memories_and_denies_past_limit() {
        let mut l = Limiter::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap_or(false));
        assert!(l.memory_growing(0, 30, None).unwrap_or(false));
        assert!(!l.memory_growing(30, 50, None).unwrap_or(true));
        assert!(l.memory_denied);
        assert_eq!(l.peak, 90);
    }
}
