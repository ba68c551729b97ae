//! The client-side transport contract: what a consumer implements to bring
//! their own transport.
//!
//! A [`Connector`] opens [`Connection`]s. A connection is a sink of
//! [`ClientFrame`]s and a stream of [`ServerFrame`]s (or decode errors). The
//! driver owns one connection per generation and drops it when the client
//! machine says the generation is over, which closes it.

use std::future::Future;
use std::pin::Pin;

use futures_util::future::BoxFuture;
use futures_util::{Sink, Stream};
use lockstep_core::wire::{ClientFrame, DecodeError, ServerFrame};

/// Why a transport could not open, deliver or decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Bytes arrived that are not a frame; the connection stays usable and
    /// the client reports a protocol error.
    #[error("undecodable frame: {0}")]
    Undecodable(#[from] DecodeError),
    /// The transport failed (refused, reset, framing violation); it is
    /// unusable from now on.
    #[error("transport failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The sending half of a [`Connection`].
pub type FrameSink = Pin<Box<dyn Sink<ClientFrame, Error = TransportError> + Send>>;

/// The receiving half of a [`Connection`]: ends (`None`) when the peer
/// closed; an [`TransportError::Io`] item is the last one.
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<ServerFrame, TransportError>> + Send>>;

/// One open transport: frames out, frames in. Dropping it closes it.
pub struct Connection {
    sink: FrameSink,
    stream: FrameStream,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connection")
    }
}

impl Connection {
    /// Wraps any frame sink and frame stream, so a transport is just two
    /// adapters over whatever it speaks.
    pub fn new<Si, St>(sink: Si, stream: St) -> Connection
    where
        Si: Sink<ClientFrame, Error = TransportError> + Send + 'static,
        St: Stream<Item = Result<ServerFrame, TransportError>> + Send + 'static,
    {
        Connection {
            sink: Box::pin(sink),
            stream: Box::pin(stream),
        }
    }

    /// The two halves, for a driver that reads and writes concurrently.
    #[must_use]
    pub fn into_parts(self) -> (FrameSink, FrameStream) {
        (self.sink, self.stream)
    }
}

/// Opens transports to the server. The client driver calls it once per
/// connection attempt; a connect that hangs is abandoned (and dropped) when
/// the client's connect timeout fires.
///
/// Any `Fn() -> impl Future<Output = Result<Connection, TransportError>>`
/// closure is a connector, which is how tests plug in a simulated network.
pub trait Connector: Send + Sync + 'static {
    /// Opens one new connection.
    fn connect(&self) -> BoxFuture<'static, Result<Connection, TransportError>>;
}

impl<F, Fut> Connector for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Connection, TransportError>> + Send + 'static,
{
    fn connect(&self) -> BoxFuture<'static, Result<Connection, TransportError>> {
        Box::pin(self())
    }
}
