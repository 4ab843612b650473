//! An execution profile: the last few execution times of one function on
//! one node, from which percentiles are read cheaply (Sledge keeps 16).

/// Samples a profile keeps.
pub const PROFILE_WINDOW: usize = 16;

/// The quantiles of [`Profile::summary`], in its order.
pub const SUMMARY_QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 1.0];

/// The last [`PROFILE_WINDOW`] execution times of a function on a node, in
/// µs. Recording is a store into a ring; a percentile sorts a copy of at
/// most 16 numbers. Pure: the caller measured the sample.
///
/// ```
/// let mut p = weft_sched::Profile::default();
/// for us in [100, 200, 300, 400] {
///     p.record(us);
/// }
/// assert_eq!(p.percentile(0.5), Some(200));
/// assert_eq!(p.percentile(1.0), Some(400));
/// ```
pub type Profile = Window<PROFILE_WINDOW>;

/// The last `N` samples (µs) of something timed, at most 65,535: a ring,
/// whose percentiles sort a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window<const N: usize> {
    samples: [u32; N],
    len: u16,
    next: u16,
}

impl<const N: usize> Default for Window<N> {
    fn default() -> Self {
        const { assert!(N > 0 && N <= u16::MAX as usize) };
        Window {
            samples: [0; N],
            len: 0,
            next: 0,
        }
    }
}

impl<const N: usize> Window<N> {
    /// Adds one execution time, µs (above about 71 minutes counts as that),
    /// replacing the oldest once the window is full.
    pub fn record(&mut self, micros: u64) {
        let at = usize::from(self.next) % N;
        self.samples[at] = u32::try_from(micros).unwrap_or(u32::MAX);
        self.next = ((at + 1) % N) as u16;
        if usize::from(self.len) < N {
            self.len += 1;
        }
    }

    /// Forgets all but the last `n` samples (what changed behaviour leaves
    /// of the past).
    pub fn keep_last(&mut self, n: usize) {
        let n = n.min(self.len());
        let next = usize::from(self.next);
        let kept: Vec<u32> = (0..n)
            .map(|i| self.samples[(next + N - n + i) % N])
            .collect();
        *self = Self::default();
        for us in kept {
            self.record(u64::from(us));
        }
    }

    /// Samples held (at most `N`).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// No sample yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `q` quantile (0 < q ≤ 1) by nearest rank: the smallest sample
    /// with at least `q` of the samples at or below it. `None` before the
    /// first sample.
    pub fn percentile(&self, q: f64) -> Option<u64> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let mut sorted = self.samples;
        let sorted = &mut sorted[..n];
        sorted.sort_unstable();
        let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
        Some(u64::from(sorted[rank.clamp(1, n) - 1]))
    }

    /// The quantiles a profile is shown and sent by: p50, p90, p99 and the
    /// longest, µs. `None` before the first sample.
    pub fn summary(&self) -> Option<[u64; 4]> {
        Some(SUMMARY_QUANTILES.map(|q| self.percentile(q).unwrap_or(0)))
            .filter(|_| !self.is_empty())
    }

    /// The mean of the samples, µs.
    pub fn mean(&self) -> Option<u64> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let sum: u64 = self.samples[..n].iter().map(|&s| u64::from(s)).sum();
        Some(sum / n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_keeps_the_last_sixteen() {
        let mut p = Profile::default();
        assert_eq!((p.percentile(0.9), p.mean(), p.len()), (None, None, 0));
        assert_eq!(p.summary(), None);
        for us in 1..=20u64 {
            p.record(us * 100);
        }
        // 500..=2000 remain.
        assert_eq!(p.len(), 16);
        assert_eq!(p.percentile(0.01), Some(500));
        assert_eq!(p.percentile(0.5), Some(1200));
        assert_eq!(p.percentile(0.9), Some(1900));
        assert_eq!(p.percentile(1.0), Some(2000));
        assert_eq!(p.mean(), Some(1250));
        assert_eq!(p.summary(), Some([1200, 1900, 2000, 2000]));
    }

    #[test]
    fn keeping_the_last_few_forgets_the_rest_in_order() {
        let mut p = Profile::default();
        for us in 1..=20u64 {
            p.record(us);
        }
        p.keep_last(3);
        assert_eq!(
            (p.len(), p.percentile(0.01), p.percentile(1.0)),
            (3, Some(18), Some(20))
        );
        p.record(1);
        assert_eq!(p.percentile(0.01), Some(1));
        let mut short = Window::<4>::default();
        short.record(7);
        short.keep_last(9);
        assert_eq!((short.len(), short.mean()), (1, Some(7)));
        let mut wide = Window::<1024>::default();
        for us in 1..=1000u64 {
            wide.record(us);
        }
        assert_eq!(
            (wide.percentile(0.99), wide.percentile(0.5)),
            (Some(990), Some(500))
        );
    }

    #[test]
    fn one_sample_is_every_percentile_and_huge_ones_saturate() {
        let mut p = Profile::default();
        p.record(u64::MAX);
        assert_eq!(p.percentile(0.5), Some(u64::from(u32::MAX)));
        assert_eq!(p.percentile(0.999), p.percentile(0.01));
    }
}
