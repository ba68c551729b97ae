//! Everything the client keeps about one channel.

use super::vecmap::{VecMap, VecSet};

use crate::Instant;
use crate::ids::{Epoch, Seq, UserId};
use crate::wire::{ErrorCode, LogEvent, ReqId};

use super::events::SubscriptionState;
use super::inbox::{Inbox, Position};

/// The actual subscription, finer than the public [`SubscriptionState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sub {
    /// Not joined on this connection.
    Idle,
    /// Join attempt `attempt` is in flight as `req`.
    Joining {
        /// 1-based.
        attempt: u32,
        /// The attempt's own request; replies to older ones are stale.
        req: ReqId,
    },
    /// Join attempt `attempt` failed; the retry timer is armed.
    Backoff {
        /// The attempt that failed.
        attempt: u32,
    },
    /// Joined.
    Joined,
    /// A leave is in flight.
    Leaving {
        /// Its request.
        req: ReqId,
    },
    /// Refused for good.
    Failed(ErrorCode),
}

impl Sub {
    /// The public view.
    pub(crate) fn view(self) -> SubscriptionState {
        match self {
            Sub::Idle => SubscriptionState::Unsubscribed,
            Sub::Joining { attempt, .. } => SubscriptionState::Subscribing { attempt },
            Sub::Backoff { attempt } => SubscriptionState::Subscribing {
                attempt: attempt.saturating_add(1),
            },
            Sub::Joined => SubscriptionState::Subscribed,
            Sub::Leaving { .. } => SubscriptionState::Unsubscribing,
            Sub::Failed(code) => SubscriptionState::Failed { code },
        }
    }
}

/// Our own typing indicator in a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocalTyping {
    /// Not typing.
    Idle,
    /// Typing; `true` was last sent at `last_sent`.
    Active {
        /// When `typing: true` last went out.
        last_sent: Instant,
    },
}

/// One channel's state.
#[derive(Debug)]
pub(crate) struct Channel {
    /// Whether the app wants it subscribed.
    pub(crate) desired: bool,
    /// Where the subscription actually stands.
    pub(crate) sub: Sub,
    /// The inbound stream.
    pub(crate) inbox: Inbox,
    /// Live events that came while a join was in flight (the protocol lets
    /// them come before the join's ack, and the ack's head may be below
    /// them): taken into the inbox after the ack. Kept only while
    /// joining; at most `inbox_buffer_max`, the newest kept, so a gap
    /// stays visible.
    pub(crate) held: Vec<LogEvent>,
    /// The `channel:history` request in flight, at most one.
    pub(crate) history: Option<ReqId>,
    /// The refresh (re-join) in flight, at most one.
    pub(crate) refresh: Option<ReqId>,
    /// Who is present (valid while joined).
    pub(crate) members: VecSet<UserId>,
    /// Remote typers and when their indicator expires.
    pub(crate) typing: VecMap<UserId, Instant>,
    /// Our own typing indicator.
    pub(crate) local_typing: LocalTyping,
    /// Our read watermark as the app set it (max wins).
    pub(crate) read_mark: Seq,
    /// The watermark the server confirmed or was last sent.
    pub(crate) read_sent: Seq,
    /// Others' read watermarks (max wins).
    pub(crate) receipts: VecMap<UserId, Seq>,
}

impl Channel {
    /// A channel the app just asked for.
    pub(crate) fn new() -> Self {
        Channel {
            desired: true,
            sub: Sub::Idle,
            inbox: Inbox::default(),
            held: Vec::new(),
            history: None,
            refresh: None,
            members: VecSet::new(),
            typing: VecMap::new(),
            local_typing: LocalTyping::Idle,
            read_mark: Seq::ZERO,
            read_sent: Seq::ZERO,
            receipts: VecMap::new(),
        }
    }
}

/// Ends the request `slot` tracks if it is `req`: a reply or timeout of an
/// older one must not clear a newer. Whether it was.
pub(crate) fn end_request(slot: &mut Option<ReqId>, req: ReqId) -> bool {
    let current = *slot == Some(req);
    if current {
        *slot = None;
    }
    current
}

/// A read-only summary of one channel, for apps and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelView {
    /// Whether the app wants it subscribed.
    pub desired: bool,
    /// Where the subscription stands.
    pub subscription: SubscriptionState,
    /// The log identity followed, once known.
    pub epoch: Option<Epoch>,
    /// The last seq delivered to the app (0 before any).
    pub last_seq: Seq,
    /// Early arrivals held back, waiting for a gap to fill.
    pub buffered: usize,
    /// Who is present, sorted (empty while not subscribed).
    pub members: Vec<UserId>,
    /// Who is typing, sorted.
    pub typing: Vec<UserId>,
    /// Our read watermark.
    pub read_up_to: Seq,
}

impl Channel {
    /// The public summary.
    pub(crate) fn view(&self) -> ChannelView {
        ChannelView {
            desired: self.desired,
            subscription: self.sub.view(),
            epoch: match self.inbox.position() {
                Position::Fresh => None,
                Position::At { epoch, .. } => Some(epoch),
            },
            last_seq: self.inbox.last(),
            buffered: self.inbox.buffered(),
            members: self.members.keys().cloned().collect(),
            typing: self.typing.keys().cloned().collect(),
            read_up_to: self.read_mark,
        }
    }
}
