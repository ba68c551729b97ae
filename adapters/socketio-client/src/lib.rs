//! # lockstep-socketio-client
//!
//! A Socket.IO transport for the tokio client driver of `lockstep-tokio`,
//! so a Rust client talks to `lockstep-server` (or any server speaking the
//! contract of docs/PROTOCOL.md) with pipelined requests.
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
//! TLS: `https://` and `wss://` URLs go over rustls (the `rustls` feature,
//! on by default) with the `ring` crypto provider and Mozilla's root
//! certificates compiled in (`webpki-roots`), so nothing is read from the
//! system. A server behind a private CA is reached by trusting its root
//! with [`tls_config`] and [`SocketIoConnector::with_tls_config`]; any other
//! rustls setup (client certificates, only private roots) goes through the
//! same method, with the [`rustls`] this crate re-exports. Without the
//! feature, such URLs are refused with [`UrlError::TlsNotCompiled`].
//!
//! ```no_run
//! # async fn run() {
//! use lockstep_socketio_client::SocketIoConnector;
//! use lockstep_tokio::client::{ClientDriverConfig, spawn_client};
//!
//! let connector = SocketIoConnector::new("https://chat.example.com").unwrap();
//! let (client, _events) = spawn_client(ClientDriverConfig::new("dev:alice", 7), connector);
//! client.connect();
//! let me = client.connected().await.unwrap();
//! # let _ = me;
//! # }
//! ```
//!
//! A private CA, its root certificate in a PEM file:
//!
//! ```no_run
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use lockstep_socketio_client::rustls::pki_types::CertificateDer;
//! use lockstep_socketio_client::rustls::pki_types::pem::PemObject;
//! use lockstep_socketio_client::{SocketIoConnector, tls_config};
//!
//! let root = CertificateDer::from_pem_file("ca.pem")?;
//! let connector = SocketIoConnector::new("https://chat.internal:3000")?
//!     .with_tls_config(Arc::new(tls_config([root])?));
//! # let _ = connector;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// The TLS items the crate docs link to exist only with the feature.
#![cfg_attr(not(feature = "rustls"), allow(rustdoc::broken_intra_doc_links))]

pub mod codec;
mod connection;

use std::io;
#[cfg(feature = "rustls")]
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use lockstep_tokio::transport::{Connection, Connector, TransportError};
use tokio_tungstenite::tungstenite;

use crate::connection::Ws;

/// The rustls this crate is built with, for a [`rustls::ClientConfig`] of
/// the app's own (see [`SocketIoConnector::with_tls_config`]) and its
/// certificate types (`rustls::pki_types`, PEM parsing included).
#[cfg(feature = "rustls")]
pub use rustls;

/// Why a server URL is not usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Only `http://`, `https://`, `ws://` and `wss://` URLs are supported.
    #[error("unsupported url {0:?}: expected http://, https://, ws:// or wss://")]
    Scheme(String),
    /// An `https://` or `wss://` URL, and this build has no TLS.
    #[error(
        "tls support is not compiled in (the `rustls` feature of lockstep-socketio-client is off): cannot open {0:?}"
    )]
    TlsNotCompiled(String),
    /// The default TLS configuration could not be built.
    #[cfg(feature = "rustls")]
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Why a TLS configuration could not be built.
#[cfg(feature = "rustls")]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The crypto provider offers no safe protocol version (a broken build).
    #[error("tls setup failed: {0}")]
    Setup(rustls::Error),
    /// A root certificate given to trust is not a usable trust anchor.
    #[error("invalid root certificate: {0}")]
    RootCertificate(rustls::Error),
}

/// The TLS client configuration `https://` URLs get by default (the
/// `ring` provider, TLS 1.2 and 1.3, Mozilla's roots), plus `extra_roots`
/// trusted as well: the start for a server behind a private CA. Returned
/// unwrapped so the app can adjust it before passing it to
/// [`SocketIoConnector::with_tls_config`].
///
/// # Errors
///
/// [`TlsError::RootCertificate`] for a certificate that is not a usable
/// trust anchor.
#[cfg(feature = "rustls")]
pub fn tls_config(
    extra_roots: impl IntoIterator<Item = rustls::pki_types::CertificateDer<'static>>,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots: rustls::RootCertStore = webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect();
    for root in extra_roots {
        roots.add(root).map_err(TlsError::RootCertificate)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Opens Socket.IO connections to one server.
#[derive(Debug, Clone)]
pub struct SocketIoConnector {
    ws_url: String,
    security: Security,
    /// Longest wait for each step of opening: the WebSocket handshake
    /// (TCP, TLS, HTTP upgrade), then the Engine.IO open packet.
    open_timeout: Duration,
}

/// How the WebSocket is carried.
#[derive(Debug, Clone)]
enum Security {
    /// `ws://`: plain TCP.
    Plain,
    /// `wss://`: TLS with this configuration.
    #[cfg(feature = "rustls")]
    Tls(Arc<rustls::ClientConfig>),
}

impl Security {
    /// TLS with the default configuration, if this build has TLS (`url`
    /// only names the refusal when it has not).
    fn tls(url: &str) -> Result<Security, UrlError> {
        #[cfg(feature = "rustls")]
        {
            let _ = url;
            Ok(Security::Tls(Arc::new(tls_config([])?)))
        }
        #[cfg(not(feature = "rustls"))]
        Err(UrlError::TlsNotCompiled(url.to_owned()))
    }

    /// The WebSocket handshake with `url`, over TCP or TLS.
    async fn handshake(self, url: &str) -> Result<Ws, tungstenite::Error> {
        let (ws, _response) = match self {
            Security::Plain => {
                tokio_tungstenite::connect_async_with_config(url, None, true).await?
            }
            #[cfg(feature = "rustls")]
            Security::Tls(config) => {
                let connector = tokio_tungstenite::Connector::Rustls(config);
                tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(connector))
                    .await?
            }
        };
        Ok(ws)
    }
}

impl SocketIoConnector {
    /// A connector for the server at `url` (`http://host:port` or
    /// `https://host`, the same URL a browser's `io(url)` takes; `ws://`
    /// and `wss://` too), on the default path `/socket.io/`. TLS URLs
    /// trust Mozilla's roots; see [`SocketIoConnector::with_tls_config`]
    /// for others.
    ///
    /// # Errors
    ///
    /// [`UrlError::Scheme`] for any other scheme;
    /// [`UrlError::TlsNotCompiled`] for a TLS URL in a build without the
    /// `rustls` feature.
    pub fn new(url: &str) -> Result<Self, UrlError> {
        let (scheme, security, rest) = if let Some(rest) = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
        {
            ("ws", Security::Plain, rest)
        } else if let Some(rest) = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("wss://"))
        {
            ("wss", Security::tls(url)?, rest)
        } else {
            return Err(UrlError::Scheme(url.to_owned()));
        };
        let host = rest.trim_end_matches('/');
        Ok(SocketIoConnector {
            ws_url: format!("{scheme}://{host}/socket.io/?EIO=4&transport=websocket"),
            security,
            open_timeout: Duration::from_secs(10),
        })
    }

    /// Uses `config` for a TLS URL instead of the default: a private CA
    /// ([`tls_config`] with its root), client certificates, or a custom
    /// verifier. A plain `http://`/`ws://` connector is left as it is.
    #[cfg(feature = "rustls")]
    #[must_use]
    pub fn with_tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        if let Security::Tls(current) = &mut self.security {
            *current = config;
        }
        self
    }
}

impl Connector for SocketIoConnector {
    fn connect(&self) -> BoxFuture<'static, Result<Connection, TransportError>> {
        let url = self.ws_url.clone();
        let security = self.security.clone();
        let open_timeout = self.open_timeout;
        Box::pin(async move {
            let ws = tokio::time::timeout(open_timeout, security.handshake(&url))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("websocket handshake with {url} timed out"),
                    )
                })?
                .map_err(|e| handshake_error(&url, &e))?;
            connection::open(ws, open_timeout).await
        })
    }
}

/// A failed handshake as the driver reports it, naming the URL (a refused
/// certificate reads `invalid peer certificate: ...`).
fn handshake_error(url: &str, e: &tungstenite::Error) -> io::Error {
    let kind = match e {
        tungstenite::Error::Io(io) => io.kind(),
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("websocket handshake with {url} failed: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn urls_map_to_the_websocket_url_of_the_socket_io_path() {
        let plain = "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket";
        let tls = "wss://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket";
        for (url, expected) in [
            ("http://127.0.0.1:3000", plain),
            ("http://127.0.0.1:3000/", plain),
            ("ws://127.0.0.1:3000", plain),
            ("https://127.0.0.1:3000", tls),
            ("https://127.0.0.1:3000/", tls),
            ("wss://127.0.0.1:3000", tls),
        ] {
            match SocketIoConnector::new(url) {
                Ok(connector) => {
                    assert_eq!(connector.ws_url, expected, "{url}");
                    let is_plain = matches!(connector.security, Security::Plain);
                    assert_eq!(is_plain, expected == plain, "{url}");
                }
                // Without TLS compiled in, a TLS URL says so.
                Err(error) => {
                    assert!(
                        cfg!(not(feature = "rustls")) && expected == tls,
                        "{url}: {error}"
                    );
                    assert_eq!(error, UrlError::TlsNotCompiled(url.to_owned()));
                    assert!(error.to_string().contains("not compiled in"), "{error}");
                }
            }
        }
    }

    #[test]
    fn other_schemes_are_refused() {
        for url in ["ftp://h", "127.0.0.1:3000", "", "HTTP//h"] {
            assert_eq!(
                SocketIoConnector::new(url).unwrap_err(),
                UrlError::Scheme(url.to_owned())
            );
        }
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn with_tls_config_replaces_the_tls_config_and_leaves_plain_alone() {
        let own = Arc::new(tls_config([]).unwrap());
        let tls = SocketIoConnector::new("https://h")
            .unwrap()
            .with_tls_config(own.clone());
        assert!(matches!(&tls.security, Security::Tls(c) if Arc::ptr_eq(c, &own)));
        let plain = SocketIoConnector::new("http://h")
            .unwrap()
            .with_tls_config(own);
        assert!(matches!(plain.security, Security::Plain));
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn a_garbage_root_certificate_is_a_typed_error() {
        let garbage = rustls::pki_types::CertificateDer::from(vec![0x30, 0x03, 1, 2, 3]);
        assert!(matches!(
            tls_config([garbage]),
            Err(TlsError::RootCertificate(_))
        ));
    }
}
