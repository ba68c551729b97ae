//! The framed-stream transport: length-delimited JSON frames over any
//! `AsyncRead + AsyncWrite` (tokio TCP, turmoil TCP, a Unix socket, an
//! in-memory duplex).
//!
//! Each frame is a 4-byte big-endian length followed by the frame's compact
//! JSON. A client frame above [`MAX_FRAME_BYTES`] (a server frame above
//! [`MAX_SERVER_FRAME_BYTES`], which leaves room for the largest join
//! reply) is a transport violation: the reader fails and the connection
//! closes.

use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use lockstep_core::wire::{MAX_FRAME_BYTES, MAX_SERVER_FRAME_BYTES, decode_server, encode_client};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::transport::{Connection, Connector, TransportError};

/// The codec of client frames (what a client writes and a server reads):
/// 4-byte length prefix, frames up to [`MAX_FRAME_BYTES`].
#[must_use]
pub fn client_frames() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// The codec of server frames (what a server writes and a client reads):
/// frames up to [`MAX_SERVER_FRAME_BYTES`].
#[must_use]
pub fn server_frames() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_SERVER_FRAME_BYTES)
        .new_codec()
}

/// A client [`Connection`] over a byte stream: frames are encoded with
/// `encode_client` and decoded with `decode_server`.
pub fn framed_connection<T>(io: T) -> Connection
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let sink = FramedWrite::new(write, client_frames()).with(|frame| async move {
        Ok::<Bytes, TransportError>(Bytes::from(encode_client(&frame)))
    });
    let stream = FramedRead::new(read, server_frames()).map(|item| match item {
        Ok(bytes) => decode_server(&bytes).map_err(TransportError::Undecodable),
        Err(e) => Err(TransportError::Io(e)),
    });
    Connection::new(sink, stream)
}

/// Connects to a lockstep server's framed-TCP front with tokio's TCP.
#[derive(Debug, Clone, Copy)]
pub struct TcpConnector {
    /// The server's address.
    pub addr: SocketAddr,
}

impl Connector for TcpConnector {
    fn connect(&self) -> BoxFuture<'static, Result<Connection, TransportError>> {
        let addr = self.addr;
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(framed_connection(stream))
        })
    }
}
