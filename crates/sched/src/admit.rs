//! Deadline admission and slack: the two tests made of an invocation with
//! a deadline — by the node about to run it, and by the router about to
//! hand it to a peer. Pure, in µs, so that the node, the router and the
//! simulator decide alike.

use crate::decision::Cost;

/// Whether a node refuses (`deadline_unmeetable`) an invocation with
/// `left_us` until its deadline: the admitted work due no later than it
/// (`ahead_us`, what is left of each), shared by `workers`, plus its own
/// `expected_us` would end after the deadline. With nothing ahead it is
/// admitted however slow it has been: refusing could not make it sooner,
/// and its runs keep its profile true.
///
/// ```
/// use weft_sched::unmeetable;
/// // 8 ms of work ahead on 2 workers, 3 ms expected: 7 ms is needed.
/// assert!(unmeetable(8_000, 2, 3_000, 6_999));
/// assert!(!unmeetable(8_000, 2, 3_000, 7_000));
/// // Nothing ahead: admitted, even if it cannot make it.
/// assert!(!unmeetable(0, 2, 30_000, 1_000));
/// ```
pub fn unmeetable(ahead_us: u64, workers: u64, expected_us: u64, left_us: u64) -> bool {
    let ahead = ahead_us / workers.max(1);
    ahead > 0 && ahead.saturating_add(expected_us) > left_us
}

/// What is left of admitted work that has run `ran_us` of its typical
/// `typical_us` (its profile's mean, or its declared estimate), µs: the
/// difference; once it has run past it (an overrun), as long again as it
/// has overrun so far. An overrunner thus counts as work ahead of others,
/// more the further it overruns, until its profile catches up, instead of
/// as done; work just past its mean (half of all runs) counts little.
///
/// ```
/// use weft_sched::left_us;
/// assert_eq!(left_us(10_000, 4_000), 6_000);
/// assert_eq!(left_us(10_000, 10_000), 0);
/// assert_eq!(left_us(10_000, 10_500), 500);
/// // Estimated at 10 ms, still running at 100 ms: 90 ms more.
/// assert_eq!(left_us(10_000, 100_000), 90_000);
/// ```
pub fn left_us(typical_us: u64, ran_us: u64) -> u64 {
    typical_us.abs_diff(ran_us)
}

/// The time to spare, µs, if the node `cost` scores runs the invocation
/// with `left_us` until its deadline: that less its queue, its transfer
/// (the worse of the decision's and `seen_transfer_us`, what calls there
/// have taken), its cold start, reaching its state, and `exec_us` (its
/// time there at the admission percentile, where known). Negative: it
/// would miss.
///
/// ```
/// use weft_sched::{Cost, slack_us};
/// let c = Cost { queue_us: 2_000, transfer_us: 10_000, cold_us: 1_000, ..Cost::default() };
/// assert_eq!(slack_us(20_000, &c, 4_000, 0), 3_000);
/// // Calls there have taken 15 ms: that is the transfer planned with.
/// assert_eq!(slack_us(20_000, &c, 4_000, 15_000), -2_000);
/// ```
pub fn slack_us(left_us: u64, cost: &Cost, exec_us: u64, seen_transfer_us: u64) -> i64 {
    let needs = u128::from(cost.queue_us)
        + u128::from(cost.transfer_us.max(seen_transfer_us))
        + u128::from(cost.cold_us)
        + u128::from(cost.state_us)
        + u128::from(exec_us);
    let clamp = |v: u128| i64::try_from(v).unwrap_or(i64::MAX);
    clamp(u128::from(left_us)) - clamp(needs)
}
