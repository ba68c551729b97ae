//! Two clients and a server over real loopback TCP: chat, restart, clean
//! shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use lockstep_core::client::{ClientEvent, ConnectionState, FailReason, Outcome};
use lockstep_core::wire::ErrorCode;
use lockstep_tokio::client::{ConnectError, DriverStopped};
use lockstep_tokio::server::SharedMemStore;
use tokio_util::task::TaskTracker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_chat_each_sees_the_other_once_in_order() {
    let (server, addr) =
        start_server("127.0.0.1:0".parse().unwrap(), SharedMemStore::default()).await;
    let general = channel("general");
    let mut alice = App::start("alice", fast_config("dev:alice", 1, 100), addr);
    let mut bob = App::start("bob", fast_config("dev:bob", 2, 100), addr);
    for app in [&mut alice, &mut bob] {
        app.handle.connect();
        app.handle.subscribe(general.clone()).unwrap();
        app.subscribed(&general).await;
    }

    let a1 = alice.send(&general, "hi bob");
    let a1_id = a1.client_msg_id().unwrap().clone();
    let sent = tokio::time::timeout(WAIT, a1.outcome())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(sent, Outcome::Sent { .. }), "{sent:?}");
    let b1 = bob.send(&general, "hi alice");
    let b1_id = b1.client_msg_id().unwrap().clone();
    let b2 = bob.send(&general, "how are you?");
    let b2_id = b2.client_msg_id().unwrap().clone();
    tokio::time::timeout(WAIT, b2.outcome())
        .await
        .unwrap()
        .unwrap();

    let all = [a1_id.clone(), b1_id.clone(), b2_id.clone()];
    alice.has_messages(&general, &all).await;
    bob.has_messages(&general, &all).await;
    // Let any stray duplicate arrive before counting.
    alice
        .handle
        .mark_read(general.clone(), lockstep_core::ids::Seq(3));
    bob.wait_for("alice's read receipt", |e| {
        matches!(e, ClientEvent::Read { .. })
    })
    .await;

    for app in [&alice, &bob] {
        assert_eq!(
            texts(&app.messages(&general)),
            ["hi bob", "hi alice", "how are you?"],
            "{}",
            app.name
        );
        app.assert_contiguous(&general);
    }
    assert_eq!(alice.outcomes_of(&a1_id), 1);
    assert_eq!(bob.outcomes_of(&b1_id), 1);
    assert_eq!(bob.outcomes_of(&b2_id), 1);
    assert_eq!(alice.outcomes_of(&b1_id), 0);

    alice.handle.close().await;
    bob.handle.close().await;
    tokio::time::timeout(WAIT, server.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_recover_everything_after_the_server_restarts() {
    let store = SharedMemStore::default();
    let (server, addr) = start_server("127.0.0.1:0".parse().unwrap(), store.clone()).await;
    let general = channel("general");
    // Bob comes back quickly; alice slowly, so bob's messages are stored
    // before alice re-joins and she must recover them from her position.
    let mut alice = App::start("alice", fast_config("dev:alice", 3, 2_500), addr);
    let mut bob = App::start("bob", fast_config("dev:bob", 4, 50), addr);
    for app in [&mut alice, &mut bob] {
        app.handle.connect();
        app.handle.subscribe(general.clone()).unwrap();
        app.subscribed(&general).await;
    }
    let m1 = bob.send(&general, "before");
    let m1_id = m1.client_msg_id().unwrap().clone();
    tokio::time::timeout(WAIT, m1.outcome())
        .await
        .unwrap()
        .unwrap();
    alice
        .has_messages(&general, std::slice::from_ref(&m1_id))
        .await;

    tokio::time::timeout(WAIT, server.shutdown()).await.unwrap();
    for app in [&mut alice, &mut bob] {
        app.wait_for("losing the server", |e| {
            matches!(
                e,
                ClientEvent::State(lockstep_core::client::ConnectionState::Reconnecting { .. })
            )
        })
        .await;
    }
    // Sent while the server is down: goes out after the reconnect.
    let m2 = bob.send(&general, "while down");
    let m2_id = m2.client_msg_id().unwrap().clone();

    let (server, _) = start_server(addr, store.clone()).await;
    let m2_outcome = tokio::time::timeout(WAIT, m2.outcome())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(m2_outcome, Outcome::Sent { .. }), "{m2_outcome:?}");
    let m3 = bob.send(&general, "after");
    let m3_id = m3.client_msg_id().unwrap().clone();
    tokio::time::timeout(WAIT, m3.outcome())
        .await
        .unwrap()
        .unwrap();
    // Alice is still away: she must recover both from her position.
    assert!(
        !matches!(
            alice.handle.state(),
            lockstep_core::client::ConnectionState::Connected { .. }
        ),
        "alice came back too early for this test to check recovery"
    );

    let all = [m1_id, m2_id.clone(), m3_id];
    alice.has_messages(&general, &all).await;
    bob.has_messages(&general, &all).await;
    for app in [&alice, &bob] {
        assert_eq!(
            texts(&app.messages(&general)),
            ["before", "while down", "after"],
            "{}",
            app.name
        );
        app.assert_contiguous(&general);
    }
    assert_eq!(bob.outcomes_of(&m2_id), 1);
    assert_eq!(store.lock().head(&general).map(|(_, s)| s.0), Some(3));

    alice.handle.close().await;
    bob.handle.close().await;
    tokio::time::timeout(WAIT, server.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_or_closing_the_client_ends_every_task() {
    let (server, addr) =
        start_server("127.0.0.1:0".parse().unwrap(), SharedMemStore::default()).await;
    let general = channel("general");
    for close_explicitly in [false, true] {
        let tracker = TaskTracker::new();
        let mut config = fast_config("dev:carol", 5, 100);
        config.tracker = tracker.clone();
        let mut carol = App::start("carol", config, addr);
        carol.handle.connect();
        carol.handle.subscribe(general.clone()).unwrap();
        carol.subscribed(&general).await;
        let sent = carol.send(&general, "bye");
        tokio::time::timeout(WAIT, sent.outcome())
            .await
            .unwrap()
            .unwrap();
        assert!(!tracker.is_empty(), "driver and transport are running");

        if close_explicitly {
            carol.handle.close().await;
            assert!(carol.handle.is_stopped());
        }
        drop(carol);
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .expect("every client task ends");
        assert_eq!(tracker.len(), 0);
    }
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("every server task ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused_and_the_client_fails() {
    let (server, addr) =
        start_server("127.0.0.1:0".parse().unwrap(), SharedMemStore::default()).await;
    let mut mallory = App::start("mallory", fast_config("stolen", 6, 100), addr);
    mallory.handle.connect();
    let refused = tokio::time::timeout(WAIT, mallory.handle.connected())
        .await
        .unwrap();
    assert!(
        matches!(
            &refused,
            Err(ConnectError::Failed(FailReason::Refused {
                code: ErrorCode::Unauthorized,
                ..
            }))
        ),
        "{refused:?}"
    );
    mallory
        .wait_for("failed", |e| {
            matches!(e, ClientEvent::State(ConnectionState::Failed { .. }))
        })
        .await;
    mallory.handle.close().await;
    tokio::time::timeout(WAIT, server.shutdown()).await.unwrap();
}

#[tokio::test]
async fn closing_ends_pending_outcomes_and_keeps_the_outbox_exportable() {
    // Nothing listens here: every attempt fails and the send stays pending.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let general = channel("general");
    let dave = App::start("dave", fast_config("dev:dave", 8, 100), addr);
    dave.handle.connect();
    dave.handle.subscribe(general.clone()).unwrap();
    let pending = dave.send(&general, "unsent");
    let id = pending.client_msg_id().unwrap().clone();
    dave.handle.close().await;
    let outcome = tokio::time::timeout(WAIT, pending.outcome()).await.unwrap();
    assert_eq!(outcome, Err(DriverStopped));
    let outbox = dave.handle.export_outbox();
    assert_eq!(outbox.entries.len(), 1);
    assert!(format!("{:?}", outbox.entries[0].command).contains(id.as_str()));
    assert!(
        dave.handle
            .send(general, lockstep_core::wire::Body::text("late"))
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_deletes_typing_presence_and_receipts_flow_through_the_handle() {
    use lockstep_core::wire::{Body, LogEvent};

    let (server, addr) =
        start_server("127.0.0.1:0".parse().unwrap(), SharedMemStore::default()).await;
    let general = channel("general");
    let mut alice = App::start("alice", fast_config("dev:alice", 21, 100), addr);
    let mut bob = App::start("bob", fast_config("dev:bob", 22, 100), addr);
    alice.handle.connect();
    alice.handle.subscribe(general.clone()).unwrap();
    alice.subscribed(&general).await;
    bob.handle.connect();
    bob.handle.subscribe(general.clone()).unwrap();
    bob.subscribed(&general).await;
    alice
        .wait_for(
            "bob's presence",
            |e| matches!(e, ClientEvent::MemberJoined { user, .. } if user.as_str() == "bob"),
        )
        .await;

    alice.handle.typing(general.clone(), true);
    bob.wait_for(
        "alice typing",
        |e| matches!(e, ClientEvent::Typing { user, active: true, .. } if user.as_str() == "alice"),
    )
    .await;

    let sent = alice.send(&general, "helo");
    let Outcome::Sent { message_id, .. } = tokio::time::timeout(WAIT, sent.outcome())
        .await
        .unwrap()
        .unwrap()
    else {
        panic!("not sent");
    };
    let edit = alice
        .handle
        .update(general.clone(), message_id.clone(), Body::text("hello"))
        .unwrap();
    assert!(matches!(
        tokio::time::timeout(WAIT, edit.outcome())
            .await
            .unwrap()
            .unwrap(),
        Outcome::Applied { .. }
    ));
    let delete = alice.handle.delete(general.clone(), message_id).unwrap();
    assert!(matches!(
        tokio::time::timeout(WAIT, delete.outcome())
            .await
            .unwrap()
            .unwrap(),
        Outcome::Applied { .. }
    ));
    bob.wait_for("the deletion", |e| {
        matches!(
            e,
            ClientEvent::Log {
                event: LogEvent::Deleted(_),
                ..
            }
        )
    })
    .await;
    let kinds: Vec<&str> = bob
        .seen
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Log { event, .. } => Some(event.kind()),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["message", "updated", "deleted"]);
    bob.assert_contiguous(&general);

    bob.handle
        .mark_read(general.clone(), lockstep_core::ids::Seq(3));
    alice
        .wait_for("bob's receipt", |e| {
            matches!(e, ClientEvent::Read { user, up_to, .. } if user.as_str() == "bob" && up_to.0 == 3)
        })
        .await;

    bob.handle.unsubscribe(general.clone());
    bob.wait_for("unsubscribed", |e| {
        matches!(
            e,
            ClientEvent::Subscription {
                state: lockstep_core::client::SubscriptionState::Unsubscribed,
                ..
            }
        )
    })
    .await;
    alice.handle.close().await;
    bob.handle.close().await;
    tokio::time::timeout(WAIT, server.shutdown()).await.unwrap();
}

#[tokio::test]
async fn close_does_not_hang_when_the_app_never_reads_events() {
    let (server, addr) =
        start_server("127.0.0.1:0".parse().unwrap(), SharedMemStore::default()).await;
    let mut config = fast_config("dev:erin", 9, 100);
    config.events_capacity = 1;
    let erin = App::start("erin", config, addr);
    erin.handle.connect();
    erin.handle.subscribe(channel("general")).unwrap();
    // Events pile up unread; close must still finish.
    tokio::time::timeout(WAIT, erin.handle.close())
        .await
        .unwrap();
    tokio::time::timeout(WAIT, server.shutdown()).await.unwrap();
}
