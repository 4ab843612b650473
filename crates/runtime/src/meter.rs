//! Metering: the CPU time a sandbox consumes, measured per poll of its future.
//!
//! A sandbox runs as a future on whichever worker thread polls it, and a poll
//! never blocks (a guest yields at every epoch tick; host calls that wait
//! return `Pending`). So the time inside its polls is the time a worker
//! thread spent running the guest and its host calls, and nothing spent
//! waiting (queueing, sleeping, streaming to a slow client). It is read from
//! the monotonic clock (vDSO, ~20 ns) rather than the thread CPU clock (a
//! syscall, ~600 ns on our VMs, which cost 30% of a null invocation; see
//! `bench/RESULTS.md`). The one difference: a worker thread descheduled by
//! the OS in the middle of a poll is charged for that time, at most one
//! scheduler slice per poll.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// What one invocation consumed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Wall time from admission to the end of the sandbox.
    pub wall: Duration,
    /// CPU time spent running the sandbox.
    pub cpu: Duration,
    /// Peak linear memory, in bytes.
    pub peak_memory: u64,
    /// Fuel consumed, when the node meters fuel.
    pub fuel: Option<u64>,
    /// Time within `wall` it waited for a worker (its turn, or work more
    /// urgent than it): what it would not have spent alone.
    pub waited: Duration,
}

/// The calling thread's CPU time, in nanoseconds.
#[cfg(test)]
#[allow(unsafe_code)] // libc's clock, for the test that compares with it
fn thread_cpu_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_THREAD_CPUTIME_ID
    // is supported on every platform Weft builds for (Linux, macOS).
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// A shared CPU-time counter, in nanoseconds: what a sandbox has used so
/// far, readable while it runs (admission reads how far admitted work has
/// got).
#[derive(Debug, Clone, Default)]
pub struct CpuCounter(Arc<AtomicU64>);

impl CpuCounter {
    /// The time counted so far.
    pub fn get(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

pin_project_lite::pin_project! {
    /// Wraps a future and adds the time spent in each of its polls to a
    /// counter.
    pub(crate) struct CpuTimed<F> {
        #[pin]
        inner: F,
        counter: CpuCounter,
    }
}

impl<F> CpuTimed<F> {
    pub(crate) fn new(inner: F, counter: CpuCounter) -> Self {
        CpuTimed { inner, counter }
    }
}

impl<F: Future> Future for CpuTimed<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let start = std::time::Instant::now();
        let out = this.inner.poll(cx);
        let spent = start.elapsed().as_nanos() as u64;
        this.counter.0.fetch_add(spent, Ordering::Relaxed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cpu_time_counts_busy_polls_not_sleeps() {
        let counter = CpuCounter::default();
        CpuTimed::new(
            async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                // Burn 20 ms of this thread's CPU, by the thread's own clock.
                let start = thread_cpu_nanos();
                while thread_cpu_nanos() - start < 20_000_000 {
                    std::hint::black_box(0u64);
                }
            },
            counter.clone(),
        )
        .await;
        let cpu = counter.get();
        assert!(cpu >= Duration::from_millis(20), "cpu {cpu:?}");
        // The 200 ms sleep is not charged.
        assert!(cpu < Duration::from_millis(200), "cpu {cpu:?}");
    }
}
