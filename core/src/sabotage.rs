//! Deliberate bugs, switched on one at a time to prove that the simulator's
//! oracle notices each broken guarantee (a checker that never fires is a
//! defect of its own).
//!
//! **Unstable and test-only.** This module exists only with the `sabotage`
//! cargo feature, which no release build, adapter or application may turn
//! on: every [`Break`] makes the machines wrong on purpose. Its shape may
//! change in any release.
//!
//! A [`Sabotage`] is handed to a machine after it is built:
//! [`Client::set_sabotage`](crate::client::Client::set_sabotage),
//! [`Server::set_sabotage`](crate::server::Server::set_sabotage) and
//! [`MemStore::set_sabotage`](crate::store::MemStore::set_sabotage); each
//! machine reads only the breaks that concern it. The default breaks
//! nothing. No config struct carries it, so turning the feature on changes
//! no struct's shape.

use std::collections::BTreeSet;

/// One deliberate bug, named by what it does wrong. The invariant each one
/// is meant to break (docs/DESIGN.md §4) is given beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Break {
    /// Store: acknowledges an append (`Appended` with the next seq) but
    /// keeps nothing of it. Breaks 1, nothing acknowledged is lost.
    StoreForgetsAppends,
    /// Store: forgets every dedupe key, so a retried send is appended again.
    /// Breaks 2, no duplicates in a channel log.
    StoreSkipsDedupe,
    /// Store: runs an append issued behind a failed one of its channel as if
    /// nothing had failed, so a later batch commits while the earlier one
    /// is retried after it. Breaks 5, sender order.
    StoreIgnoresChains,
    /// Client: a live event is delivered as soon as it arrives, even past a
    /// gap, instead of waiting for the events before it. Breaks 3, in-order
    /// delivery.
    InboxSkipsGapCheck,
    /// Client: entries in flight when a connection is lost stay in flight,
    /// so they are never resent and never resolve. Breaks 4, one outcome.
    OutboxForgetsResend,
    /// Server: the per-connection send-order gate never closes, so a send
    /// overtakes an earlier one that failed retryably. Breaks 5, sender
    /// order.
    ServerIgnoresOrderGate,
    /// Server: a user's presence grace period never ends, so
    /// `presence:leave` is never announced. Breaks 6, convergence.
    ServerKeepsPresence,
    /// Server: the access policy is not asked on `channel:join`, so anyone
    /// joins anyone's private channel. Breaks 7, only joined and allowed.
    ServerIgnoresJoinPolicy,
    /// Server: a connection that leaves a channel stays in its room, so it
    /// keeps receiving the channel's broadcasts. Breaks 7, only joined.
    ServerKeepsRoomOnLeave,
    /// Client: `close` closes the transport but keeps the connection's
    /// timers and pending requests. Breaks 8, no leaks.
    CloseKeepsTimers,
    /// Client: a lost connection's timers (heartbeat, join retries) stay
    /// armed into the next one (request timeouts cannot: they end with
    /// their requests). Breaks 8, no leaks.
    LostConnectionKeepsTimers,
    /// Client: the `connecting` state is entered without telling the app,
    /// so it sees `idle -> connected`. Breaks 9, the state chart.
    SkipConnectingEvent,
}

/// The set of deliberate bugs switched on; the default is none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sabotage {
    breaks: BTreeSet<Break>,
}

impl Sabotage {
    /// Exactly one bug.
    #[must_use]
    pub fn only(b: Break) -> Self {
        Sabotage::default().with(b)
    }

    /// These bugs plus `b`.
    #[must_use]
    pub fn with(mut self, b: Break) -> Self {
        self.breaks.insert(b);
        self
    }

    /// Whether bug `b` is switched on.
    #[must_use]
    pub fn has(&self, b: Break) -> bool {
        self.breaks.contains(&b)
    }

    /// Whether no bug is switched on.
    #[must_use]
    pub fn is_none(&self) -> bool {
        self.breaks.is_empty()
    }
}
