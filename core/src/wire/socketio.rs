//! The contract on Socket.IO: event names, payload shapes and ack bodies,
//! both ways, in one place.
//!
//! Frames map one to one to Socket.IO events (see `docs/PROTOCOL.md`): a
//! request is an event whose payload is the frame's fields without `type`
//! and `req`, emitted with an ack; its reply is the ack, `{ ok: true, …the
//! answer's fields }` or `{ ok: false, error }`; server events are events
//! with the broadcast's fields. The server front (socketioxide), the Rust
//! Socket.IO client and the WebAssembly client all use these functions, so
//! the mapping cannot drift between them.
//!
//! Pure functions over JSON text: bodies are spliced as text, never parsed
//! into trees, so a reply costs what it weighs.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::ids::{Seq, UserId};
use crate::wire::client_codec;
use crate::wire::{Ack, ClientFrame, DecodeError, ErrorBody, ErrorCode, ReqId, ServerFrame};

/// Each event a client may emit, with the request kind it carries: the
/// `kind` of its [`Ack`], and the `kind` label of the server's reply
/// metrics (a refusal carries no kind of its own).
pub const REQUESTS: [(&str, &str); 8] = [
    ("channel:join", "join"),
    ("channel:leave", "leave"),
    ("message:send", "send"),
    ("message:update", "update"),
    ("message:delete", "delete"),
    ("channel:history", "history"),
    ("message:read", "read"),
    ("typing", "typing"),
];

/// The events a client may emit (each with an ack, `typing` optionally).
/// Anything else is refused `invalid` as an unknown event.
pub const CLIENT_EVENTS: [&str; 8] = {
    let mut events = [""; 8];
    let mut i = 0;
    while i < REQUESTS.len() {
        events[i] = REQUESTS[i].0;
        i += 1;
    }
    events
};

/// The request kind of client event `event` (`join` for `channel:join`,
/// ...), `None` for an event that is not a request.
#[must_use]
pub fn request_kind(event: &str) -> Option<&'static str> {
    REQUESTS
        .iter()
        .find(|(name, _)| *name == event)
        .map(|(_, kind)| *kind)
}

/// The events the server emits besides [`SESSION_EVENT`].
pub const SERVER_EVENTS: [&str; 7] = [
    "message:new",
    "message:updated",
    "message:deleted",
    "presence:join",
    "presence:leave",
    "typing",
    "message:read",
];

/// The event the server emits first on every connection, `{ userId,
/// version }`: the verified identity (the `welcome` of stream
/// transports). Plain clients may ignore it; lockstep's clients wait for it.
pub const SESSION_EVENT: &str = "session";

/// The `connect_error` message of a handshake refused for its token. Every
/// other refusal message (a connection cap, a server at its limit) is
/// worth retrying later.
pub const UNAUTHORIZED: &str = "unauthorized";

// ---- server side --------------------------------------------------------

/// Turns one received event into the frame the server machine understands:
/// the payload's fields plus `type` (the event name) and `req` (the front's
/// id for the ack). `payload` is the event's first argument as JSON text,
/// read straight into the frame: a body becomes compact text without ever
/// being a tree, whatever it weighs. Untrusted input: every failure is a
/// [`DecodeError`] that names `req`, so the machine refuses just this
/// request with `invalid`.
///
/// # Errors
///
/// [`DecodeError::Invalid`] for an unknown event, a payload that is not an
/// object, or a field of the wrong shape.
pub fn decode_event(
    event: &str,
    payload: Option<&str>,
    req: ReqId,
) -> Result<ClientFrame, DecodeError> {
    let invalid =
        |message: String, channel| DecodeError::invalid_in(Some(req), event, message, channel);
    if !CLIENT_EVENTS.contains(&event) {
        return Err(invalid("unknown event".into(), None));
    }
    let Some(payload) = payload.filter(|p| p.trim_start().starts_with('{')) else {
        return Err(invalid("payload must be an object".into(), None));
    };
    fields::request(event, payload, req).map_err(|e| {
        // A refusal's channel checks come before the other fields', so a
        // valid channel id is kept (read on its own, only on this path).
        invalid(e.to_string(), fields::channel_of(payload))
    })
}

/// The fields of each request as a Socket.IO payload carries them (the
/// frame's fields without `type` and `req`), read with serde_json's own
/// deserializer: no buffered tree, unlike an internally tagged frame.
pub(crate) mod fields {
    use serde::{Deserialize, Serialize};
    use serde_json::value::RawValue;

    use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq};
    use crate::wire::{Body, ClientFrame, ReqId};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Join {
        channel_id: ChannelId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<Epoch>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Seq>,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Channel {
        channel_id: ChannelId,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Send {
        channel_id: ChannelId,
        client_msg_id: ClientMsgId,
        body: Body,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Update {
        channel_id: ChannelId,
        message_id: MessageId,
        body: Body,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Delete {
        channel_id: ChannelId,
        message_id: MessageId,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct History {
        channel_id: ChannelId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Seq>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Read {
        channel_id: ChannelId,
        up_to: Seq,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Typing {
        channel_id: ChannelId,
        active: bool,
    }

    /// The frame of request `event` (one of `CLIENT_EVENTS`).
    pub(super) fn request(
        event: &str,
        payload: &str,
        req: ReqId,
    ) -> Result<ClientFrame, serde_json::Error> {
        fn parse<'a, T: Deserialize<'a>>(payload: &'a str) -> Result<T, serde_json::Error> {
            serde_json::from_str(payload)
        }
        Ok(match event {
            "channel:join" => {
                let f: Join = parse(payload)?;
                ClientFrame::Join {
                    req,
                    channel_id: f.channel_id,
                    epoch: f.epoch,
                    since: f.since,
                }
            }
            "channel:leave" => {
                let f: Channel = parse(payload)?;
                ClientFrame::Leave {
                    req,
                    channel_id: f.channel_id,
                }
            }
            "message:send" => {
                let f: Send = parse(payload)?;
                ClientFrame::Send {
                    req,
                    channel_id: f.channel_id,
                    client_msg_id: f.client_msg_id,
                    body: f.body,
                }
            }
            "message:update" => {
                let f: Update = parse(payload)?;
                ClientFrame::Update {
                    req,
                    channel_id: f.channel_id,
                    message_id: f.message_id,
                    body: f.body,
                }
            }
            "message:delete" => {
                let f: Delete = parse(payload)?;
                ClientFrame::Delete {
                    req,
                    channel_id: f.channel_id,
                    message_id: f.message_id,
                }
            }
            "channel:history" => {
                let f: History = parse(payload)?;
                ClientFrame::History {
                    req,
                    channel_id: f.channel_id,
                    after: f.after,
                    limit: f.limit,
                }
            }
            "message:read" => {
                let f: Read = parse(payload)?;
                ClientFrame::Read {
                    req,
                    channel_id: f.channel_id,
                    up_to: f.up_to,
                }
            }
            _ => {
                let f: Typing = parse(payload)?;
                ClientFrame::Typing {
                    req: Some(req),
                    channel_id: f.channel_id,
                    active: f.active,
                }
            }
        })
    }

    /// The payload of a request frame as serde writes it: what
    /// `client_codec::request_payload` is held to.
    #[cfg(test)]
    pub(crate) fn payload(frame: &ClientFrame) -> Option<String> {
        let text = match frame.clone() {
            ClientFrame::Hello { .. } | ClientFrame::Ping { .. } => return None,
            ClientFrame::Join {
                channel_id,
                epoch,
                since,
                ..
            } => to_json(&Join {
                channel_id,
                epoch,
                since,
            }),
            ClientFrame::Leave { channel_id, .. } => to_json(&Channel { channel_id }),
            ClientFrame::Send {
                channel_id,
                client_msg_id,
                body,
                ..
            } => to_json(&Send {
                channel_id,
                client_msg_id,
                body,
            }),
            ClientFrame::Update {
                channel_id,
                message_id,
                body,
                ..
            } => to_json(&Update {
                channel_id,
                message_id,
                body,
            }),
            ClientFrame::Delete {
                channel_id,
                message_id,
                ..
            } => to_json(&Delete {
                channel_id,
                message_id,
            }),
            ClientFrame::History {
                channel_id,
                after,
                limit,
                ..
            } => to_json(&History {
                channel_id,
                after,
                limit,
            }),
            ClientFrame::Read {
                channel_id, up_to, ..
            } => to_json(&Read { channel_id, up_to }),
            ClientFrame::Typing {
                channel_id, active, ..
            } => to_json(&Typing { channel_id, active }),
        };
        Some(text)
    }

    // Fields of ids, numbers, bools and JSON text always serialize.
    #[cfg(test)]
    fn to_json<T: Serialize>(fields: &T) -> String {
        serde_json::to_string(fields).unwrap_or_default()
    }

    /// The payload's `channelId` when it is a valid channel id.
    pub(super) fn channel_of(payload: &str) -> Option<ChannelId> {
        #[derive(Deserialize)]
        struct Field<'a> {
            #[serde(rename = "channelId", borrow, default)]
            channel_id: Option<&'a RawValue>,
        }
        let raw = serde_json::from_str::<Field<'_>>(payload)
            .ok()?
            .channel_id?;
        let id: String = serde_json::from_str(raw.get()).ok()?;
        ChannelId::new(id).ok()
    }
}

/// What one server frame becomes on a Socket.IO connection. Payloads are
/// JSON text already: a broadcast is encoded once and each socket's emit
/// copies the text.
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

impl Outgoing {
    /// Bytes of JSON this output puts on the wire (its payload or reply),
    /// for byte budgets.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Outgoing::Reply { body, .. } => body.get().len(),
            Outgoing::Event { payload, .. } => payload.get().len(),
            Outgoing::Refused(_) | Outgoing::Nothing => 0,
        }
    }

    /// True when nothing is written.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Maps a server frame to its Socket.IO form.
#[must_use]
pub fn encode_frame(frame: &ServerFrame) -> Outgoing {
    let event = |name: &'static str, payload: Box<RawValue>| Outgoing::Event { name, payload };
    match frame {
        ServerFrame::Welcome { version, user_id } => {
            event(SESSION_EVENT, to_raw(&Session::new(user_id, *version)))
        }
        ServerFrame::Pong { .. } => Outgoing::Nothing,
        ServerFrame::Refused { error } => Outgoing::Refused(error.clone()),
        ServerFrame::Ack { req, body } => Outgoing::Reply {
            req: *req,
            body: to_raw(&AckBody(body)),
        },
        ServerFrame::Nack { req, error } => Outgoing::Reply {
            req: *req,
            body: to_raw(&NackBody { ok: false, error }),
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

/// `{ ok: true, ...fields }`: an answer's fields without its `kind` tag,
/// written straight to text (bodies spliced, no tree).
struct AckBody<'a>(&'a Ack);

#[derive(Serialize)]
struct OkBody<F: Serialize> {
    ok: bool,
    #[serde(flatten)]
    fields: F,
}

impl<F: Serialize> OkBody<F> {
    fn new(fields: F) -> Self {
        OkBody { ok: true, fields }
    }
}

#[derive(Serialize, serde::Deserialize)]
struct SeqField {
    seq: Seq,
}

#[derive(Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpToField {
    up_to: Seq,
}

#[derive(Serialize)]
struct NoFields {}

impl Serialize for AckBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Ack::Join(join) => OkBody::new(join).serialize(s),
            Ack::Send(send) => OkBody::new(send).serialize(s),
            Ack::History(page) => OkBody::new(page).serialize(s),
            Ack::Update { seq } | Ack::Delete { seq } => {
                OkBody::new(SeqField { seq: *seq }).serialize(s)
            }
            Ack::Read { up_to } => OkBody::new(UpToField { up_to: *up_to }).serialize(s),
            Ack::Leave | Ack::Typing => OkBody::new(NoFields {}).serialize(s),
        }
    }
}

#[derive(Serialize)]
struct NackBody<'a> {
    ok: bool,
    error: &'a ErrorBody,
}

#[derive(Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Session {
    user_id: UserId,
    version: u32,
}

impl Session {
    fn new(user_id: &UserId, version: u32) -> Self {
        Session {
            user_id: user_id.clone(),
            version,
        }
    }
}

// Wire types hold only strings, numbers, bools and JSON text: they always
// serialize, so the `null` fallback is never taken.
fn to_raw<T: Serialize + ?Sized>(v: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

// ---- client side --------------------------------------------------------

/// What a client frame becomes on a Socket.IO connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Emit {
    /// `hello`: connect the namespace with `auth: { token }`.
    Connect {
        /// The credentials.
        token: String,
    },
    /// `ping`: answered at once by the transport itself, which keeps
    /// Engine.IO's own heartbeat (a silent server ends the connection).
    Pong {
        /// The probe's nonce.
        nonce: u64,
    },
    /// A request: an event, with the ack id `req` when a reply is asked.
    Event {
        /// The contract's event name.
        name: &'static str,
        /// The payload: the frame's fields without `type` and `req`, as
        /// JSON text.
        payload: String,
        /// The request id; the reply is expected as this request's ack.
        req: Option<ReqId>,
        /// The kind of answer the reply carries (`join`, `send`, ...), for
        /// [`decode_reply`]; `None` when no reply is asked.
        kind: Option<&'static str>,
    },
}

/// Maps a client frame to its Socket.IO form.
#[must_use]
pub fn emit(frame: &ClientFrame) -> Emit {
    let (name, kind) = match frame {
        ClientFrame::Hello { token, .. } => {
            return Emit::Connect {
                token: token.clone(),
            };
        }
        ClientFrame::Ping { nonce } => return Emit::Pong { nonce: *nonce },
        ClientFrame::Join { .. } => REQUESTS[0],
        ClientFrame::Leave { .. } => REQUESTS[1],
        ClientFrame::Send { .. } => REQUESTS[2],
        ClientFrame::Update { .. } => REQUESTS[3],
        ClientFrame::Delete { .. } => REQUESTS[4],
        ClientFrame::History { .. } => REQUESTS[5],
        ClientFrame::Read { .. } => REQUESTS[6],
        ClientFrame::Typing { .. } => REQUESTS[7],
    };
    let payload = client_codec::request_payload(frame).unwrap_or_default();
    let req = frame.req();
    Emit::Event {
        name,
        payload,
        req,
        kind: req.map(|_| kind),
    }
}

/// Turns the reply to request `req` (asked with an event whose answer is of
/// `kind`, as [`Emit::Event`] said) into an `ack` or `nack` frame. `reply`
/// is the ack's first argument as JSON text.
///
/// # Errors
///
/// [`DecodeError`] when the reply does not have the contract's shape.
pub fn decode_reply(req: ReqId, kind: &str, reply: &str) -> Result<ServerFrame, DecodeError> {
    match client_codec::reply(kind, reply) {
        Ok(Ok(body)) => Ok(ServerFrame::Ack { req, body }),
        Ok(Err(error)) => Ok(ServerFrame::Nack { req, error }),
        Err(e) => Err(DecodeError::invalid_in(
            Some(req),
            "ack",
            e.to_string(),
            None,
        )),
    }
}

/// Turns a server event into a frame; `None` for events outside the
/// contract (ignored, as a plain client would). `payload` is the event's
/// first argument as JSON text.
///
/// # Errors
///
/// [`DecodeError`] when a contract event has the wrong shape.
pub fn decode_server_event(name: &str, payload: &str) -> Result<Option<ServerFrame>, DecodeError> {
    client_codec::server_event(name, payload)
        .map_err(|e| DecodeError::invalid_in(None, name, e.to_string(), None))
}

/// The `refused` frame for a namespace `connect_error` with `message`:
/// [`UNAUTHORIZED`] is permanent; anything else (a connection cap, a server
/// at its limit) is worth retrying.
#[must_use]
pub fn refused(message: &str) -> ServerFrame {
    let code = if message == UNAUTHORIZED {
        ErrorCode::Unauthorized
    } else {
        ErrorCode::Unavailable
    };
    ServerFrame::Refused {
        error: ErrorBody::new(code, message),
    }
}

#[cfg(test)]
mod tests;
