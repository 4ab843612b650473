//! Function logs: each stderr line of each invocation, kept in a bounded ring
//! per function and broadcast to followers.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast;

/// Lines kept per function.
pub(crate) const LINES_PER_FUNCTION: usize = 2_000;

/// One line a guest wrote to stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Position in the node's log, increasing.
    pub seq: u64,
    /// Milliseconds since the UNIX epoch.
    pub ts: u64,
    /// The function.
    pub function: String,
    /// The invocation that wrote it.
    pub invocation: String,
    /// The text, without its newline.
    pub line: String,
}

/// Every function's recent log lines.
pub(crate) struct LogHub {
    seq: AtomicU64,
    rings: Mutex<HashMap<String, VecDeque<LogLine>>>,
    tx: broadcast::Sender<LogLine>,
}

impl LogHub {
    pub(crate) fn new() -> Self {
        LogHub {
            seq: AtomicU64::new(1),
            rings: Mutex::new(HashMap::new()),
            tx: broadcast::channel(4096).0,
        }
    }

    pub(crate) fn push(&self, function: &str, invocation: &str, line: String) {
        tracing::debug!(function, invocation, "guest: {line}");
        let entry = LogLine {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            ts: weft_store::now_ms(),
            function: function.to_string(),
            invocation: invocation.to_string(),
            line,
        };
        {
            let mut rings = self.rings.lock();
            let ring = rings.entry(function.to_string()).or_default();
            if ring.len() == LINES_PER_FUNCTION {
                ring.pop_front();
            }
            ring.push_back(entry.clone());
        }
        let _ = self.tx.send(entry);
    }

    /// Lines of `function` after `since`, oldest first, at most `limit`.
    pub(crate) fn recent(&self, function: &str, since: u64, limit: usize) -> Vec<LogLine> {
        let rings = self.rings.lock();
        let Some(ring) = rings.get(function) else {
            return Vec::new();
        };
        let newer: Vec<&LogLine> = ring.iter().filter(|l| l.seq > since).collect();
        let skip = newer.len().saturating_sub(limit);
        newer.into_iter().skip(skip).cloned().collect()
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.tx.subscribe()
    }

    pub(crate) fn forget(&self, function: &str) {
        self.rings.lock().remove(function);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_ordered() {
        let hub = LogHub::new();
        for i in 0..(LINES_PER_FUNCTION + 10) {
            hub.push("f", "inv", format!("line {i}"));
        }
        let all = hub.recent("f", 0, usize::MAX);
        assert_eq!(all.len(), LINES_PER_FUNCTION);
        assert_eq!(all[0].line, "line 10");
        let last = hub.recent("f", 0, 2);
        assert_eq!(last.len(), 2);
        assert_eq!(last[1].line, format!("line {}", LINES_PER_FUNCTION + 9));
        let after = hub.recent("f", last[0].seq, 10);
        assert_eq!(after.len(), 1);
        assert!(hub.recent("g", 0, 10).is_empty());
    }
}
