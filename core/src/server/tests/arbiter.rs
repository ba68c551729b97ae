//! Presence across processes: several machines on one store share an
//! arbiter (the PostgreSQL rule in memory, in [`World`]); each user is
//! announced once per channel whichever processes its sockets are on.

use crate::server::tests::harness::{ch, user};
use crate::server::tests::shared::{World, arbitrated};
use crate::wire::{PresenceChange, ServerFrame};

/// How many `presence:join` and `presence:leave` of `who` in `room` the
/// connection `conn` was sent.
fn seen(w: &World, conn: u64, who: &str) -> (usize, usize) {
    let change = PresenceChange {
        channel_id: ch("room"),
        user_id: user(who),
    };
    let frames = w
        .inbox
        .get(&crate::server::ConnId(conn))
        .cloned()
        .unwrap_or_default();
    let joins = frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::PresenceJoin(c) if *c == change))
        .count();
    let leaves = frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::PresenceLeave(c) if *c == change))
        .count();
    (joins, leaves)
}

/// Both observers (bob on node 0 or 1, carol on node 1 or 2) were sent
/// `want` (joins, leaves) of `who`.
fn observers_saw(w: &World, who: &str, want: (usize, usize)) {
    for observer in [10, 11] {
        assert_eq!(seen(w, observer, who), want, "c{observer} on {who}");
    }
}

/// Two observers, bob on node 0 and carol on node 1, in "room".
fn observed() -> World {
    let mut w = World::new(2, &arbitrated(), 7, 0);
    w.connect(0, 10, "bob");
    w.connect(1, 11, "carol");
    w.join(10, "room");
    w.join(11, "room");
    w.settle();
    w
}

#[test]
fn a_user_on_two_processes_is_announced_once() {
    let mut w = observed();
    assert_eq!(seen(&w, 10, "carol"), (1, 0), "carol's join crossed");
    w.connect(0, 1, "alice");
    w.connect(1, 2, "alice");
    w.join(1, "room");
    w.join(2, "room");
    w.settle();
    observers_saw(&w, "alice", (1, 0));
    // Her own connections are not told of her.
    assert_eq!(seen(&w, 1, "alice"), (0, 0));
    assert_eq!(seen(&w, 2, "alice"), (0, 0));
    // One socket goes: still here. Both go: one leave, after the grace.
    w.disconnect(1);
    w.settle();
    observers_saw(&w, "alice", (1, 0));
    w.disconnect(2);
    w.settle();
    observers_saw(&w, "alice", (1, 1));
    for node in &w.nodes {
        assert!(
            !node
                .server
                .present_users(&ch("room"))
                .contains(&user("alice"))
        );
    }
}

#[test]
fn a_user_moving_process_within_the_grace_does_not_flap() {
    let mut w = observed();
    w.connect(0, 1, "alice");
    w.join(1, "room");
    w.settle();
    // Her socket on node 0 drops; she is back on node 1 before the grace
    // ends (no time passes while the join completes).
    let gone_at = w.now;
    w.disconnect(1);
    w.connect(1, 2, "alice");
    w.join(2, "room");
    w.settle();
    assert!(w.now > gone_at, "node 0's grace ended and released");
    observers_saw(&w, "alice", (1, 0));
    w.disconnect(2);
    w.settle();
    observers_saw(&w, "alice", (1, 1));
}

#[test]
fn a_dead_process_users_leave_after_the_grace_once_reaped() {
    let mut w = World::new(3, &arbitrated(), 9, 0);
    w.connect(1, 10, "bob");
    w.connect(2, 11, "carol");
    w.join(10, "room");
    w.join(11, "room");
    w.connect(0, 1, "alice");
    w.connect(0, 2, "dave");
    w.join(1, "room");
    w.join(2, "room");
    w.settle();
    observers_saw(&w, "alice", (1, 0));
    w.kill(0);
    w.settle();
    // Nothing is said until the dead node's claims are reaped.
    assert_eq!(seen(&w, 10, "alice"), (1, 0));
    // Dave reconnects to node 2 at once; node 1 reaps, then alice's grace
    // runs out there: one leave for alice, everywhere, none for dave.
    w.connect(2, 3, "dave");
    w.join(3, "room");
    w.settle();
    let reaped_at = w.now;
    w.reap(1);
    w.settle();
    let grace = w.nodes[1].server.config().presence_grace;
    assert!(
        w.now >= reaped_at.saturating_add(grace),
        "leave after the grace"
    );
    observers_saw(&w, "alice", (1, 1));
    observers_saw(&w, "dave", (1, 0));
    assert!(
        w.nodes[1]
            .server
            .present_users(&ch("room"))
            .iter()
            .all(|u| *u != user("alice"))
    );
}

#[test]
fn a_process_that_lost_its_lease_claims_its_users_again() {
    let mut w = observed();
    w.connect(0, 1, "alice");
    w.join(1, "room");
    w.settle();
    // Node 0 stalls past its lease: node 1 adopts alice, node 0 learns it
    // lost its lease and claims her again, before node 1's grace ends.
    w.steal(0, 1);
    w.settle();
    observers_saw(&w, "alice", (1, 0));
    assert!(
        w.nodes[0]
            .server
            .present_users(&ch("room"))
            .contains(&user("alice"))
    );
    w.disconnect(1);
    w.settle();
    observers_saw(&w, "alice", (1, 1));
}

#[test]
fn a_user_in_grace_when_the_lease_is_lost_and_back_within_it_stays() {
    // The lab's seed 91 (`--servers 3`): alice's grace runs on node 0 when
    // node 0 finds its lease lost; she comes back to node 0 within the
    // grace. Node 0 claims her again with the users connected there, so
    // node 1's release of the adopted claim is not the last.
    let mut w = observed();
    w.connect(0, 1, "alice");
    w.join(1, "room");
    w.settle();
    w.disconnect(1);
    w.steal(0, 1);
    w.connect(0, 3, "alice");
    w.join(3, "room");
    w.settle();
    observers_saw(&w, "alice", (1, 0));
    let holders = w.claims.get(&(ch("room"), user("alice"))).cloned();
    assert_eq!(holders, Some(std::collections::BTreeSet::from([0])));
    w.disconnect(3);
    w.settle();
    observers_saw(&w, "alice", (1, 1));
}
