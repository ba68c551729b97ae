//! One user with a valid token, or anyone without one, cannot take the
//! server down: `lockstep-server` started in-process (`bind_with_store`)
//! and driven over raw TCP, HTTP and Socket.IO-over-WebSocket, with small
//! caps and deadlines from its own flags. Every wait is bounded and waits
//! for an outcome; none sleeps and hopes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use lockstep_core::ids::UserId;
use lockstep_core::store::{StoreCommand, StoreError, StoreReply};
use lockstep_server::cli::Cli;
use lockstep_server::serve::{Bound, StartError, bind_with_store};
use lockstep_socketio_client::codec::{EioPacket, SioPacket, parse_eio, parse_sio};
use lockstep_tokio::server::{Admission, SharedMemStore, Store};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use tokio_util::sync::CancellationToken;

/// Longest wait for any expected outcome: generous for a loaded 2-core
/// machine; a passing test takes a fraction of it.
const WAIT: Duration = Duration::from_secs(15);

struct Running {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    admission: Arc<Admission>,
    bound_tasks: lockstep_tokio::server::Frontdoor,
    stop: CancellationToken,
    task: JoinHandle<Result<(), StartError>>,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("graceful shutdown")
            .unwrap()
            .unwrap();
    }

    /// Tasks of the server: the driver plus one per open connection.
    fn tasks(&self) -> usize {
        self.bound_tasks.tracker().len()
    }
}

fn args(flags: &[&str]) -> lockstep_server::cli::ServeArgs {
    let mut argv = vec!["lockstep-server", "--addr", "127.0.0.1:0"];
    if !flags.iter().any(|f| f.starts_with("--jwt-secret")) {
        argv.push("--dev");
    }
    argv.extend_from_slice(flags);
    Cli::try_parse_from(argv).unwrap().serve
}

async fn start_with<S: Store>(flags: &[&str], store: S) -> Running {
    let bound: Bound = bind_with_store(args(flags), store).await.unwrap();
    let addr = bound.local_addr();
    let metrics_addr = bound.metrics_addr();
    let admission = bound.admission();
    let bound_tasks = bound.frontdoor();
    let stop = CancellationToken::new();
    let task = tokio::spawn(bound.run(stop.clone()));
    Running {
        addr,
        metrics_addr,
        admission,
        bound_tasks,
        stop,
        task,
    }
}

async fn start(flags: &[&str]) -> Running {
    start_with(flags, SharedMemStore::default()).await
}

/// Polls `cond` until it holds, at most [`WAIT`].
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---- HTTP over raw TCP ----

/// `GET path` on a fresh connection: the status code and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut response))
        .await
        .expect("response")
        .unwrap();
    let response = String::from_utf8(response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Reads until the peer closes (or resets) the connection, at most
/// [`WAIT`]; what arrived before the close.
async fn read_until_closed(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, tcp.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open"),
            Ok(Ok(0) | Err(_)) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

// ---- Socket.IO over WebSocket, by hand ----

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens an Engine.IO session over WebSocket and reads its `open` packet.
async fn ws_open(addr: SocketAddr) -> Result<Ws, tungstenite::Error> {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio::time::timeout(WAIT, connect_async(url))
        .await
        .expect("websocket handshake")?;
    let open = next_text(&mut ws).await.expect("engine.io open");
    assert!(matches!(parse_eio(&open), Ok(EioPacket::Open(_))), "{open}");
    Ok(ws)
}

/// The next Engine.IO text packet, answering pings; `None` once closed.
async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the server went silent");
        match message {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                ws.send(Message::text("3")).await.ok()?;
            }
            Some(Ok(Message::Text(text))) => return Some(text.as_str().to_owned()),
            Some(Ok(_)) => {}
        }
    }
}

/// The next Socket.IO packet; `None` once closed.
async fn next_packet(ws: &mut Ws) -> Option<SioPacket> {
    loop {
        let text = next_text(ws).await?;
        if let Ok(EioPacket::Message(packet)) = parse_eio(&text) {
            return Some(parse_sio(&packet).unwrap());
        }
    }
}

/// How a namespace connect ended.
#[derive(Debug, PartialEq)]
enum Connect {
    Accepted,
    Refused(String),
}

/// Connects the main namespace with `auth: { token }`.
async fn sio_connect(ws: &mut Ws, token: &str) -> Connect {
    let packet = format!("40{}", json!({ "token": token }));
    ws.send(Message::text(packet)).await.unwrap();
    match next_packet(ws).await.expect("connect answered") {
        SioPacket::Connect(_) => Connect::Accepted,
        SioPacket::ConnectError(data) => Connect::Refused(data["message"].as_str().unwrap().into()),
        other => panic!("unexpected {other:?}"),
    }
}

/// A connected socket of `token`, or the refusal.
async fn socket(addr: SocketAddr, token: &str) -> Result<Ws, String> {
    let mut ws = ws_open(addr).await.unwrap();
    match sio_connect(&mut ws, token).await {
        Connect::Accepted => Ok(ws),
        Connect::Refused(message) => Err(message),
    }
}

/// Sends `event` with an ack and returns the reply, skipping events.
async fn request(ws: &mut Ws, ack: u64, event: &str, payload: Value) -> Value {
    let text = format!("42{ack}{}", json!([event, payload]));
    ws.send(Message::text(text)).await.unwrap();
    loop {
        match next_packet(ws).await.expect("reply") {
            SioPacket::Ack { id, reply } if id == ack => {
                return serde_json::from_str(reply.get()).unwrap();
            }
            _ => {}
        }
    }
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

// ---- Connection caps ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_holds_at_most_its_cap_and_a_closed_connection_frees_a_slot() {
    let server = start(&["--max-connections-per-user", "3"]).await;
    let mut alice = Vec::new();
    for _ in 0..3 {
        alice.push(socket(server.addr, "dev:alice").await.unwrap());
    }
    until("3 connection tasks", || server.tasks() == 1 + 3).await;
    // The fourth is refused before it counts as connected, with a message
    // that says why, and costs the driver nothing: no connection task.
    for _ in 0..5 {
        assert_eq!(
            socket(server.addr, "dev:alice").await.err().as_deref(),
            Some("too_many_connections")
        );
    }
    assert_eq!(server.admission.connections_of(&user("alice")), 3);
    assert_eq!(
        server.tasks(),
        1 + 3,
        "a refused socket opened no connection"
    );
    // Another user has a cap of its own.
    let bob = socket(server.addr, "dev:bob").await.unwrap();
    // Closing one frees exactly one slot.
    drop(alice.pop());
    until("the slot is freed", || {
        server.admission.connections_of(&user("alice")) == 2
    })
    .await;
    alice.push(socket(server.addr, "dev:alice").await.unwrap());
    assert_eq!(
        socket(server.addr, "dev:alice").await.err().as_deref(),
        Some("too_many_connections")
    );
    drop((alice, bob));
    until("every slot is freed", || {
        server.admission.connections_of(&user("alice")) == 0
            && server.admission.connections_of(&user("bob")) == 0
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_closed_during_their_handshake_never_leak_a_slot() {
    let server = start(&[
        "--max-connections-per-user",
        "2",
        "--handshake-timeout-ms",
        "1000",
    ])
    .await;
    // Each sends its token and goes away at once, racing the server's
    // middleware, the namespace connect and the connection's start.
    for _ in 0..40 {
        let mut ws = ws_open(server.addr).await.unwrap();
        let packet = format!("40{}", json!({ "token": "dev:carol" }));
        ws.send(Message::text(packet)).await.unwrap();
        drop(ws);
    }
    // Every raced session is over: none still in its handshake (a session
    // holds its handshake permit until it authenticates or ends, at the
    // latest at the handshake deadline) and none holding a slot.
    until("every raced session to end", || {
        server.admission.handshakes() == 0 && server.admission.connections_of(&user("carol")) == 0
    })
    .await;
    // Released once each: the cap is exactly two again.
    let _a = socket(server.addr, "dev:carol").await.unwrap();
    let _b = socket(server.addr, "dev:carol").await.unwrap();
    assert_eq!(
        socket(server.addr, "dev:carol").await.err().as_deref(),
        Some("too_many_connections")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_cap_of_tcp_connections() {
    let server = start(&[
        "--max-connections-per-address",
        "3",
        "--header-read-timeout-ms",
        "60000",
    ])
    .await;
    let local = "127.0.0.1".parse().unwrap();
    // Three idle connections that never send a byte are counted at accept.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    until("three counted", || {
        server.admission.connections_from(local) == 3
    })
    .await;
    // The fourth is answered 503 and closed, never served.
    let mut extra = TcpStream::connect(server.addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut extra).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    if !answer.is_empty() {
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(
            answer.ends_with("too_many_connections_per_address"),
            "{answer}"
        );
    }
    assert_eq!(server.admission.connections_from(local), 3);
    // Closing one frees its slot; a new connection is served.
    drop(idle.pop());
    until("the slot is freed", || {
        server.admission.connections_from(local) == 2
    })
    .await;
    let (status, _) = http_get(server.addr, "/health/live").await;
    assert_eq!(status, 200);
    drop(idle);
    until("every slot is freed", || {
        server.admission.connections_from(local) == 0
    })
    .await;
    server.stop().await;
}

// ---- Limits before authentication ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_dropped_at_the_deadline() {
    let server = start(&["--header-read-timeout-ms", "300"]).await;
    let local = "127.0.0.1".parse().unwrap();
    // Slowloris: a request line and one header, then nothing.
    let started = Instant::now();
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut slow).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    // Not before the deadline, which runs from the server's accept.
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "closed before the deadline: {:?}",
        started.elapsed()
    );
    // A silent connection is dropped the same way, and its slot freed.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    read_until_closed(&mut silent).await;
    until("slots freed", || {
        server.admission.connections_from(local) == 0
    })
    .await;
    // A client that sends its headers in time is served.
    assert_eq!(http_get(server.addr, "/health/live").await.0, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_io_session_that_never_authenticates_is_closed_at_the_deadline() {
    let server = start(&["--handshake-timeout-ms", "1500"]).await;
    // An authenticated session, opened first, outlives the deadline.
    let mut alive = socket(server.addr, "dev:dora").await.unwrap();
    // A session that never sends its token is closed.
    let mut quiet = ws_open(server.addr).await.unwrap();
    while next_text(&mut quiet).await.is_some() {}
    // A session whose token was refused is closed the same way (a client
    // could otherwise try tokens forever on one session).
    let mut refused = ws_open(server.addr).await.unwrap();
    let packet = format!("40{}", json!({ "token": "not-a-dev-token" }));
    refused.send(Message::text(packet)).await.unwrap();
    let mut answers = Vec::new();
    while let Some(packet) = next_packet(&mut refused).await {
        answers.push(packet);
    }
    assert!(
        answers
            .iter()
            .all(|p| matches!(p, SioPacket::ConnectError(e) if e["message"] == "unauthorized")),
        "{answers:?}"
    );
    until("handshakes released", || server.admission.handshakes() == 0).await;
    let join = request(&mut alive, 1, "channel:join", json!({"channelId": "c"})).await;
    assert_eq!(join["ok"], true, "{join}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_not_yet_authenticated_are_capped_per_address_and_server_wide() {
    let server = start(&[
        "--max-pending-handshakes-per-address",
        "2",
        "--handshake-timeout-ms",
        "60000",
    ])
    .await;
    let mut first = ws_open(server.addr).await.unwrap();
    let _second = ws_open(server.addr).await.unwrap();
    // The third is refused with a 503 before socketioxide sees it, on
    // either transport.
    match ws_open(server.addr).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body = response.body().as_deref().unwrap_or_default();
            assert_eq!(body, b"too_many_handshakes_per_address");
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    let (status, body) = http_get(server.addr, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "too_many_handshakes_per_address")
    );
    // Authenticating one frees its place at once.
    assert_eq!(sio_connect(&mut first, "dev:erin").await, Connect::Accepted);
    assert_eq!(server.admission.handshakes(), 1);
    let _third = ws_open(server.addr).await.unwrap();
    server.stop().await;

    let server = start(&["--max-pending-handshakes", "1"]).await;
    let _only = ws_open(server.addr).await.unwrap();
    match ws_open(server.addr).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected a 503, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_8_kib_is_refused_unread() {
    let server = start(&[]).await;
    let long = format!("dev:{}", "a".repeat(9 * 1024));
    let mut ws = ws_open(server.addr).await.unwrap();
    assert_eq!(
        sio_connect(&mut ws, &long).await,
        Connect::Refused("unauthorized".into())
    );
    server.stop().await;
}

// ---- Auth: expiry during the session, secret file ----

fn unix_now() -> u64 {
    lockstep_server::jwt::unix_now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_ends_its_live_session_and_a_fresh_one_reconnects() {
    use lockstep_server::jwt::{MintClaims, Secret, mint};
    let dir = std::env::temp_dir().join(format!("lockstep-expiry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    let secret = "expiry-secret-0123456789-0123456789";
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let server = start(&[
        "--jwt-secret-file",
        file.to_str().unwrap(),
        "--jwt-leeway-secs",
        "0",
    ])
    .await;
    let key = Secret::load(Some(secret), None).unwrap();
    let token = |exp| mint(&key, "frank", &MintClaims::until(exp)).unwrap();
    // Valid for one to two more seconds (`exp` has whole seconds). Only a
    // machine too loaded to shake hands within that may see it expire
    // first: then a new one is tried, a bounded number of times.
    let mut attempts = 0;
    let (mut ws, exp) = loop {
        attempts += 1;
        let exp = unix_now() + 2;
        match socket(server.addr, &token(exp)).await {
            Ok(ws) => break (ws, exp),
            Err(refused) => assert!(
                refused == "unauthorized" && unix_now() >= exp && attempts < 10,
                "{refused} (attempt {attempts})"
            ),
        }
    };
    // The server disconnects the namespace (`io server disconnect`) once
    // the token has expired, not before.
    loop {
        match next_packet(&mut ws).await {
            Some(SioPacket::Disconnect) | None => break,
            Some(_) => {}
        }
    }
    let ended_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert!(ended_at.as_secs() >= exp, "closed before exp");
    until("the slot is freed", || {
        server.admission.connections_of(&user("frank")) == 0
    })
    .await;
    // The expired token is refused; a fresh one connects.
    assert_eq!(
        socket(server.addr, &token(exp)).await.err().as_deref(),
        Some("unauthorized")
    );
    let mut again = socket(server.addr, &token(unix_now() + 600)).await.unwrap();
    let join = request(&mut again, 1, "channel:join", json!({"channelId": "c"})).await;
    assert_eq!(join["ok"], true, "{join}");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- Health ----

/// A store a test can fail, kill (its "writer" gone) or make panic.
#[derive(Clone, Default)]
struct Faulty {
    inner: SharedMemStore,
    mode: Arc<AtomicU8>,
}

const HEALTHY: u8 = 0;
const FAILING: u8 = 1;
const DEAD: u8 = 2;
const PANICKING: u8 = 3;

impl Store for Faulty {
    fn execute(
        &self,
        cmd: StoreCommand,
    ) -> impl Future<Output = Result<StoreReply, StoreError>> + Send {
        // The command takes its place when called, as the contract asks.
        let running = match self.mode.load(Ordering::SeqCst) {
            HEALTHY => Ok(self.inner.execute(cmd)),
            PANICKING => Err(None),
            _ => Err(Some(StoreError::Unavailable("test fault".into()))),
        };
        async move {
            match running {
                Ok(running) => running.await,
                Err(Some(e)) => Err(e),
                Err(None) => panic!("the test store panics (the driver task dies)"),
            }
        }
    }

    fn is_alive(&self) -> bool {
        self.mode.load(Ordering::SeqCst) != DEAD
    }
}

/// `/health/ready`'s status and reasons.
async fn ready(addr: SocketAddr) -> (u16, Vec<String>) {
    let (status, body) = http_get(addr, "/health/ready").await;
    let body: Value = serde_json::from_str(&body).unwrap();
    let reasons = body["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    (status, reasons)
}

/// One join by a user of its own: one store command.
async fn join_once(addr: SocketAddr, name: &str) -> Value {
    let mut ws = socket(addr, &format!("dev:{name}")).await.unwrap();
    request(&mut ws, 1, "channel:join", json!({"channelId": name})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_store_and_the_driver() {
    let store = Faulty::default();
    let mode = Arc::clone(&store.mode);
    let server = start_with(&[], store).await;
    assert_eq!(ready(server.addr).await, (200, vec![]));
    let (status, body) = http_get(server.addr, "/health").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""mode":"dev""#), "{body}");

    // A store that keeps failing: not ready, until a command succeeds.
    mode.store(FAILING, Ordering::SeqCst);
    for i in 0..8 {
        let reply = join_once(server.addr, &format!("f{i}")).await;
        assert_eq!(reply["error"]["code"], "unavailable", "{reply}");
    }
    let (status, reasons) = ready(server.addr).await;
    assert_eq!(status, 503);
    assert!(
        reasons[0].contains("the last 8 commands failed"),
        "{reasons:?}"
    );
    assert_eq!(http_get(server.addr, "/health").await.0, 503);
    assert_eq!(http_get(server.addr, "/health/live").await.0, 200);
    mode.store(HEALTHY, Ordering::SeqCst);
    assert_eq!(join_once(server.addr, "ok1").await["ok"], true);
    assert_eq!(ready(server.addr).await, (200, vec![]));

    // A dead store (its writer gone): not ready.
    mode.store(DEAD, Ordering::SeqCst);
    let (status, reasons) = ready(server.addr).await;
    assert_eq!(status, 503);
    assert_eq!(reasons, ["store stopped (its writer is gone)"]);
    mode.store(HEALTHY, Ordering::SeqCst);
    assert_eq!(ready(server.addr).await.0, 200);

    // A dead driver: not ready, for good; still live.
    mode.store(PANICKING, Ordering::SeqCst);
    let mut ws = socket(server.addr, "dev:gus").await.unwrap();
    let text = format!("421{}", json!(["channel:join", {"channelId": "g"}]));
    ws.send(Message::text(text)).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, reasons) = ready(server.addr).await;
        if status == 503 {
            assert!(
                reasons.contains(&"server driver stopped".to_owned()),
                "{reasons:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "readiness never dropped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(http_get(server.addr, "/health/live").await.0, 200);
    mode.store(HEALTHY, Ordering::SeqCst);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_readiness_reports_its_writer_alive() {
    let store = lockstep_sqlite::SqliteStore::in_memory().unwrap();
    assert!(store.is_alive());
    let server = start_with(&[], store).await;
    assert_eq!(join_once(server.addr, "hal").await["ok"], true);
    assert_eq!(ready(server.addr).await, (200, vec![]));
    server.stop().await;
}

// ---- Metrics and dev mode ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_to_their_own_address_and_say_dev_mode() {
    let server = start(&["--metrics-addr", "127.0.0.1:0"]).await;
    let metrics_addr = server.metrics_addr.unwrap();
    assert_ne!(metrics_addr, server.addr);
    assert_eq!(http_get(server.addr, "/metrics").await.0, 404);
    let (status, body) = http_get(metrics_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("lockstep_dev_mode 1"), "{body}");
    // The main address still serves health and Socket.IO.
    assert_eq!(http_get(server.addr, "/health/live").await.0, 200);
    assert!(socket(server.addr, "dev:ivy").await.is_ok());
    server.stop().await;

    // Without the flag, /metrics stays on the main address; a JWT server
    // says it is not in dev mode.
    let server = start(&["--jwt-secret", "metrics-secret-0123456789-01234567"]).await;
    let (status, body) = http_get(server.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("lockstep_dev_mode 0"), "{body}");
    let (_, health) = http_get(server.addr, "/health").await;
    assert!(health.contains(r#""mode":"production""#), "{health}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_listens_beyond_loopback_only_when_told() {
    let refused = bind_with_store(
        Cli::try_parse_from(["lockstep-server", "--dev", "--addr", "0.0.0.0:0"])
            .unwrap()
            .serve,
        SharedMemStore::default(),
    )
    .await;
    assert!(
        matches!(refused, Err(StartError::DevNotLoopback(_))),
        "{refused:?}"
    );
    let allowed = bind_with_store(
        Cli::try_parse_from([
            "lockstep-server",
            "--dev",
            "--dev-allow-remote",
            "--addr",
            "0.0.0.0:0",
        ])
        .unwrap()
        .serve,
        SharedMemStore::default(),
    )
    .await;
    assert!(allowed.is_ok());
}

// ---- What the server reports (the PRD's metrics) ----

/// The value of the series `series` (name and labels exactly as exposed)
/// in a Prometheus exposition, if present.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_by_request_kind_and_client_reports_by_their_limits() {
    let server = start(&["--client-report-every-ms", "60000"]).await;
    let mut ws = socket(server.addr, "dev:alice").await.unwrap();
    // A join the access policy refuses, then one it allows.
    let refused = request(
        &mut ws,
        1,
        "channel:join",
        json!({ "channelId": "private:bob" }),
    )
    .await;
    assert_eq!(refused["error"]["code"], "forbidden", "{refused}");
    let joined = request(&mut ws, 2, "channel:join", json!({ "channelId": "obs" })).await;
    assert_eq!(joined["ok"], true, "{joined}");
    let sent = request(
        &mut ws,
        3,
        "message:send",
        json!({ "channelId": "nowhere", "clientMsgId": "c1", "body": "x" }),
    )
    .await;
    assert_eq!(sent["error"]["code"], "not_joined", "{sent}");
    let unknown = request(&mut ws, 4, "made:up", json!({})).await;
    assert_eq!(unknown["error"]["code"], "invalid", "{unknown}");

    // A client's report: counted once; the next within the interval beyond
    // the burst of two is refused; a malformed one is refused unread.
    let mut buckets = vec![0; 13];
    buckets[3] = 2;
    let report = json!({
        "v": 1, "connectAttempts": 2, "connects": 2, "resumed": 1,
        "errors": { "forbidden": 1 }, "ackLatency": buckets,
    });
    let accepted = request(&mut ws, 5, "client:metrics", report.clone()).await;
    assert_eq!(accepted, json!({ "ok": true }));
    let bad = request(
        &mut ws,
        6,
        "client:metrics",
        json!({ "v": 1, "connects": -5 }),
    )
    .await;
    assert_eq!(bad["error"]["code"], "invalid", "{bad}");
    let limited = request(&mut ws, 7, "client:metrics", report).await;
    assert_eq!(limited["error"]["code"], "rate_limited", "{limited}");
    // The connection is unharmed.
    let again = request(&mut ws, 8, "channel:join", json!({ "channelId": "obs" })).await;
    assert_eq!(again["ok"], true, "{again}");

    let (_, body) = http_get(server.addr, "/metrics").await;
    let at_least = |series: &str, n: f64| {
        let v = sample(&body, series).unwrap_or(0.0);
        assert!(v >= n, "{series} = {v}, expected at least {n}\n{body}");
    };
    at_least(
        r#"lockstep_replies_total{kind="join",outcome="forbidden"}"#,
        1.0,
    );
    at_least(r#"lockstep_replies_total{kind="join",outcome="ok"}"#, 2.0);
    at_least(
        r#"lockstep_replies_total{kind="send",outcome="not_joined"}"#,
        1.0,
    );
    at_least(
        r#"lockstep_replies_total{kind="unknown",outcome="invalid"}"#,
        1.0,
    );
    at_least(r#"lockstep_reply_latency_seconds_count{kind="join"}"#, 2.0);
    at_least(
        r#"lockstep_joins_total{outcome="latest",from="start"}"#,
        2.0,
    );
    at_least(r#"lockstep_client_reports_total{outcome="accepted"}"#, 1.0);
    at_least(r#"lockstep_client_reports_total{outcome="invalid"}"#, 1.0);
    at_least(
        r#"lockstep_client_reports_total{outcome="rate_limited"}"#,
        1.0,
    );
    at_least("lockstep_client_connect_attempts_total", 2.0);
    at_least(
        r#"lockstep_client_reconnects_total{outcome="resumed"}"#,
        1.0,
    );
    at_least(r#"lockstep_client_errors_total{code="forbidden"}"#, 1.0);
    at_least(
        r#"lockstep_client_ack_latency_seconds_bucket{le="0.05"}"#,
        2.0,
    );
    assert!(!body.contains(r#"kind="any""#), "{body}");
    server.stop().await;
}

/// Every metric name the operator's files use (the Grafana dashboard and
/// the Prometheus alert rules under docs/ops) is in the exposition of a
/// fresh server: a renamed metric fails here, not on a dashboard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_alerts_name_is_exposed() {
    let server = start(&[]).await;
    let (_, body) = http_get(server.addr, "/metrics").await;
    server.stop().await;
    let exposed: std::collections::BTreeSet<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .filter(|name| !name.is_empty())
        .collect();
    let ops = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ops");
    let dashboard = std::fs::read_to_string(ops.join("grafana-lockstep.json")).unwrap();
    let alerts = std::fs::read_to_string(ops.join("prometheus-alerts.yml")).unwrap();
    // The dashboard is JSON with a query in every panel.
    let parsed: Value = serde_json::from_str(&dashboard).unwrap();
    let panels = parsed["panels"].as_array().unwrap();
    assert!(panels.len() >= 5);
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert!(
            panel["targets"].as_array().is_some_and(|t| !t.is_empty()),
            "{}",
            panel["title"]
        );
    }
    let mut named = std::collections::BTreeSet::new();
    for text in [&dashboard, &alerts] {
        let mut rest = text.as_str();
        while let Some(at) = rest.find("lockstep_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            named.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    assert!(named.len() >= 15, "{named:?}");
    let missing: Vec<_> = named
        .iter()
        .filter(|n| !exposed.contains(n.as_str()))
        .collect();
    assert!(missing.is_empty(), "not exposed: {missing:?}\n{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_root_is_served_beside_the_socket_and_dev_allows_loopback_origins() {
    let dir = std::env::temp_dir().join(format!("lockstep-web-root-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>chat</h1>").unwrap();
    let server = start(&["--web-root", dir.to_str().unwrap()]).await;
    let (status, body) = http_get(server.addr, "/").await;
    assert_eq!((status, body.as_str()), (200, "<h1>chat</h1>"));
    let (status, _) = http_get(server.addr, "/missing.js").await;
    assert_eq!(status, 404);
    // The routes of the server still win.
    let (status, _) = http_get(server.addr, "/health/live").await;
    assert_eq!(status, 200);

    // CORS under --dev: a loopback page origin is allowed, another is not.
    let preflight = |origin: &str| {
        format!(
            "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nhost: x\r\norigin: {origin}\r\nconnection: close\r\n\r\n"
        )
    };
    for (origin, allowed) in [
        ("http://localhost:5173", true),
        ("https://example.com", false),
    ] {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(preflight(origin).as_bytes()).await.unwrap();
        let response = read_until_closed(&mut tcp).await.to_ascii_lowercase();
        let header = format!("access-control-allow-origin: {origin}");
        assert_eq!(response.contains(&header), allowed, "{origin}: {response}");
    }
    server.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
