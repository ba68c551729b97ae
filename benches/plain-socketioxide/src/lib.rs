//! A plain socketioxide chat server written the usual way, the Rust twin of
//! `benches/node/server.mjs`: rooms, acks, everything in memory, a seq
//! counter per channel, sends idempotent by `clientMsgId`. It speaks the
//! part of the lockstep contract the load generator uses (auth `{ token:
//! "dev:<user>" }`, `session`, `channel:join`, `channel:leave`,
//! `message:send` with acks, `message:new` to the room), so
//! `docs/BENCHMARKS.md` can measure lockstep-server against the bar of
//! docs/DESIGN.md §6: a server with none of lockstep's guarantees (no store, no
//! recovery, no backpressure per connection).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use std::future::{Ready, ready};
use std::sync::{Mutex, PoisonError};

use futures_util::FutureExt;

/// Packets buffered per socket before socketioxide drops them.
const SOCKET_BUFFER: usize = 1 << 20;

/// One channel's log: its head and what each `(user, clientMsgId)` got.
#[derive(Default)]
struct Log {
    head: u64,
    by_key: HashMap<(String, String), Value>,
}

/// Every channel's log. One lock around "assign the seq, broadcast", as a
/// correct server must hold: otherwise two sends could reach the room in
/// the other order than their seqs (Node gets this from its one thread).
type Logs = Arc<Mutex<HashMap<String, Log>>>;

/// The user a socket authenticated as.
#[derive(Clone)]
struct User(String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Join {
    channel_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Send {
    channel_id: String,
    client_msg_id: String,
    body: Value,
}

/// The Socket.IO service on `/socket.io`, ready to serve.
pub fn app() -> Router {
    // socketioxide drops a broadcast packet for a socket whose buffer is
    // full (128 packets by default) and fails its acks; Node buffers
    // without bound. A buffer far above any backlog of this load keeps the
    // baseline lossless, as the comparison requires.
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(SOCKET_BUFFER)
        .build_layer();
    let logs = Logs::default();
    // The handlers go in before the socket counts as connected: a client
    // may send its first request as soon as it sees the connect packet.
    let auth = move |socket: SocketRef, Data(auth): Data<Value>| {
        let token = auth.get("token").and_then(Value::as_str).unwrap_or("");
        let verdict = match token.strip_prefix("dev:") {
            Some(user) => {
                socket.extensions.insert(User(user.to_owned()));
                register(&socket, Arc::clone(&logs));
                Ok(())
            }
            None => Err("unauthorized"),
        };
        ready(verdict)
    };
    let on_connect = |socket: SocketRef| {
        let user = user_of(&socket);
        let _ = socket.emit("session", &json!({ "userId": user, "version": 1 }));
        ready(())
    };
    io.ns("/", on_connect.with(auth));
    Router::new().layer(layer)
}

fn user_of(socket: &SocketRef) -> String {
    socket
        .extensions
        .get::<User>()
        .map(|u| u.0)
        .unwrap_or_default()
}

fn register(socket: &SocketRef, logs: Logs) {
    // Plain closures, not async ones: socketioxide runs them in the
    // socket's receive path, one event after the other, so a client's
    // requests are served in the order sent (async handlers run as tasks of
    // their own, in any order: the interop test caught pipelined sends
    // stored out of order).
    socket.on(
        "channel:join",
        |socket: SocketRef, Data(join): Data<Join>, ack: AckSender| -> Ready<()> {
            socket.join(join.channel_id.clone());
            let mut members: Vec<String> = socket
                .within(join.channel_id.clone())
                .sockets()
                .iter()
                .map(user_of)
                .collect();
            members.sort();
            members.dedup();
            let _ = ack.send(&json!({
                "ok": true, "channelId": join.channel_id, "epoch": 1, "headSeq": 0,
                "members": members, "events": [], "recovered": false
            }));
            ready(())
        },
    );
    socket.on(
        "channel:leave",
        |socket: SocketRef, Data(join): Data<Join>, ack: AckSender| -> Ready<()> {
            socket.leave(join.channel_id);
            let _ = ack.send(&json!({ "ok": true }));
            ready(())
        },
    );
    socket.on(
        "message:send",
        move |socket: SocketRef, Data(send): Data<Send>, ack: AckSender| -> Ready<()> {
            post(&socket, &logs, send, ack);
            ready(())
        },
    );
}

fn post(socket: &SocketRef, logs: &Logs, send: Send, ack: AckSender) {
    if !socket.rooms().iter().any(|r| *r == send.channel_id) {
        let error = json!({ "code": "not_joined", "message": "join first", "retryable": false });
        let _ = ack.send(&json!({ "ok": false, "error": error }));
        return;
    }
    let user = user_of(socket);
    let mut logs = logs.lock().unwrap_or_else(PoisonError::into_inner);
    let log = logs.entry(send.channel_id.clone()).or_default();
    let key = (user.clone(), send.client_msg_id.clone());
    if let Some(known) = log.by_key.get(&key) {
        let _ = ack.send(known);
        return;
    }
    log.head += 1;
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let stored =
        json!({ "ok": true, "messageId": format!("m1.{}", log.head), "seq": log.head, "ts": ts });
    log.by_key.insert(key, stored.clone());
    let _ = ack.send(&stored);
    let message = json!({
        "channelId": send.channel_id, "seq": log.head, "messageId": stored["messageId"],
        "authorId": user, "clientMsgId": send.client_msg_id, "body": send.body, "ts": ts
    });
    // The in-memory adapter broadcasts without waiting, still holding the
    // lock, so the room gets messages in seq order.
    let broadcast = socket.within(send.channel_id).emit("message:new", &message);
    if broadcast.now_or_never().is_none() {
        eprintln!("broadcast of #{} did not complete at once: lost", log.head);
    }
}
