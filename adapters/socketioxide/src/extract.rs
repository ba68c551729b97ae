//! Three small socketioxide extractors. socketioxide's own `AckSender` is
//! consumed by a send that fails on a full buffer, which would lose the
//! reply; keeping the raw ack id and the socket lets the writer rebuild it
//! and try again once the buffer drains. The handshake's token is read only
//! from a small auth payload.

use std::convert::Infallible;
use std::sync::Arc;

use lockstep_tokio::server::MAX_TOKEN_BYTES;
use serde::Deserialize;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, TryData};
use socketioxide::handler::{FromConnectParts, FromMessageParts};
use socketioxide::socket::Socket;
use socketioxide_core::Value;

/// The ack id of the event being handled (`None`: no ack callback).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AckId(pub(crate) Option<i64>);

impl FromMessageParts<LocalAdapter> for AckId {
    type Error = Infallible;
    fn from_message_parts(
        _: &Arc<Socket<LocalAdapter>>,
        _: &mut Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(AckId(*ack_id))
    }
}

/// The first argument of the event being handled, as JSON text, never
/// parsed into a tree here (the mapping reads the request's fields straight
/// from it); `None` when there is none or the packet is binary.
#[derive(Debug)]
pub(crate) struct RawPayload(pub(crate) Option<Box<serde_json::value::RawValue>>);

impl FromMessageParts<LocalAdapter> for RawPayload {
    type Error = Infallible;
    fn from_message_parts(
        _: &Arc<Socket<LocalAdapter>>,
        v: &mut Value,
        _: &Option<i64>,
    ) -> Result<Self, Infallible> {
        // The packet's data is the event array `["name", payload, ...]`.
        let payload = v.as_str().and_then(|data| {
            serde_json::from_str::<Vec<&serde_json::value::RawValue>>(data.as_str())
                .ok()?
                .get(1)
                .map(|raw| (*raw).to_owned())
        });
        Ok(RawPayload(payload))
    }
}

/// The connected socket itself, for the connection's writer task.
#[derive(Debug, Clone)]
pub(crate) struct SocketHandle(pub(crate) Arc<Socket<LocalAdapter>>);

impl FromConnectParts<LocalAdapter> for SocketHandle {
    type Error = Infallible;
    fn from_connect_parts(
        s: &Arc<Socket<LocalAdapter>>,
        _: &Option<Value>,
    ) -> Result<Self, Infallible> {
        Ok(SocketHandle(Arc::clone(s)))
    }
}

impl FromMessageParts<LocalAdapter> for SocketHandle {
    type Error = Infallible;
    fn from_message_parts(
        s: &Arc<Socket<LocalAdapter>>,
        _: &mut Value,
        _: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(SocketHandle(Arc::clone(s)))
    }
}

impl SocketHandle {
    /// A sender for the reply to ack `id`.
    pub(crate) fn ack_sender(&self, id: i64) -> AckSender {
        let mut none = Value::Bytes(bytes::Bytes::new());
        match AckSender::from_message_parts(&self.0, &mut none, &Some(id)) {
            Ok(sender) => sender,
            Err(never) => match never {},
        }
    }
}

/// Largest `auth` payload of a handshake that is parsed at all: a token of
/// [`MAX_TOKEN_BYTES`] plus room for its JSON wrapping and a few small
/// fields. A larger one is refused unread.
pub(crate) const MAX_AUTH_BYTES: usize = MAX_TOKEN_BYTES + 1_024;

/// The token a handshake presents (`auth: { token }`).
#[derive(Debug)]
pub(crate) enum AuthToken {
    /// No auth payload, or no string `token` in it.
    Missing,
    /// The auth payload (or the token) is larger than allowed, in bytes.
    TooLong(usize),
    /// The token, at most [`MAX_TOKEN_BYTES`] long.
    Given(String),
}

#[derive(Deserialize)]
struct AuthFields {
    token: Option<String>,
}

impl FromConnectParts<LocalAdapter> for AuthToken {
    type Error = Infallible;
    fn from_connect_parts(
        s: &Arc<Socket<LocalAdapter>>,
        auth: &Option<Value>,
    ) -> Result<Self, Infallible> {
        let size = match auth {
            None => 0,
            Some(Value::Str(text, bins)) => {
                text.len() + bins.iter().flatten().map(bytes::Bytes::len).sum::<usize>()
            }
            Some(Value::Bytes(bytes)) => bytes.len(),
        };
        if size > MAX_AUTH_BYTES {
            return Ok(AuthToken::TooLong(size));
        }
        let TryData(fields) = TryData::<AuthFields>::from_connect_parts(s, auth)?;
        Ok(match fields {
            Ok(AuthFields { token: Some(token) }) if token.len() > MAX_TOKEN_BYTES => {
                AuthToken::TooLong(token.len())
            }
            Ok(AuthFields { token: Some(token) }) => AuthToken::Given(token),
            Ok(AuthFields { token: None }) | Err(_) => AuthToken::Missing,
        })
    }
}
