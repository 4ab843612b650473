//! Metered usage per function: recorded per invocation in memory, written
//! to the store once a second (and at shutdown), read back as totals.

use crate::error::Result;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use weft_store::{MovedBytes, Store, UsageTotals};

/// Usage not yet written to the store, and the store.
pub(crate) struct Usage {
    pending: Mutex<BTreeMap<String, UsageTotals>>,
    store: Arc<Store>,
}

impl Usage {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        Usage {
            pending: Mutex::new(BTreeMap::new()),
            store,
        }
    }

    /// One invocation that ran: its outcome, what it used, and for a
    /// stateful function its model and the bytes it moved (state read and
    /// written, arguments in and out).
    pub(crate) fn record(
        &self,
        function: &str,
        cold_start: bool,
        failed: bool,
        used: &weft_runtime::Usage,
        state: Option<(&str, [u64; 4])>,
    ) {
        let mut pending = self.pending.lock();
        let t = pending.entry(function.to_string()).or_default();
        t.invocations += 1;
        t.errors += u64::from(failed);
        t.cold_starts += u64::from(cold_start);
        t.cpu_ns += used.cpu.as_nanos() as u64;
        t.wall_ns += used.wall.as_nanos() as u64;
        t.memory_byte_seconds += used.peak_memory as f64 * used.wall.as_secs_f64();
        t.fuel += used.fuel.unwrap_or(0);
        if let Some((model, [read, written, args_in, args_out])) = state {
            t.state_read_bytes += read;
            t.state_written_bytes += written;
            t.moved_bytes
                .entry(model.to_string())
                .or_default()
                .add(&MovedBytes {
                    state_read: read,
                    state_written: written,
                    args_in,
                    args_out,
                });
        }
    }

    /// One invocation refused before it ran.
    pub(crate) fn rejected(&self, function: &str) {
        self.pending
            .lock()
            .entry(function.to_string())
            .or_default()
            .rejected += 1;
    }

    /// Writes pending usage to the store; on failure keeps it for the next
    /// flush.
    pub(crate) async fn flush(&self) {
        let deltas = std::mem::take(&mut *self.pending.lock());
        if deltas.is_empty() {
            return;
        }
        let store = self.store.clone();
        let back = deltas.clone();
        let r = tokio::task::spawn_blocking(move || store.add_usage(&deltas)).await;
        if !matches!(r, Ok(Ok(()))) {
            tracing::error!("writing usage failed; keeping it for the next flush");
            let mut pending = self.pending.lock();
            for (k, v) in back {
                pending.entry(k).or_default().add(&v);
            }
        }
    }

    /// Totals by function: stored plus pending, with a (zero) entry for
    /// every function in `live`.
    pub(crate) fn totals(&self, live: Vec<String>) -> Result<BTreeMap<String, UsageTotals>> {
        let mut totals = self.store.usage()?;
        for name in live {
            totals.entry(name).or_default();
        }
        for (k, v) in self.pending.lock().iter() {
            if let Some(t) = totals.get_mut(k) {
                t.add(v);
            }
        }
        Ok(totals)
    }

    /// Drops what is pending for a removed function.
    pub(crate) fn forget(&self, function: &str) {
        self.pending.lock().remove(function);
    }
}
