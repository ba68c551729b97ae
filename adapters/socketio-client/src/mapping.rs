//! Frames to Socket.IO events and back (the contract of DESIGN §4 seen from
//! the client): requests become events with an ack id equal to their
//! `req`, acks become `ack`/`nack` frames, events become server frames.

use lockstep_core::ids::UserId;
use lockstep_core::wire::{
    Ack, ClientFrame, DecodeError, ErrorBody, ErrorCode, ReqId, ServerFrame,
};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The event a lockstep server emits first, `{ userId, version }`.
pub const SESSION_EVENT: &str = "session";

/// The server events of the contract.
const SERVER_EVENTS: [&str; 7] = [
    "message:new",
    "message:updated",
    "message:deleted",
    "presence:join",
    "presence:leave",
    "typing",
    "message:read",
];

/// What a client frame becomes on a Socket.IO connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// `hello`: connect the namespace with `auth: { token }`.
    Connect {
        /// The credentials.
        token: String,
    },
    /// `ping`: answered at once by the transport itself, which enforces
    /// Engine.IO's own heartbeat (a silent server ends the connection).
    Pong {
        /// The probe's nonce.
        nonce: u64,
    },
    /// A request: an event, with the ack id `req` when a reply is asked.
    Event {
        /// The contract's event name.
        name: String,
        /// The payload: the frame's fields without `type` and `req`.
        payload: Value,
        /// The request id, used as the ack id.
        req: Option<ReqId>,
    },
}

/// Maps a client frame to its Socket.IO form.
#[must_use]
pub fn outgoing(frame: &ClientFrame) -> Outgoing {
    match frame {
        ClientFrame::Hello { token, .. } => Outgoing::Connect {
            token: token.clone(),
        },
        ClientFrame::Ping { nonce } => Outgoing::Pong { nonce: *nonce },
        other => {
            let mut fields = match serde_json::to_value(other) {
                Ok(Value::Object(fields)) => fields,
                _ => Map::new(),
            };
            let name = match fields.remove("type") {
                Some(Value::String(name)) => name,
                _ => String::new(),
            };
            fields.remove("req");
            Outgoing::Event {
                name,
                payload: Value::Object(fields),
                req: other.req(),
            }
        }
    }
}

/// The `kind` of the [`Ack`] that answers `event` (acks on the wire carry
/// no kind: the client remembers what it asked).
#[must_use]
pub fn ack_kind(event: &str) -> Option<&'static str> {
    Some(match event {
        "channel:join" => "join",
        "channel:leave" => "leave",
        "message:send" => "send",
        "message:update" => "update",
        "message:delete" => "delete",
        "channel:history" => "history",
        "message:read" => "read",
        "typing" => "typing",
        _ => return None,
    })
}

/// Turns the reply to request `req` (asked with an event of `kind`) into an
/// `ack` or `nack` frame.
///
/// # Errors
///
/// [`DecodeError`] when the reply does not have the contract's shape.
pub fn incoming_ack(req: ReqId, kind: &str, args: Vec<Value>) -> Result<ServerFrame, DecodeError> {
    let bad = |message: String| DecodeError::invalid(Some(req), "ack", message, None);
    let Some(Value::Object(mut fields)) = args.into_iter().next() else {
        return Err(bad("the reply is not an object".into()));
    };
    match fields.remove("ok") {
        Some(Value::Bool(true)) => {
            fields.insert("kind".into(), Value::String(kind.to_owned()));
            let body = Ack::deserialize(Value::Object(fields)).map_err(|e| bad(e.to_string()))?;
            Ok(ServerFrame::Ack { req, body })
        }
        Some(Value::Bool(false)) => {
            let error = fields
                .remove("error")
                .ok_or_else(|| bad("a refusal without an error".into()))?;
            let error = ErrorBody::deserialize(error).map_err(|e| bad(e.to_string()))?;
            Ok(ServerFrame::Nack { req, error })
        }
        _ => Err(bad("the reply has no boolean `ok`".into())),
    }
}

/// Turns a server event into a frame; `None` for events outside the
/// contract (ignored, as a plain client would).
///
/// # Errors
///
/// [`DecodeError`] when a contract event has the wrong shape.
pub fn incoming_event(args: Vec<Value>) -> Result<Option<ServerFrame>, DecodeError> {
    let mut args = args.into_iter();
    let Some(Value::String(name)) = args.next() else {
        return Err(DecodeError::Malformed("an event without a name".into()));
    };
    let payload = args.next().unwrap_or(Value::Null);
    let bad = |message: String| DecodeError::invalid(None, name.clone(), message, None);
    if name == SESSION_EVENT {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Session {
            user_id: UserId,
            version: u32,
        }
        let s = Session::deserialize(payload).map_err(|e| bad(e.to_string()))?;
        return Ok(Some(ServerFrame::Welcome {
            version: s.version,
            user_id: s.user_id,
        }));
    }
    if !SERVER_EVENTS.contains(&name.as_str()) {
        return Ok(None);
    }
    let Value::Object(mut fields) = payload else {
        return Err(bad("the payload is not an object".into()));
    };
    fields.insert("type".into(), Value::String(name.clone()));
    ServerFrame::deserialize(Value::Object(fields))
        .map(Some)
        .map_err(|e| bad(e.to_string()))
}

/// The `refused` frame for a namespace `connect_error` (`{ message }`).
#[must_use]
pub fn refused(data: &Value) -> ServerFrame {
    let message = data
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("connection refused")
        .to_owned();
    // `unauthorized` is permanent; anything else (e.g. a server at its
    // limit) is worth retrying.
    let code = if message == "unauthorized" {
        ErrorCode::Unauthorized
    } else {
        ErrorCode::Unavailable
    };
    ServerFrame::Refused {
        error: ErrorBody::new(code, message),
    }
}

#[cfg(test)]
mod tests {
    use lockstep_core::ids::{ChannelId, ClientMsgId, Seq};
    use lockstep_core::wire::Body;
    use serde_json::json;

    use super::*;

    #[test]
    fn requests_become_events_acked_by_req() {
        let send = ClientFrame::Send {
            req: ReqId(9),
            channel_id: ChannelId::new("room").unwrap(),
            client_msg_id: ClientMsgId::new("c1").unwrap(),
            body: Body::text("hi"),
        };
        assert_eq!(
            outgoing(&send),
            Outgoing::Event {
                name: "message:send".into(),
                payload: json!({"channelId": "room", "clientMsgId": "c1", "body": "hi"}),
                req: Some(ReqId(9)),
            }
        );
        assert_eq!(
            outgoing(&ClientFrame::Ping { nonce: 4 }),
            Outgoing::Pong { nonce: 4 }
        );
    }

    #[test]
    fn replies_become_acks_and_nacks() {
        let ack = incoming_ack(
            ReqId(2),
            "send",
            vec![json!({"ok": true, "messageId": "m1.1", "seq": 1, "ts": 5})],
        )
        .unwrap();
        assert!(
            matches!(ack, ServerFrame::Ack { req: ReqId(2), body: Ack::Send(ref a) } if a.seq == Seq(1))
        );
        let nack = incoming_ack(
            ReqId(3),
            "join",
            vec![json!({"ok": false, "error": {"code": "forbidden", "message": "no", "retryable": false}})],
        )
        .unwrap();
        assert!(
            matches!(nack, ServerFrame::Nack { req: ReqId(3), ref error } if error.code == ErrorCode::Forbidden)
        );
        assert!(incoming_ack(ReqId(1), "send", vec![json!("x")]).is_err());
        assert!(incoming_ack(ReqId(1), "send", vec![json!({"ok": true})]).is_err());
    }

    #[test]
    fn events_become_frames() {
        let welcome = incoming_event(vec![
            json!("session"),
            json!({"userId": "al", "version": 1}),
        ])
        .unwrap()
        .unwrap();
        assert!(matches!(welcome, ServerFrame::Welcome { version: 1, .. }));
        let presence = incoming_event(vec![
            json!("presence:join"),
            json!({"channelId": "room", "userId": "bo"}),
        ])
        .unwrap()
        .unwrap();
        assert!(matches!(presence, ServerFrame::PresenceJoin(_)));
        assert_eq!(
            incoming_event(vec![json!("other"), json!({})]).unwrap(),
            None
        );
        assert!(
            incoming_event(vec![json!("ack"), json!({})])
                .unwrap()
                .is_none()
        );
        assert!(incoming_event(vec![json!("typing"), json!({"channelId": 1})]).is_err());
        assert!(matches!(
            refused(&json!({"message": "unauthorized"})),
            ServerFrame::Refused { ref error } if error.code == ErrorCode::Unauthorized
        ));
    }
}
