//! Cron schedules, always in UTC: the parser that validates a manifest's
//! `[[functions.NAME.cron]]` and the search for the next and previous fire.
//! (What to fire after a restart is the triggers' policy, in `weft-triggers`.)
//!
//! ```
//! # fn demo() -> Result<(), weft_manifest::CronError> {
//! use chrono::{TimeZone, Utc};
//! use weft_manifest::Schedule;
//!
//! let nightly = Schedule::parse("30 2 * * mon-fri")?;
//! let fri = Utc.with_ymd_and_hms(2025, 3, 7, 3, 0, 0).unwrap();
//! // After Friday 03:00 the next weekday is Monday.
//! let monday = Utc.with_ymd_and_hms(2025, 3, 10, 2, 30, 0).unwrap();
//! assert_eq!(nightly.next_after(fri), Some(monday));
//! assert!(Schedule::parse("0 0 30 2 *").is_err()); // never fires
//! # Ok(()) }
//! # demo().unwrap();
//! ```
//!
//! # Syntax
//!
//! - Five fields `minute hour day-of-month month day-of-week`, or six with a
//!   leading `second` field. Ranges: second and minute 0-59, hour 0-23,
//!   day-of-month 1-31, month 1-12 or `jan`-`dec`, day-of-week 0-7 or
//!   `sun`-`sat` (0 and 7 are both Sunday). Names are case-insensitive.
//! - Each field is a comma-separated list of `*`, `N`, `N-M`, each optionally
//!   followed by `/STEP`; `N/STEP` means `N-max/STEP`. A range must not be
//!   reversed (`5-2` is an error) and a step is at least 1.
//! - Day-of-month and day-of-week combine as in Vixie cron: when both are
//!   restricted (neither starts with `*`), a day matches if *either* matches
//!   (`0 0 13 * fri` fires on every 13th and every Friday); otherwise both
//!   must match.
//! - Macros: `@yearly` (= `@annually`), `@monthly`, `@weekly` (Sunday),
//!   `@daily` (= `@midnight`), `@hourly`. `@reboot` is not a schedule and is
//!   refused.
//! - Quartz extensions (`?`, `L`, `W`, `#`, a year field) are refused, and so
//!   is a schedule that can never fire (`0 0 30 2 *`).
//!
//! Times are UTC, so there is no daylight-saving gap or repeat: every
//! matching second fires exactly once.
//!

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};
use std::fmt;

/// A cron expression that is not valid. The message names the expression
/// and, when one field is at fault, the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cron expression `{expression}`: {}", describe(*.field, .message))]
pub struct CronError {
    /// The expression as given.
    pub expression: String,
    /// The field at fault, if one is: `second`, `minute`, `hour`,
    /// `day-of-month`, `month` or `day-of-week`.
    pub field: Option<&'static str>,
    /// What is wrong.
    pub message: String,
}

fn describe(field: Option<&'static str>, message: &str) -> String {
    match field {
        Some(f) => format!("{f} field: {message}"),
        None => message.to_string(),
    }
}

/// One field of the expression: its name, range and value names.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for the values `min..`, if the field has names.
    names: &'static [&'static str],
}

const SECOND: FieldSpec = FieldSpec {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// A parsed, validated cron schedule. Always UTC.
#[derive(Clone, PartialEq, Eq)]
pub struct Schedule {
    expr: String,
    /// Bit `i` set: second `i` matches.
    seconds: u64,
    minutes: u64,
    hours: u64,
    /// Bits 1..=31.
    days: u64,
    /// Bits 1..=12.
    months: u64,
    /// Bits 0..=6, Sunday = 0.
    weekdays: u64,
    /// Day-of-month and day-of-week must both match (one of them starts with
    /// `*`); otherwise either may.
    days_and: bool,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.expr).finish()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

impl std::str::FromStr for Schedule {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

impl Schedule {
    /// Parses a 5-field (`min hour dom month dow`) or 6-field (leading
    /// seconds) expression, or one of the macros `@yearly`, `@annually`,
    /// `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`. See the
    /// [module docs](self) for the syntax.
    pub fn parse(expr: &str) -> Result<Schedule, CronError> {
        let err = |field: Option<&'static str>, message: String| CronError {
            expression: expr.to_string(),
            field,
            message,
        };
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err(err(None, "the expression is empty".into()));
        }
        let expanded = if let Some(name) = trimmed.strip_prefix('@') {
            match name.to_ascii_lowercase().as_str() {
                "yearly" | "annually" => "0 0 0 1 1 *",
                "monthly" => "0 0 0 1 * *",
                "weekly" => "0 0 0 * * 0",
                "daily" | "midnight" => "0 0 0 * * *",
                "hourly" => "0 0 * * * *",
                "reboot" => {
                    return Err(err(
                        None,
                        "@reboot is not a schedule and is not supported".into(),
                    ));
                }
                _ => {
                    return Err(err(
                        None,
                        format!(
                            "unknown macro `@{name}` (expected @yearly, @annually, @monthly, \
                             @weekly, @daily, @midnight or @hourly)"
                        ),
                    ));
                }
            }
        } else {
            trimmed
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(err(
                    None,
                    format!(
                        "expected 5 fields (minute hour day-of-month month day-of-week) \
                         or 6 (with leading seconds), found {n}"
                    ),
                ));
            }
        };
        let parse = |spec: &FieldSpec, text: &str| {
            parse_field(spec, text).map_err(|m| err(Some(spec.name), m))
        };
        let seconds = parse(&SECOND, sec)?;
        let minutes = parse(&MINUTE, rest[0])?;
        let hours = parse(&HOUR, rest[1])?;
        let days = parse(&DAY_OF_MONTH, rest[2])?;
        let months = parse(&MONTH, rest[3])?;
        let mut weekdays = parse(&DAY_OF_WEEK, rest[4])?;
        // 7 is Sunday too.
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1;
        }
        let days_and = rest[2].starts_with('*') || rest[4].starts_with('*');

        // When the day-of-month decides (both must match, or day-of-week is
        // unrestricted), some selected day must exist in some selected month.
        // Any date exists on every weekday over the years, so day-of-week
        // cannot make a schedule impossible.
        let dow_unrestricted = weekdays == 0b111_1111;
        if days_and || dow_unrestricted {
            let possible = (1..=12u32)
                .filter(|m| months & (1 << m) != 0)
                .any(|m| (1..=max_days(m)).any(|d| days & (1 << d) != 0));
            if !possible {
                return Err(err(
                    Some(DAY_OF_MONTH.name),
                    format!(
                        "`{}` never occurs in month(s) `{}`, the schedule would never fire",
                        rest[2], rest[3]
                    ),
                ));
            }
        }

        Ok(Schedule {
            expr: expr.trim().to_string(),
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_and,
        })
    }

    /// The expression, as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.expr
    }

    /// The first scheduled time strictly after `t` (whole seconds), or
    /// `None` past the end of chrono's calendar.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = t
            .naive_utc()
            .with_nanosecond(0)?
            .checked_add_signed(TimeDelta::seconds(1))?;
        self.search_forward(start).map(|n| n.and_utc())
    }

    /// The last scheduled time at or before `t`, or `None` before the start
    /// of chrono's calendar.
    pub fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = t.naive_utc().with_nanosecond(0)?;
        self.search_backward(start).map(|n| n.and_utc())
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().num_days_from_sunday()) != 0;
        if self.days_and {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn search_forward(&self, mut c: NaiveDateTime) -> Option<NaiveDateTime> {
        // A possible schedule fires at least once in any 400-year window
        // (the Gregorian cycle); the bound only guards against bugs.
        let limit = c.year().checked_add(401)?;
        loop {
            if c.year() > limit {
                return None;
            }
            let date = c.date();
            if self.months & (1 << c.month()) == 0 {
                let (y, m) = if c.month() == 12 {
                    (c.year().checked_add(1)?, 1)
                } else {
                    (c.year(), c.month() + 1)
                };
                c = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.day_matches(date) {
                c = date.succ_opt()?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if self.hours & (1 << c.hour()) == 0 {
                c = match next_bit(self.hours, c.hour()) {
                    Some(h) => date.and_hms_opt(h, 0, 0)?,
                    None => date.succ_opt()?.and_hms_opt(0, 0, 0)?,
                };
                continue;
            }
            if self.minutes & (1 << c.minute()) == 0 {
                c = match next_bit(self.minutes, c.minute()) {
                    Some(m) => date.and_hms_opt(c.hour(), m, 0)?,
                    None => date
                        .and_hms_opt(c.hour(), 0, 0)?
                        .checked_add_signed(TimeDelta::hours(1))?,
                };
                continue;
            }
            if self.seconds & (1 << c.second()) == 0 {
                c = match next_bit(self.seconds, c.second()) {
                    Some(s) => date.and_hms_opt(c.hour(), c.minute(), s)?,
                    None => date
                        .and_hms_opt(c.hour(), c.minute(), 0)?
                        .checked_add_signed(TimeDelta::minutes(1))?,
                };
                continue;
            }
            return Some(c);
        }
    }

    fn search_backward(&self, mut c: NaiveDateTime) -> Option<NaiveDateTime> {
        let limit = c.year().checked_sub(401)?;
        let one = TimeDelta::seconds(1);
        loop {
            if c.year() < limit {
                return None;
            }
            let date = c.date();
            if self.months & (1 << c.month()) == 0 {
                // The last second of the previous month.
                c = NaiveDate::from_ymd_opt(c.year(), c.month(), 1)?
                    .and_hms_opt(0, 0, 0)?
                    .checked_sub_signed(one)?;
                continue;
            }
            if !self.day_matches(date) {
                c = date.and_hms_opt(0, 0, 0)?.checked_sub_signed(one)?;
                continue;
            }
            if self.hours & (1 << c.hour()) == 0 {
                c = match prev_bit(self.hours, c.hour()) {
                    Some(h) => date.and_hms_opt(h, 59, 59)?,
                    None => date.and_hms_opt(0, 0, 0)?.checked_sub_signed(one)?,
                };
                continue;
            }
            if self.minutes & (1 << c.minute()) == 0 {
                c = match prev_bit(self.minutes, c.minute()) {
                    Some(m) => date.and_hms_opt(c.hour(), m, 59)?,
                    None => date.and_hms_opt(c.hour(), 0, 0)?.checked_sub_signed(one)?,
                };
                continue;
            }
            if self.seconds & (1 << c.second()) == 0 {
                c = match prev_bit(self.seconds, c.second()) {
                    Some(s) => date.and_hms_opt(c.hour(), c.minute(), s)?,
                    None => date
                        .and_hms_opt(c.hour(), c.minute(), 0)?
                        .checked_sub_signed(one)?,
                };
                continue;
            }
            return Some(c);
        }
    }
}

/// The longest a month can be (February counts 29).
fn max_days(month: u32) -> u32 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The lowest set bit above `i`.
fn next_bit(mask: u64, i: u32) -> Option<u32> {
    let above = mask.checked_shr(i + 1).unwrap_or(0);
    (above != 0).then(|| i + 1 + above.trailing_zeros())
}

/// The highest set bit below `i`.
fn prev_bit(mask: u64, i: u32) -> Option<u32> {
    let below = mask & ((1u64 << i) - 1);
    (below != 0).then(|| 63 - below.leading_zeros())
}

/// Parses one field into a bit set, or says what is wrong with it.
fn parse_field(spec: &FieldSpec, text: &str) -> Result<u64, String> {
    let mut mask = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("`{text}` has an empty list item"));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("step `{s}` in `{item}` is not a number"))?;
                if step == 0 || step > spec.max {
                    return Err(format!(
                        "step {step} in `{item}` is out of range 1-{}",
                        spec.max
                    ));
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (spec.min, spec.max)
        } else if range == "?" {
            return Err("`?` is not supported, use `*`".into());
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(spec, a)?, value(spec, b)?);
            if a > b {
                return Err(format!(
                    "range `{range}` is reversed (the start must not exceed the end)"
                ));
            }
            (a, b)
        } else {
            let v = value(spec, range)?;
            // `N/STEP` runs to the end of the field.
            (v, if step.is_some() { spec.max } else { v })
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            mask |= 1 << v;
            v += step;
        }
    }
    Ok(mask)
}

/// One value: a number in range, or a name if the field has names.
fn value(spec: &FieldSpec, text: &str) -> Result<u32, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let v: u32 = text
            .parse()
            .map_err(|_| format!("{text} is out of range {}-{}", spec.min, spec.max))?;
        if v < spec.min || v > spec.max {
            return Err(format!("{v} is out of range {}-{}", spec.min, spec.max));
        }
        return Ok(v);
    }
    let lower = text.to_ascii_lowercase();
    if let Some(i) = spec.names.iter().position(|n| *n == lower) {
        // Names start at the field's minimum (jan = 1, sun = 0).
        return Ok(spec.min + i as u32);
    }
    if spec.names.is_empty() {
        Err(format!("`{text}` is not a number"))
    } else {
        Err(format!(
            "`{text}` is not a number or a {} name ({}-{})",
            spec.name,
            spec.names[0],
            spec.names[spec.names.len() - 1]
        ))
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

    /// The next `n` fires after `from`.
    fn fires(expr: &str, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let sch = s(expr);
        let mut out = Vec::new();
        let mut c = from;
        for _ in 0..n {
            c = sch.next_after(c).unwrap();
            out.push(c);
        }
        out
    }

    fn err(expr: &str) -> String {
        Schedule::parse(expr).unwrap_err().to_string()
    }

    #[test]
    fn every_minute_and_strictly_after() {
        let base = t(2025, 1, 1, 0, 0, 0);
        assert_eq!(
            fires("* * * * *", base, 3),
            [
                t(2025, 1, 1, 0, 1, 0),
                t(2025, 1, 1, 0, 2, 0),
                t(2025, 1, 1, 0, 3, 0)
            ]
        );
        // Sub-second input: the next whole match after it.
        let mid = base + TimeDelta::milliseconds(500);
        assert_eq!(s("* * * * *").next_after(mid), Some(t(2025, 1, 1, 0, 1, 0)));
        assert_eq!(
            s("* * * * * *").next_after(mid),
            Some(t(2025, 1, 1, 0, 0, 1))
        );
    }

    #[test]
    fn field_ranges_are_inclusive() {
        let base = t(2025, 1, 1, 0, 0, 0);
        assert_eq!(
            s("59 23 31 12 *").next_after(base),
            Some(t(2025, 12, 31, 23, 59, 0))
        );
        assert_eq!(
            s("59 0 * * * *").next_after(base),
            Some(t(2025, 1, 1, 0, 0, 59))
        );
        assert_eq!(
            s("0 0 1 1 *").next_after(base),
            Some(t(2026, 1, 1, 0, 0, 0))
        );
        assert_eq!(
            Schedule::parse("0 0 0 * * *").unwrap().next_after(base),
            Some(t(2025, 1, 2, 0, 0, 0))
        );
    }

    #[test]
    fn lists_ranges_and_steps() {
        let base = t(2025, 1, 1, 0, 0, 0);
        assert_eq!(
            fires("5,10,50 * * * *", base, 4),
            [
                t(2025, 1, 1, 0, 5, 0),
                t(2025, 1, 1, 0, 10, 0),
                t(2025, 1, 1, 0, 50, 0),
                t(2025, 1, 1, 1, 5, 0)
            ]
        );
        assert_eq!(
            fires("0 9-11 * * *", base, 4),
            [
                t(2025, 1, 1, 9, 0, 0),
                t(2025, 1, 1, 10, 0, 0),
                t(2025, 1, 1, 11, 0, 0),
                t(2025, 1, 2, 9, 0, 0)
            ]
        );
        assert_eq!(
            fires("*/20 * * * *", base, 4),
            [
                t(2025, 1, 1, 0, 20, 0),
                t(2025, 1, 1, 0, 40, 0),
                t(2025, 1, 1, 1, 0, 0),
                t(2025, 1, 1, 1, 20, 0)
            ]
        );
        // Stepped range, and N/STEP running to the end of the field.
        assert_eq!(
            fires("10-30/10 * * * *", base, 4),
            [
                t(2025, 1, 1, 0, 10, 0),
                t(2025, 1, 1, 0, 20, 0),
                t(2025, 1, 1, 0, 30, 0),
                t(2025, 1, 1, 1, 10, 0)
            ]
        );
        assert_eq!(
            fires("0 20/2 * * *", base, 3),
            [
                t(2025, 1, 1, 20, 0, 0),
                t(2025, 1, 1, 22, 0, 0),
                t(2025, 1, 2, 20, 0, 0)
            ]
        );
        // Mixed list of ranges and steps; seconds field.
        assert_eq!(
            fires("0,30 1-2,*/59 * * * *", base, 4),
            [
                t(2025, 1, 1, 0, 0, 30),
                t(2025, 1, 1, 0, 1, 0),
                t(2025, 1, 1, 0, 1, 30),
                t(2025, 1, 1, 0, 2, 0)
            ]
        );
    }

    #[test]
    fn names_for_months_and_weekdays() {
        // 2025-01-01 is a Wednesday.
        let base = t(2025, 1, 1, 0, 0, 0);
        assert_eq!(
            fires("0 12 * * MON-fri", base, 4),
            [
                t(2025, 1, 1, 12, 0, 0),
                t(2025, 1, 2, 12, 0, 0),
                t(2025, 1, 3, 12, 0, 0),
                t(2025, 1, 6, 12, 0, 0)
            ]
        );
        assert_eq!(
            fires("0 0 1 jan,Jul *", base, 3),
            [
                t(2025, 7, 1, 0, 0, 0),
                t(2026, 1, 1, 0, 0, 0),
                t(2026, 7, 1, 0, 0, 0)
            ]
        );
        // Both 0 and 7 are Sunday; `sat-sun` is not a range but `5-7` is.
        assert_eq!(
            s("0 0 * * 0").next_after(base),
            Some(t(2025, 1, 5, 0, 0, 0))
        );
        assert_eq!(
            s("0 0 * * 7").next_after(base),
            Some(t(2025, 1, 5, 0, 0, 0))
        );
        assert_eq!(
            fires("0 0 * * 5-7", base, 3),
            [
                t(2025, 1, 3, 0, 0, 0),
                t(2025, 1, 4, 0, 0, 0),
                t(2025, 1, 5, 0, 0, 0)
            ]
        );
        assert_eq!(
            s("0 0 * feb-mar *").next_after(base),
            Some(t(2025, 2, 1, 0, 0, 0))
        );
    }

    #[test]
    fn day_of_month_and_day_of_week_combine_like_vixie_cron() {
        let base = t(2025, 1, 1, 0, 0, 0);
        // Both restricted: either matches (13th, or any Friday).
        assert_eq!(
            fires("0 0 13 * fri", base, 3),
            [
                t(2025, 1, 3, 0, 0, 0),
                t(2025, 1, 10, 0, 0, 0),
                t(2025, 1, 13, 0, 0, 0)
            ]
        );
        // Day-of-month starts with `*`: both must match (odd days that are Fridays).
        assert_eq!(
            fires("0 0 */2 * fri", base, 2),
            [t(2025, 1, 3, 0, 0, 0), t(2025, 1, 17, 0, 0, 0)]
        );
        // 31st only in months that have it.
        assert_eq!(
            fires("0 0 31 * *", base, 3),
            [
                t(2025, 1, 31, 0, 0, 0),
                t(2025, 3, 31, 0, 0, 0),
                t(2025, 5, 31, 0, 0, 0)
            ]
        );
    }

    #[test]
    fn leap_days() {
        let base = t(2025, 1, 1, 0, 0, 0);
        assert_eq!(
            fires("0 0 29 2 *", base, 2),
            [t(2028, 2, 29, 0, 0, 0), t(2032, 2, 29, 0, 0, 0)]
        );
        // 2100 is not a leap year.
        assert_eq!(
            s("0 0 29 2 *").next_after(t(2096, 3, 1, 0, 0, 0)),
            Some(t(2104, 2, 29, 0, 0, 0))
        );
        // Feb 29 on a Monday (AND because day-of-week starts with `*`? no:
        // here both are restricted, so OR) vs `*/1`-style AND.
        assert_eq!(
            s("0 0 29 2 */7").next_after(base),
            Some(t(2032, 2, 29, 0, 0, 0)) // the next Feb 29 that is a Sunday
        );
        assert_eq!(
            s("0 0 29 2 */7").last_at_or_before(base),
            Some(t(2004, 2, 29, 0, 0, 0))
        );
    }

    #[test]
    fn utc_has_no_dst_gaps() {
        // 2025-03-30 01:00 UTC is the EU spring-forward instant and
        // 2025-03-09 07:00 UTC the US one: UTC schedules do not care.
        assert_eq!(
            fires("30 1 * * *", t(2025, 3, 29, 2, 0, 0), 2),
            [t(2025, 3, 30, 1, 30, 0), t(2025, 3, 31, 1, 30, 0)]
        );
        let hourly = fires("@hourly", t(2025, 10, 26, 0, 0, 0), 4);
        assert_eq!(
            hourly,
            [
                t(2025, 10, 26, 1, 0, 0),
                t(2025, 10, 26, 2, 0, 0),
                t(2025, 10, 26, 3, 0, 0),
                t(2025, 10, 26, 4, 0, 0)
            ]
        );
    }

    #[test]
    fn macros() {
        let base = t(2025, 5, 15, 10, 30, 0);
        assert_eq!(s("@yearly").next_after(base), Some(t(2026, 1, 1, 0, 0, 0)));
        assert_eq!(
            s("@annually").next_after(base),
            Some(t(2026, 1, 1, 0, 0, 0))
        );
        assert_eq!(s("@monthly").next_after(base), Some(t(2025, 6, 1, 0, 0, 0)));
        // 2025-05-15 is a Thursday; @weekly is Sunday midnight.
        assert_eq!(s("@weekly").next_after(base), Some(t(2025, 5, 18, 0, 0, 0)));
        assert_eq!(s("@daily").next_after(base), Some(t(2025, 5, 16, 0, 0, 0)));
        assert_eq!(
            s("@midnight").next_after(base),
            Some(t(2025, 5, 16, 0, 0, 0))
        );
        assert_eq!(
            s("@HOURLY").next_after(base),
            Some(t(2025, 5, 15, 11, 0, 0))
        );
        assert_eq!(s(" @daily ").as_str(), "@daily");
        assert_eq!(s("*/5 * * * *").as_str(), "*/5 * * * *");
    }

    #[test]
    fn last_at_or_before_mirrors_next_after() {
        let base = t(2025, 1, 1, 0, 0, 0);
        for expr in [
            "* * * * *",
            "*/7 3-5 * * *",
            "0 0 13 * fri",
            "15,45 */6 1,15 feb-apr *",
            "0 0 31 * *",
            "30 */10 1 * * sun",
            "@weekly",
        ] {
            let sch = s(expr);
            let mut c = base;
            for _ in 0..50 {
                let n = sch.next_after(c).unwrap();
                assert!(n > c, "{expr}");
                assert_eq!(sch.last_at_or_before(n), Some(n), "{expr}");
                assert_eq!(
                    sch.last_at_or_before(n - TimeDelta::seconds(1)),
                    (c != base).then_some(c).or(sch.last_at_or_before(base)),
                    "{expr} before {n}"
                );
                c = n;
            }
        }
    }

    #[test]
    fn invalid_expressions_name_the_field() {
        let cases: &[(&str, &str)] = &[
            (
                "61 * * * *",
                "cron expression `61 * * * *`: minute field: 61 is out of range 0-59",
            ),
            ("* 24 * * *", "hour field: 24 is out of range 0-23"),
            ("* * 0 * *", "day-of-month field: 0 is out of range 1-31"),
            ("* * 32 * *", "day-of-month field: 32 is out of range 1-31"),
            ("* * * 13 *", "month field: 13 is out of range 1-12"),
            ("* * * 0 *", "month field: 0 is out of range 1-12"),
            ("* * * * 8", "day-of-week field: 8 is out of range 0-7"),
            ("60 * * * * *", "second field: 60 is out of range 0-59"),
            (
                "* * * foo *",
                "month field: `foo` is not a number or a month name (jan-dec)",
            ),
            (
                "* * * * funday",
                "day-of-week field: `funday` is not a number or a day-of-week name (sun-sat)",
            ),
            ("mon * * * *", "minute field: `mon` is not a number"),
            ("5-2 * * * *", "minute field: range `5-2` is reversed"),
            (
                "* * * * fri-mon",
                "day-of-week field: range `fri-mon` is reversed",
            ),
            (
                "*/0 * * * *",
                "minute field: step 0 in `*/0` is out of range 1-59",
            ),
            (
                "*/x * * * *",
                "minute field: step `x` in `*/x` is not a number",
            ),
            (
                "* */24 * * *",
                "hour field: step 24 in `*/24` is out of range 1-23",
            ),
            (
                "1,,2 * * * *",
                "minute field: `1,,2` has an empty list item",
            ),
            ("1- * * * *", "minute field: `` is not a number"),
            ("-1 * * * *", "minute field: `` is not a number"),
            ("+1 * * * *", "minute field: `+1` is not a number"),
            ("* * ? * *", "day-of-month field: `?` is not supported"),
            ("* * L * *", "day-of-month field: `L` is not a number"),
            ("* * * * 5#3", "day-of-week field: `5#3` is not a number"),
            (
                "99999999999 * * * *",
                "minute field: 99999999999 is out of range 0-59",
            ),
            (
                "0 0 30 2 *",
                "day-of-month field: `30` never occurs in month(s) `2`",
            ),
            ("0 0 31 apr,jun *", "day-of-month field: `31` never occurs"),
            (
                "* * * *",
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with leading seconds), found 4",
            ),
            ("* * * * * * *", "found 7"),
            ("", "the expression is empty"),
            ("   ", "the expression is empty"),
            ("@reboot", "@reboot is not a schedule"),
            ("@often", "unknown macro `@often`"),
        ];
        for (expr, want) in cases {
            let got = err(expr);
            assert!(got.contains(want), "`{expr}`: got {got:?}, want {want:?}");
            assert!(
                got.starts_with(&format!("cron expression `{expr}`: ")),
                "{got}"
            );
        }
        let e = Schedule::parse("* * * 13 *").unwrap_err();
        assert_eq!(e.field, Some("month"));
        assert_eq!(e.expression, "* * * 13 *");
        // Both restricted (OR): Feb 30 never matches but Fridays do.
        assert!(Schedule::parse("0 0 30 2 fri").is_ok());
    }

    #[test]
    fn bit_helpers() {
        assert_eq!(next_bit(0b1010, 0), Some(1));
        assert_eq!(next_bit(0b1010, 1), Some(3));
        assert_eq!(next_bit(0b1010, 3), None);
        assert_eq!(next_bit(1 << 63, 62), Some(63));
        assert_eq!(next_bit(1 << 63, 63), None);
        assert_eq!(prev_bit(0b1010, 3), Some(1));
        assert_eq!(prev_bit(0b1010, 1), None);
        assert_eq!(prev_bit(0b1010, 0), None);
    }
}
