//! A minimal Socket.IO v5 / Engine.IO v4 client over one WebSocket, built
//! on the packet codec of `lockstep-socketio-client`: connect with a dev
//! token, join a channel, then send and read raw packets. It answers
//! Engine.IO pings itself; everything else is the caller's.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lockstep_socketio_client::codec::{
    EIO_PONG, EioPacket, SioPacket, encode_connect, encode_event, parse_eio, parse_sio,
};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the handshake and the join may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Packets skipped while waiting for one answer during set-up.
const SETUP_PACKETS_MAX: usize = 1_000;

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SioError {
    /// The WebSocket failed.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server closed the connection.
    #[error("closed by the server")]
    Closed,
    /// A packet did not parse.
    #[error("bad packet: {0}")]
    Codec(#[from] lockstep_socketio_client::codec::CodecError),
    /// The server refused or answered something unexpected.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Set-up took longer than [`SETUP_TIMEOUT`].
    #[error("set-up timed out")]
    Timeout,
}

/// One connected, joined socket.
pub(crate) struct Socket {
    ws: Ws,
}

/// A packet the caller cares about.
pub(crate) enum Incoming {
    /// A Socket.IO event or ack, the raw text after Engine.IO's `4`.
    Packet(String),
    /// Anything handled here (pings, noops).
    Other,
}

impl Socket {
    /// Connects to `ws_url` as `dev:<user>` and joins `channel`.
    pub(crate) async fn connect(ws_url: &str, user: &str, channel: &str) -> Result<Self, SioError> {
        tokio::time::timeout(SETUP_TIMEOUT, Self::connect_inner(ws_url, user, channel))
            .await
            .map_err(|_| SioError::Timeout)?
    }

    async fn connect_inner(ws_url: &str, user: &str, channel: &str) -> Result<Self, SioError> {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(ws_url, None, true).await?;
        let mut socket = Socket { ws };
        match socket.next_text().await? {
            text if matches!(parse_eio(&text)?, EioPacket::Open(_)) => {}
            text => return Err(SioError::Protocol(format!("expected open, got {text}"))),
        }
        let token = format!("dev:{user}");
        socket
            .send(&encode_connect(&json!({ "token": token })))
            .await?;
        socket
            .wait_for(|p| match p {
                SioPacket::Connect(_) => Some(Ok(())),
                SioPacket::ConnectError(e) => Some(Err(format!("refused: {e}"))),
                _ => None,
            })
            .await?;
        let join = encode_event(
            "channel:join",
            &json!({ "channelId": channel }).to_string(),
            Some(0),
        );
        socket.send(&join).await?;
        socket
            .wait_for(|p| match p {
                SioPacket::Ack { id: 0, reply } => Some(if reply_ok(reply) {
                    Ok(())
                } else {
                    Err(format!("join refused: {}", reply.get()))
                }),
                _ => None,
            })
            .await?;
        Ok(socket)
    }

    /// Reads Socket.IO packets until `pick` answers one.
    async fn wait_for<T>(
        &mut self,
        pick: impl Fn(&SioPacket) -> Option<Result<T, String>>,
    ) -> Result<T, SioError> {
        for _ in 0..SETUP_PACKETS_MAX {
            if let Incoming::Packet(text) = self.recv().await? {
                if let Some(answer) = pick(&parse_sio(&text)?) {
                    return answer.map_err(SioError::Protocol);
                }
            }
        }
        Err(SioError::Protocol("no answer".into()))
    }

    /// Sends one Engine.IO text packet and flushes it.
    pub(crate) async fn send(&mut self, text: &str) -> Result<(), SioError> {
        Ok(self.ws.send(Message::text(text)).await?)
    }

    /// Queues one Engine.IO text packet without flushing.
    pub(crate) async fn feed(&mut self, text: String) -> Result<(), SioError> {
        Ok(self.ws.feed(Message::text(text)).await?)
    }

    /// Flushes packets queued with [`Socket::feed`].
    pub(crate) async fn flush(&mut self) -> Result<(), SioError> {
        Ok(self.ws.flush().await?)
    }

    /// Reads the next packet; answers an Engine.IO ping on the way.
    pub(crate) async fn recv(&mut self) -> Result<Incoming, SioError> {
        let text = self.next_text().await?;
        match text.as_bytes().first() {
            Some(b'4') => Ok(Incoming::Packet(text[1..].to_owned())),
            Some(b'2') => {
                self.send(EIO_PONG).await?;
                Ok(Incoming::Other)
            }
            Some(b'1') => Err(SioError::Closed),
            _ => Ok(Incoming::Other),
        }
    }

    async fn next_text(&mut self) -> Result<String, SioError> {
        loop {
            match self.ws.next().await {
                None | Some(Ok(Message::Close(_))) => return Err(SioError::Closed),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Closes the WebSocket, ignoring errors (the run is over).
    pub(crate) async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Whether an ack's reply says `ok: true`.
pub(crate) fn reply_ok(reply: &serde_json::value::RawValue) -> bool {
    #[derive(serde::Deserialize)]
    struct Ok {
        ok: bool,
    }
    serde_json::from_str::<Ok>(reply.get()).is_ok_and(|r| r.ok)
}
