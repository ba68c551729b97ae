//! The oracle is proven to bite: for each of the nine invariants, a small
//! hand-written scenario is run twice, once as shipped (it must pass) and
//! once with one deliberate bug switched on (`lockstep_core::sabotage`, an
//! unstable test-only feature this crate's dev-dependency turns on). The
//! first violation reported must be exactly the invariant that bug breaks.
//!
//! The clean run proves the test measures the bug, not the scenario; the
//! sabotaged run proves the checker fires. A checker that never fires would
//! pass every seed and prove nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::rc::Rc;

use lockstep_core::client::Client;
use lockstep_core::ids::ChannelId;
use lockstep_core::sabotage::{Break, Sabotage};
use lockstep_core::server::{PrivateChannels, Server};
use lockstep_core::store::MemStore;
use lockstep_sim::net::{ClientIx, PartitionKind, TransportKind};
use lockstep_sim::op::Op;
use lockstep_sim::oracle::{Failure, Invariant};
use lockstep_sim::run::{self, RunReport};
use lockstep_sim::scenario::Scenario;
use lockstep_sim::swarm::{
    ClientKind, ClientPolicy, FaultMix, OpWeights, SwarmParams, TransportPolicy,
};
use lockstep_sim::world::{Hooks, World, WorldConfig};

const C0: ClientIx = ClientIx(0);
const C1: ClientIx = ClientIx(1);

fn ch(name: &str) -> ChannelId {
    ChannelId::new(name).unwrap()
}

fn room() -> ChannelId {
    ch("room-0")
}

/// A calm world of `clients` clients, one user each, on `transport`, with
/// `room-0` and `private:user-1`.
fn params(clients: u32, transport: TransportKind, faults: FaultMix) -> SwarmParams {
    SwarmParams {
        seed: 7,
        clients,
        users: clients,
        channels: vec![room(), ch("private:user-1")],
        transport_policy: match transport {
            TransportKind::Stream => TransportPolicy::AllStream,
            TransportKind::Datagram => TransportPolicy::AllDatagram,
        },
        transports: vec![transport; clients as usize],
        kind_policy: ClientPolicy::AllMachine,
        kinds: vec![ClientKind::Machine; clients as usize],
        faults,
        weights: OpWeights {
            connect: 0,
            disconnect: 0,
            subscribe: 0,
            unsubscribe: 0,
            send: 0,
            edit: 0,
            delete: 0,
            read: 0,
            typing: 0,
        },
        ops_per_sec: 0,
        safety_ms: 20_000,
    }
}

fn scenario(params: SwarmParams, ops: Vec<(u64, Op)>) -> Scenario {
    let s = Scenario {
        seed: params.seed,
        params,
        ops,
    };
    s.check().unwrap();
    s
}

/// Every client of the scenario connects and subscribes to `room-0` at 0.
fn online(clients: u32) -> Vec<(u64, Op)> {
    (0..clients)
        .flat_map(|i| {
            let client = ClientIx(i);
            [
                (0, Op::Connect { client }),
                (
                    0,
                    Op::Subscribe {
                        client,
                        channel: room(),
                    },
                ),
            ]
        })
        .collect()
}

fn send(client: ClientIx) -> Op {
    Op::Send {
        client,
        channel: room(),
        body_len: 10,
    }
}

fn run_with(scenario: &Scenario, sabotage: Sabotage) -> RunReport {
    let mut config = WorldConfig::new(scenario.params.clone());
    config.trace_lines = true;
    config.hooks = sabotaged(&sabotage);
    run::run_in(World::new(config).unwrap(), scenario)
}

/// Hooks that switch `sabotage` on in every machine the world builds; each
/// machine reads only the breaks that concern it.
fn sabotaged(sabotage: &Sabotage) -> Hooks {
    let (client, server, store) = (sabotage.clone(), sabotage.clone(), sabotage.clone());
    Hooks {
        client: Some(Rc::new(move |m: &mut Client| {
            m.set_sabotage(client.clone())
        })),
        server: Some(Rc::new(move |m: &mut Server<PrivateChannels>| {
            m.set_sabotage(server.clone());
        })),
        store: Some(Rc::new(move |m: &mut MemStore| {
            m.set_sabotage(store.clone())
        })),
    }
}

fn trace(report: &RunReport) -> String {
    report.trace.join("\n")
}

/// The scenario passes as shipped, and with `brk` on its first violation is
/// `expected`.
fn bites(scenario: &Scenario, brk: Break, expected: Invariant) -> RunReport {
    let clean = run_with(scenario, Sabotage::default());
    assert!(
        clean.violation.is_none(),
        "the scenario must pass without sabotage: {clean}\n{}",
        trace(&clean)
    );
    let broken = run_with(scenario, Sabotage::only(brk));
    let Some(violation) = &broken.violation else {
        panic!("{brk:?} went unnoticed: {broken}\n{}", trace(&broken));
    };
    eprintln!("{brk:?} caught: {violation}");
    assert_eq!(
        violation.invariant(),
        Some(expected),
        "{brk:?} must first break {expected}: {broken}\n{}",
        trace(&broken)
    );
    broken
}

#[test]
fn invariant_1_bites_when_the_store_acks_without_keeping() {
    // One send; the sabotaged store answers `Appended` and keeps nothing,
    // so the ack (and the broadcast) name a seq the log does not hold.
    let mut ops = online(1);
    ops.push((1_000, send(C0)));
    let s = scenario(params(1, TransportKind::Stream, FaultMix::calm()), ops);
    bites(&s, Break::StoreForgetsAppends, Invariant::AckedIsStored);
}

#[test]
fn invariant_2_bites_when_the_store_does_not_dedupe() {
    // The ack of a committed send is held by a server-to-client cut until
    // the client's 10 s request timeout resends it on the same connection;
    // the first append is long done, so only the store's dedupe stands
    // between the retry and a second copy.
    let mut ops = online(1);
    ops.push((
        1_000,
        Op::Partition {
            clients: vec![C0],
            kind: PartitionKind::ToClientOnly,
        },
    ));
    ops.push((1_000, send(C0)));
    ops.push((12_000, Op::Repair));
    let s = scenario(params(1, TransportKind::Stream, FaultMix::calm()), ops);
    bites(&s, Break::StoreSkipsDedupe, Invariant::NoDuplicates);
}

#[test]
fn invariant_3_bites_when_the_inbox_skips_the_gap_check() {
    // Datagrams with heavy reordering: c1 and c2 post 10 ms apart, so the
    // broadcasts reach c0 out of order, which its inbox must buffer until
    // the gap fills. Each sender's own posts are 400 ms apart, more than
    // any delay, so no sender's frames overtake each other (see the report:
    // pipelined sends on datagrams do lose their order).
    let faults = FaultMix {
        reorder_permille: 400,
        reorder_ms_max: 300,
        ..FaultMix::calm()
    };
    let mut ops = online(3);
    for i in 0..5 {
        ops.push((1_000 + i * 400, send(C1)));
        ops.push((1_010 + i * 400, send(ClientIx(2))));
    }
    let s = scenario(params(3, TransportKind::Datagram, faults), ops);
    bites(&s, Break::InboxSkipsGapCheck, Invariant::InOrderDelivery);
}

#[test]
fn invariant_4_bites_when_the_outbox_forgets_to_resend() {
    // A send goes out into a client-to-server cut and its connection is
    // dropped: the frame is lost with it, so only a resend on the next
    // connection can resolve the entry. Sabotaged, it never resolves: the
    // liveness phase reports the unresolved entry.
    let mut ops = online(1);
    ops.push((
        1_000,
        Op::Partition {
            clients: vec![C0],
            kind: PartitionKind::ToServerOnly,
        },
    ));
    ops.push((1_000, send(C0)));
    ops.push((2_000, Op::DropConnection { client: C0 }));
    ops.push((2_000, Op::Repair));
    let s = scenario(params(1, TransportKind::Stream, FaultMix::calm()), ops);
    let broken = bites(&s, Break::OutboxForgetsResend, Invariant::OneOutcome);
    assert!(broken.converged_at_ms.is_none());
}

#[test]
fn invariant_5_bites_when_the_server_ignores_its_order_gate() {
    // Three pipelined sends; the store fails the appends of the first two
    // (each its own command, the second issued behind the first: 50-75 ms
    // latency, a 98 ms failure window). The third, queued behind them,
    // must be refused until they are resent.
    let mut ops = online(1);
    ops.push((1_000, Op::StoreLatency { ms: 50 }));
    ops.push((2_000, Op::StoreFail { duration_ms: 98 }));
    ops.push((2_000, send(C0)));
    ops.push((2_000, send(C0)));
    ops.push((2_000, send(C0)));
    let s = scenario(params(1, TransportKind::Stream, FaultMix::calm()), ops);
    bites(&s, Break::ServerIgnoresOrderGate, Invariant::SenderOrder);
}

#[test]
fn invariant_5_bites_when_the_store_ignores_a_broken_chain() {
    // Two sends 30 ms apart, each its own append command, the second issued
    // behind the first (50-75 ms latency). The failure window fails the
    // first; the second executes after the window closes and must fail by
    // the chain rule, or it takes the first seq and the first, resent,
    // lands after it.
    let mut ops = online(1);
    ops.push((1_000, Op::StoreLatency { ms: 50 }));
    ops.push((2_000, Op::StoreFail { duration_ms: 78 }));
    ops.push((2_000, send(C0)));
    ops.push((2_030, send(C0)));
    let s = scenario(params(1, TransportKind::Stream, FaultMix::calm()), ops);
    bites(&s, Break::StoreIgnoresChains, Invariant::SenderOrder);
}

#[test]
fn invariant_6_bites_when_the_server_never_announces_a_leave() {
    // c1 leaves the room; after the 2 s grace period c0 must see it gone.
    let mut ops = online(2);
    ops.push((
        2_000,
        Op::Unsubscribe {
            client: C1,
            channel: room(),
        },
    ));
    let s = scenario(params(2, TransportKind::Stream, FaultMix::calm()), ops);
    let broken = bites(&s, Break::ServerKeepsPresence, Invariant::Convergence);
    assert!(broken.converged_at_ms.is_none());
    // A liveness failure says so, with the time this run allowed.
    let failure = broken.violation.as_ref().map(|v| v.failure);
    assert_eq!(
        failure,
        Some(Failure::NotConverged {
            invariant: Invariant::Convergence,
            allowed_ms: run::LIVENESS_MS_MAX,
        })
    );
    // And what never settled, in words (described only at the deadline).
    let detail = broken.violation.as_ref().map(|v| v.detail.as_str());
    assert!(
        detail.is_some_and(|d| d.contains("members") || d.contains("presence")),
        "{detail:?}"
    );
}

/// A world that does not settle between two ops is reported as a livelock,
/// not as a broken invariant.
#[test]
fn a_loop_that_never_settles_is_a_livelock() {
    let s = scenario(
        params(2, TransportKind::Stream, FaultMix::calm()),
        online(2),
    );
    let config = WorldConfig::new(s.params.clone());
    let report = run::run_bounded(World::new(config).unwrap(), &s, 5);
    let v = report
        .violation
        .expect("five events cannot reach the end of the run");
    assert_eq!(v.failure, Failure::Livelock { events_max: 5 });
    assert_eq!(v.invariant(), None);
    assert!(v.to_string().starts_with("livelock"), "{v}");
}

#[test]
fn invariant_7_bites_when_the_server_ignores_the_join_policy() {
    // user-0 asks for user-1's private channel, where user-1 then posts.
    let private = ch("private:user-1");
    let ops = vec![
        (0, Op::Connect { client: C0 }),
        (
            0,
            Op::Subscribe {
                client: C0,
                channel: private.clone(),
            },
        ),
        (0, Op::Connect { client: C1 }),
        (
            0,
            Op::Subscribe {
                client: C1,
                channel: private.clone(),
            },
        ),
        (
            1_000,
            Op::Send {
                client: C1,
                channel: private,
                body_len: 10,
            },
        ),
    ];
    let s = scenario(params(2, TransportKind::Stream, FaultMix::calm()), ops);
    bites(&s, Break::ServerIgnoresJoinPolicy, Invariant::OnlyJoined);
}

#[test]
fn invariant_7_bites_when_the_server_keeps_a_left_connection_in_the_room() {
    // c0 leaves the room (and the leave is acknowledged); c1 posts there
    // afterwards. On a stream, anything after the leave's ack was sent
    // after the server processed the leave.
    let mut ops = online(2);
    ops.push((
        1_000,
        Op::Unsubscribe {
            client: C0,
            channel: room(),
        },
    ));
    ops.push((2_000, send(C1)));
    let s = scenario(params(2, TransportKind::Stream, FaultMix::calm()), ops);
    bites(&s, Break::ServerKeepsRoomOnLeave, Invariant::OnlyJoined);
}

#[test]
fn invariant_8_bites_when_close_keeps_timers() {
    // A connected client (heartbeat armed) is closed by its app.
    let mut ops = online(1);
    ops.push((1_000, Op::Disconnect { client: C0 }));
    let s = scenario(params(1, TransportKind::Stream, FaultMix::calm()), ops);
    bites(&s, Break::CloseKeepsTimers, Invariant::NoLeaks);
}

#[test]
fn invariant_8_bites_when_a_lost_connection_keeps_its_timers() {
    // The network drops a connected client's connection (heartbeat armed):
    // only the reconnect timer may be left.
    let mut ops = online(1);
    ops.push((1_000, Op::DropConnection { client: C0 }));
    let s = scenario(params(1, TransportKind::Stream, FaultMix::calm()), ops);
    bites(&s, Break::LostConnectionKeepsTimers, Invariant::NoLeaks);
}

#[test]
fn invariant_9_bites_when_connecting_is_skipped() {
    // A client connects: the app must see `connecting` before `connected`.
    let s = scenario(
        params(1, TransportKind::Stream, FaultMix::calm()),
        online(1),
    );
    bites(&s, Break::SkipConnectingEvent, Invariant::StateChart);
}
