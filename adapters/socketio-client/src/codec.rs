//! The Engine.IO v4 and Socket.IO v5 text packet formats: pure parsing and
//! encoding, no I/O. Binary packets are not part of lockstep's contract
//! and are refused.

use serde_json::Value;
use serde_json::value::RawValue;

/// Why a packet did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The packet is empty.
    #[error("empty packet")]
    Empty,
    /// The packet type is not one this client knows.
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    /// Binary Socket.IO packets are not used by the contract.
    #[error("binary packets are not supported")]
    Binary,
    /// The JSON part did not parse or has the wrong shape.
    #[error("bad packet data: {0}")]
    Data(String),
}

/// An Engine.IO packet, as received over WebSocket text frames.
#[derive(Debug, Clone, PartialEq)]
pub enum EioPacket {
    /// `0{...}`: the session parameters.
    Open(EioOpen),
    /// `1`: the server closes the session.
    Close,
    /// `2`: the server's heartbeat probe; answer `3`.
    Ping,
    /// `3`: an answer to a probe.
    Pong,
    /// `4...`: a Socket.IO packet.
    Message(String),
    /// `5` / `6`: transport upgrade packets (unused over WebSocket).
    Noop,
}

/// The parameters of an Engine.IO session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EioOpen {
    /// Session id.
    pub sid: String,
    /// Milliseconds between the server's pings.
    pub ping_interval: u64,
    /// Milliseconds the server waits for a pong.
    pub ping_timeout: u64,
    /// Largest packet the server accepts, in bytes.
    #[serde(default)]
    pub max_payload: Option<u64>,
}

/// Parses one Engine.IO text packet.
///
/// # Errors
///
/// [`CodecError`] for an empty, unknown or malformed packet.
pub fn parse_eio(text: &str) -> Result<EioPacket, CodecError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(CodecError::Empty)?;
    let rest = chars.as_str();
    Ok(match kind {
        '0' => EioPacket::Open(
            serde_json::from_str(rest).map_err(|e| CodecError::Data(e.to_string()))?,
        ),
        '1' => EioPacket::Close,
        '2' => EioPacket::Ping,
        '3' => EioPacket::Pong,
        '4' => EioPacket::Message(rest.to_owned()),
        '5' | '6' => EioPacket::Noop,
        other => return Err(CodecError::UnknownType(other)),
    })
}

/// A Socket.IO packet of the main namespace.
#[derive(Debug, Clone)]
pub enum SioPacket {
    /// The namespace connection was accepted.
    Connect(Value),
    /// The namespace connection ended.
    Disconnect,
    /// An event: `[name, payload, ...]`, with an ack id when a reply is
    /// asked.
    Event {
        /// The ack id the sender waits on.
        ack: Option<u64>,
        /// The event name.
        name: String,
        /// The first argument as JSON text (`null` when there is none);
        /// the contract's events carry one.
        payload: Box<RawValue>,
    },
    /// The reply to our event `id`.
    Ack {
        /// The ack id answered.
        id: u64,
        /// The reply's first argument as JSON text (`null` when none).
        reply: Box<RawValue>,
    },
    /// The namespace connection was refused (`{ message }`).
    ConnectError(Value),
}

/// Parses one Socket.IO packet (the part after Engine.IO's `4`).
///
/// # Errors
///
/// [`CodecError`] for an unknown type, a binary packet or bad JSON.
pub fn parse_sio(text: &str) -> Result<SioPacket, CodecError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(CodecError::Empty)?;
    let mut rest = chars.as_str();
    if matches!(kind, '5' | '6') {
        return Err(CodecError::Binary);
    }
    // Optional namespace (`/name,`); lockstep serves the main one.
    if rest.starts_with('/') {
        rest = rest.split_once(',').map_or("", |(_, r)| r);
    }
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (id, json) = rest.split_at(digits);
    let id = if id.is_empty() {
        None
    } else {
        Some(
            id.parse::<u64>()
                .map_err(|e| CodecError::Data(e.to_string()))?,
        )
    };
    let bad = |e: serde_json::Error| CodecError::Data(e.to_string());
    let data = || -> Result<Value, CodecError> {
        if json.is_empty() {
            Ok(Value::Null)
        } else {
            serde_json::from_str(json).map_err(bad)
        }
    };
    // Arguments stay JSON text: a reply's bodies are never parsed into a
    // tree here (the mapping reads them straight into frames).
    let args = || -> Result<std::vec::IntoIter<Box<RawValue>>, CodecError> {
        serde_json::from_str::<Vec<Box<RawValue>>>(json)
            .map(Vec::into_iter)
            .map_err(bad)
    };
    let first = |args: &mut std::vec::IntoIter<Box<RawValue>>| {
        args.next().unwrap_or_else(|| RawValue::NULL.to_owned())
    };
    Ok(match kind {
        '0' => SioPacket::Connect(data()?),
        '1' => SioPacket::Disconnect,
        '2' => {
            let mut args = args()?;
            let name = args
                .next()
                .ok_or_else(|| CodecError::Data("an event without a name".into()))?;
            let name = serde_json::from_str::<String>(name.get()).map_err(bad)?;
            SioPacket::Event {
                ack: id,
                name,
                payload: first(&mut args),
            }
        }
        '3' => SioPacket::Ack {
            id: id.ok_or_else(|| CodecError::Data("ack without an id".into()))?,
            reply: first(&mut args()?),
        },
        '4' => SioPacket::ConnectError(data()?),
        other => return Err(CodecError::UnknownType(other)),
    })
}

/// `40{auth}`: connects the main namespace with `auth`.
#[must_use]
pub fn encode_connect(auth: &Value) -> String {
    format!("40{auth}")
}

/// `42[id][event, payload]`: an event, with an ack id when a reply is
/// asked; `payload` is JSON text, spliced as it is.
#[must_use]
pub fn encode_event(event: &str, payload: &str, ack: Option<u64>) -> String {
    let name = Value::String(event.to_owned());
    match ack {
        Some(id) => format!("42{id}[{name},{payload}]"),
        None => format!("42[{name},{payload}]"),
    }
}

/// `3`: the answer to the server's ping.
pub const EIO_PONG: &str = "3";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn engine_packets_parse() {
        let open = parse_eio(r#"0{"sid":"a","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#).unwrap();
        assert_eq!(
            open,
            EioPacket::Open(EioOpen {
                sid: "a".into(),
                ping_interval: 25_000,
                ping_timeout: 20_000,
                max_payload: Some(1_000_000)
            })
        );
        assert_eq!(parse_eio("2").unwrap(), EioPacket::Ping);
        assert_eq!(parse_eio("1").unwrap(), EioPacket::Close);
        assert_eq!(
            parse_eio("42[\"x\"]").unwrap(),
            EioPacket::Message("2[\"x\"]".into())
        );
        assert_eq!(parse_eio(""), Err(CodecError::Empty));
        assert_eq!(parse_eio("9"), Err(CodecError::UnknownType('9')));
    }

    #[test]
    fn socketio_packets_parse_and_encode() {
        assert!(
            matches!(parse_sio(r#"0{"sid":"x"}"#).unwrap(), SioPacket::Connect(v) if v == json!({"sid": "x"}))
        );
        let event = |text| match parse_sio(text).unwrap() {
            SioPacket::Event { ack, name, payload } => (ack, name, payload.get().to_owned()),
            other => panic!("not an event: {other:?}"),
        };
        assert_eq!(
            event(r#"2["message:new",{"seq": 1}]"#),
            (None, "message:new".into(), r#"{"seq": 1}"#.into())
        );
        assert_eq!(
            event(r#"2/admin,12["e"]"#),
            (Some(12), "e".into(), "null".into())
        );
        match parse_sio(r#"317[{"ok":true}]"#).unwrap() {
            SioPacket::Ack { id, reply } => assert_eq!((id, reply.get()), (17, r#"{"ok":true}"#)),
            other => panic!("not an ack: {other:?}"),
        }
        assert!(parse_sio("2[]").is_err(), "an event needs a name");
        assert!(parse_sio("2[1]").is_err(), "a name is a string");
        assert!(matches!(
            parse_sio(r#"4{"message":"unauthorized"}"#).unwrap(),
            SioPacket::ConnectError(v) if v == json!({"message": "unauthorized"})
        ));
        assert!(matches!(parse_sio("1").unwrap(), SioPacket::Disconnect));
        assert!(matches!(parse_sio("51-[]"), Err(CodecError::Binary)));
        assert!(parse_sio("2{").is_err());
        assert!(parse_sio("3[]").is_err(), "an ack needs an id");
        assert_eq!(
            encode_event("channel:join", r#"{"channelId":"a"}"#, Some(3)),
            r#"423["channel:join",{"channelId":"a"}]"#
        );
        assert_eq!(encode_event("typing", "{}", None), r#"42["typing",{}]"#);
        assert_eq!(encode_connect(&json!({"token": "t"})), r#"40{"token":"t"}"#);
    }
}
