//! The client's timer table: a small keyed set whose minimum is the deadline.

use super::vecmap::{VecMap, VecSet};

use crate::Instant;
use crate::ids::{ChannelId, UserId};

use super::requests::RequestTimer;

/// Why a timer is armed. Each key is armed at most once; re-arming moves it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    /// The current connection attempt must reach `welcome` by then.
    Connect,
    /// Start the next connection attempt.
    Reconnect,
    /// Send the next heartbeat `ping`.
    Ping,
    /// The server has been silent since a `ping` for too long.
    PingDeadline,
    /// The outbox pauses after a retryable refusal.
    OutboxPause,
    /// Retry joining a channel after a failed attempt.
    JoinRetry(ChannelId),
    /// A request's reply is overdue (armed and disarmed only by
    /// [`Requests`](super::requests::Requests), with its request).
    Request(RequestTimer),
    /// Our own typing indicator in a channel runs out.
    LocalTyping(ChannelId),
    /// A remote user's typing indicator runs out.
    RemoteTyping(ChannelId, UserId),
    /// Refresh every joined channel (transports that lose frames).
    Resync,
    /// Ask for the missing events of a channel again (after a stale page).
    HistoryRetry(ChannelId),
}

/// Deadlines by key, plus the same pairs ordered by time for `O(log n)`
/// minimum and expiry.
///
/// The keys without data (connect, ping and the like) have a slot each
/// instead of a place in the sorted table: every frame that arrives
/// cancels the ping deadline, and finding out that it is not armed should
/// cost a load, not a search.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// Deadlines of the keys without data, by [`unit_slot`].
    units: [Option<Instant>; UNITS],
    /// Deadlines of the keys with data.
    by_key: VecMap<TimerKey, Instant>,
    by_time: VecSet<(Instant, TimerKey)>,
}

/// How many keys carry no data.
const UNITS: usize = 6;

/// The slot of a key without data; `None` for the others.
fn unit_slot(key: &TimerKey) -> Option<usize> {
    match key {
        TimerKey::Connect => Some(0),
        TimerKey::Reconnect => Some(1),
        TimerKey::Ping => Some(2),
        TimerKey::PingDeadline => Some(3),
        TimerKey::OutboxPause => Some(4),
        TimerKey::Resync => Some(5),
        TimerKey::JoinRetry(_)
        | TimerKey::Request(_)
        | TimerKey::LocalTyping(_)
        | TimerKey::RemoteTyping(..)
        | TimerKey::HistoryRetry(_) => None,
    }
}

impl Timers {
    /// Arms (or moves) `key` to fire at `at`.
    pub(crate) fn arm(&mut self, key: TimerKey, at: Instant) {
        let old = match unit_slot(&key) {
            Some(slot) => self.units[slot].replace(at),
            None => self.by_key.insert(key.clone(), at),
        };
        if let Some(old) = old {
            self.by_time.take(&(old, key.clone()));
        }
        self.by_time.add((at, key));
    }

    /// Disarms `key`; a no-op when it is not armed.
    pub(crate) fn cancel(&mut self, key: &TimerKey) {
        let at = match unit_slot(key) {
            Some(slot) => self.units[slot].take(),
            None => self.by_key.remove(key),
        };
        if let Some(at) = at {
            self.by_time.take(&(at, key.clone()));
        }
    }

    /// Disarms every key `keep` rejects.
    pub(crate) fn retain(&mut self, keep: impl Fn(&TimerKey) -> bool) {
        let gone: Vec<TimerKey> = self
            .by_time
            .keys()
            .map(|(_, k)| k)
            .filter(|k| !keep(k))
            .cloned()
            .collect();
        for k in gone {
            self.cancel(&k);
        }
    }

    /// Whether `key` is armed.
    pub(crate) fn is_armed(&self, key: &TimerKey) -> bool {
        match unit_slot(key) {
            Some(slot) => self.units[slot].is_some(),
            None => self.by_key.contains_key(key),
        }
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest key due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerKey> {
        let (at, _) = self.by_time.first()?;
        if *at > now {
            return None;
        }
        let ((_, key), ()) = self.by_time.pop_first()?;
        match unit_slot(&key) {
            Some(slot) => self.units[slot] = None,
            None => {
                self.by_key.remove(&key);
            }
        }
        Some(key)
    }

    /// How many timers are armed.
    pub(crate) fn len(&self) -> usize {
        self.by_time.len()
    }

    /// Disarms everything.
    pub(crate) fn clear(&mut self) {
        self.units = [None; UNITS];
        self.by_key.clear();
        self.by_time.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_and_without_data_fire_in_time_order_once() {
        let room = ChannelId::new("room").unwrap();
        let at = |ms| Instant::from_millis(ms);
        let mut timers = Timers::default();
        timers.arm(TimerKey::PingDeadline, at(30));
        timers.arm(TimerKey::JoinRetry(room.clone()), at(20));
        timers.arm(TimerKey::Ping, at(10));
        timers.arm(TimerKey::Ping, at(40));
        assert_eq!(timers.len(), 3);
        assert!(timers.is_armed(&TimerKey::Ping));
        assert!(!timers.is_armed(&TimerKey::Connect));
        assert_eq!(timers.next(), Some(at(20)));
        timers.cancel(&TimerKey::Connect);
        assert_eq!(timers.len(), 3);
        assert_eq!(timers.pop_due(at(35)), Some(TimerKey::JoinRetry(room)));
        assert_eq!(timers.pop_due(at(35)), Some(TimerKey::PingDeadline));
        assert_eq!(timers.pop_due(at(35)), None);
        assert!(!timers.is_armed(&TimerKey::PingDeadline));
        timers.retain(|k| *k != TimerKey::Ping);
        assert_eq!(timers.len(), 0);
        assert!(!timers.is_armed(&TimerKey::Ping));
        assert_eq!(timers.next(), None);
    }
}
