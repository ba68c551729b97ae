//! # lockstep-socketioxide
//!
//! The Socket.IO front of the lockstep server: it attaches the one server
//! driver of `lockstep-tokio` to a [socketioxide] namespace, so any plain
//! `socket.io-client` speaks the event contract (docs/PROTOCOL.md) with lockstep's
//! guarantees behind it. It holds no protocol logic: it turns sockets and
//! events into the driver's inputs (through the
//! [`Frontdoor`](lockstep_tokio::server::Frontdoor)) and the driver's frames
//! back into acks and events.
//!
//! - **Auth** runs in a connect middleware: `auth: { token }` goes to the
//!   [`Authenticator`](lockstep_tokio::server::Authenticator) (a token over
//!   [`MAX_TOKEN_BYTES`](lockstep_tokio::server::MAX_TOKEN_BYTES) is refused
//!   unread); a missing or rejected token gives the client `connect_error`
//!   with the message `unauthorized`, a user at its connection cap
//!   `too_many_connections` (see [`handshake`] for the limits before
//!   authentication). A session ends when its token expires: the server
//!   disconnects it (`io server disconnect`), and the client reconnects with
//!   a fresh token.
//! - **Order.** socketioxide runs each async handler in a task of its own,
//!   so two events of one socket may be handled out of order. The front
//!   registers a plain closure (its body runs synchronously in the receive
//!   path) that pushes each event onto one bounded, ordered queue per
//!   socket; one task feeds that queue to the driver.
//! - **Session.** The first event on every connection is `session
//!   { userId, version }` (the `welcome` of stream transports): the
//!   verified identity, which lockstep's Rust Socket.IO transport waits for
//!   and plain clients may ignore.
//! - **Replies** answer the event's ack: `{ ok: true, ...fields }` or
//!   `{ ok: false, error: { code, message, retryable } }`. The mapping
//!   itself (event names, payloads, ack bodies) is
//!   `lockstep_core::wire::socketio`, shared with the Rust and WebAssembly
//!   clients.
//! - **Nothing is dropped silently.** socketioxide's per-socket packet
//!   buffer is bounded and an emit into a full one fails. The front keeps
//!   the frame and retries (backpressure: the driver's bounded queue for
//!   the connection fills meanwhile); a client that stays behind is cut
//!   off with a logged reason (by the driver when its queue overflows, or
//!   here when one frame stalls too long) and recovers by re-joining from
//!   its position. A client that floods requests past its queue is cut
//!   off the same way.
//!
//! ```no_run
//! # async fn run() {
//! use std::sync::Arc;
//! use lockstep_core::server::Open;
//! use lockstep_socketioxide::{SocketIoFrontConfig, attach};
//! use lockstep_tokio::server::{DevAuthenticator, SharedMemStore, ServerDriverConfig, TokioClock, spawn_server};
//!
//! let server = spawn_server(ServerDriverConfig::default(), Open, SharedMemStore::default(), TokioClock::new());
//! let (layer, io) = socketioxide::SocketIo::new_layer();
//! attach(&io, "/", server.frontdoor(), Arc::new(DevAuthenticator::new()), SocketIoFrontConfig::default());
//! // Serve `layer` with axum or hyper.
//! # let _ = layer;
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod extract;
mod front;
pub mod handshake;
mod link;
pub mod metrics;

pub use front::{SocketIoFrontConfig, attach};
