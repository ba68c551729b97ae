//! The client's stats snapshot over real loopback TCP: connects,
//! a forced reconnection, subscriptions, acks and their latency.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use lockstep_core::client::{ClientEvent, ConnectionState, Outcome};
use lockstep_tokio::client::{ACK_LATENCY_BUCKETS_MS, ClientStats};
use lockstep_tokio::server::SharedMemStore;

/// Sends `texts` and waits (bounded) for each one's outcome, which must be
/// `Sent`.
async fn send_all(app: &App, ch: &lockstep_core::ids::ChannelId, texts: &[&str]) {
    let handles: Vec<_> = texts.iter().map(|t| app.send(ch, t)).collect();
    for h in handles {
        let outcome = tokio::time::timeout(WAIT, h.outcome())
            .await
            .expect("outcome in time")
            .expect("driver running");
        assert!(matches!(outcome, Outcome::Sent { .. }), "{outcome:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_connects_reconnections_subscriptions_and_acks() {
    let store = SharedMemStore::default();
    let (server, addr) = start_server("127.0.0.1:0".parse().unwrap(), store.clone()).await;
    let general = channel("general");
    let mut alice = App::start("alice", fast_config("dev:alice", 7, 50), addr);
    assert_eq!(alice.handle.stats(), ClientStats::default());

    alice.handle.connect();
    alice.handle.subscribe(general.clone()).unwrap();
    alice.subscribed(&general).await;
    // Each ack latency lies inside the window the test watched its send in.
    let started = std::time::Instant::now();
    send_all(&alice, &general, &["one", "two", "three"]).await;
    let first_window = started.elapsed();

    let before = alice.handle.stats();
    assert!(before.connect_attempts >= 1, "{before:#?}");
    assert_eq!(before.connects, 1, "{before:#?}");
    assert_eq!(before.reconnections, 0, "{before:#?}");
    assert_eq!(before.subscriptions_joined, 1, "{before:#?}");
    assert_eq!(before.sends_acked, 3, "{before:#?}");
    assert_eq!(before.ack_latency.count, 3, "{before:#?}");

    // Lose the server, then bring it back on the same address and store.
    tokio::time::timeout(WAIT, server.shutdown()).await.unwrap();
    alice
        .wait_for("losing the server", |e| {
            matches!(e, ClientEvent::State(ConnectionState::Reconnecting { .. }))
        })
        .await;
    let (server, _) = start_server(addr, store).await;
    alice.connected().await;
    alice.subscribed(&general).await;
    let started = std::time::Instant::now();
    send_all(&alice, &general, &["four", "five"]).await;
    let second_window = started.elapsed();

    let stats = alice.handle.stats();
    assert!(stats.connect_attempts >= stats.connects, "{stats:#?}");
    assert!(stats.connects >= 2, "{stats:#?}");
    assert!(stats.reconnections >= 1, "{stats:#?}");
    assert_eq!(stats.reconnections, stats.connects - 1, "{stats:#?}");
    assert!(stats.subscriptions_joined >= 2, "{stats:#?}");
    assert_eq!(stats.subscriptions_failed, 0, "{stats:#?}");
    assert_eq!(stats.sends_acked, 5, "{stats:#?}");
    assert_eq!(stats.sends_failed, 0, "{stats:#?}");
    assert_eq!((stats.ops_applied, stats.ops_failed), (0, 0), "{stats:#?}");

    let latency = &stats.ack_latency;
    assert_eq!(latency.count, stats.sends_acked, "{stats:#?}");
    // Measured between queuing and the ack: never zero, never longer than
    // the window the send was watched in.
    assert!(latency.sum > std::time::Duration::ZERO, "{stats:#?}");
    assert!(
        latency.max <= first_window.max(second_window),
        "{stats:#?} within {first_window:?} / {second_window:?}"
    );
    assert!(
        latency.sum <= first_window * 3 + second_window * 2,
        "{stats:#?} within {first_window:?} / {second_window:?}"
    );
    assert_eq!(latency.buckets.iter().sum::<u64>(), latency.count);
    assert_eq!(latency.buckets.len(), ACK_LATENCY_BUCKETS_MS.len() + 1);

    // Counters only grow: the later snapshot dominates the earlier one.
    assert!(stats.connect_attempts >= before.connect_attempts);
    assert!(stats.ack_latency.max >= before.ack_latency.max);

    alice.handle.close().await;
    tokio::time::timeout(WAIT, server.shutdown()).await.unwrap();
}
