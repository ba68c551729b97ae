//! Presence across processes: several machines on one store share an
//! arbiter (the PostgreSQL rule in memory, in [`World`]); each user is
//! announced once per channel whichever processes its sockets are on.

use crate::Instant;
use crate::server::tests::harness::{ch, user};
use crate::server::tests::shared::{World, arbitrated};
use crate::server::{PresenceOutcome, Relay, Server};
use crate::wire::{Ack, PresenceChange, ServerFrame};

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

/// The member list `conn`'s join of "room" was answered with.
fn join_members(w: &World, conn: u64) -> Vec<String> {
    let frames = w
        .inbox
        .get(&crate::server::ConnId(conn))
        .cloned()
        .unwrap_or_default();
    frames
        .iter()
        .find_map(|f| match f {
            ServerFrame::Ack {
                body: Ack::Join(ack),
                ..
            } => Some(ack.members.iter().map(|u| u.as_str().to_owned()).collect()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("c{conn} was not answered its join"))
}

#[test]
fn a_join_lists_the_users_present_on_other_processes() {
    let mut w = World::new(3, &arbitrated(), 5, 0);
    w.connect(0, 1, "alice");
    w.join(1, "room");
    w.connect(1, 2, "bob");
    w.join(2, "room");
    w.settle();
    // Carol is the first member on node 2: the arbiter tells it of alice
    // and bob, whose relays it could not have heard.
    w.connect(2, 3, "carol");
    w.join(3, "room");
    w.settle();
    let members: Vec<String> = w.nodes[2]
        .server
        .present_users(&ch("room"))
        .iter()
        .map(|u| u.as_str().to_owned())
        .collect();
    assert_eq!(members, ["alice", "bob", "carol"]);
    // The join reply may go out before the arbiter answers: whatever it
    // missed comes as one `presence:join` each, never twice.
    for who in ["alice", "bob"] {
        let listed = join_members(&w, 3).iter().any(|m| m == who);
        let (joins, leaves) = seen(&w, 3, who);
        assert_eq!((usize::from(listed) + joins, leaves), (1, 0), "{who}");
    }
    // A later member on node 1 is listed alice, bob and carol.
    w.connect(1, 4, "dave");
    w.join(4, "room");
    w.settle();
    assert_eq!(join_members(&w, 4), ["alice", "bob", "carol", "dave"]);
}

#[test]
fn lost_presence_relays_are_made_good_by_the_resync_once() {
    // Every hint and relay is lost: only the resync's question to the
    // arbiter tells node 1 of alice.
    let mut w = World::new(2, &arbitrated(), 6, 100);
    w.connect(1, 10, "bob");
    w.join(10, "room");
    w.settle();
    w.connect(0, 1, "alice");
    w.join(1, "room");
    w.settle();
    assert_eq!(seen(&w, 10, "alice"), (0, 0), "the relay was lost");
    w.resync();
    assert_eq!(seen(&w, 10, "alice"), (1, 0));
    w.resync();
    assert_eq!(seen(&w, 10, "alice"), (1, 0), "told once");
    w.disconnect(1);
    w.settle();
    assert_eq!(seen(&w, 10, "alice"), (1, 0), "the leave's relay was lost");
    assert!(
        w.nodes[1]
            .server
            .present_users(&ch("room"))
            .contains(&user("alice"))
    );
    w.resync();
    w.resync();
    assert_eq!(seen(&w, 10, "alice"), (1, 1));
    assert_eq!(w.nodes[1].server.present_users(&ch("room")), [user("bob")]);
}

#[test]
fn an_answer_older_than_a_relay_is_not_taken() {
    use crate::server::presence::Presence;
    let (room, alice) = (ch("room"), user("alice"));
    let mut p = Presence::default();
    p.ask(&room);
    p.join(&room, &user("bob"), crate::server::ConnId(1));
    // Bob's claim was the first: the room was told of him.
    assert!(p.news(&room, &user("bob"), true));
    let token = p.ask(&room);
    // Alice arrives elsewhere (relayed) after the arbiter was read
    // without her: the answer is stale and does not remove her.
    assert!(p.relayed(&room, &alice, true));
    assert_eq!(p.answered(&room, token, vec![user("bob")]), None);
    assert!(p.users(&room).contains(&alice));
    // Asked again, the fresh answer is taken; what the room knew already
    // is not announced again.
    let token = p.ask(&room);
    let answered = p.answered(&room, token, vec![user("bob"), alice.clone()]);
    assert_eq!(answered, Some(Default::default()));
    // A relay that repeats what the answer said is no news.
    assert!(!p.relayed(&room, &alice, true));
}

/// Found by the lab (`--servers 3`, seed 9): a user first claimed on
/// another process, whose relay was lost, joins here too. Its claim here
/// is not the first, yet this room never heard of it: it is told now.
#[test]
fn a_user_whose_first_claim_was_not_heard_is_announced_by_its_second() {
    let mut w = World::new(2, &arbitrated(), 8, 100);
    w.connect(1, 10, "bob");
    w.join(10, "room");
    w.settle();
    w.connect(0, 1, "alice");
    w.join(1, "room");
    w.settle();
    assert_eq!(seen(&w, 10, "alice"), (0, 0), "the relay was lost");
    w.connect(1, 2, "alice");
    w.join(2, "room");
    w.settle();
    assert_eq!(seen(&w, 10, "alice"), (1, 0));
    // The resync's answer agrees: nothing more is said.
    w.resync();
    assert_eq!(seen(&w, 10, "alice"), (1, 0));
}

/// Alice on node 0 beside the observers, then `tell` node 0 that she is
/// gone (as a relay or the arbiter's answer would): neither the room nor
/// her own connection hears a leave, and node 0 still lists her.
fn alice_gone_elsewhere_is_not_told_here(tell: impl FnOnce(&mut Server, Instant, PresenceChange)) {
    let mut w = observed();
    w.connect(0, 1, "alice");
    w.join(1, "room");
    w.settle();
    let change = PresenceChange {
        channel_id: ch("room"),
        user_id: user("alice"),
    };
    let now = w.now;
    tell(&mut w.nodes[0].server, now, change);
    w.drain(0);
    w.settle();
    assert!(
        w.nodes[0]
            .server
            .present_users(&ch("room"))
            .contains(&user("alice"))
    );
    assert_eq!(seen(&w, 10, "alice"), (1, 0));
    assert_eq!(seen(&w, 1, "alice"), (0, 0));
}

/// Found by the lab (`--servers 3`, seed 31): a process stalled past its
/// lease; another reaped and released its user, and relayed the leave.
/// The user is still connected to the stalled process: its room (the
/// user's own connections included) is not told it left.
#[test]
fn a_leave_relayed_for_a_user_still_here_is_not_told_here() {
    alice_gone_elsewhere_is_not_told_here(|server, now, change| {
        server.handle_relay(now, Relay::PresenceLeave(change));
    });
}

/// Found by the lab (`--servers 3`, seed 50): the arbiter was down; when
/// it came back a release from an earlier grace ran late and was the
/// last, while the user had come back here (its new claim queued behind
/// it). This room is not told the user left: the claim follows.
#[test]
fn a_late_last_release_of_a_user_back_here_is_not_told_here() {
    alice_gone_elsewhere_is_not_told_here(|server, now, change| {
        server.handle_presence(now, PresenceOutcome::Released { change, last: true });
    });
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
