//! The two frame enums: everything a client says and everything a server says.

use serde::{Deserialize, Serialize};

use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use crate::wire::{
    Body, ErrorBody, LogEvent, MessageDeleted, MessageUpdated, NewMessage, PresenceChange,
    ReadReceipt, TypingNotice,
};

/// Correlates a request with its reply. Chosen by the client, unique per
/// connection; the Socket.IO front maps it to the ack id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReqId(pub u64);

/// Everything a client sends. Internally tagged by `type`, whose values are the
/// Socket.IO event names of the contract, so both fronts speak one vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ClientFrame {
    /// Opens a session: protocol version and credentials. First frame on a
    /// transport; nothing else is accepted before the server's `welcome`.
    #[serde(rename = "hello")]
    Hello {
        /// The protocol version the client speaks ([`PROTOCOL_VERSION`](crate::wire::PROTOCOL_VERSION)).
        version: u32,
        /// Opaque credentials the server's authenticator verifies.
        token: String,
    },
    /// Subscribe to a channel, optionally resuming from a known position.
    #[serde(rename = "channel:join", rename_all = "camelCase")]
    Join {
        /// Reply correlation.
        req: ReqId,
        /// The channel.
        channel_id: ChannelId,
        /// The log identity the client's position belongs to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<Epoch>,
        /// The last seq the client has; the reply carries what follows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Seq>,
    },
    /// Unsubscribe from a channel.
    #[serde(rename = "channel:leave", rename_all = "camelCase")]
    Leave {
        /// Reply correlation.
        req: ReqId,
        /// The channel.
        channel_id: ChannelId,
    },
    /// Post a message; idempotent per (channel, author, `client_msg_id`).
    #[serde(rename = "message:send", rename_all = "camelCase")]
    Send {
        /// Reply correlation.
        req: ReqId,
        /// The channel.
        channel_id: ChannelId,
        /// The sender's idempotency key.
        client_msg_id: ClientMsgId,
        /// The payload.
        body: Body,
    },
    /// Replace the body of one's own message.
    #[serde(rename = "message:update", rename_all = "camelCase")]
    Update {
        /// Reply correlation.
        req: ReqId,
        /// The channel.
        channel_id: ChannelId,
        /// The message to edit.
        message_id: MessageId,
        /// The new body.
        body: Body,
    },
    /// Delete one's own message.
    #[serde(rename = "message:delete", rename_all = "camelCase")]
    Delete {
        /// Reply correlation.
        req: ReqId,
        /// The channel.
        channel_id: ChannelId,
        /// The message to delete.
        message_id: MessageId,
    },
    /// Read a page of a joined channel's log.
    #[serde(rename = "channel:history", rename_all = "camelCase")]
    History {
        /// Reply correlation.
        req: ReqId,
        /// The channel.
        channel_id: ChannelId,
        /// Return events with seq greater than this (default 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Seq>,
        /// Page size (default 100, cut to 500; below 1 is `invalid`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
    /// Advance the user's read watermark.
    #[serde(rename = "message:read", rename_all = "camelCase")]
    Read {
        /// Reply correlation.
        req: ReqId,
        /// The channel.
        channel_id: ChannelId,
        /// Everything up to and including this seq has been read.
        up_to: Seq,
    },
    /// Start or stop the typing indicator. Needs no reply; one is sent when
    /// `req` is given.
    #[serde(rename = "typing", rename_all = "camelCase")]
    Typing {
        /// Optional reply correlation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<ReqId>,
        /// The channel.
        channel_id: ChannelId,
        /// True while typing.
        active: bool,
    },
    /// Heartbeat probe for transports without their own liveness check.
    #[serde(rename = "ping")]
    Ping {
        /// Echoed in the `pong`.
        nonce: u64,
    },
}

impl ClientFrame {
    /// The request's correlation id, if it expects a reply.
    #[must_use]
    pub fn req(&self) -> Option<ReqId> {
        match self {
            ClientFrame::Join { req, .. }
            | ClientFrame::Leave { req, .. }
            | ClientFrame::Send { req, .. }
            | ClientFrame::Update { req, .. }
            | ClientFrame::Delete { req, .. }
            | ClientFrame::History { req, .. }
            | ClientFrame::Read { req, .. } => Some(*req),
            ClientFrame::Typing { req, .. } => *req,
            ClientFrame::Hello { .. } | ClientFrame::Ping { .. } => None,
        }
    }

    /// The channel the frame is about, if any.
    #[must_use]
    pub fn channel_id(&self) -> Option<&ChannelId> {
        match self {
            ClientFrame::Join { channel_id, .. }
            | ClientFrame::Leave { channel_id, .. }
            | ClientFrame::Send { channel_id, .. }
            | ClientFrame::Update { channel_id, .. }
            | ClientFrame::Delete { channel_id, .. }
            | ClientFrame::History { channel_id, .. }
            | ClientFrame::Read { channel_id, .. }
            | ClientFrame::Typing { channel_id, .. } => Some(channel_id),
            ClientFrame::Hello { .. } | ClientFrame::Ping { .. } => None,
        }
    }
}

/// A successful join: where the log stands, who is here, what was missed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinAck {
    /// The channel.
    pub channel_id: ChannelId,
    /// The log's identity.
    pub epoch: Epoch,
    /// The seq of the newest event (0 for an empty log); a position even when
    /// the channel has no events, so recovery works from the first join.
    pub head_seq: Seq,
    /// Sorted ids of the users present, the caller included.
    pub members: Vec<UserId>,
    /// Events after the client's position (bounded; see `recovered`).
    pub events: Vec<LogEvent>,
    /// True when `events` is exactly what the client missed; false when the
    /// position was absent, from another epoch or too old, and `events` is
    /// only the latest page (fill older gaps with history).
    pub recovered: bool,
}

/// A stored message: its identity and position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendAck {
    /// The server's id for the message.
    pub message_id: MessageId,
    /// Its position in the channel log.
    pub seq: Seq,
    /// Server clock at commit, milliseconds since the Unix epoch.
    pub ts: u64,
}

/// A page of a channel log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryAck {
    /// The channel.
    pub channel_id: ChannelId,
    /// The log's identity the page belongs to.
    pub epoch: Epoch,
    /// Events, ascending by seq.
    pub events: Vec<LogEvent>,
    /// The newest seq of the log.
    pub head_seq: Seq,
    /// True when more events follow the page.
    pub more: bool,
}

/// The successful answer to a request, tagged by `kind` with the request kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Ack {
    /// Answer to `channel:join`.
    Join(JoinAck),
    /// Answer to `channel:leave`.
    Leave,
    /// Answer to `message:send` (the same again for a retry).
    Send(SendAck),
    /// Answer to `message:update`: the edit's own seq.
    #[serde(rename_all = "camelCase")]
    Update {
        /// The edit's position in the log.
        seq: Seq,
    },
    /// Answer to `message:delete`: the deletion's own seq.
    #[serde(rename_all = "camelCase")]
    Delete {
        /// The deletion's position in the log.
        seq: Seq,
    },
    /// Answer to `channel:history`.
    History(HistoryAck),
    /// Answer to `message:read`: the watermark now in force.
    #[serde(rename_all = "camelCase")]
    Read {
        /// The current watermark (never lower than before).
        up_to: Seq,
    },
    /// Answer to `typing` when a reply was asked for.
    Typing,
}

impl Ack {
    /// Its `kind` tag (`join`, `send`, …): the request kind it answers, for
    /// error messages and metric labels.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Ack::Join(_) => "join",
            Ack::Leave => "leave",
            Ack::Send(_) => "send",
            Ack::Update { .. } => "update",
            Ack::Delete { .. } => "delete",
            Ack::History(_) => "history",
            Ack::Read { .. } => "read",
            Ack::Typing => "typing",
        }
    }
}

/// Everything a server sends: handshake answers, replies, and events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerFrame {
    /// The handshake succeeded; the session is open.
    #[serde(rename = "welcome", rename_all = "camelCase")]
    Welcome {
        /// The protocol version the server speaks.
        version: u32,
        /// The verified identity, fixed for the connection's life.
        user_id: UserId,
    },
    /// The handshake was refused (bad token, unsupported version). The
    /// server closes the transport after sending it.
    #[serde(rename = "refused")]
    Refused {
        /// Why.
        error: ErrorBody,
    },
    /// A request succeeded.
    #[serde(rename = "ack")]
    Ack {
        /// The request answered.
        req: ReqId,
        /// The answer.
        body: Ack,
    },
    /// A request failed; the connection stays usable.
    #[serde(rename = "nack")]
    Nack {
        /// The request answered.
        req: ReqId,
        /// Why it failed.
        error: ErrorBody,
    },
    /// A new message in a joined channel.
    #[serde(rename = "message:new")]
    MessageNew(NewMessage),
    /// An edit in a joined channel.
    #[serde(rename = "message:updated")]
    MessageUpdated(MessageUpdated),
    /// A deletion in a joined channel.
    #[serde(rename = "message:deleted")]
    MessageDeleted(MessageDeleted),
    /// A user became present in a joined channel.
    #[serde(rename = "presence:join")]
    PresenceJoin(PresenceChange),
    /// A user left a joined channel (after the grace period).
    #[serde(rename = "presence:leave")]
    PresenceLeave(PresenceChange),
    /// Someone started or stopped typing.
    #[serde(rename = "typing")]
    Typing(TypingNotice),
    /// Someone's read watermark advanced.
    #[serde(rename = "message:read")]
    Read(ReadReceipt),
    /// Heartbeat answer.
    #[serde(rename = "pong")]
    Pong {
        /// The nonce of the `ping` answered.
        nonce: u64,
    },
}

impl From<LogEvent> for ServerFrame {
    fn from(e: LogEvent) -> Self {
        match e {
            LogEvent::Message(m) => ServerFrame::MessageNew(m),
            LogEvent::Updated(u) => ServerFrame::MessageUpdated(u),
            LogEvent::Deleted(d) => ServerFrame::MessageDeleted(d),
        }
    }
}

/// What a frame's keys, punctuation and numbers weigh at most, beside its
/// strings and bodies, in [`ServerFrame::weight`]: the longest frame's keys
/// (`{"type":"message:new","channelId":…,"ts":…}`) and five 20-digit
/// numbers.
const FRAME_WEIGHT: usize = 256;

/// What a string weighs at most once encoded: its quotes, its bytes, and
/// five more for each byte JSON may escape (`\u00XX`).
fn str_weight(s: &str) -> usize {
    let escaped = s
        .bytes()
        .filter(|b| matches!(b, b'"' | b'\\') || *b < 0x20)
        .count();
    2 + s.len() + 5 * escaped
}

fn body_weight(body: Option<&Body>) -> usize {
    body.map_or(0, Body::encoded_len)
}

fn message_weight(m: &NewMessage) -> usize {
    str_weight(m.channel_id.as_str())
        + str_weight(m.message_id.as_str())
        + str_weight(m.author_id.as_str())
        + str_weight(m.client_msg_id.as_str())
        + body_weight(m.body.as_ref())
}

fn updated_weight(u: &MessageUpdated) -> usize {
    str_weight(u.channel_id.as_str())
        + str_weight(u.message_id.as_str())
        + body_weight(u.body.as_ref())
}

fn deleted_weight(d: &MessageDeleted) -> usize {
    str_weight(d.channel_id.as_str()) + str_weight(d.message_id.as_str())
}

impl LogEvent {
    /// An upper bound of its encoded size, without encoding it: its
    /// strings' and body's lengths plus an allowance for keys and numbers.
    #[must_use]
    pub fn weight(&self) -> usize {
        FRAME_WEIGHT
            + match self {
                LogEvent::Message(m) => message_weight(m),
                LogEvent::Updated(u) => updated_weight(u),
                LogEvent::Deleted(d) => deleted_weight(d),
            }
    }
}

fn events_weight(events: &[LogEvent]) -> usize {
    events.iter().map(|e| e.weight() + 1).sum()
}

impl ServerFrame {
    /// An upper bound of the frame's encoded size in bytes, computed
    /// without encoding it (bodies and ids know their length): what byte
    /// budgets of outgoing queues count. Close to the real size for chat
    /// traffic, never below it.
    #[must_use]
    pub fn weight(&self) -> usize {
        FRAME_WEIGHT
            + match self {
                ServerFrame::Welcome { user_id, .. } => str_weight(user_id.as_str()),
                ServerFrame::Refused { error } | ServerFrame::Nack { error, .. } => {
                    str_weight(&error.message)
                }
                ServerFrame::Ack { body, .. } => match body {
                    Ack::Join(join) => {
                        str_weight(join.channel_id.as_str())
                            + join
                                .members
                                .iter()
                                .map(|m| str_weight(m.as_str()) + 1)
                                .sum::<usize>()
                            + events_weight(&join.events)
                    }
                    Ack::History(page) => {
                        str_weight(page.channel_id.as_str()) + events_weight(&page.events)
                    }
                    Ack::Send(send) => str_weight(send.message_id.as_str()),
                    _ => 0,
                },
                ServerFrame::MessageNew(m) => message_weight(m),
                ServerFrame::MessageUpdated(u) => updated_weight(u),
                ServerFrame::MessageDeleted(d) => deleted_weight(d),
                ServerFrame::PresenceJoin(p) | ServerFrame::PresenceLeave(p) => {
                    str_weight(p.channel_id.as_str()) + str_weight(p.user_id.as_str())
                }
                ServerFrame::Typing(t) => {
                    str_weight(t.channel_id.as_str()) + str_weight(t.user_id.as_str())
                }
                ServerFrame::Read(r) => {
                    str_weight(r.channel_id.as_str()) + str_weight(r.user_id.as_str())
                }
                ServerFrame::Pong { .. } => 0,
            }
    }

    /// The log event carried by a `message:*` broadcast, if this is one.
    #[must_use]
    pub fn into_log_event(self) -> Option<LogEvent> {
        match self {
            ServerFrame::MessageNew(m) => Some(LogEvent::Message(m)),
            ServerFrame::MessageUpdated(u) => Some(LogEvent::Updated(u)),
            ServerFrame::MessageDeleted(d) => Some(LogEvent::Deleted(d)),
            _ => None,
        }
    }
}
