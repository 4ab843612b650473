//! The discrete-event core: a clock and the events scheduled on it.
//!
//! Time is an integer number of nanoseconds from the start (`u64`: 584
//! years), so no rounding depends on the order of additions. Events at the
//! same instant come out in the order they were scheduled (a sequence
//! number breaks the tie), which makes a run a function of its inputs
//! alone: the same inputs give the same events in the same order, on every
//! machine.
//!
//! ```
//! use weft_sim::des::Events;
//!
//! let mut ev = Events::new();
//! ev.at(20, "late");
//! ev.at(10, "first");
//! ev.at(10, "second");
//! assert_eq!(ev.pop(), Some("first"));
//! assert_eq!(ev.now(), 10);
//! ev.after(5, "in five");
//! assert_eq!(ev.pop(), Some("second"));
//! assert_eq!(ev.pop(), Some("in five"));
//! assert_eq!((ev.pop(), ev.now()), (Some("late"), 20));
//! assert_eq!((ev.pop(), ev.processed()), (None, 4));
//! ```

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Simulated time, ns from the start.
pub type Nanos = u64;

/// Seconds as [`Nanos`], rounded to the nearest; negative or not finite: 0.
pub fn nanos(secs: f64) -> Nanos {
    if secs.is_finite() && secs > 0.0 {
        (secs * 1e9).round() as Nanos
    } else {
        0
    }
}

/// The pending events, earliest first, and the clock.
#[derive(Debug)]
pub struct Events<E> {
    heap: BinaryHeap<Entry<E>>,
    seq: u64,
    now: Nanos,
    processed: u64,
}

#[derive(Debug)]
struct Entry<E> {
    at: Nanos,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    /// Reversed: the heap's greatest is the earliest, then the first
    /// scheduled.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl<E> Default for Events<E> {
    fn default() -> Self {
        Events::new()
    }
}

impl<E> Events<E> {
    /// No events, the clock at 0.
    pub fn new() -> Events<E> {
        Events {
            heap: BinaryHeap::new(),
            seq: 0,
            now: 0,
            processed: 0,
        }
    }

    /// The clock: the time of the event popped last.
    pub fn now(&self) -> Nanos {
        self.now
    }

    /// Schedules `event` at `at`; a time in the past is taken as now (an
    /// event cannot change what has happened).
    pub fn at(&mut self, at: Nanos, event: E) {
        self.heap.push(Entry {
            at: at.max(self.now),
            seq: self.seq,
            event,
        });
        self.seq += 1;
    }

    /// Schedules `event` `delay` from now.
    pub fn after(&mut self, delay: Nanos, event: E) {
        self.at(self.now.saturating_add(delay), event);
    }

    /// The next event, the clock moved to its time; `None` when none is
    /// left.
    pub fn pop(&mut self) -> Option<E> {
        let e = self.heap.pop()?;
        self.now = e.at;
        self.processed += 1;
        Some(e.event)
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// None waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Events popped so far.
    pub fn processed(&self) -> u64 {
        self.processed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_keep_the_order_they_were_scheduled_in() {
        let mut ev = Events::new();
        for i in 0..1000u32 {
            ev.at(u64::from(i % 7), i);
        }
        let mut last = (0, 0);
        while let Some(i) = ev.pop() {
            let key = (ev.now(), i);
            assert!(key >= last, "{key:?} after {last:?}");
            assert_eq!(ev.now(), u64::from(i % 7));
            last = key;
        }
        assert_eq!(ev.processed(), 1000);
    }

    #[test]
    fn the_past_is_now() {
        let mut ev = Events::new();
        ev.at(100, 'a');
        assert_eq!(ev.pop(), Some('a'));
        ev.at(50, 'b');
        assert_eq!((ev.pop(), ev.now()), (Some('b'), 100));
        assert_eq!(nanos(-1.0), 0);
        assert_eq!(nanos(f64::NAN), 0);
        assert_eq!(nanos(1.5e-9), 2);
    }
}
