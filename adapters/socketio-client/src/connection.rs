//! One Socket.IO connection: a task that owns the WebSocket, answers
//! Engine.IO pings, enforces the heartbeat, and translates frames both
//! ways; the driver sees a plain [`Connection`].

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lockstep_core::wire::{ClientFrame, ReqId, ServerFrame};
use lockstep_tokio::transport::{Connection, TransportError};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::PollSender;
use tracing::debug;

use crate::codec::{
    EIO_PONG, EioOpen, EioPacket, SioPacket, encode_connect, encode_event, parse_eio, parse_sio,
};
use lockstep_core::wire::socketio::{Emit, decode_reply, decode_server_event, emit, refused};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Incoming = Result<ServerFrame, TransportError>;

/// Frames queued each way between the driver and the connection task.
const QUEUE: usize = 1_024;
/// Requests awaiting their ack; more is a driver bug (its window is far
/// smaller), answered by closing the connection.
const PENDING_MAX: usize = 65_536;

/// Opens the Engine.IO session on `ws` and starts the connection task.
pub(crate) async fn open(mut ws: Ws, open_timeout: Duration) -> Result<Connection, TransportError> {
    let first = tokio::time::timeout(open_timeout, ws.next())
        .await
        .map_err(|_| {
            TransportError::Io(io_error(
                io::ErrorKind::TimedOut,
                "no engine.io open packet",
            ))
        })?;
    let session = match first {
        Some(Ok(Message::Text(text))) => match parse_eio(text.as_str()) {
            Ok(EioPacket::Open(open)) => open,
            other => {
                return Err(io_error(
                    io::ErrorKind::InvalidData,
                    &format!("expected open, got {other:?}"),
                )
                .into());
            }
        },
        other => {
            return Err(io_error(
                io::ErrorKind::InvalidData,
                &format!("expected open, got {other:?}"),
            )
            .into());
        }
    };
    debug!(sid = %session.sid, "engine.io session open");
    let (frames_tx, frames_rx) = mpsc::channel::<ClientFrame>(QUEUE);
    let (incoming_tx, incoming_rx) = mpsc::channel::<Incoming>(QUEUE);
    tokio::spawn(run(ws, session, frames_rx, incoming_tx));
    let sink = PollSender::new(frames_tx).sink_map_err(|_| {
        TransportError::Io(io_error(io::ErrorKind::BrokenPipe, "connection closed"))
    });
    let stream = futures_util::stream::unfold(incoming_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(Connection::new(sink, stream))
}

/// The connection task; ends when the driver drops the connection, the
/// server closes, or the heartbeat stops.
async fn run(
    mut ws: Ws,
    session: EioOpen,
    mut frames: mpsc::Receiver<ClientFrame>,
    incoming: mpsc::Sender<Incoming>,
) {
    let silence_max = Duration::from_millis(session.ping_interval + session.ping_timeout);
    let mut deadline = tokio::time::Instant::now() + silence_max;
    let mut pending: BTreeMap<u64, &'static str> = BTreeMap::new();
    let end = loop {
        tokio::select! {
            frame = frames.recv() => {
                let Some(frame) = frame else { break None };
                match emit(&frame) {
                    Emit::Connect { token } => {
                        if let Err(e) = ws.send(Message::text(encode_connect(&json!({ "token": token })))).await {
                            break Some(ws_error(e));
                        }
                    }
                    Emit::Pong { nonce } => {
                        if incoming.send(Ok(ServerFrame::Pong { nonce })).await.is_err() {
                            break None;
                        }
                    }
                    Emit::Event { name, payload, req, kind } => {
                        if let (Some(req), Some(kind)) = (req, kind) {
                            if pending.len() >= PENDING_MAX {
                                break Some(io_error(io::ErrorKind::Other, "too many requests in flight"));
                            }
                            pending.insert(req.0, kind);
                        }
                        let text = encode_event(name, &payload, req.map(|r| r.0));
                        if let Err(e) = ws.send(Message::text(text)).await {
                            break Some(ws_error(e));
                        }
                    }
                }
            }
            message = ws.next() => {
                let text = match message {
                    None => break Some(io_error(io::ErrorKind::ConnectionReset, "closed by the server")),
                    Some(Err(e)) => break Some(ws_error(e)),
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) => break Some(io_error(io::ErrorKind::ConnectionReset, "closed by the server")),
                    Some(Ok(_)) => continue,
                };
                deadline = tokio::time::Instant::now() + silence_max;
                let packet = match parse_eio(text.as_str()) {
                    Ok(EioPacket::Ping) => {
                        if let Err(e) = ws.send(Message::text(EIO_PONG)).await {
                            break Some(ws_error(e));
                        }
                        continue;
                    }
                    Ok(EioPacket::Close) => break Some(io_error(io::ErrorKind::ConnectionReset, "session closed by the server")),
                    Ok(EioPacket::Message(packet)) => packet,
                    Ok(_) => continue,
                    Err(e) => break Some(io_error(io::ErrorKind::InvalidData, &e.to_string())),
                };
                let frame = match parse_sio(&packet) {
                    // The `session` event that follows stands for `welcome`.
                    Ok(SioPacket::Connect(_)) => continue,
                    Ok(SioPacket::ConnectError(data)) => {
                        let message = data.get("message").and_then(serde_json::Value::as_str);
                        Ok(Some(refused(message.unwrap_or("connection refused"))))
                    }
                    Ok(SioPacket::Disconnect) => break Some(io_error(io::ErrorKind::ConnectionReset, "namespace closed by the server")),
                    Ok(SioPacket::Event { name, payload, .. }) => decode_server_event(&name, payload.get()),
                    Ok(SioPacket::Ack { id, reply }) => match pending.remove(&id) {
                        Some(kind) => decode_reply(ReqId(id), kind, reply.get()).map(Some),
                        None => {
                            debug!(id, "ack for no pending request: ignored");
                            continue;
                        }
                    },
                    Err(e) => break Some(io_error(io::ErrorKind::InvalidData, &e.to_string())),
                };
                let item = match frame {
                    Ok(Some(frame)) => Ok(frame),
                    Ok(None) => continue,
                    Err(e) => Err(TransportError::Undecodable(e)),
                };
                if incoming.send(item).await.is_err() {
                    break None;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                break Some(io_error(io::ErrorKind::TimedOut, "engine.io heartbeat timed out"));
            }
        }
    };
    if let Some(error) = end {
        debug!(%error, "socket.io connection ended");
        let _ = incoming.send(Err(TransportError::Io(error))).await;
    }
    let _ = ws.close(None).await;
}

fn io_error(kind: io::ErrorKind, message: &str) -> io::Error {
    io::Error::new(kind, message.to_owned())
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(e.to_string())
}
