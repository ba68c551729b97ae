//! A deterministic discrete-event queue.
//!
//! Events are popped in order of their due time; events due at the same time
//! come out in the order they were pushed (an insertion counter breaks the
//! tie), so a world built on this queue never depends on heap internals.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use lockstep_core::Instant;

/// One scheduled event, ordered by (due time, insertion counter).
#[derive(Debug)]
struct Scheduled<E> {
    at: Instant,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}

impl<E> Eq for Scheduled<E> {}

impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Scheduled<E> {
    /// Reversed, so the std max-heap pops the earliest (time, seq) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A priority queue of events keyed by virtual time, FIFO among equal times.
///
/// The world's main loop pops the next event, advances its clock to the
/// event's time and handles it; the insertion counter makes the order total,
/// so two runs of one seed handle the same events in the same order.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Scheduled<E>>,
    next_seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue.
    #[must_use]
    pub fn new() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }

    /// An empty queue with room for `capacity` events, so a world of known
    /// size does not reallocate on its hot path.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        EventQueue {
            heap: BinaryHeap::with_capacity(capacity),
            next_seq: 0,
        }
    }

    /// Schedules `event` at `at`; it comes out after every event already
    /// scheduled at the same time.
    pub fn push(&mut self, at: Instant, event: E) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.heap.push(Scheduled { at, seq, event });
    }

    /// Removes and returns the earliest event, whatever its time.
    pub fn pop(&mut self) -> Option<(Instant, E)> {
        self.heap.pop().map(|s| (s.at, s.event))
    }

    /// Removes and returns the earliest event if it is due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, E)> {
        if self.heap.peek()?.at <= now {
            self.pop()
        } else {
            None
        }
    }

    /// The time of the earliest event, to advance the clock to.
    #[must_use]
    pub fn peek_time(&self) -> Option<Instant> {
        self.heap.peek().map(|s| s.at)
    }

    /// How many events are scheduled.
    #[must_use]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is scheduled.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn pops_by_time_then_insertion() {
        let mut q = EventQueue::new();
        q.push(t(5), "c");
        q.push(t(1), "a");
        q.push(t(5), "d");
        q.push(t(3), "b");
        q.push(t(5), "e");
        assert_eq!(q.len(), 5);
        assert_eq!(q.peek_time(), Some(t(1)));
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            vec![
                (t(1), "a"),
                (t(3), "b"),
                (t(5), "c"),
                (t(5), "d"),
                (t(5), "e")
            ]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn pop_due_respects_now() {
        let mut q = EventQueue::with_capacity(4);
        q.push(t(10), 1);
        q.push(t(20), 2);
        assert_eq!(q.pop_due(t(9)), None);
        assert_eq!(q.pop_due(t(10)), Some((t(10), 1)));
        assert_eq!(q.pop_due(t(15)), None);
        assert_eq!(q.pop_due(t(25)), Some((t(20), 2)));
        assert_eq!(q.pop_due(t(99)), None);
    }

    #[test]
    fn many_equal_times_stay_fifo() {
        let mut q = EventQueue::new();
        for i in 0..1000 {
            q.push(t(7), i);
        }
        let got: Vec<i32> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    }
}
