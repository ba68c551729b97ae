//! The Rust Socket.IO transport against plain chat servers that keep a
//! small in-memory part of the contract: Node `socket.io@4.8`
//! (benches/node/server.mjs, the load comparison's Node baseline; the codec
//! interoperates with the reference implementation) and the socketioxide baseline of the load comparison
//! (benches/plain-socketioxide; it must stay correct to be a fair bar).
//! Pipelined requests are acknowledged one by one, each by its own id, and
//! a stranger's handshake is refused.
//!
//! The Node test needs node and `scripts/js-setup`; it fails loudly without
//! them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../adapters/tokio/tests/common/mod.rs"]
mod common;

use lockstep_tests::node_server_dir;
use std::process::Stdio;

use common::{App, WAIT, channel, fast_config, texts};
use lockstep_socketio_client::SocketIoConnector;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_transport_pipelines_against_a_node_socketio_server() {
    let node_dir = node_server_dir();
    lockstep_tests::require_node(&node_dir, "socket.io");
    let mut server = tokio::process::Command::new("node")
        .arg(node_dir.join("server.mjs"))
        // Port 0: any free port, printed on its first line.
        .env_remove("PORT")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let port = line.strip_prefix("listening on ").unwrap();
    let url = format!("http://127.0.0.1:{port}");

    pipelines_and_refuses_strangers(&url).await;
    server.start_kill().unwrap();
    let _ = server.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_transport_pipelines_against_the_plain_socketioxide_baseline() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, lockstep_plain_socketioxide::app())
            .await
            .unwrap();
    });
    pipelines_and_refuses_strangers(&url).await;
    server.abort();
}

/// Two users join a room; one pipelines 100 sends, both see them all in
/// order with seqs 1..=100; a token without `dev:` is refused for good.
async fn pipelines_and_refuses_strangers(url: &str) {
    let room = channel("room");
    let mut apps = Vec::new();
    for (name, seed) in [("alice", 1), ("bob", 2)] {
        let mut config = fast_config(&format!("dev:{name}"), seed, 100);
        config.client.heartbeat = None;
        let mut a = App::with_connector(name, config, SocketIoConnector::new(url).unwrap());
        a.handle.connect();
        a.handle.subscribe(room.clone()).unwrap();
        a.subscribed(&room).await;
        apps.push(a);
    }
    let sends: Vec<_> = (0..100)
        .map(|i| apps[0].send(&room, &format!("m{i}")))
        .collect();
    let (ids, seqs) = common::sent_in_order(sends).await;
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    let expected: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    for a in &mut apps {
        a.has_messages(&room, &ids).await;
        assert_eq!(texts(&a.messages(&room)), expected, "{}", a.name);
        a.assert_contiguous(&room);
    }
    for a in &apps {
        a.handle.close().await;
    }
    // A refused handshake (the server's `connect_error`) fails for good.
    let eve = App::with_connector(
        "eve",
        fast_config("nope", 3, 100),
        SocketIoConnector::new(url).unwrap(),
    );
    eve.refused_for_good().await;
}
