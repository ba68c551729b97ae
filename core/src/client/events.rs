//! What goes in and out of the client: transport events, transmits, app
//! events, connection and subscription states, outcomes and errors.

use serde::{Deserialize, Serialize};

use crate::Instant;
use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use crate::wire::{ClientFrame, DecodeError, ErrorCode, LogEvent, ReqId, ServerFrame};

/// What the driver's transport reports. Every event names the generation of
/// the transport it came from; events from an older generation are stale
/// and ignored, which is what kills late-callback races.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportEvent {
    /// The transport asked for by `Transmit::Open` is up.
    Opened {
        /// Which transport.
        generation: u64,
    },
    /// A frame arrived.
    Frame {
        /// Which transport.
        generation: u64,
        /// The decoded frame.
        frame: ServerFrame,
    },
    /// Bytes arrived that did not decode; reported as a protocol error.
    Undecodable {
        /// Which transport.
        generation: u64,
        /// Why decoding failed.
        error: DecodeError,
    },
    /// The transport closed or could not be opened.
    Closed {
        /// Which transport.
        generation: u64,
        /// A human-readable cause, for logs.
        reason: String,
    },
}

/// Why the client closes a transport itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// The app called `close`.
    #[error("closed by the application")]
    ClientClosed,
    /// The handshake did not finish within the connect timeout.
    #[error("connect timeout")]
    ConnectTimeout,
    /// The server was silent past the heartbeat timeout.
    #[error("heartbeat timeout")]
    HeartbeatTimeout,
    /// The server refused the handshake.
    #[error("handshake refused")]
    Refused,
}

/// What the driver must do for the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Transmit {
    /// Open a new transport and tag its events with `generation`.
    Open {
        /// The new transport's generation.
        generation: u64,
    },
    /// Send a frame on the transport of `generation`.
    Frame {
        /// Which transport.
        generation: u64,
        /// The frame.
        frame: ClientFrame,
    },
    /// Close the transport of `generation`; its later events are ignored.
    Close {
        /// Which transport.
        generation: u64,
        /// Why.
        reason: CloseReason,
    },
}

/// Why the connection gave up for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailReason {
    /// The server refused the handshake with a non-retryable code.
    #[error("handshake refused: {code}: {message}")]
    Refused {
        /// The refusal code (e.g. `unauthorized`).
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// `max_connect_attempts` attempts failed.
    #[error("gave up after {attempts} connection attempts")]
    AttemptsExhausted {
        /// How many attempts were made.
        attempts: u32,
    },
}

/// The connection's lifecycle; each change is reported as
/// [`ClientEvent::State`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Nothing asked yet.
    Idle,
    /// A transport is opening or shaking hands.
    Connecting {
        /// 1 for the first attempt after being online.
        attempt: u32,
        /// The transport being tried.
        generation: u64,
    },
    /// The handshake succeeded.
    Connected {
        /// The live transport.
        generation: u64,
        /// The verified identity the server gave us.
        user_id: UserId,
    },
    /// Offline; the next attempt is scheduled.
    Reconnecting {
        /// The attempt that will run at `retry_at`.
        attempt: u32,
        /// When it runs.
        retry_at: Instant,
    },
    /// Offline longer than `suspend_after`: retrying at the slower pace.
    Suspended {
        /// When the next attempt runs.
        retry_at: Instant,
    },
    /// The app closed the client. Terminal.
    Closed,
    /// The connection gave up; `connect` starts over.
    Failed {
        /// Why.
        reason: FailReason,
    },
}

impl ConnectionState {
    /// A short name for traces and errors.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            ConnectionState::Idle => "idle",
            ConnectionState::Connecting { .. } => "connecting",
            ConnectionState::Connected { .. } => "connected",
            ConnectionState::Reconnecting { .. } => "reconnecting",
            ConnectionState::Suspended { .. } => "suspended",
            ConnectionState::Closed => "closed",
            ConnectionState::Failed { .. } => "failed",
        }
    }
}

/// Where one channel's subscription actually stands (the app's wish is kept
/// apart and reconciled into this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Not joined on the current connection (or no connection).
    Unsubscribed,
    /// A join is in flight or waiting for its retry.
    Subscribing {
        /// The current attempt, 1-based.
        attempt: u32,
    },
    /// Joined; events flow.
    Subscribed,
    /// A leave is in flight.
    Unsubscribing,
    /// The server refused the join for good (e.g. `forbidden`).
    Failed {
        /// The refusal code.
        code: ErrorCode,
    },
}

/// A handle for an edit or a delete, to match its outcome.
///
/// The high 32 bits come from the client instance and the low 32 bits
/// count, so an op id stays unique across app restarts: an app that keeps
/// a table of handles never confuses a restored op with a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpId(pub u64);

impl OpId {
    const COUNTER_BITS: u32 = 32;
    const COUNTER_MASK: u64 = (1 << Self::COUNTER_BITS) - 1;

    /// The op id of the `counter`-th local id of client `instance`.
    pub(crate) fn compose(instance: u64, counter: u64) -> OpId {
        OpId((instance & !Self::COUNTER_MASK) | (counter & Self::COUNTER_MASK))
    }

    /// The counter part, if this op id was made by client `instance`.
    pub(crate) fn counter_of(self, instance: u64) -> Option<u64> {
        ((self.0 & !Self::COUNTER_MASK) == (instance & !Self::COUNTER_MASK))
            .then_some(self.0 & Self::COUNTER_MASK)
    }
}

/// Why an outbox entry failed for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    /// The server refused it with a non-retryable code.
    #[error("refused: {code}: {message}")]
    Refused {
        /// The code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The app unsubscribed from the channel before the entry was confirmed.
    /// An entry that was in flight when its connection dropped may still
    /// have been stored; its message then shows up in the log if the
    /// channel is subscribed again.
    #[error("channel unsubscribed")]
    Unsubscribed,
    /// The channel's subscription failed for good.
    #[error("channel subscription failed: {0}")]
    SubscriptionFailed(ErrorCode),
    /// It timed out or was refused retryably `max_send_failures` times.
    #[error("gave up after {0} failures")]
    Exhausted(u32),
}

/// The one outcome of an outbox entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored: a message got its position and id.
    Sent {
        /// The message's position.
        seq: Seq,
        /// The server's id for it.
        message_id: MessageId,
    },
    /// Stored: an edit or delete got its own seq.
    Applied {
        /// The operation's position.
        seq: Seq,
    },
    /// Given up.
    Failed(SendFailure),
}

/// Which outbox entry an outcome is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntryId {
    /// A message, by its idempotency key.
    Message(ClientMsgId),
    /// An edit or a delete.
    Op(OpId),
}

/// Why `send`, `update` or `delete` was refused at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The outbox holds `outbox_max` entries already.
    #[error("outbox is full ({0} entries)")]
    OutboxFull(usize),
    /// The app does not want this channel subscribed.
    #[error("channel {0} is not subscribed")]
    NotSubscribed(ChannelId),
    /// The channel's subscription was refused for good (e.g. forbidden):
    /// nothing could ever be posted there.
    #[error("channel {0} refused the subscription: {1}")]
    SubscriptionFailed(ChannelId, ErrorCode),
    /// The client is closed.
    #[error("client is closed")]
    Closed,
    /// The client message id could not be built (should not happen).
    #[error("bad client message id: {0}")]
    BadId(#[from] crate::ids::IdError),
}

/// Why `subscribe` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The app wants `max_channels` channels already.
    #[error("too many channels (max {0})")]
    TooManyChannels(usize),
    /// The client is closed.
    #[error("client is closed")]
    Closed,
}

/// Why a restored outbox was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The snapshot was written by an incompatible version.
    #[error("unsupported outbox snapshot version {0}")]
    Version(u32),
    /// Restoring it would overflow `outbox_max`.
    #[error("outbox is full ({0} entries)")]
    OutboxFull(usize),
}

/// A frame the server should not have sent now; reported, then ignored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Bytes that are not a frame.
    #[error("undecodable frame: {0}")]
    Undecodable(DecodeError),
    /// A frame that makes no sense in the connection's state.
    #[error("unexpected {frame} frame while {state}")]
    UnexpectedFrame {
        /// The frame's type.
        frame: &'static str,
        /// The connection state's name.
        state: &'static str,
    },
    /// The server speaks another protocol version.
    #[error("server speaks protocol version {0}")]
    Version(u32),
    /// A reply to a request that was never made.
    #[error("reply to unknown request {0:?}")]
    UnknownRequest(ReqId),
    /// A reply whose kind does not match the request.
    #[error("request {req:?} was {expected}, the reply is {got}")]
    WrongAckKind {
        /// The request.
        req: ReqId,
        /// The kind asked.
        expected: &'static str,
        /// The kind answered.
        got: &'static str,
    },
    /// A reply about another channel than the one asked.
    #[error("request {req:?} was about {expected}, the reply is about {got}")]
    WrongChannel {
        /// The request.
        req: ReqId,
        /// The channel asked.
        expected: ChannelId,
        /// The channel answered.
        got: ChannelId,
    },
    /// An event for a channel the client has never asked for.
    #[error("event for unknown channel {0}")]
    UnknownChannel(ChannelId),
    /// A log event of a channel carried the wrong epoch or channel data.
    #[error("bad log event in {channel}: {detail}")]
    BadEvent {
        /// The channel.
        channel: ChannelId,
        /// What was wrong.
        detail: &'static str,
    },
}

/// What the app learns, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// The connection state changed.
    State(ConnectionState),
    /// A channel's subscription state changed.
    Subscription {
        /// The channel.
        channel: ChannelId,
        /// Its new state.
        state: SubscriptionState,
    },
    /// The next event of a channel's log: strictly in seq order, exactly once.
    Log {
        /// The channel.
        channel: ChannelId,
        /// The event.
        event: LogEvent,
    },
    /// Events `from..=to` no longer exist on the server; the stream goes on
    /// after `to`. Never a silent gap.
    Truncated {
        /// The channel.
        channel: ChannelId,
        /// The first missing seq.
        from: Seq,
        /// The last missing seq.
        to: Seq,
    },
    /// The channel's log was reset: forget its events; a fresh stream follows.
    Reset {
        /// The channel.
        channel: ChannelId,
        /// The new log identity.
        epoch: Epoch,
    },
    /// The one outcome of an outbox entry.
    Outcome {
        /// The channel.
        channel: ChannelId,
        /// Which entry.
        id: EntryId,
        /// What happened.
        outcome: Outcome,
    },
    /// A fresh member snapshot (after every join).
    Members {
        /// The channel.
        channel: ChannelId,
        /// Everyone present, sorted.
        members: Vec<UserId>,
    },
    /// A user appeared in a channel.
    MemberJoined {
        /// The channel.
        channel: ChannelId,
        /// Who.
        user: UserId,
    },
    /// A user left a channel.
    MemberLeft {
        /// The channel.
        channel: ChannelId,
        /// Who.
        user: UserId,
    },
    /// A user's typing indicator changed (started, stopped, expired, cleared).
    Typing {
        /// The channel.
        channel: ChannelId,
        /// Who.
        user: UserId,
        /// Whether they are typing now.
        active: bool,
    },
    /// A user's read watermark advanced.
    Read {
        /// The channel.
        channel: ChannelId,
        /// Whose.
        user: UserId,
        /// Read up to and including this seq.
        up_to: Seq,
    },
    /// The server sent something wrong; it was ignored and the client goes on.
    Protocol(ProtocolError),
}
