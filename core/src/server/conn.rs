//! Per-connection state.

use std::collections::{BTreeMap, VecDeque};

use crate::Instant;
use crate::ids::{ChannelId, ClientMsgId, UserId};
use crate::server::ServerConfig;
use crate::server::gate::OrderGate;
use crate::server::limits::Budgets;
use crate::wire::ReqId;

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

/// An open connection with a verified identity.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    pub(crate) user: UserId,
    pub(crate) channels: BTreeMap<ChannelId, Membership>,
    /// Its request budgets (its user has a shared one too).
    pub(crate) budgets: Budgets,
    /// Requests of this connection waiting for a store reply.
    pub(crate) awaiting: usize,
    /// Send-order gates holding sends back, by channel (at most one per
    /// joined channel).
    pub(crate) gates: BTreeMap<ChannelId, OrderGate>,
    /// Sends received so far on this connection: each send's arrival
    /// number, its place in the sender's order the first time it comes.
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
