//! Per-connection state.

use std::collections::{BTreeMap, VecDeque};

use crate::Instant;
use crate::ids::{ChannelId, ClientMsgId, UserId};
use crate::server::ServerConfig;
use crate::server::limits::Budgets;
use crate::server::resend_rounds::ResendRounds;
use crate::wire::{ErrorCode, ReqId};

/// Names one join attempt, so a newer attempt of the same channel can take
/// over from an older one still reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct JoinAttempt(pub(crate) u64);

/// A connection's membership of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Membership {
    /// Registered (broadcasts reach it) while this join attempt reads the
    /// log. Undone if that read fails.
    Joining(JoinAttempt),
    /// The join was acknowledged.
    Joined,
}

/// A closed send-order gate: `blocked_by` failed with a retryable `code`,
/// so later sends of this connection to the channel are refused until it is
/// retried (or the gate expires), keeping the sender's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderGate {
    pub(crate) blocked_by: ClientMsgId,
    /// The failed send's arrival number: only sends that arrived after it
    /// are held back.
    pub(crate) arrival: u64,
    pub(crate) code: ErrorCode,
    pub(crate) until: Instant,
    /// The sender's order as the refused sends show it. When the gate
    /// expires (the failed send was given up) it is handed to the sender's
    /// oldest message still waiting, so the expiry cannot let a later
    /// message overtake it.
    pub(crate) rounds: ResendRounds,
}

/// An open connection with a verified identity.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    pub(crate) user: UserId,
    pub(crate) channels: BTreeMap<ChannelId, Membership>,
    /// Its request budgets (its user has a shared one too).
    pub(crate) budgets: Budgets,
    /// Requests of this connection waiting for a store reply.
    pub(crate) awaiting: usize,
    /// Closed send-order gates, by channel (at most one per joined channel).
    pub(crate) gates: BTreeMap<ChannelId, OrderGate>,
    /// Sends received so far on this connection: each send's arrival number.
    pub(crate) arrivals: u64,
    /// When the connection last sent a frame (for the idle timeout).
    pub(crate) last_seen: Instant,
    /// When its idle timer is armed, if the idle timeout is on.
    pub(crate) idle_at: Option<Instant>,
    /// The latest leave request per channel (bounded): joins with a lower
    /// request id are stale.
    pub(crate) leaves: BTreeMap<ChannelId, ReqId>,
    /// Sends committed and answered on this connection, newest last
    /// (bounded).
    pub(crate) accepted: VecDeque<(ChannelId, ClientMsgId)>,
}

impl Conn {
    pub(crate) fn new(user: UserId, config: &ServerConfig, now: Instant) -> Self {
        Conn {
            user,
            channels: BTreeMap::new(),
            budgets: Budgets::new(config, 1, now),
            awaiting: 0,
            gates: BTreeMap::new(),
            arrivals: 0,
            last_seen: now,
            idle_at: None,
            leaves: BTreeMap::new(),
            accepted: VecDeque::new(),
        }
    }
}
