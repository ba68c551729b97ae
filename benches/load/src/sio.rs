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

/// What the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Protocol {
    /// Socket.IO v5 over Engine.IO v4 (the lockstep contract).
    Socketio,
    /// The raw JSON frames of `lockstep-ceiling` (no Socket.IO framing):
    /// `{"id":N,"join":C}`, `{"id":N,"channel":C,"body":B}`, acks
    /// `{"ack":N,"ok":…}` and deliveries `{"seq":S,"body":B}`.
    Raw,
}

impl Protocol {
    /// The WebSocket URL to dial on `host` (`127.0.0.1:3000`).
    pub(crate) fn ws_url(self, host: &str) -> String {
        match self {
            Protocol::Socketio => format!("ws://{host}/socket.io/?EIO=4&transport=websocket"),
            Protocol::Raw => format!("ws://{host}/"),
        }
    }
}

/// One connected, joined socket.
pub(crate) struct Socket {
    ws: Ws,
    protocol: Protocol,
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
    pub(crate) async fn connect(
        ws_url: &str,
        protocol: Protocol,
        user: &str,
        channel: &str,
    ) -> Result<Self, SioError> {
        let setup = async {
            let (ws, _) = tokio_tungstenite::connect_async_with_config(ws_url, None, true).await?;
            let mut socket = Socket { ws, protocol };
            match protocol {
                Protocol::Socketio => socket.sio_setup(user, channel).await?,
                Protocol::Raw => socket.raw_setup(channel).await?,
            }
            Ok(socket)
        };
        tokio::time::timeout(SETUP_TIMEOUT, setup)
            .await
            .map_err(|_| SioError::Timeout)?
    }

    /// Joins `channel` in the raw protocol.
    async fn raw_setup(&mut self, channel: &str) -> Result<(), SioError> {
        let join = json!({ "id": 0, "join": channel }).to_string();
        self.send(&join).await?;
        for _ in 0..SETUP_PACKETS_MAX {
            if let Incoming::Packet(text) = self.recv().await? {
                if text.starts_with(r#"{"ack":0,"#) {
                    return if reply_ok(&text) {
                        Ok(())
                    } else {
                        Err(SioError::Protocol(format!("join refused: {text}")))
                    };
                }
            }
        }
        Err(SioError::Protocol("no answer".into()))
    }

    /// The Socket.IO handshake as `dev:<user>`, then the join of `channel`.
    async fn sio_setup(&mut self, user: &str, channel: &str) -> Result<(), SioError> {
        let socket = self;
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
                SioPacket::Ack { id: 0, reply } => Some(if reply_ok(reply.get()) {
                    Ok(())
                } else {
                    Err(format!("join refused: {}", reply.get()))
                }),
                _ => None,
            })
            .await
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

    /// Reads the next packet; answers an Engine.IO ping on the way. In
    /// the raw protocol every frame is a packet.
    pub(crate) async fn recv(&mut self) -> Result<Incoming, SioError> {
        let text = self.next_text().await?;
        if self.protocol == Protocol::Raw {
            return Ok(Incoming::Packet(text));
        }
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

/// Whether an ack's reply (a JSON object) says `ok: true`.
pub(crate) fn reply_ok(reply: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Ok {
        ok: bool,
    }
    serde_json::from_str::<Ok>(reply).is_ok_and(|r| r.ok)
}
