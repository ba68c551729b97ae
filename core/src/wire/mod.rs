//! The wire contract: frames, events, error codes and their encoding.
//!
//! The same frames travel over every transport. The Socket.IO front maps
//! `type` to the event name and `req` to the ack id; stream transports send
//! the JSON as it is. See `docs/PROTOCOL.md` for the full contract.

pub(crate) mod body;
mod client_codec;
mod codec;
mod error;
mod event;
mod frame;
pub mod json;
pub mod socketio;

pub use body::{Body, BodyError, MAX_BODY_BYTES};
pub use codec::{
    DecodeError, MAX_FRAME_BYTES, MAX_SERVER_FRAME_BYTES, decode_client, decode_server,
    encode_client, encode_server,
};
pub use error::{ErrorBody, ErrorCode};
pub use event::{
    LogEvent, MessageDeleted, MessageUpdated, NewMessage, PresenceChange, ReadReceipt, TypingNotice,
};
pub use frame::{Ack, ClientFrame, HistoryAck, JoinAck, ReqId, SendAck, ServerFrame};

/// The protocol version this build speaks. A server refuses a `hello` with
/// another version rather than guess at its meaning.
pub const PROTOCOL_VERSION: u32 = 1;

/// Most events a join reply carries; past this the reply says
/// `recovered: false` and the client pages the rest with history.
pub const JOIN_EVENTS_MAX: usize = 1_000;

/// Default byte budget of one join reply or history page (1 MiB); a page
/// cut by it says so (`recovered: false`, `more: true`).
pub const REPLY_BYTES_MAX: usize = 1 << 20;

/// History page size when the request names none.
pub const HISTORY_LIMIT_DEFAULT: u64 = 100;

/// Largest history page; larger requests are cut to it.
pub const HISTORY_LIMIT_MAX: u64 = 500;

#[cfg(test)]
mod tests;
