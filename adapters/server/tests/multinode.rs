//! Two `lockstep-server` processes on one PostgreSQL serve one chat: Rust
//! clients (the tokio client driver over Socket.IO) are spread over both
//! and send under load, and mid-load either one process is killed with
//! SIGKILL (its clients reconnect to the other, re-joining from their
//! position, `{ epoch, since }`, and resending what was not acknowledged
//! with the same client message ids) or PostgreSQL itself is restarted
//! under both (appends fail until it is back, the clients retry, and each
//! process's hint listener reconnects and rereads what it may have
//! missed). Checked: every message is acknowledged once, stored once, and
//! delivered exactly once, in seq order, to every member on both
//! processes.
//!
//! Needs `LOCKSTEP_TEST_POSTGRES_URL` and `LOCKSTEP_TEST_POSTGRES_CTL` (see
//! `lockstep_tests::postgres_url`). The tests of this file take turns
//! ([`TURN`]): a restart of PostgreSQL would disturb a neighbour.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lockstep_core::client::{ClientEvent, EntryId, Heartbeat, Outcome, SubscriptionState};
use lockstep_core::ids::{ChannelId, ClientMsgId, UserId};
use lockstep_core::wire::{Body, LogEvent};
use lockstep_socketio_client::SocketIoConnector;
use lockstep_tokio::client::{ClientDriverConfig, Events, spawn_client};
use lockstep_tokio::transport::Connector;
use tokio::process::Child;
use tokio::sync::Barrier;

/// Members, and messages each sends.
const MEMBERS: usize = 4;
const PER_MEMBER: usize = 150;
/// Messages the first member (on A) sends alone before the load: members
/// on B must get them with no commit of B's own after them (so no gap a
/// client would notice and fill by itself): only B's tailing can bring
/// them.
const WARMUP: usize = 20;
/// Process A is killed once this many sends were acknowledged.
const KILL_AFTER: usize = WARMUP + 150;
/// Longest the whole exchange may take (a loaded 2-core machine is slow,
/// but never this slow).
const DEADLINE: Duration = Duration::from_secs(120);

/// Starts a server on the shared store, with `extra` flags; returns it and
/// its URL.
async fn start_server(url: &str, schema: &str, node: u64, extra: &[&str]) -> (Child, String) {
    let node = node.to_string();
    let base = [
        "--postgres",
        url,
        "--postgres-schema",
        schema,
        "--node-id",
        &node,
        "--postgres-resync-ms",
        "1000",
        "--messages-per-sec",
        "1000000",
        "--messages-burst",
        "1000000",
        // Generous heartbeats: a stalled task on a loaded machine must not
        // look like a dead peer. A killed process is seen at once anyway.
        "--ping-interval-ms",
        "5000",
        "--ping-timeout-ms",
        "10000",
    ];
    common::start_server(base.iter().chain(extra)).await
}

/// Connects to the first server that answers, in the order given: a
/// client of a dead process lands on the other.
fn failover(urls: Vec<String>) -> impl Connector {
    let connectors: Arc<Vec<SocketIoConnector>> = Arc::new(
        urls.iter()
            .map(|u| SocketIoConnector::new(u).unwrap())
            .collect(),
    );
    move || {
        let connectors = Arc::clone(&connectors);
        async move {
            let mut last = None;
            for c in connectors.iter() {
                match c.connect().await {
                    Ok(conn) => return Ok(conn),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.expect("at least one server"))
        }
    }
}

fn config(name: &str, seed: u64) -> ClientDriverConfig {
    let mut config = ClientDriverConfig::new(format!("dev:{name}"), seed);
    let c = &mut config.client;
    c.connect_timeout = Duration::from_secs(5);
    c.reconnect_backoff.base = Duration::from_millis(100);
    c.reconnect_backoff.cap = Duration::from_millis(400);
    c.join_timeout = Duration::from_secs(10);
    c.request_timeout = Duration::from_secs(10);
    c.max_send_failures = 50;
    c.heartbeat = Some(Heartbeat {
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(15),
    });
    config
}

/// What one member saw.
struct Seen {
    name: String,
    /// Its sends' outcomes, by client message id.
    outcomes: BTreeMap<ClientMsgId, Vec<Outcome>>,
    /// The room's log as delivered: (seq, client message id).
    log: Vec<(u64, ClientMsgId)>,
}

/// One member: joins, waits for everyone, sends `warmup` messages and
/// waits until it has everyone's, waits for everyone again, sends its
/// messages at once (pipelined), and reads until it has every member's
/// messages and every outcome of its own.
async fn member(
    name: String,
    seed: u64,
    warmup: usize,
    urls: Vec<String>,
    room: ChannelId,
    ready: Arc<Barrier>,
    acked: Arc<AtomicUsize>,
) -> Seen {
    let (handle, mut events) = spawn_client(config(&name, seed), failover(urls));
    handle.connect();
    handle.subscribe(room.clone()).unwrap();
    let mut seen = Seen {
        name: name.clone(),
        outcomes: BTreeMap::new(),
        log: Vec::new(),
    };
    let note = |seen: &mut Seen, e: ClientEvent| match e {
        ClientEvent::Log {
            channel,
            event: LogEvent::Message(m),
        } if channel == room => seen.log.push((m.seq.0, m.client_msg_id)),
        ClientEvent::Outcome {
            id: EntryId::Message(id),
            outcome,
            ..
        } => {
            if matches!(outcome, Outcome::Sent { .. }) {
                acked.fetch_add(1, Ordering::SeqCst);
            }
            seen.outcomes.entry(id).or_default().push(outcome);
        }
        _ => {}
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let e = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("{name}: never subscribed"))
            .expect("client stopped");
        let done = matches!(&e, ClientEvent::Subscription { channel, state: SubscriptionState::Subscribed } if *channel == room);
        note(&mut seen, e);
        if done {
            break;
        }
    }
    ready.wait().await;
    for i in 0..warmup {
        handle
            .send(room.clone(), Body::text(format!("{name}-w{i}")))
            .unwrap();
    }
    while seen.log.len() < WARMUP {
        let e = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{name}: has {} of the {WARMUP} warm-up messages",
                    seen.log.len()
                )
            })
            .expect("client stopped");
        note(&mut seen, e);
    }
    ready.wait().await;
    for i in 0..PER_MEMBER {
        handle
            .send(room.clone(), Body::text(format!("{name}-{i}")))
            .unwrap();
    }
    let total = MEMBERS * PER_MEMBER + WARMUP;
    let mine = PER_MEMBER + warmup;
    while seen.log.len() < total || seen.outcomes.len() < mine {
        let e = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{name}: timed out with {} of {total} events and {} of {mine} outcomes",
                    seen.log.len(),
                    seen.outcomes.len()
                )
            })
            .expect("client stopped");
        note(&mut seen, e);
    }
    handle.close().await;
    seen
}

/// One test of this file at a time: the restart test takes PostgreSQL
/// away from under everyone.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What happens mid-load.
enum Disruption {
    /// Process A is killed with SIGKILL.
    KillA,
    /// PostgreSQL is restarted (`pg_ctl restart -m fast`: every session
    /// cut, then back) under both processes, through this `pg_ctl`.
    RestartPostgres(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_deliver_every_message_once_in_order_across_a_sigkill() {
    let Some(url) = lockstep_tests::postgres_url() else {
        return;
    };
    let _turn = TURN.lock().await;
    load_across(&url, Disruption::KillA).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_deliver_every_message_once_in_order_across_a_postgres_restart() {
    let (Some(url), Some(ctl)) = (
        lockstep_tests::postgres_url(),
        lockstep_tests::postgres_ctl(),
    ) else {
        return;
    };
    let _turn = TURN.lock().await;
    load_across(&url, Disruption::RestartPostgres(ctl)).await;
}

/// Two processes, members spread over both, the load, `disruption` once
/// `KILL_AFTER` sends are acknowledged; then every guarantee checked.
async fn load_across(url: &str, disruption: Disruption) {
    let schema = lockstep_tests::fresh_postgres_schema();
    let (mut a, url_a) = start_server(url, &schema, 1, &[]).await;
    let (mut b, url_b) = start_server(url, &schema, 2, &[]).await;
    let room = ChannelId::new("room").unwrap();
    let ready = Arc::new(Barrier::new(MEMBERS));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..MEMBERS {
        // Half on A (falling over to B), half on B.
        let urls = if i % 2 == 0 {
            vec![url_a.clone(), url_b.clone()]
        } else {
            vec![url_b.clone(), url_a.clone()]
        };
        tasks.push(tokio::spawn(member(
            format!("u{i}"),
            i as u64 + 1,
            if i == 0 { WARMUP } else { 0 },
            urls,
            room.clone(),
            Arc::clone(&ready),
            Arc::clone(&acked),
        )));
    }
    // The disruption, mid-load.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while acked.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load never reached {KILL_AFTER} acks"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at_disruption = acked.load(Ordering::SeqCst);
    match &disruption {
        Disruption::KillA => a.start_kill().unwrap(),
        Disruption::RestartPostgres(ctl) => {
            let ctl = ctl.clone();
            let status = tokio::task::spawn_blocking(move || {
                std::process::Command::new(ctl)
                    .args(["restart", "-m", "fast"])
                    .stdout(std::process::Stdio::null())
                    .status()
            })
            .await
            .unwrap()
            .unwrap();
            assert!(status.success(), "pg_ctl restart: {status}");
        }
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    assert!(
        at_disruption < MEMBERS * PER_MEMBER + WARMUP,
        "the load finished before the disruption"
    );

    let total = MEMBERS * PER_MEMBER + WARMUP;
    // Every send was acknowledged exactly once, at one seq.
    let mut seq_of: BTreeMap<ClientMsgId, u64> = BTreeMap::new();
    for s in &seen {
        let warmup = if s.name == "u0" { WARMUP } else { 0 };
        assert_eq!(s.outcomes.len(), PER_MEMBER + warmup, "{}", s.name);
        for (id, outcomes) in &s.outcomes {
            let [Outcome::Sent { seq, .. }] = outcomes.as_slice() else {
                panic!("{}: {id} ended {outcomes:?}", s.name);
            };
            seq_of.insert(id.clone(), seq.0);
        }
    }
    assert_eq!(seq_of.len(), total);
    let seqs: BTreeSet<u64> = seq_of.values().copied().collect();
    assert_eq!(seqs.len(), total, "two messages acked at one seq");
    // Every member, on either process, got seqs 1..=total once, in order,
    // each at its acknowledged seq: nothing stored twice, nothing lost.
    for s in &seen {
        let got: Vec<u64> = s.log.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(
            got,
            (1..=total as u64).collect::<Vec<_>>(),
            "{}: not in order exactly once",
            s.name
        );
        for (seq, id) in &s.log {
            assert_eq!(seq_of.get(id), Some(seq), "{}: {id} at {seq}", s.name);
        }
    }
    let what = match disruption {
        Disruption::KillA => "A killed",
        Disruption::RestartPostgres(_) => "PostgreSQL restarted",
    };
    eprintln!("multi-node: {what} after {at_disruption} of {total} acks");
    for p in [&mut a, &mut b] {
        let _ = p.start_kill();
        let _ = p.wait().await;
    }
}

/// Waits (bounded by `deadline`) for an event `pick` accepts; every event
/// on the way is kept in `log`.
async fn wait_for(
    events: &mut Events,
    log: &mut Vec<ClientEvent>,
    deadline: tokio::time::Instant,
    what: &str,
    mut pick: impl FnMut(&ClientEvent) -> bool,
) {
    loop {
        let e = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}; saw {log:?}"))
            .expect("client stopped");
        let done = pick(&e);
        log.push(e);
        if done {
            return;
        }
    }
}

/// Whether `e` is the subscription of `room` completing.
fn subscribed(e: &ClientEvent, room: &ChannelId) -> bool {
    matches!(e, ClientEvent::Subscription { channel, state: SubscriptionState::Subscribed } if channel == room)
}

/// Presence across two processes: users on A are announced once to an
/// observer on B; A is killed; a user who reconnects to B within the grace
/// gets no `presence:leave`, one who does not gets one, within a lease
/// plus the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_survives_a_sigkill_once_per_user() {
    let Some(url) = lockstep_tests::postgres_url() else {
        return;
    };
    let _turn = TURN.lock().await;
    let schema = lockstep_tests::fresh_postgres_schema();
    let presence = ["--presence-lease-ms", "3000", "--presence-grace-ms", "3000"];
    let (mut a, url_a) = start_server(&url, &schema, 11, &presence).await;
    let (mut b, url_b) = start_server(&url, &schema, 12, &presence).await;
    let room = ChannelId::new("room").unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let (observer, mut seen) = spawn_client(config("observer", 1), failover(vec![url_b.clone()]));
    observer.connect();
    observer.subscribe(room.clone()).unwrap();
    let mut log = Vec::new();
    wait_for(&mut seen, &mut log, deadline, "the observer's join", |e| {
        subscribed(e, &room)
    })
    .await;
    // The mover falls over to B; the other only knows A.
    let (mover, mut mover_events) = spawn_client(
        config("mover", 2),
        failover(vec![url_a.clone(), url_b.clone()]),
    );
    let (gone, mut gone_events) = spawn_client(config("gone", 3), failover(vec![url_a.clone()]));
    for (h, events) in [(&mover, &mut mover_events), (&gone, &mut gone_events)] {
        h.connect();
        h.subscribe(room.clone()).unwrap();
        wait_for(events, &mut Vec::new(), deadline, "a join on A", |e| {
            subscribed(e, &room)
        })
        .await;
    }
    let joined = |who: &str| {
        let who = UserId::new(who).unwrap();
        move |e: &ClientEvent| matches!(e, ClientEvent::MemberJoined { user, .. } if *user == who)
    };
    let left = |who: &str| {
        let who = UserId::new(who).unwrap();
        move |e: &ClientEvent| matches!(e, ClientEvent::MemberLeft { user, .. } if *user == who)
    };
    wait_for(
        &mut seen,
        &mut log,
        deadline,
        "mover's join",
        joined("mover"),
    )
    .await;
    if !log.iter().any(joined("gone")) {
        wait_for(&mut seen, &mut log, deadline, "gone's join", joined("gone")).await;
    }
    a.start_kill().unwrap();
    let _ = a.wait().await;
    let killed = tokio::time::Instant::now();
    // The mover is back on B (well within the grace on any machine).
    wait_for(
        &mut mover_events,
        &mut Vec::new(),
        deadline,
        "the mover's re-join",
        |e| subscribed(e, &room),
    )
    .await;
    wait_for(&mut seen, &mut log, deadline, "gone's leave", left("gone")).await;
    let took = killed.elapsed();
    // A bound, not a measurement: a lease, a beat, the grace, and slack.
    assert!(took < Duration::from_secs(30), "gone left after {took:?}");
    // Anything B announced with gone's leave is before the mover's message
    // on the observer's socket.
    mover.send(room.clone(), Body::text("after")).unwrap();
    wait_for(&mut seen, &mut log, deadline, "the mover's message", |e| {
        matches!(e, ClientEvent::Log { event: LogEvent::Message(m), .. } if m.author_id.as_str() == "mover")
    })
    .await;
    assert!(!log.iter().any(left("mover")), "the mover flapped: {log:?}");
    assert_eq!(log.iter().filter(|e| joined("mover")(e)).count(), 1);
    assert_eq!(log.iter().filter(|e| left("gone")(e)).count(), 1);
    observer.close().await;
    mover.close().await;
    drop(gone);
    b.start_kill().unwrap();
    let _ = b.wait().await;
}

/// A member's view of who is present: the last join's snapshot, then the
/// joins and leaves since.
fn view(log: &[ClientEvent], room: &ChannelId) -> BTreeSet<UserId> {
    let mut users = BTreeSet::new();
    for e in log {
        match e {
            ClientEvent::Members { channel, members } if channel == room => {
                users = members.iter().cloned().collect();
            }
            ClientEvent::MemberJoined { channel, user } if channel == room => {
                users.insert(user.clone());
            }
            ClientEvent::MemberLeft { channel, user } if channel == room => {
                users.remove(user);
            }
            _ => {}
        }
    }
    users
}

/// The first member of a room on a process is told of the users present
/// on the other (whose announcements that process did not follow, having
/// no member there then), once; and of their leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_member_on_a_process_sees_the_users_of_the_other() {
    let Some(url) = lockstep_tests::postgres_url() else {
        return;
    };
    let _turn = TURN.lock().await;
    let schema = lockstep_tests::fresh_postgres_schema();
    let presence = ["--presence-grace-ms", "500"];
    let (mut a, url_a) = start_server(&url, &schema, 21, &presence).await;
    let (mut b, url_b) = start_server(&url, &schema, 22, &presence).await;
    let room = ChannelId::new("room").unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let (alice, mut alice_events) = spawn_client(config("alice", 1), failover(vec![url_a]));
    alice.connect();
    alice.subscribe(room.clone()).unwrap();
    wait_for(
        &mut alice_events,
        &mut Vec::new(),
        deadline,
        "alice's join",
        |e| subscribed(e, &room),
    )
    .await;
    let (bob, mut bob_events) = spawn_client(config("bob", 2), failover(vec![url_b]));
    bob.connect();
    bob.subscribe(room.clone()).unwrap();
    let mut log = Vec::new();
    wait_for(&mut bob_events, &mut log, deadline, "bob's join", |e| {
        subscribed(e, &room)
    })
    .await;
    let both: BTreeSet<UserId> = ["alice", "bob"].map(|u| UserId::new(u).unwrap()).into();
    let mut guard = 0;
    while view(&log, &room) != both {
        guard += 1;
        assert!(guard < 10_000, "bob's view: {:?}", view(&log, &room));
        wait_for(
            &mut bob_events,
            &mut log,
            deadline,
            "alice in bob's view",
            |_| true,
        )
        .await;
    }
    let is_alice = |e: &ClientEvent| {
        matches!(e, ClientEvent::MemberJoined { user, .. } if user.as_str() == "alice")
            || matches!(e, ClientEvent::Members { members, .. } if members.iter().any(|u| u.as_str() == "alice"))
    };
    assert_eq!(
        log.iter().filter(|e| is_alice(e)).count(),
        1,
        "told twice: {log:?}"
    );
    // Alice goes: bob sees her leave after the grace.
    alice.close().await;
    wait_for(
        &mut bob_events,
        &mut log,
        deadline,
        "alice's leave",
        |e| matches!(e, ClientEvent::MemberLeft { user, .. } if user.as_str() == "alice"),
    )
    .await;
    assert_eq!(
        view(&log, &room),
        BTreeSet::from([UserId::new("bob").unwrap()])
    );
    bob.close().await;
    for p in [&mut a, &mut b] {
        let _ = p.start_kill();
        let _ = p.wait().await;
    }
}
