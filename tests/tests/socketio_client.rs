//! The tokio client driver over the Socket.IO transport
//! (`lockstep-socketio-client`) against `lockstep-server` in-process:
//! pipelined chat, recovery across a server restart, a refused token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../adapters/tokio/tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;

use clap::Parser;
use common::{App, WAIT, channel, fast_config, texts};
use lockstep_core::client::{ClientEvent, Outcome};
use lockstep_server::cli::Cli;
use lockstep_server::serve::bind_with_store;
use lockstep_socketio_client::SocketIoConnector;
use lockstep_tokio::server::SharedMemStore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Running {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<Result<(), lockstep_server::serve::StartError>>,
}

impl Running {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("graceful shutdown")
            .unwrap()
            .unwrap();
    }
}

async fn start(addr: &str, store: SharedMemStore) -> Running {
    let args = Cli::try_parse_from([
        "lockstep-server",
        "--dev",
        "--addr",
        addr,
        "--messages-per-sec",
        "10000",
        "--messages-burst",
        "10000",
        "--ping-interval-ms",
        "1000",
        "--ping-timeout-ms",
        "1000",
    ])
    .unwrap()
    .serve;
    let bound = bind_with_store(args, store).await.unwrap();
    let addr = bound.local_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(bound.run(stop.clone()));
    Running { addr, stop, task }
}

fn app(name: &'static str, seed: u64, url: &str) -> App {
    let config = fast_config(&format!("dev:{name}"), seed, 100);
    App::with_connector(name, config, SocketIoConnector::new(url).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_clients_chat_over_socketio_with_pipelined_sends() {
    let server = start("127.0.0.1:0", SharedMemStore::default()).await;
    let room = channel("room");
    let mut alice = app("alice", 1, &server.url());
    let mut bob = app("bob", 2, &server.url());
    for a in [&mut alice, &mut bob] {
        a.handle.connect();
        a.handle.subscribe(room.clone()).unwrap();
        a.subscribed(&room).await;
    }
    assert_eq!(alice.handle.connected().await.unwrap().as_str(), "alice");
    // 60 sends at once: pipelined, acked in order with contiguous seqs.
    let sends: Vec<_> = (0..60)
        .map(|i| alice.send(&room, &format!("m{i}")))
        .collect();
    let (ids, seqs) = common::sent_in_order(sends).await;
    assert_eq!(seqs, (1..=60).collect::<Vec<_>>());
    bob.has_messages(&room, &ids).await;
    alice.has_messages(&room, &ids).await;
    let expected: Vec<String> = (0..60).map(|i| format!("m{i}")).collect();
    for a in [&alice, &bob] {
        assert_eq!(texts(&a.messages(&room)), expected, "{}", a.name);
        a.assert_contiguous(&room);
    }
    for id in &ids {
        assert_eq!(alice.outcomes_of(id), 1);
    }
    alice.handle.close().await;
    bob.handle.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_client_recovers_across_a_server_restart() {
    let store = SharedMemStore::default();
    let server = start("127.0.0.1:0", store.clone()).await;
    let addr = server.addr.to_string();
    let room = channel("room");
    let mut alice = app("alice", 3, &server.url());
    let mut bob = app("bob", 4, &server.url());
    for a in [&mut alice, &mut bob] {
        a.handle.connect();
        a.handle.subscribe(room.clone()).unwrap();
        a.subscribed(&room).await;
    }
    let first = alice.send(&room, "before");
    let first_id = first.client_msg_id().unwrap().clone();
    tokio::time::timeout(WAIT, first.outcome())
        .await
        .unwrap()
        .unwrap();
    bob.has_messages(&room, std::slice::from_ref(&first_id))
        .await;

    server.stop().await;
    alice
        .wait_for(
            "the connection to drop",
            |e| matches!(e, ClientEvent::State(s) if s.name() != "connected"),
        )
        .await;
    // Sent while the server is down: kept in the outbox, sent after.
    let offline = alice.send(&room, "while down");
    let offline_id = offline.client_msg_id().unwrap().clone();
    let server = start(&addr, store).await;
    let outcome = tokio::time::timeout(WAIT, offline.outcome())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, Outcome::Sent { .. }), "{outcome:?}");
    for a in [&mut alice, &mut bob] {
        a.has_messages(&room, &[first_id.clone(), offline_id.clone()])
            .await;
    }
    for a in [&alice, &bob] {
        assert_eq!(
            texts(&a.messages(&room)),
            ["before", "while down"],
            "{}",
            a.name
        );
        a.assert_contiguous(&room);
    }
    alice.handle.close().await;
    bob.handle.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused_for_good() {
    let server = start("127.0.0.1:0", SharedMemStore::default()).await;
    let config = fast_config("not-a-dev-token", 5, 100);
    let eve = App::with_connector(
        "eve",
        config,
        SocketIoConnector::new(&server.url()).unwrap(),
    );
    eve.refused_for_good().await;
    server.stop().await;
}
