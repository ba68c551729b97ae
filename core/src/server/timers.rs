//! The server machine's timer table: one ordered set, the next deadline is
//! its first entry.

use std::collections::BTreeSet;

use crate::Instant;
use crate::ids::{ChannelId, UserId};
use crate::server::ConnId;

/// Why a timer fires.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    /// The presence grace of `user` in `channel` ends: announce the leave.
    PresenceLeave(ChannelId, UserId),
    /// The typing indicator of `user` in `channel` expires.
    TypingExpire(ChannelId, UserId),
    /// Check whether the connection stayed silent for the idle timeout.
    Idle(ConnId),
    /// A user's reply-byte debt is paid back: its waiting reads may start.
    ReadsResume,
    /// The wait before a tailed channel's gap is read ends.
    TailGap(ChannelId),
}

/// Armed timers by deadline. Each owner (presence, typing) keeps its own
/// deadline so it can cancel exactly its entry.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    armed: BTreeSet<(Instant, TimerKey)>,
}

impl Timers {
    pub(crate) fn arm(&mut self, at: Instant, key: TimerKey) {
        self.armed.insert((at, key));
    }

    pub(crate) fn cancel(&mut self, at: Instant, key: TimerKey) {
        self.armed.remove(&(at, key));
    }

    pub(crate) fn next(&self) -> Option<Instant> {
        self.armed.first().map(|(at, _)| *at)
    }

    /// Removes and returns one timer due at `now`, earliest first.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKey)> {
        if self.next()? <= now {
            self.armed.pop_first()
        } else {
            None
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.armed.len()
    }
}
