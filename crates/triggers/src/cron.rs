//! The catch-up policy of cron triggers: what to fire after a restart.
//! Schedules themselves are parsed and searched by `weft_manifest::Schedule`,
//! which validates a manifest before anything is uploaded.
//!
//! ```
//! # fn demo() -> Result<(), weft_manifest::CronError> {
//! use chrono::{TimeZone, Utc};
//! use std::time::Duration;
//! use weft_manifest::Schedule;
//! use weft_triggers::cron::plan;
//!
//! let nightly = Schedule::parse("30 2 * * mon-fri")?;
//! // Last fired Monday 02:30; the node was down until Wednesday 03:00.
//! let last = Utc.with_ymd_and_hms(2025, 3, 3, 2, 30, 0).unwrap();
//! let now = Utc.with_ymd_and_hms(2025, 3, 5, 3, 0, 0).unwrap();
//! let p = plan(&nightly, Some(last), now, Duration::from_secs(3600));
//! // Tuesday's and Wednesday's fires were missed: one catch-up, for Wednesday.
//! assert_eq!(p.catch_up, Some(Utc.with_ymd_and_hms(2025, 3, 5, 2, 30, 0).unwrap()));
//! assert_eq!(p.next, Some(Utc.with_ymd_and_hms(2025, 3, 6, 2, 30, 0).unwrap()));
//! # Ok(()) }
//! # demo().unwrap();
//! ```
//!
use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;
use weft_manifest::Schedule;

/// What to fire now; see [`plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The scheduled time being caught up, to fire now: the most recent
    /// missed time, if it is recent enough.
    pub catch_up: Option<DateTime<Utc>>,
    /// The next scheduled time, strictly after now and after the last fire.
    pub next: Option<DateTime<Utc>>,
}

/// What to fire now, given when this schedule last fired (persisted by the
/// caller) and the time now. Missed fires are coalesced into one catch-up
/// for the most recent of them if it is within `catch_up` of `now`; a
/// schedule never fired (`last_fire = None`) starts from now. See the
/// [module docs](self#catch-up-policy).
pub fn plan(
    schedule: &Schedule,
    last_fire: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    catch_up: Duration,
) -> Plan {
    let window = TimeDelta::from_std(catch_up).unwrap_or(TimeDelta::MAX);
    let missed = last_fire.and_then(|last| {
        let m = schedule.last_at_or_before(now)?;
        (m > last && now.signed_duration_since(m) <= window).then_some(m)
    });
    let from = match last_fire {
        Some(last) if last > now => last,
        _ => now,
    };
    Plan {
        catch_up: missed,
        next: schedule.next_after(from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn s(expr: &str) -> Schedule {
        Schedule::parse(expr).unwrap_or_else(|e| panic!("{e}"))
    }

    const HOUR_WINDOW: Duration = Duration::from_secs(3600);

    #[test]
    fn plan_first_run_starts_from_now() {
        let sch = s("0 * * * *");
        let now = t(2025, 1, 1, 10, 0, 0); // exactly on a fire time
        let p = plan(&sch, None, now, HOUR_WINDOW);
        assert_eq!(p.catch_up, None);
        assert_eq!(p.next, Some(t(2025, 1, 1, 11, 0, 0)));
    }

    #[test]
    fn plan_no_miss() {
        let sch = s("0 * * * *");
        let p = plan(
            &sch,
            Some(t(2025, 1, 1, 10, 0, 0)),
            t(2025, 1, 1, 10, 30, 0),
            HOUR_WINDOW,
        );
        assert_eq!(
            p,
            Plan {
                catch_up: None,
                next: Some(t(2025, 1, 1, 11, 0, 0))
            }
        );
        // Last fire recorded slightly after its scheduled time: still no miss.
        let p = plan(
            &sch,
            Some(t(2025, 1, 1, 10, 0, 1)),
            t(2025, 1, 1, 10, 59, 59),
            HOUR_WINDOW,
        );
        assert_eq!(p.catch_up, None);
    }

    #[test]
    fn plan_one_miss() {
        let sch = s("0 * * * *");
        let p = plan(
            &sch,
            Some(t(2025, 1, 1, 10, 0, 0)),
            t(2025, 1, 1, 11, 20, 0),
            HOUR_WINDOW,
        );
        assert_eq!(
            p,
            Plan {
                catch_up: Some(t(2025, 1, 1, 11, 0, 0)),
                next: Some(t(2025, 1, 1, 12, 0, 0))
            }
        );
        // Due exactly now counts as missed.
        let p = plan(
            &sch,
            Some(t(2025, 1, 1, 10, 0, 0)),
            t(2025, 1, 1, 11, 0, 0),
            HOUR_WINDOW,
        );
        assert_eq!(p.catch_up, Some(t(2025, 1, 1, 11, 0, 0)));
        assert_eq!(p.next, Some(t(2025, 1, 1, 12, 0, 0)));
    }

    #[test]
    fn plan_many_misses_coalesce_into_the_latest() {
        let sch = s("*/5 * * * *");
        let p = plan(
            &sch,
            Some(t(2025, 1, 1, 8, 0, 0)),
            t(2025, 1, 1, 10, 2, 0),
            HOUR_WINDOW,
        );
        assert_eq!(
            p,
            Plan {
                catch_up: Some(t(2025, 1, 1, 10, 0, 0)),
                next: Some(t(2025, 1, 1, 10, 5, 0))
            }
        );
        // Every second, down for a month: still one catch-up, computed directly.
        let sch = s("* * * * * *");
        let p = plan(
            &sch,
            Some(t(2025, 1, 1, 0, 0, 0)),
            t(2025, 2, 1, 0, 0, 0) + TimeDelta::milliseconds(300),
            HOUR_WINDOW,
        );
        assert_eq!(p.catch_up, Some(t(2025, 2, 1, 0, 0, 0)));
        assert_eq!(p.next, Some(t(2025, 2, 1, 0, 0, 1)));
    }

    #[test]
    fn plan_skips_misses_older_than_the_window() {
        let sch = s("0 3 * * *");
        let last = t(2025, 1, 1, 3, 0, 0);
        // Most recent miss at 03:00 on the 3rd, now 04:00:01: 1 h 1 s old.
        let p = plan(&sch, Some(last), t(2025, 1, 3, 4, 0, 1), HOUR_WINDOW);
        assert_eq!(
            p,
            Plan {
                catch_up: None,
                next: Some(t(2025, 1, 4, 3, 0, 0))
            }
        );
        // Exactly at the window edge: caught up (inclusive).
        let p = plan(&sch, Some(last), t(2025, 1, 3, 4, 0, 0), HOUR_WINDOW);
        assert_eq!(p.catch_up, Some(t(2025, 1, 3, 3, 0, 0)));
        // A zero window only catches up a fire due exactly now; a huge one everything.
        let p = plan(&sch, Some(last), t(2025, 1, 3, 3, 0, 0), Duration::ZERO);
        assert_eq!(p.catch_up, Some(t(2025, 1, 3, 3, 0, 0)));
        let p = plan(&sch, Some(last), t(2025, 6, 1, 0, 0, 0), Duration::MAX);
        assert_eq!(p.catch_up, Some(t(2025, 5, 31, 3, 0, 0)));
    }

    #[test]
    fn plan_with_last_fire_in_the_future_never_refires() {
        // The clock stepped back after the 11:00 fire.
        let sch = s("0 * * * *");
        let p = plan(
            &sch,
            Some(t(2025, 1, 1, 11, 0, 0)),
            t(2025, 1, 1, 10, 59, 30),
            HOUR_WINDOW,
        );
        assert_eq!(
            p,
            Plan {
                catch_up: None,
                next: Some(t(2025, 1, 1, 12, 0, 0))
            }
        );
    }
}
