//! # lockstep-tokio
//!
//! Tokio drivers for lockstep's sans-IO machines, written once per side:
//!
//! - [`client`]: one loop task around the client machine
//!   ([`client::spawn_client`]) and a native async handle
//!   ([`client::ClientHandle`], [`client::SendHandle`], [`client::Events`]).
//! - [`server`]: one loop task around the server machine and its
//!   [`server::Store`] ([`server::spawn_server`]), fed by fronts through the
//!   [`server::Frontdoor`]; the framed-TCP front is built in.
//! - [`transport`]: the client transport contract ([`transport::Connector`]);
//!   [`framed`]: length-delimited JSON frames over any byte stream
//!   ([`framed::TcpConnector`], [`framed::framed_connection`]).
//!
//! Time comes from tokio's clock, so a paused runtime or turmoil's
//! simulated network drives it virtually.
//!
//! # Bringing your own transport
//!
//! A transport is a [`transport::Connector`]: something that opens a
//! [`transport::Connection`], which is a sink of
//! [`ClientFrame`](lockstep_core::wire::ClientFrame)s and a stream of
//! [`ServerFrame`](lockstep_core::wire::ServerFrame)s. The driver opens one
//! per connection attempt and drops it when the attempt is over; the
//! stream ending (or yielding [`transport::TransportError::Io`]) tells the
//! client the connection closed. Any closure returning such a future is a
//! connector.
//!
//! Here is a complete in-memory transport over two tokio channels, with a
//! toy server on the other end that only shakes hands:
//!
//! ```
//! use futures_util::SinkExt;
//! use lockstep_core::ids::UserId;
//! use lockstep_core::wire::{ClientFrame, PROTOCOL_VERSION, ServerFrame};
//! use lockstep_tokio::client::{ClientDriverConfig, spawn_client};
//! use lockstep_tokio::transport::{Connection, TransportError};
//! use tokio::sync::mpsc;
//! use tokio_util::sync::PollSender;
//!
//! /// Opens one in-memory connection and spawns its toy server.
//! async fn connect() -> Result<Connection, TransportError> {
//!     let (to_server, mut server_in) = mpsc::channel::<ClientFrame>(64);
//!     let (server_out, from_server) = mpsc::channel::<ServerFrame>(64);
//!     tokio::spawn(async move {
//!         while let Some(frame) = server_in.recv().await {
//!             let reply = match frame {
//!                 ClientFrame::Hello { .. } => ServerFrame::Welcome {
//!                     version: PROTOCOL_VERSION,
//!                     user_id: UserId::new("alice").unwrap(),
//!                 },
//!                 ClientFrame::Ping { nonce } => ServerFrame::Pong { nonce },
//!                 _ => continue,
//!             };
//!             if server_out.send(reply).await.is_err() {
//!                 break;
//!             }
//!         }
//!     });
//!     // Frames out: a channel sender as a `Sink`; a closed channel is a
//!     // broken transport.
//!     let sink = PollSender::new(to_server).sink_map_err(|_| {
//!         TransportError::Io(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "server gone"))
//!     });
//!     // Frames in: the receiver as a `Stream`; its end is the close.
//!     let stream = futures_util::stream::unfold(from_server, |mut rx| async move {
//!         rx.recv().await.map(|frame| (Ok(frame), rx))
//!     });
//!     Ok(Connection::new(sink, stream))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (client, _events) = spawn_client(ClientDriverConfig::new("dev:alice", 7), connect);
//! client.connect();
//! let me = client.connected().await.unwrap();
//! assert_eq!(me.as_str(), "alice");
//! client.close().await;
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod framed;
pub mod server;
pub mod transport;
