//! # lockstep-socketio-client
//!
//! A Socket.IO transport for the tokio client driver of `lockstep-tokio`,
//! so a Rust client talks to `lockstep-server` (or any server speaking the
//! contract of DESIGN §4) with pipelined requests.
//!
//! It is a thin Engine.IO v4 / Socket.IO v5 client over WebSocket only
//! (`tokio-tungstenite`), written here because the available crate
//! (`rust_socketio` 0.6) draws random ack ids below 1000 and panics when
//! two acks in flight share one, which breaks pipelining. Here the ack id
//! of a request is its `req`, unique per connection, so any number of
//! requests can be in flight.
//!
//! The mapping (`lockstep_core::wire::socketio`, shared with the server
//! front and the WebAssembly client): `hello` connects the namespace with `auth: { token }` (a
//! `connect_error` becomes `refused`); the server's first event
//! `session { userId, version }` becomes `welcome`; each request is an
//! event with an ack and its reply becomes `ack` or `nack`; the contract's
//! server events become their frames. Engine.IO's heartbeat is answered
//! and enforced (a server silent for `pingInterval + pingTimeout` ends the
//! connection), so the machine's own `ping` is answered locally.
//!
//! ```no_run
//! # async fn run() {
//! use lockstep_socketio_client::SocketIoConnector;
//! use lockstep_tokio::client::{ClientDriverConfig, spawn_client};
//!
//! let connector = SocketIoConnector::new("http://127.0.0.1:3000").unwrap();
//! let (client, _events) = spawn_client(ClientDriverConfig::new("dev:alice", 7), connector);
//! client.connect();
//! let me = client.connected().await.unwrap();
//! # let _ = me;
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod codec;
mod connection;

use std::time::Duration;

use futures_util::future::BoxFuture;
use lockstep_tokio::transport::{Connection, Connector, TransportError};

/// Why a server URL is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Only `http://` and `ws://` URLs are supported (no TLS in this build).
    #[error("unsupported url {0:?}: expected http:// or ws://")]
    Scheme(String),
}

/// Opens Socket.IO connections to one server.
#[derive(Debug, Clone)]
pub struct SocketIoConnector {
    ws_url: String,
    open_timeout: Duration,
}

impl SocketIoConnector {
    /// A connector for the server at `url` (`http://host:port`, the same
    /// URL a browser's `io(url)` takes), on the default path `/socket.io/`.
    ///
    /// # Errors
    ///
    /// [`UrlError`] for a scheme other than `http` or `ws`.
    pub fn new(url: &str) -> Result<Self, UrlError> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .ok_or_else(|| UrlError::Scheme(url.to_owned()))?;
        let host = rest.trim_end_matches('/');
        Ok(SocketIoConnector {
            ws_url: format!("ws://{host}/socket.io/?EIO=4&transport=websocket"),
            open_timeout: Duration::from_secs(10),
        })
    }
}

impl Connector for SocketIoConnector {
    fn connect(&self) -> BoxFuture<'static, Result<Connection, TransportError>> {
        let url = self.ws_url.clone();
        let open_timeout = self.open_timeout;
        Box::pin(async move {
            let (ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
                .await
                .map_err(|e| TransportError::Io(std::io::Error::other(e.to_string())))?;
            connection::open(ws, open_timeout).await
        })
    }
}
