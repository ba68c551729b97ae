//! The numbered invariants of docs/DESIGN.md §4 and what each means for a user.

use std::fmt;

/// One guarantee the oracle checks. The number is the one docs/DESIGN.md §4 and
/// the README use, so a violation report points straight at the promise
/// that broke.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Invariant {
    /// 1. Nothing acknowledged is lost: every message a sender saw acked, and
    ///    every event a member saw broadcast, is in the store's log. A user
    ///    never sees "sent" for a message that later vanishes.
    AckedIsStored = 1,
    /// 2. No duplicates in a channel log, whatever was retried: a flaky
    ///    network never shows a message twice to anyone.
    NoDuplicates = 2,
    /// 3. Every subscribed client delivers each channel's events in seq
    ///    order, with no gap and no duplicate, across reconnects; after
    ///    healing it reaches the head. A chat never shows holes or repeats.
    InOrderDelivery = 3,
    /// 4. Every send ends in exactly one outcome, and no optimistic entry is
    ///    left behind or shown twice: the spinner always resolves, once.
    OneOutcome = 4,
    /// 5. A sender's messages to a channel keep the order in which it sent
    ///    them: "see you" never lands before "hello".
    SenderOrder = 5,
    /// 6. After healing, actual subscriptions equal desired ones, presence
    ///    views equal the truth, and no typing indicator outlives its TTL:
    ///    the UI settles on what is really the case.
    Convergence = 6,
    /// 7. A client never receives events of a channel it did not join or may
    ///    not see: private channels stay private.
    OnlyJoined = 7,
    /// 8. No timer or pending request survives its connection or a close: no
    ///    leaks, no callbacks firing into a dead socket.
    NoLeaks = 8,
    /// 9. Connection state changes follow the state chart: the UI never sees
    ///    an impossible transition (e.g. back from `closed`).
    StateChart = 9,
    /// 10. With several server processes on one store: after healing, every
    ///     committed event reaches every live member, whichever process
    ///     serves it. A lost hint delays a message, never hides it.
    EveryProcessDelivers = 10,
    /// 11. With several server processes: after healing, presence is the
    ///     union of live connections. The arbiter holds a user's claim in a
    ///     channel iff a live connection of theirs joined it, and each
    ///     process with members in a channel lists every user present there
    ///     on any process: a user who left is announced gone, one who moved
    ///     is not.
    PresenceIsUnion = 11,
}

impl Invariant {
    /// Every invariant, in number order.
    pub const ALL: [Invariant; 11] = [
        Invariant::AckedIsStored,
        Invariant::NoDuplicates,
        Invariant::InOrderDelivery,
        Invariant::OneOutcome,
        Invariant::SenderOrder,
        Invariant::Convergence,
        Invariant::OnlyJoined,
        Invariant::NoLeaks,
        Invariant::StateChart,
        Invariant::EveryProcessDelivers,
        Invariant::PresenceIsUnion,
    ];

    /// The invariant's number in docs/DESIGN.md §4.
    #[must_use]
    pub fn number(self) -> u8 {
        self as u8
    }

    /// A short name for reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Invariant::AckedIsStored => "nothing acknowledged is lost",
            Invariant::NoDuplicates => "no duplicates in a channel log",
            Invariant::InOrderDelivery => "in-order, gap-free, exactly-once delivery",
            Invariant::OneOutcome => "exactly one outcome per send",
            Invariant::SenderOrder => "a sender's order is kept",
            Invariant::Convergence => "views converge after healing",
            Invariant::OnlyJoined => "only joined, allowed channels are received",
            Invariant::NoLeaks => "no timer or request outlives its connection",
            Invariant::StateChart => "state changes follow the chart",
            Invariant::EveryProcessDelivers => "every process delivers every commit",
            Invariant::PresenceIsUnion => "presence is the union of live connections",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invariant {} ({})", self.number(), self.name())
    }
}
