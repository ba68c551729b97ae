//! Typical frames: a chat-sized `message:new` and a full join reply.

use lockstep_core::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use lockstep_core::wire::{Ack, Body, JoinAck, LogEvent, NewMessage, ReqId, ServerFrame};

/// The channel every bench talks in.
#[must_use]
pub fn channel() -> ChannelId {
    ChannelId::new("room:general").unwrap_or_else(|_| unreachable!("valid channel id"))
}

/// A user id from a short name the benches choose.
#[must_use]
pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap_or_else(|_| unreachable!("bench user ids are valid"))
}

/// A body of about 120 bytes: a typical chat line with a little metadata.
#[must_use]
pub fn typical_body() -> Body {
    Body::new(serde_json::json!({
        "text": "on my way, see you at the station in ten minutes - bring the tickets",
        "mentions": ["bob"],
        "format": "plain"
    }))
}

/// The log event of message number `seq` in [`channel`], written by `author`.
#[must_use]
pub fn message(seq: u64, author: &UserId, body: &Body) -> NewMessage {
    NewMessage {
        channel_id: channel(),
        seq: Seq(seq),
        message_id: MessageId::new(format!("m{seq}"))
            .unwrap_or_else(|_| unreachable!("valid message id")),
        author_id: author.clone(),
        client_msg_id: ClientMsgId::new(format!("{author}-{seq}"))
            .unwrap_or_else(|_| unreachable!("valid client message id")),
        body: Some(body.clone()),
        ts: 1_700_000_000_000 + seq,
    }
}

/// A typical `message:new` broadcast.
#[must_use]
pub fn typical_message_new() -> ServerFrame {
    ServerFrame::MessageNew(message(4_242, &user("alice"), &typical_body()))
}

/// A join reply carrying `n` events (the protocol allows 1,000).
#[must_use]
pub fn join_ack(n: u64) -> ServerFrame {
    let author = user("alice");
    let body = typical_body();
    ServerFrame::Ack {
        req: ReqId(7),
        body: Ack::Join(JoinAck {
            channel_id: channel(),
            epoch: Epoch(1),
            head_seq: Seq(n),
            members: vec![user("alice"), user("bob"), user("carol")],
            events: (1..=n)
                .map(|s| LogEvent::Message(message(s, &author, &body)))
                .collect(),
            recovered: true,
        }),
    }
}
