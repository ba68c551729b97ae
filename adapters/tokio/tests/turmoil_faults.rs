//! The real drivers over turmoil's simulated TCP: a server and two clients
//! as turmoil hosts; one client's link to the server is partitioned, then
//! held. The client must notice the half-open connection by its heartbeat,
//! reconnect and recover, and every acknowledged message must reach the
//! other client in order, exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lockstep_core::client::{ClientEvent, ConnectionState, Outcome};
use lockstep_core::ids::ClientMsgId;
use lockstep_core::server::Open;
use lockstep_tokio::framed::framed_connection;
use lockstep_tokio::server::{
    DevAuthenticator, FramedFrontConfig, ServerDriverConfig, SharedMemStore, TokioClock,
    spawn_server,
};
use lockstep_tokio::transport::{Connector, TransportError};

const PORT: u16 = 9000;
const MESSAGES: usize = 12;
/// Longest virtual wait for any one phase.
const PHASE: Duration = Duration::from_secs(60);

fn connector() -> impl Connector {
    || async {
        let stream = turmoil::net::TcpStream::connect(("server", PORT)).await?;
        Ok::<_, TransportError>(framed_connection(stream))
    }
}

/// What the two clients tell each other (turmoil runs every host on one
/// thread, so plain shared cells do).
#[derive(Default)]
struct Board {
    subscribed: usize,
    acked: BTreeMap<&'static str, Vec<ClientMsgId>>,
    done: usize,
}

/// Polls `cond` every 50 ms of virtual time, failing after [`PHASE`].
async fn until(what: &str, cond: impl Fn() -> bool) {
    tokio::time::timeout(PHASE, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

async fn run_client(
    name: &'static str,
    peer: &'static str,
    seed: u64,
    board: Rc<RefCell<Board>>,
    faults: bool,
) -> turmoil::Result {
    let general = channel("general");
    let tracker = tokio_util::task::TaskTracker::new();
    let mut config = quick_heartbeat(fast_config(&format!("dev:{name}"), seed, 200));
    config.tracker = tracker.clone();
    let mut app = App::with_connector(name, config, connector());
    app.handle.connect();
    app.handle.subscribe(general.clone())?;
    app.subscribed(&general).await;
    board.borrow_mut().subscribed += 1;
    until("both subscribed", || board.borrow().subscribed == 2).await;

    let sends = async {
        let mut handles = Vec::new();
        for i in 0..MESSAGES {
            handles.push(app.send(&general, &format!("{name} {i}")));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut acked = Vec::new();
        for h in handles {
            let id = h.client_msg_id().unwrap().clone();
            let outcome = tokio::time::timeout(PHASE, h.outcome())
                .await
                .unwrap()
                .unwrap();
            assert!(
                matches!(outcome, Outcome::Sent { .. }),
                "{name}: {outcome:?}"
            );
            acked.push(id);
        }
        acked
    };
    let fault_plan = async {
        if !faults {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        // Every segment either way is lost: the TCP stream goes half-open
        // and only the client's heartbeat can tell.
        turmoil::partition(name, "server");
        tokio::time::sleep(Duration::from_secs(5)).await;
        turmoil::repair(name, "server");
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Segments are delayed, not lost, for longer than the heartbeat
        // timeout: the client gives up on the connection and reconnects
        // once the link flows again.
        turmoil::hold(name, "server");
        tokio::time::sleep(Duration::from_secs(4)).await;
        turmoil::release(name, "server");
    };
    // Events must be read while sending, or the driver would wait on us.
    let (acked, ()) = tokio::join!(sends, fault_plan);
    {
        let mut b = board.borrow_mut();
        b.acked.insert(name, acked);
        b.done += 1;
    }
    until("both done sending", || board.borrow().done == 2).await;
    let expected = board.borrow().acked[peer].clone();
    app.has_messages(&general, &expected).await;

    // The peer's messages: all of them, in the order sent, exactly once;
    // the whole log contiguous from seq 1.
    let from_peer: Vec<ClientMsgId> = app
        .messages(&general)
        .into_iter()
        .filter(|m| m.author_id.as_str() == peer)
        .map(|m| m.client_msg_id)
        .collect();
    assert_eq!(from_peer, expected, "{name}: {peer}'s messages");
    app.assert_contiguous(&general);
    if faults {
        // One connection at the start, one after the partition, one after
        // the hold: each half-open connection was noticed and replaced.
        let is_connect =
            |e: &ClientEvent| matches!(e, ClientEvent::State(ConnectionState::Connected { .. }));
        let mut connects = app.seen.iter().filter(|e| is_connect(e)).count();
        if connects < 3 {
            app.wait_for("a reconnect after each fault", |e| {
                connects += usize::from(is_connect(e));
                connects >= 3
            })
            .await;
        }
        let heartbeat_losses = app
            .seen
            .iter()
            .filter(|e| matches!(e, ClientEvent::State(ConnectionState::Reconnecting { .. })))
            .count();
        assert!(heartbeat_losses >= 2, "{name}: {heartbeat_losses}");
        if std::env::var("DEBUG_TURMOIL").is_ok() {
            for e in &app.seen {
                if matches!(e, ClientEvent::State(_) | ClientEvent::Subscription { .. }) {
                    eprintln!("{name}: {e:?}");
                }
            }
        }
    }
    // Every superseded transport's task has ended: only the driver and the
    // live transport remain.
    until("superseded transports to end", || tracker.len() == 2).await;
    app.handle.close().await;
    drop(app);
    tracker.close();
    tokio::time::timeout(PHASE, tracker.wait()).await?;
    Ok(())
}

#[test]
fn partition_and_hold_between_a_client_and_the_server_lose_nothing() {
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(120))
        .tick_duration(Duration::from_millis(5))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(20))
        .rng_seed(7)
        .build();
    let store = SharedMemStore::default();
    sim.host("server", move || {
        let store = store.clone();
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
            let incoming = Box::pin(futures_util::stream::unfold(listener, |l| async move {
                Some((l.accept().await.map(|(stream, _)| stream), l))
            }));
            let server = spawn_server(
                ServerDriverConfig::default(),
                Open,
                store,
                TokioClock::starting_at(1_700_000_000_000),
            );
            server.serve(
                incoming,
                Arc::new(DevAuthenticator::new()),
                FramedFrontConfig::default(),
            );
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    let board = Rc::new(RefCell::new(Board::default()));
    sim.client(
        "alice",
        run_client("alice", "bob", 11, Rc::clone(&board), true),
    );
    sim.client(
        "bob",
        run_client("bob", "alice", 12, Rc::clone(&board), false),
    );
    sim.run().unwrap();
}
