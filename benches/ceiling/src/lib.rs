//! The physical ceiling of `benches/load`: the least a chat fan-out server
//! can do over WebSocket on this machine. No Socket.IO or Engine.IO
//! framing, no store, no dedupe, no recovery: a seq counter per channel
//! and a broadcast encoded once, each frame's bytes shared by every
//! member's queue. `docs/BENCHMARKS.md` sets the servers with guarantees
//! beside it, so the distance to what the machine can do is visible.
//!
//! The protocol (JSON text frames; `lockstep-load --protocol raw` speaks it):
//!
//! - `{"id":N,"join":"<channel>"}` → `{"ack":N,"ok":true}`
//! - `{"id":N,"channel":"<channel>","body":<json>}` → `{"ack":N,"ok":true,"seq":S}`
//!   to the sender, and `{"seq":S,"body":<json>}` to every member of the
//!   channel (the sender too, when it joined), in seq order
//! - anything else → `{"ack":N,"ok":false}` (`N` 0 when unreadable)
//!
//! A member whose queue holds more than [`QUEUE_BYTES_MAX`] is cut off, as
//! a slow consumer must be.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Bytes queued for one connection before it is cut off (as deep as the
/// other baselines' buffers: the load measures throughput, not the policy).
pub const QUEUE_BYTES_MAX: usize = 1 << 30;

/// One connection's outgoing queue: frames, their bytes in flight, and
/// the signal that cuts the connection off.
#[derive(Clone)]
struct Outbox {
    frames: mpsc::UnboundedSender<Utf8Bytes>,
    bytes: Arc<AtomicUsize>,
    cut: Arc<Notify>,
}

impl Outbox {
    /// Queues `frame`; false when the connection is gone or over its budget
    /// (then its writer closes it).
    fn push(&self, frame: Utf8Bytes) -> bool {
        let len = frame.len();
        if self.bytes.fetch_add(len, Ordering::Relaxed) + len > QUEUE_BYTES_MAX {
            self.cut.notify_one();
            return false;
        }
        self.frames.send(frame).is_ok()
    }
}

/// A channel: its head and its members' queues.
#[derive(Default)]
struct Room {
    seq: u64,
    members: Vec<(u64, Outbox)>,
}

/// Every channel, under one lock: "assign the seq, queue to every member"
/// happens at once, so members get a channel's frames in seq order.
type Rooms = Arc<Mutex<HashMap<String, Room>>>;

#[derive(Deserialize)]
struct Request<'a> {
    id: u64,
    #[serde(borrow, default)]
    join: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    body: Option<&'a RawValue>,
}

/// Serves the raw protocol on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let rooms: Rooms = Arc::default();
    let mut next_conn = 0_u64;
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        next_conn += 1;
        tokio::spawn(connection(tcp, next_conn, Arc::clone(&rooms)));
    }
}

/// One connection: a writer task draining its queue (flushing when the
/// queue is empty), and this task reading requests.
async fn connection(tcp: TcpStream, me: u64, rooms: Rooms) {
    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    let outbox = Outbox {
        frames: tx,
        bytes: Arc::default(),
        cut: Arc::default(),
    };
    let bytes = Arc::clone(&outbox.bytes);
    let cut = Arc::clone(&outbox.cut);
    let writer = tokio::spawn(async move {
        loop {
            let frame = tokio::select! {
                frame = rx.recv() => frame,
                () = cut.notified() => None,
            };
            let Some(frame) = frame else {
                let _ = sink.close().await;
                return;
            };
            let mut batch = Some(frame);
            while let Some(frame) = batch.take().or_else(|| rx.try_recv().ok()) {
                bytes.fetch_sub(frame.len(), Ordering::Relaxed);
                if sink.feed(Message::Text(frame)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let mut joined: Vec<String> = Vec::new();
    while let Some(Ok(message)) = stream.next().await {
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        if !handle(&text, me, &outbox, &rooms, &mut joined) {
            break;
        }
    }
    leave(&rooms, me, &joined);
    outbox.cut.notify_one();
    drop(outbox);
    let _ = writer.await;
}

/// Takes connection `me` out of the channels it joined.
fn leave(rooms: &Rooms, me: u64, joined: &[String]) {
    let mut rooms = rooms.lock().unwrap_or_else(PoisonError::into_inner);
    for channel in joined {
        if let Some(room) = rooms.get_mut(channel) {
            room.members.retain(|(id, _)| *id != me);
        }
    }
}

/// Answers one request; false when this connection is to be closed.
fn handle(text: &str, me: u64, outbox: &Outbox, rooms: &Rooms, joined: &mut Vec<String>) -> bool {
    let Ok(req) = serde_json::from_str::<Request<'_>>(text) else {
        return outbox.push(Utf8Bytes::from_static(r#"{"ack":0,"ok":false}"#));
    };
    let mut rooms = rooms.lock().unwrap_or_else(PoisonError::into_inner);
    match (req.join, req.channel, req.body) {
        (Some(channel), None, None) => {
            let room = rooms.entry(channel.to_string()).or_default();
            if !room.members.iter().any(|(id, _)| *id == me) {
                room.members.push((me, outbox.clone()));
                joined.push(channel.into_owned());
            }
            outbox.push(format!(r#"{{"ack":{},"ok":true}}"#, req.id).into())
        }
        (None, Some(channel), Some(body)) => {
            let room = rooms.entry(channel.into_owned()).or_default();
            room.seq += 1;
            let seq = room.seq;
            // Encoded once: every member's frame shares these bytes.
            let frame = Utf8Bytes::from(format!(r#"{{"seq":{seq},"body":{}}}"#, body.get()));
            room.members.retain(|(_, out)| out.push(frame.clone()));
            outbox.push(format!(r#"{{"ack":{},"ok":true,"seq":{seq}}}"#, req.id).into())
        }
        _ => outbox.push(format!(r#"{{"ack":{},"ok":false}}"#, req.id).into()),
    }
}
