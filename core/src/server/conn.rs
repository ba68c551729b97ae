//! Per-connection state.

use std::collections::BTreeMap;

use crate::Instant;
use crate::ids::{ChannelId, UserId};
use crate::server::ServerConfig;
use crate::server::rate::TokenBucket;
use crate::store::StoreOpId;

/// A connection's membership of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Membership {
    /// Registered (broadcasts reach it) while the join attempt started by
    /// this store operation reads the log. Undone if that read fails.
    Joining(StoreOpId),
    /// The join was acknowledged.
    Joined,
}

/// An open connection with a verified identity.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    pub(crate) user: UserId,
    pub(crate) channels: BTreeMap<ChannelId, Membership>,
    pub(crate) messages: TokenBucket,
    pub(crate) typing: TokenBucket,
    /// Requests of this connection waiting for a store reply.
    pub(crate) awaiting: usize,
}

impl Conn {
    pub(crate) fn new(user: UserId, config: &ServerConfig, now: Instant) -> Self {
        Conn {
            user,
            channels: BTreeMap::new(),
            messages: TokenBucket::new(config.messages_per_sec, config.messages_burst, now),
            typing: TokenBucket::new(config.typing_per_sec, config.typing_burst, now),
            awaiting: 0,
        }
    }
}
