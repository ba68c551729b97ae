//! Channel log events and the real-time notices that travel beside them.

use serde::{Deserialize, Serialize};

use crate::ids::{ChannelId, ClientMsgId, MessageId, Seq, UserId};
use crate::wire::Body;
use crate::wire::body::any_needs_escape;

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
    /// history reply: what byte budgets count. Counted from the fields'
    /// lengths, without encoding (stores and the server weigh every page
    /// with it); a test holds it to the serializer's output.
    #[must_use]
    pub fn wire_len(&self) -> usize {
        let body = |b: &Option<Body>| b.as_ref().map(Body::encoded_len);
        let kind = Some(str_len(self.kind()));
        match self {
            LogEvent::Message(m) => object_len(&[
                ("type", kind),
                ("channelId", Some(str_len(m.channel_id.as_str()))),
                ("seq", Some(u64_len(m.seq.0))),
                ("messageId", Some(str_len(m.message_id.as_str()))),
                ("authorId", Some(str_len(m.author_id.as_str()))),
                ("clientMsgId", Some(str_len(m.client_msg_id.as_str()))),
                ("body", body(&m.body)),
                ("ts", Some(u64_len(m.ts))),
            ]),
            LogEvent::Updated(u) => object_len(&[
                ("type", kind),
                ("channelId", Some(str_len(u.channel_id.as_str()))),
                ("seq", Some(u64_len(u.seq.0))),
                ("messageId", Some(str_len(u.message_id.as_str()))),
                ("body", body(&u.body)),
            ]),
            LogEvent::Deleted(d) => object_len(&[
                ("type", kind),
                ("channelId", Some(str_len(d.channel_id.as_str()))),
                ("seq", Some(u64_len(d.seq.0))),
                ("messageId", Some(str_len(d.message_id.as_str()))),
            ]),
        }
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

/// Bytes of a compact JSON object of `fields` (key, bytes of the value;
/// `None` for a field skipped when absent).
fn object_len(fields: &[(&str, Option<usize>)]) -> usize {
    let present = fields.iter().filter_map(|(k, v)| v.map(|v| (k, v)));
    // `"key":` and the value for each, a comma between them, `{` and `}`.
    let (count, bytes) = present.fold((0usize, 0usize), |(n, b), (k, v)| {
        (n + 1, b + k.len() + 3 + v)
    });
    bytes + count.saturating_sub(1) + 2
}

/// Bytes of `s` as a JSON string, escapes and quotes included, as
/// `serde_json` writes it: `\"`, `\\` and the short control escapes take
/// two bytes, other control characters six (`\u00XX`).
fn str_len(s: &str) -> usize {
    if !any_needs_escape(s.as_bytes()) {
        return s.len() + 2;
    }
    let escapes: usize = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
            0..=0x1f => 5,
            _ => 0,
        })
        .sum();
    s.len() + escapes + 2
}

/// Decimal digits of `n`.
fn u64_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Any string, with quotes, backslashes and control characters often.
    fn text() -> impl Strategy<Value = String> {
        "(\\PC|[\"\\\\\u{0}-\u{1f}\u{7f}]){1,24}"
    }

    fn event() -> impl Strategy<Value = LogEvent> {
        event_with(proptest::option::of(text().prop_map(Body::text)))
    }

    /// Log events of every kind, with ids of any allowed text and bodies
    /// from `body`.
    pub(crate) fn event_with(
        body: impl Strategy<Value = Option<Body>>,
    ) -> impl Strategy<Value = LogEvent> {
        let channel = "[A-Za-z0-9_:.-]{1,24}".prop_map(|s| ChannelId::new(s).unwrap());
        let user = "[A-Za-z0-9_-]{1,24}".prop_map(|s| UserId::new(s).unwrap());
        let client_msg_id =
            text().prop_filter_map("a client message id", |s| ClientMsgId::new(s).ok());
        let message_id = text().prop_filter_map("a message id", |s| MessageId::new(s).ok());
        (
            channel,
            any::<u64>(),
            message_id,
            user,
            client_msg_id,
            body,
            any::<u64>(),
            0..3u8,
        )
            .prop_map(
                |(channel_id, seq, message_id, author_id, client_msg_id, body, ts, kind)| {
                    let seq = Seq(seq);
                    match kind {
                        0 => LogEvent::Message(NewMessage {
                            channel_id,
                            seq,
                            message_id,
                            author_id,
                            client_msg_id,
                            body,
                            ts,
                        }),
                        1 => LogEvent::Updated(MessageUpdated {
                            channel_id,
                            seq,
                            message_id,
                            body,
                        }),
                        _ => LogEvent::Deleted(MessageDeleted {
                            channel_id,
                            seq,
                            message_id,
                        }),
                    }
                },
            )
    }

    proptest! {
        /// `wire_len` counts exactly the bytes the serializer writes.
        #[test]
        fn wire_len_is_the_encoded_length(event in event()) {
            let encoded = serde_json::to_vec(&event).unwrap();
            prop_assert_eq!(event.wire_len(), encoded.len());
        }
    }

    #[test]
    fn digits_are_counted_at_the_edges() {
        for n in [0, 9, 10, 99, 100, u64::MAX - 1, u64::MAX] {
            assert_eq!(u64_len(n), n.to_string().len(), "{n}");
        }
    }
}
