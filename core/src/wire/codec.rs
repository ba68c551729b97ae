//! Turning frames into bytes and untrusted bytes back into frames.
//!
//! Decoding never panics. When a client frame is malformed but its `req`
//! could be read, the error carries it so the server can refuse that one
//! request with `invalid` and keep the connection.

use serde::Deserialize;

use crate::ids::ChannelId;
use crate::wire::{ClientFrame, ReqId, ServerFrame};

/// The largest frame a client may send, in bytes. Larger frames are a
/// transport-level violation (the connection closes), unlike large bodies,
/// which are refused per request.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// The largest frame a server may send, in bytes: a join reply carries up
/// to `reply_bytes_max` (1 MiB) of events plus its member list, so the
/// server's frames get room to spare beyond a client's.
pub const MAX_SERVER_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Why bytes could not be decoded into a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame exceeds [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes exceeds the {max} byte limit")]
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a JSON object with a string `type`.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The envelope parsed (so the request is known) but a field did not.
    #[error("invalid {kind} request: {message}")]
    Invalid {
        /// The request to refuse, when the frame named one.
        req: Option<ReqId>,
        /// The frame's `type`.
        kind: String,
        /// What was wrong, from the parser.
        message: String,
        /// The request's `channelId`, when it is a valid id: the server
        /// checks the channel (access policy, joined) before the other
        /// fields, as the contract orders them.
        channel: Option<ChannelId>,
    },
}

impl DecodeError {
    /// A request whose envelope parsed but whose fields did not; `channel_id`
    /// is the raw `channelId` field, kept when it is a valid channel id.
    #[must_use]
    pub fn invalid(
        req: Option<ReqId>,
        kind: impl Into<String>,
        message: impl Into<String>,
        channel_id: Option<&serde_json::Value>,
    ) -> Self {
        let channel = channel_id
            .and_then(serde_json::Value::as_str)
            .and_then(|s| ChannelId::new(s).ok());
        DecodeError::invalid_in(req, kind, message, channel)
    }

    /// A request whose envelope parsed but whose fields did not, about
    /// `channel` when its id was valid.
    #[must_use]
    pub fn invalid_in(
        req: Option<ReqId>,
        kind: impl Into<String>,
        message: impl Into<String>,
        channel: Option<ChannelId>,
    ) -> Self {
        DecodeError::Invalid {
            req,
            kind: kind.into(),
            message: message.into(),
            channel,
        }
    }

    /// The request this error should be answered on, if any.
    #[must_use]
    pub fn req(&self) -> Option<ReqId> {
        match self {
            DecodeError::Invalid { req, .. } => *req,
            _ => None,
        }
    }
}

/// The part of a frame that is read even when the rest is malformed.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    req: Option<ReqId>,
    #[serde(default, rename = "channelId")]
    channel_id: Option<serde_json::Value>,
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], max: usize) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    match serde_json::from_slice::<T>(bytes) {
        Ok(frame) => Ok(frame),
        Err(full) => match serde_json::from_slice::<Envelope<'_>>(bytes) {
            Ok(env) => Err(DecodeError::invalid(
                env.req,
                env.kind,
                full.to_string(),
                env.channel_id.as_ref(),
            )),
            Err(_) => Err(DecodeError::Malformed(full.to_string())),
        },
    }
}

/// Decodes a frame a client sent. Untrusted input: returns a typed error.
pub fn decode_client(bytes: &[u8]) -> Result<ClientFrame, DecodeError> {
    decode(bytes, MAX_FRAME_BYTES)
}

/// Decodes a frame a server sent. Untrusted input: returns a typed error.
pub fn decode_server(bytes: &[u8]) -> Result<ServerFrame, DecodeError> {
    decode(bytes, MAX_SERVER_FRAME_BYTES)
}

/// Encodes a client frame as compact JSON.
#[must_use]
pub fn encode_client(frame: &ClientFrame) -> Vec<u8> {
    // Frames hold only strings, numbers, bools and JSON values: serializing
    // them into memory cannot fail.
    serde_json::to_vec(frame).unwrap_or_default()
}

/// Encodes a server frame as compact JSON.
#[must_use]
pub fn encode_server(frame: &ServerFrame) -> Vec<u8> {
    serde_json::to_vec(frame).unwrap_or_default()
}
