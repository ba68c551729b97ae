//! The client's side of the Socket.IO mapping, read and written with the
//! small reader of [`json`](crate::wire::json) instead of serde: the server
//! events and ack replies a client receives, and the request payloads it
//! sends. [`socketio`](crate::wire::socketio)'s client functions call these,
//! so every client (the Rust one, the browser module) uses them; the serde
//! derives stay the definition of the shapes, and the tests hold these
//! functions to them.

use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use crate::wire::json::{Fields, JsonError, ObjectWriter, Reader};
use crate::wire::{
    Ack, Body, ClientFrame, ErrorBody, ErrorCode, HistoryAck, JoinAck, LogEvent, MessageDeleted,
    MessageUpdated, NewMessage, PresenceChange, ReadReceipt, SendAck, ServerFrame, TypingNotice,
};

type Result<T> = std::result::Result<T, JsonError>;

fn channel(r: &mut Reader<'_>) -> Result<ChannelId> {
    r.id(|s| ChannelId::new(s))
}

fn user(r: &mut Reader<'_>) -> Result<UserId> {
    r.id(|s| UserId::new(s))
}

fn message_id(r: &mut Reader<'_>) -> Result<MessageId> {
    r.id(|s| MessageId::new(s))
}

fn seq(r: &mut Reader<'_>) -> Result<Seq> {
    r.u64().map(Seq)
}

/// A body field's value (its reader is over a field [`Fields`] checked).
fn body(r: &mut Reader<'_>) -> Result<Body> {
    Body::from_valid(r.rest())
}

/// The fields of a log event, its `type` last (the broadcasts have none).
const LOG: [&str; 8] = [
    "channelId",
    "seq",
    "messageId",
    "authorId",
    "clientMsgId",
    "body",
    "ts",
    "type",
];

fn new_message(f: &Fields<'_, 8>) -> Result<NewMessage> {
    Ok(NewMessage {
        channel_id: f.req(0, channel)?,
        seq: f.req(1, seq)?,
        message_id: f.req(2, message_id)?,
        author_id: f.req(3, user)?,
        client_msg_id: f.req(4, |r| r.id(|s| ClientMsgId::new(s)))?,
        body: f.opt(5, body)?,
        ts: f.req(6, Reader::u64)?,
    })
}

fn updated(f: &Fields<'_, 8>) -> Result<MessageUpdated> {
    Ok(MessageUpdated {
        channel_id: f.req(0, channel)?,
        seq: f.req(1, seq)?,
        message_id: f.req(2, message_id)?,
        body: f.opt(5, body)?,
    })
}

fn deleted(f: &Fields<'_, 8>) -> Result<MessageDeleted> {
    Ok(MessageDeleted {
        channel_id: f.req(0, channel)?,
        seq: f.req(1, seq)?,
        message_id: f.req(2, message_id)?,
    })
}

/// A log event of a join or history reply, tagged by `type`.
fn log_event(r: &mut Reader<'_>) -> Result<LogEvent> {
    let f = Fields::read(r, LOG)?;
    let kind = f.req(7, |r| r.string())?;
    match &*kind {
        "message" => new_message(&f).map(LogEvent::Message),
        "updated" => updated(&f).map(LogEvent::Updated),
        "deleted" => deleted(&f).map(LogEvent::Deleted),
        _ => Err(JsonError::Field {
            field: "type",
            problem: "unknown variant".into(),
        }),
    }
}

fn list<'a, T>(r: &mut Reader<'a>, item: fn(&mut Reader<'a>) -> Result<T>) -> Result<Vec<T>> {
    let mut items = Vec::new();
    r.array(|r| {
        items.push(item(r)?);
        Ok(())
    })?;
    Ok(items)
}

/// `{ code, message }` of a refusal (`retryable` follows from the code).
fn error_body(r: &mut Reader<'_>) -> Result<ErrorBody> {
    let f = Fields::read(r, ["code", "message"])?;
    let code = f.req(0, |r| {
        let text = r.string()?;
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == text)
            .ok_or(JsonError::Field {
                field: "code",
                problem: "unknown variant".into(),
            })
    })?;
    let message = f.opt(1, |r| r.string())?.unwrap_or_default();
    Ok(ErrorBody::new(code, message))
}

/// A server event's frame; `None` for an event outside the contract.
pub(crate) fn server_event(name: &str, payload: &str) -> Result<Option<ServerFrame>> {
    Ok(Some(match name {
        super::socketio::SESSION_EVENT => {
            let f = Fields::parse(payload, ["userId", "version"])?;
            ServerFrame::Welcome {
                user_id: f.req(0, user)?,
                version: f.req(1, |r| {
                    u32::try_from(r.u64()?).map_err(|_| JsonError::Field {
                        field: "version",
                        problem: "out of range".into(),
                    })
                })?,
            }
        }
        "message:new" => ServerFrame::MessageNew(new_message(&Fields::parse(payload, LOG)?)?),
        "message:updated" => ServerFrame::MessageUpdated(updated(&Fields::parse(payload, LOG)?)?),
        "message:deleted" => ServerFrame::MessageDeleted(deleted(&Fields::parse(payload, LOG)?)?),
        "presence:join" | "presence:leave" => {
            let f = Fields::parse(payload, ["channelId", "userId"])?;
            let p = PresenceChange {
                channel_id: f.req(0, channel)?,
                user_id: f.req(1, user)?,
            };
            if name == "presence:join" {
                ServerFrame::PresenceJoin(p)
            } else {
                ServerFrame::PresenceLeave(p)
            }
        }
        "typing" => {
            let f = Fields::parse(payload, ["channelId", "userId", "active"])?;
            ServerFrame::Typing(TypingNotice {
                channel_id: f.req(0, channel)?,
                user_id: f.req(1, user)?,
                active: f.req(2, Reader::bool)?,
            })
        }
        "message:read" => {
            let f = Fields::parse(payload, ["channelId", "userId", "upTo"])?;
            ServerFrame::Read(ReadReceipt {
                channel_id: f.req(0, channel)?,
                user_id: f.req(1, user)?,
                up_to: f.req(2, seq)?,
            })
        }
        _ => return Ok(None),
    }))
}

/// Every field an ack reply may carry, `ok` and `error` first.
const REPLY: [&str; 13] = [
    "ok",
    "error",
    "channelId",
    "epoch",
    "headSeq",
    "members",
    "events",
    "recovered",
    "messageId",
    "seq",
    "ts",
    "more",
    "upTo",
];

/// The answer of an ack reply to a request of `kind`: `Ok` for `{ ok:
/// true, ... }`, `Err` with the refusal for `{ ok: false, error }`.
pub(crate) fn reply(kind: &str, reply: &str) -> Result<std::result::Result<Ack, ErrorBody>> {
    let f = Fields::parse(reply, REPLY)?;
    let error = f.opt(1, error_body)?;
    match f.opt(0, Reader::bool)? {
        Some(true) => {}
        Some(false) => {
            return error.map(Err).ok_or(JsonError::Field {
                field: "error",
                problem: "a refusal without an error".into(),
            });
        }
        None => {
            return Err(JsonError::Field {
                field: "ok",
                problem: "the reply has no boolean `ok`".into(),
            });
        }
    }
    let events = |f: &Fields<'_, 13>| f.req(6, |r| list(r, log_event));
    Ok(Ok(match kind {
        "join" => Ack::Join(JoinAck {
            channel_id: f.req(2, channel)?,
            epoch: f.req(3, Reader::u64).map(Epoch)?,
            head_seq: f.req(4, seq)?,
            members: f.req(5, |r| list(r, user))?,
            events: events(&f)?,
            recovered: f.req(7, Reader::bool)?,
        }),
        "send" => Ack::Send(SendAck {
            message_id: f.req(8, message_id)?,
            seq: f.req(9, seq)?,
            ts: f.req(10, Reader::u64)?,
        }),
        "history" => Ack::History(HistoryAck {
            channel_id: f.req(2, channel)?,
            epoch: f.req(3, Reader::u64).map(Epoch)?,
            events: events(&f)?,
            head_seq: f.req(4, seq)?,
            more: f.req(11, Reader::bool)?,
        }),
        "update" => Ack::Update {
            seq: f.req(9, seq)?,
        },
        "delete" => Ack::Delete {
            seq: f.req(9, seq)?,
        },
        "read" => Ack::Read {
            up_to: f.req(12, seq)?,
        },
        "leave" => Ack::Leave,
        "typing" => Ack::Typing,
        other => {
            return Err(JsonError::Field {
                field: "kind",
                problem: format!("no request kind `{other}`"),
            });
        }
    }))
}

/// The payload of a request frame (its fields without `type` and `req`)
/// as compact JSON, bodies spliced as they are; `None` for `hello` and
/// `ping`, which are not events.
pub(crate) fn request_payload(frame: &ClientFrame) -> Option<String> {
    let mut out = String::new();
    let mut o = ObjectWriter::new(&mut out);
    match frame {
        ClientFrame::Hello { .. } | ClientFrame::Ping { .. } => return None,
        ClientFrame::Join {
            channel_id,
            epoch,
            since,
            ..
        } => {
            o.str("channelId", channel_id.as_str());
            if let Some(epoch) = epoch {
                o.u64("epoch", epoch.0);
            }
            if let Some(since) = since {
                o.u64("since", since.0);
            }
        }
        ClientFrame::Leave { channel_id, .. } => {
            o.str("channelId", channel_id.as_str());
        }
        ClientFrame::Send {
            channel_id,
            client_msg_id,
            body,
            ..
        } => {
            o.str("channelId", channel_id.as_str())
                .str("clientMsgId", client_msg_id.as_str())
                .raw("body", body.json());
        }
        ClientFrame::Update {
            channel_id,
            message_id,
            body,
            ..
        } => {
            o.str("channelId", channel_id.as_str())
                .str("messageId", message_id.as_str())
                .raw("body", body.json());
        }
        ClientFrame::Delete {
            channel_id,
            message_id,
            ..
        } => {
            o.str("channelId", channel_id.as_str())
                .str("messageId", message_id.as_str());
        }
        ClientFrame::History {
            channel_id,
            after,
            limit,
            ..
        } => {
            o.str("channelId", channel_id.as_str());
            if let Some(after) = after {
                o.u64("after", after.0);
            }
            if let Some(limit) = limit {
                o.u64("limit", *limit);
            }
        }
        ClientFrame::Read {
            channel_id, up_to, ..
        } => {
            o.str("channelId", channel_id.as_str()).u64("upTo", up_to.0);
        }
        ClientFrame::Typing {
            channel_id, active, ..
        } => {
            o.str("channelId", channel_id.as_str())
                .bool("active", *active);
        }
    }
    o.finish();
    Some(out)
}
