//! Node-wide configuration of the runtime.

use std::time::Duration;
use weft_manifest::{MAX_WORKERS, Scheduler};

/// How the node's wasmtime engine and sandbox pool are set up. Every field
/// documents its default; [`RuntimeConfig::validate`] rejects combinations
/// that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Sandboxes that may be live at once on this node (the pool's size).
    /// Default: 256.
    pub max_instances: u32,
    /// Largest linear memory any one sandbox may have, in bytes; a function's
    /// own memory limit may not exceed it. Default: 1 GiB.
    pub max_memory: u64,
    /// Meter every invocation with fuel, so functions may set a fuel limit and
    /// usage reports fuel. Costs some speed. Default: off.
    pub fuel: bool,
    /// Interval of the epoch clock that preempts guests and enforces
    /// deadlines. Default: 1 ms.
    pub epoch_tick: Duration,
    /// Maximum wasm stack of a sandbox, in bytes. Default: 512 KiB.
    pub max_wasm_stack: usize,
    /// The order in which live sandboxes get a worker. Default: earliest
    /// deadline first.
    pub scheduler: Scheduler,
    /// Guests that execute at once. Default: one per core.
    pub workers: usize,
}

/// One worker per core the process may use.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_instances: 256,
            max_memory: 1 << 30,
            fuel: false,
            epoch_tick: Duration::from_millis(1),
            max_wasm_stack: 512 << 10,
            scheduler: Scheduler::default(),
            workers: default_workers(),
        }
    }
}

impl RuntimeConfig {
    /// Checks that the configuration can build an engine.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_instances == 0 || self.max_instances > 100_000 {
            return Err(format!(
                "max_instances must be between 1 and 100000, got {}",
                self.max_instances
            ));
        }
        if self.max_memory < (64 << 10) || self.max_memory > (4 << 30) {
            return Err(format!(
                "max_memory must be between 64KiB and 4GiB, got {} bytes",
                self.max_memory
            ));
        }
        if self.epoch_tick < Duration::from_micros(100) || self.epoch_tick > Duration::from_secs(1)
        {
            return Err(format!(
                "epoch_tick must be between 100us and 1s, got {:?}",
                self.epoch_tick
            ));
        }
        if self.max_wasm_stack < (64 << 10) || self.max_wasm_stack > (64 << 20) {
            return Err(format!(
                "max_wasm_stack must be between 64KiB and 64MiB, got {}",
                self.max_wasm_stack
            ));
        }
        if self.workers == 0 || self.workers > MAX_WORKERS as usize {
            return Err(format!(
                "workers must be between 1 and {MAX_WORKERS}, got {}",
                self.workers
            ));
        }
        Ok(())
    }
}
