//! The contract's Socket.IO events turned into client frames, and server
//! frames turned into acks and events (DESIGN §4). Pure functions: the
//! front's tasks only move their results around.

use lockstep_core::wire::{Ack, ClientFrame, DecodeError, ErrorBody, ReqId, ServerFrame};
use serde::Serialize;
use serde::de::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The events a client may emit (each with an ack). Anything else is refused
/// `invalid` as an unknown event.
pub const CLIENT_EVENTS: [&str; 8] = [
    "channel:join",
    "channel:leave",
    "message:send",
    "message:update",
    "message:delete",
    "channel:history",
    "message:read",
    "typing",
];

/// The event the server emits first on every connection, `{ userId,
/// version }`: the verified identity (the `welcome` of stream transports).
/// An addition to the contract's event table; plain clients may ignore it,
/// lockstep's own Socket.IO transport waits for it.
pub const SESSION_EVENT: &str = "session";

/// Turns one received event into the frame the machine understands: the
/// payload's fields plus `type` (the event name) and `req` (the front's id
/// for the ack). Untrusted input: every failure is a [`DecodeError`] that
/// names `req`, so the machine refuses just this request with `invalid`.
///
/// # Errors
///
/// [`DecodeError::Invalid`] for an unknown event, a payload that is not an
/// object, or a field of the wrong shape.
pub fn decode_event(
    event: &str,
    payload: Option<Value>,
    req: ReqId,
) -> Result<ClientFrame, DecodeError> {
    let invalid =
        |message: String, channel_id| DecodeError::invalid(Some(req), event, message, channel_id);
    if !CLIENT_EVENTS.contains(&event) {
        return Err(invalid("unknown event".into(), None));
    }
    let Some(Value::Object(mut fields)) = payload else {
        return Err(invalid("payload must be an object".into(), None));
    };
    fields.insert("type".into(), Value::String(event.to_owned()));
    fields.insert("req".into(), Value::from(req.0));
    // Kept for a refusal, whose channel checks come before the other
    // fields' (a short string; the frame itself is moved, not copied).
    let channel_id = fields.get("channelId").cloned();
    ClientFrame::deserialize(Value::Object(fields))
        .map_err(|e| invalid(e.to_string(), channel_id.as_ref()))
}

/// What one server frame becomes on a Socket.IO connection. Payloads are
/// JSON text already: a broadcast is encoded once and each socket's emit
/// copies the text instead of serializing the frame again.
#[derive(Debug)]
pub enum Outgoing {
    /// Answer the ack of request `req` with `body`.
    Reply {
        /// The request answered.
        req: ReqId,
        /// `{ ok: true, ... }` or `{ ok: false, error }`.
        body: Box<RawValue>,
    },
    /// Emit the event `name` with `payload`.
    Event {
        /// The contract's event name.
        name: &'static str,
        /// The event's payload.
        payload: Box<RawValue>,
    },
    /// The server refused the session (e.g. connection limit): disconnect.
    Refused(ErrorBody),
    /// Nothing to send: Engine.IO has its own heartbeat (`pong`).
    Nothing,
}

/// Maps a server frame to its Socket.IO form.
#[must_use]
pub fn encode_frame(frame: &ServerFrame) -> Outgoing {
    let event = |name: &'static str, payload: Box<RawValue>| Outgoing::Event { name, payload };
    match frame {
        ServerFrame::Welcome { version, user_id } => event(
            SESSION_EVENT,
            to_raw(&serde_json::json!({ "userId": user_id, "version": version })),
        ),
        ServerFrame::Pong { .. } => Outgoing::Nothing,
        ServerFrame::Refused { error } => Outgoing::Refused(error.clone()),
        ServerFrame::Ack { req, body } => Outgoing::Reply {
            req: *req,
            body: to_raw(&ack_body(body)),
        },
        ServerFrame::Nack { req, error } => Outgoing::Reply {
            req: *req,
            body: to_raw(&nack_body(error)),
        },
        ServerFrame::MessageNew(m) => event("message:new", to_raw(m)),
        ServerFrame::MessageUpdated(m) => event("message:updated", to_raw(m)),
        ServerFrame::MessageDeleted(m) => event("message:deleted", to_raw(m)),
        ServerFrame::PresenceJoin(p) => event("presence:join", to_raw(p)),
        ServerFrame::PresenceLeave(p) => event("presence:leave", to_raw(p)),
        ServerFrame::Typing(t) => event("typing", to_raw(t)),
        ServerFrame::Read(r) => event("message:read", to_raw(r)),
    }
}

/// `{ ok: true, ...fields }`: the ack's fields without its `kind` tag.
#[must_use]
pub fn ack_body(ack: &Ack) -> Value {
    let mut fields = match to_value(ack) {
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    fields.remove("kind");
    fields.insert("ok".into(), Value::Bool(true));
    Value::Object(fields)
}

/// `{ ok: false, error: { code, message, retryable } }`.
#[must_use]
pub fn nack_body(error: &ErrorBody) -> Value {
    let mut fields = Map::new();
    fields.insert("ok".into(), Value::Bool(false));
    fields.insert("error".into(), to_value(error));
    Value::Object(fields)
}

// Wire types hold only strings, numbers, bools and JSON values: they always
// serialize, so the `null` fallbacks below are never taken.
fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn to_raw<T: Serialize>(v: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

#[cfg(test)]
mod tests {
    use lockstep_core::ids::{ChannelId, Epoch, Seq, UserId};
    use lockstep_core::wire::{ErrorCode, JoinAck, PresenceChange};
    use serde_json::json;

    use super::*;

    #[test]
    fn a_contract_event_becomes_a_frame_with_the_front_s_req() {
        let frame = decode_event(
            "message:send",
            Some(json!({"channelId": "room", "clientMsgId": "c1", "body": {"t": 1}, "req": 99})),
            ReqId(7),
        )
        .unwrap();
        assert_eq!(frame.req(), Some(ReqId(7)));
        assert!(matches!(frame, ClientFrame::Send { .. }));
        // `null` in an optional field counts as absent.
        let join = decode_event(
            "channel:join",
            Some(json!({"channelId": "room", "epoch": null, "since": null})),
            ReqId(1),
        )
        .unwrap();
        assert!(matches!(
            join,
            ClientFrame::Join {
                epoch: None,
                since: None,
                ..
            }
        ));
    }

    #[test]
    fn bad_events_are_invalid_for_their_request_only() {
        for (event, payload) in [
            ("hello", Some(json!({"version": 1, "token": "x"}))),
            ("ping", Some(json!({"nonce": 1}))),
            ("nope", Some(json!({}))),
            ("message:send", None),
            ("message:send", Some(json!("text"))),
            ("message:send", Some(json!({"channelId": 5}))),
            ("message:read", Some(json!({"channelId": "a", "upTo": -1}))),
        ] {
            let err = decode_event(event, payload, ReqId(3)).unwrap_err();
            assert_eq!(err.req(), Some(ReqId(3)), "{event}");
        }
    }

    #[test]
    fn a_refusal_names_the_channel_when_its_id_is_valid() {
        // The server checks the channel (policy, joined) before the field
        // that failed, so the decoder keeps a valid channel id.
        let channel = |payload| match decode_event("message:send", Some(payload), ReqId(4)) {
            Err(DecodeError::Invalid { channel, .. }) => channel,
            other => panic!("not invalid: {other:?}"),
        };
        assert_eq!(
            channel(json!({"channelId": "room", "clientMsgId": "", "body": 1})),
            Some(ChannelId::new("room").unwrap())
        );
        assert_eq!(
            channel(json!({"channelId": "not a channel", "clientMsgId": "c", "body": 1})),
            None
        );
        assert_eq!(channel(json!({"clientMsgId": "c", "body": 1})), None);
    }

    #[test]
    fn acks_and_nacks_take_the_contract_shape() {
        let channel = ChannelId::new("room").unwrap();
        let join = Ack::Join(JoinAck {
            channel_id: channel.clone(),
            epoch: Epoch(1),
            head_seq: Seq(4),
            members: vec![UserId::new("al").unwrap()],
            events: vec![],
            recovered: false,
        });
        assert_eq!(
            ack_body(&join),
            json!({"ok": true, "channelId": "room", "epoch": 1, "headSeq": 4,
                   "members": ["al"], "events": [], "recovered": false})
        );
        assert_eq!(ack_body(&Ack::Leave), json!({"ok": true}));
        assert_eq!(
            ack_body(&Ack::Read { up_to: Seq(2) }),
            json!({"ok": true, "upTo": 2})
        );
        assert_eq!(
            nack_body(&ErrorBody::new(ErrorCode::RateLimited, "slow down")),
            json!({"ok": false, "error": {"code": "rate_limited", "message": "slow down", "retryable": true}})
        );
        let presence = ServerFrame::PresenceJoin(PresenceChange {
            channel_id: channel,
            user_id: UserId::new("bo").unwrap(),
        });
        let Outgoing::Event { name, payload } = encode_frame(&presence) else {
            panic!("not an event");
        };
        assert_eq!(name, "presence:join");
        assert_eq!(
            serde_json::from_str::<Value>(payload.get()).unwrap(),
            json!({"channelId": "room", "userId": "bo"})
        );
    }
}
