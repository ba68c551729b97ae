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
#[derive(Debug, Default)]
pub(crate) struct Timers {
    by_key: VecMap<TimerKey, Instant>,
    by_time: VecSet<(Instant, TimerKey)>,
}

impl Timers {
    /// Arms (or moves) `key` to fire at `at`.
    pub(crate) fn arm(&mut self, key: TimerKey, at: Instant) {
        if let Some(old) = self.by_key.insert(key.clone(), at) {
            self.by_time.take(&(old, key.clone()));
        }
        self.by_time.add((at, key));
    }

    /// Disarms `key`; a no-op when it is not armed.
    pub(crate) fn cancel(&mut self, key: &TimerKey) {
        if let Some(at) = self.by_key.remove(key) {
            self.by_time.take(&(at, key.clone()));
        }
    }

    /// Disarms every key `keep` rejects.
    pub(crate) fn retain(&mut self, keep: impl Fn(&TimerKey) -> bool) {
        let gone: Vec<TimerKey> = self.by_key.keys().filter(|k| !keep(k)).cloned().collect();
        for k in gone {
            self.cancel(&k);
        }
    }

    /// Whether `key` is armed.
    pub(crate) fn is_armed(&self, key: &TimerKey) -> bool {
        self.by_key.contains_key(key)
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
        self.by_key.remove(&key);
        Some(key)
    }

    /// How many timers are armed.
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Disarms everything.
    pub(crate) fn clear(&mut self) {
        self.by_key.clear();
        self.by_time.clear();
    }
}
