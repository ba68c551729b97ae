//! Channel log events and the real-time notices that travel beside them.

use serde::{Deserialize, Serialize};

use crate::ids::{ChannelId, ClientMsgId, MessageId, Seq, UserId};
use crate::wire::Body;

/// A new message, as broadcast (`message:new`) and as stored in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMessage {
    /// The channel whose log holds it.
    pub channel_id: ChannelId,
    /// Its position in the channel log, assigned by the store at commit.
    pub seq: Seq,
    /// The server's id for it; edits and deletes name it.
    pub message_id: MessageId,
    /// Who sent it, from the sender's verified handshake.
    pub author_id: UserId,
    /// The sender's idempotency key; lets the sender match the broadcast to
    /// its optimistic entry.
    pub client_msg_id: ClientMsgId,
    /// The application payload. Always present in a broadcast; absent in a
    /// history or recovery replay once the message was deleted (the entry
    /// stays as a tombstone: seq, id and author) or edited (the latest
    /// `updated` entry holds the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
    /// Server clock at commit, milliseconds since the Unix epoch.
    pub ts: u64,
}

/// An edit of an earlier message (`message:updated`): a log event of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageUpdated {
    /// The channel whose log holds it.
    pub channel_id: ChannelId,
    /// Its own position in the log (not the edited message's).
    pub seq: Seq,
    /// The edited message.
    pub message_id: MessageId,
    /// The replacement body. Always present in a broadcast; absent in a
    /// replay once a later edit replaced it or the message was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
}

/// A deletion of an earlier message (`message:deleted`): a log event of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDeleted {
    /// The channel whose log holds it.
    pub channel_id: ChannelId,
    /// Its own position in the log.
    pub seq: Seq,
    /// The deleted message.
    pub message_id: MessageId,
}

/// One entry of a channel log, as found in join and history replies.
///
/// Edits and deletes are entries too, so replaying a log from any position
/// converges every client on the same view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum LogEvent {
    /// A new message.
    Message(NewMessage),
    /// An edit.
    Updated(MessageUpdated),
    /// A deletion.
    Deleted(MessageDeleted),
}

impl LogEvent {
    /// The entry's position in its channel log.
    #[must_use]
    pub fn seq(&self) -> Seq {
        match self {
            LogEvent::Message(m) => m.seq,
            LogEvent::Updated(u) => u.seq,
            LogEvent::Deleted(d) => d.seq,
        }
    }

    /// The channel whose log holds the entry.
    #[must_use]
    pub fn channel_id(&self) -> &ChannelId {
        match self {
            LogEvent::Message(m) => &m.channel_id,
            LogEvent::Updated(u) => &u.channel_id,
            LogEvent::Deleted(d) => &d.channel_id,
        }
    }

    /// Its `type` tag on the wire (`message`, `updated`, `deleted`), for
    /// logs, metrics and tests that compare logs by shape.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            LogEvent::Message(_) => "message",
            LogEvent::Updated(_) => "updated",
            LogEvent::Deleted(_) => "deleted",
        }
    }

    /// Bytes of its compact JSON encoding, as it travels in a join or
    /// history reply: what byte budgets count. Counted without allocating.
    #[must_use]
    pub fn wire_len(&self) -> usize {
        let mut counter = ByteCounter(0);
        // Writing into a counter cannot fail, and an event always
        // serializes.
        let _ = serde_json::to_writer(&mut counter, self);
        counter.0
    }

    /// The body the entry carries: a message's or an edit's, while no later
    /// edit or deletion of the message superseded it (then it is a
    /// tombstone and carries none); a deletion never has one.
    #[must_use]
    pub fn body(&self) -> Option<&Body> {
        match self {
            LogEvent::Message(m) => m.body.as_ref(),
            LogEvent::Updated(u) => u.body.as_ref(),
            LogEvent::Deleted(_) => None,
        }
    }

    /// Turns the entry into a tombstone: a store calls it on the entries of
    /// a message whose body a later edit or deletion superseded, so a
    /// replay no longer carries what the author replaced or deleted.
    /// Everything but the body stays.
    pub fn drop_body(&mut self) {
        match self {
            LogEvent::Message(m) => m.body = None,
            LogEvent::Updated(u) => u.body = None,
            LogEvent::Deleted(_) => {}
        }
    }

    /// The message the entry is about (created, edited or deleted).
    #[must_use]
    pub fn message_id(&self) -> &MessageId {
        match self {
            LogEvent::Message(m) => &m.message_id,
            LogEvent::Updated(u) => &u.message_id,
            LogEvent::Deleted(d) => &d.message_id,
        }
    }
}

/// A user appeared in or left a channel (`presence:join` / `presence:leave`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceChange {
    /// The channel.
    pub channel_id: ChannelId,
    /// The user whose presence changed.
    pub user_id: UserId,
}

/// A user started or stopped typing (`typing`). Ephemeral: never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingNotice {
    /// The channel.
    pub channel_id: ChannelId,
    /// Who is typing.
    pub user_id: UserId,
    /// True while typing; false when they stopped, left or timed out.
    pub active: bool,
}

/// A user's read-up-to watermark advanced (`message:read`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadReceipt {
    /// The channel.
    pub channel_id: ChannelId,
    /// Whose watermark.
    pub user_id: UserId,
    /// Everything up to and including this seq has been read.
    pub up_to: Seq,
}

/// Counts the bytes written to it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
