//! Retry backoff and its jitter source.

use crate::RetryPolicy;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The random numbers behind retry jitter: a small seedable generator
/// (SplitMix64), so tests and the simulator can replay backoff exactly.
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// A generator that yields the same sequence for the same seed.
    pub fn seeded(seed: u64) -> Jitter {
        Jitter { state: seed }
    }

    /// A generator seeded from the operating system's entropy (falling back
    /// to the clock if none is available). The default of [`crate::Queue::open`].
    pub fn from_entropy() -> Jitter {
        let seed = getrandom::u64().unwrap_or_else(|_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
                ^ u64::from(std::process::id())
        });
        Jitter::seeded(seed)
    }

    /// The next number of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The delay before attempt `attempt + 1`, after attempt `attempt` (1-based)
/// failed: `base = min(max_backoff, initial_backoff * 2^(attempt-1))`, then
/// full jitter picks a delay in `[base/2, base]` from `random`. Millisecond
/// granularity.
pub fn backoff(policy: &RetryPolicy, attempt: u32, random: u64) -> Duration {
    let initial = millis(policy.initial_backoff);
    let max = millis(policy.max_backoff);
    let exp = attempt.saturating_sub(1).min(63);
    let base = initial.saturating_mul(1u64 << exp).min(max);
    let low = base / 2;
    let span = base - low;
    Duration::from_millis(low + random % (span + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_bounds_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        };
        let mut j = Jitter::seeded(7);
        for attempt in 1..=10u32 {
            let base = (1000u64 << (attempt - 1)).min(60_000);
            for _ in 0..200 {
                let d = millis(backoff(&p, attempt, j.next_u64()));
                assert!(
                    d >= base / 2 && d <= base,
                    "attempt {attempt}: {d} vs {base}"
                );
            }
        }
        // The extremes of the random range hit both bounds.
        assert_eq!(backoff(&p, 1, 0), Duration::from_millis(500));
        assert_eq!(backoff(&p, 1, 500), Duration::from_millis(1000));
        // Huge attempts neither overflow nor exceed the cap.
        assert!(backoff(&p, u32::MAX, u64::MAX) <= Duration::from_secs(60));
    }

    #[test]
    fn seeded_jitter_replays() {
        let (mut a, mut b) = (Jitter::seeded(42), Jitter::seeded(42));
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
    }
}
