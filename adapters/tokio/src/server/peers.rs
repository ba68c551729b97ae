//! The driver's link to the other processes that share its store: this
//! process's commit hints out, theirs (and resync requests) in. The link
//! itself (PostgreSQL `LISTEN`/`NOTIFY`, say) lives in the store's adapter;
//! the driver only moves hints between it and the machine.

use lockstep_core::server::{CommitHint, PresenceCommand, PresenceOutcome, Relay, SharedTail};
use tokio::sync::mpsc;

/// What the link tells the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// Another process committed events: the machine reads them from the
    /// store if it has members in the channel.
    Hint(CommitHint),
    /// Typing or a read receipt of another process's members: relayed to
    /// the channel's members here.
    Relay(Relay),
    /// Hints may have been lost (the link reconnected, or the periodic
    /// safety net): the machine reads every tailed channel past its cursor.
    Resync,
    /// The presence arbiter answered a claim or release, or this process
    /// adopted a dead process's claim.
    Presence(PresenceOutcome),
}

/// What the driver tells the other processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerNote {
    /// This process committed events (a hint).
    Committed(CommitHint),
    /// Typing or a read receipt of this process's members.
    Relay(Relay),
}

/// How a driver shares its store with other processes (see
/// [`spawn_shared_server`](super::spawn_shared_server)).
#[derive(Debug)]
pub struct Peers {
    /// How the machine delivers from the shared store.
    pub tail: SharedTail,
    /// Where this process's hints and relays go. The driver never waits
    /// on it: a full queue drops the note (for a hint, the others' safety
    /// net reads the gap; a relay's loss is harmless).
    pub notes: mpsc::Sender<PeerNote>,
    /// What the link reports.
    pub events: mpsc::Receiver<PeerEvent>,
    /// Where the machine's presence claims and releases go, carried out in
    /// order; `Some` exactly when `tail.presence` is
    /// [`PresenceScope::Arbitrated`](lockstep_core::server::PresenceScope::Arbitrated).
    /// While the queue is full the driver holds commands in order in a
    /// bounded backlog and feeds them as room frees up; only past that
    /// bound is one dropped (logged): a claim dropped announces no join, a
    /// release dropped leaves the claim until this process's lease is
    /// reaped.
    pub presence: Option<mpsc::Sender<PresenceCommand>>,
}
