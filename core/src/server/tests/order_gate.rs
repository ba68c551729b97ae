//! The send-order gate: pipelined sends keep their order through retryable
//! refusals (rate limits, store failures). Found by the lab (seed 45, calm
//! stream world): a rate-limited send was overtaken by a later one.

use insta::assert_snapshot;

use super::harness::{Harness, StoreMode};
use super::scenarios::send_ack;
use crate::server::ServerConfig;
use crate::store::{FailMode, MemStoreConfig};
use crate::wire::{ErrorCode, ReqId};

#[test]
fn a_rate_limited_send_is_not_overtaken_by_a_later_one() {
    let config = ServerConfig {
        messages_per_sec: 2,
        messages_burst: 1,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, MemStoreConfig::default(), crate::server::Open);
    h.connect(1, "alice");
    h.join(1, "general");
    let first = h.say(1, "general", "a-1", "one");
    let second = h.say(1, "general", "a-2", "two");
    let third = h.say(1, "general", "a-3", "three");
    assert_eq!(send_ack(&h, 1, first).seq.0, 1);
    assert_eq!(h.nacked(1, second), ErrorCode::RateLimited);
    h.note("a-3 is refused by the gate even though the bucket refilled");
    h.advance(1_000);
    assert_eq!(h.nacked(1, third), ErrorCode::RateLimited);
    let jumped = h.say(1, "general", "a-3", "three");
    assert_eq!(
        h.nacked(1, jumped),
        ErrorCode::RateLimited,
        "a-3 may not overtake a-2"
    );
    h.note("resent in order, both pass");
    let second = h.say(1, "general", "a-2", "two");
    h.advance(1_000);
    let third = h.say(1, "general", "a-3", "three");
    assert_eq!(send_ack(&h, 1, second).seq.0, 2);
    assert_eq!(send_ack(&h, 1, third).seq.0, 3);
    assert_snapshot!(h.trace());
}

#[test]
fn a_send_queued_behind_a_failed_append_is_refused_not_stored_first() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.join(1, "general");
    h.mode = StoreMode::Held;
    let a = h.say(1, "general", "a-1", "one");
    let b = h.say(1, "general", "a-2", "two");
    h.store.set_fail_mode(FailMode::Next(1));
    for _ in 0..10 {
        h.run_store();
        h.deliver(false);
    }
    assert_eq!(h.nacked(1, a), ErrorCode::Unavailable);
    assert_eq!(
        h.nacked(1, b),
        ErrorCode::Unavailable,
        "a-2 waited behind a-1 and may not pass it"
    );
    assert_eq!(
        h.store
            .head(&super::harness::ch("general"))
            .map_or(0, |x| x.1.0),
        0
    );
    h.mode = StoreMode::Immediate;
    let a = h.say(1, "general", "a-1", "one");
    let b = h.say(1, "general", "a-2", "two");
    assert_eq!(send_ack(&h, 1, a).seq.0, 1);
    assert_eq!(send_ack(&h, 1, b).seq.0, 2);
    assert_snapshot!(h.trace());
}

/// Found by the lab (seed 250, streams with store failures): a later send
/// still queued from before a failure was stored ahead of the failed send's
/// retry, because the retry opened the gate before the queue reached it.
#[test]
fn a_retry_is_not_overtaken_by_a_later_send_queued_before_the_failure() {
    let mut h = Harness::new();
    h.alice_and_bob_in("general");
    h.mode = StoreMode::Held;
    let a1 = h.say(1, "general", "a-1", "one");
    h.say(2, "general", "b-1", "bob's");
    let a2 = h.say(1, "general", "a-2", "two");
    h.note("a-1 fails at the store; b-1 and a-2 wait behind it");
    h.store.set_fail_mode(FailMode::Next(1));
    h.run_store();
    h.deliver(false);
    assert_eq!(h.nacked(1, a1), ErrorCode::Unavailable);
    assert_eq!(
        h.nacked(1, a2),
        ErrorCode::Unavailable,
        "a-2 is refused at once"
    );
    h.note("alice resends in order while b-1 is still queued");
    let a1 = h.say(1, "general", "a-1", "one");
    let a2 = h.say(1, "general", "a-2", "two");
    for _ in 0..10 {
        h.run_store();
        h.deliver(false);
    }
    assert!(send_ack(&h, 1, a1).seq < send_ack(&h, 1, a2).seq);
    assert_snapshot!(h.trace());
}

/// Found by the lab (seed 262, streams): a dead connection's queued send
/// outlived the failure of an earlier one and was stored ahead of it when
/// the client resent both on its next connection.
#[test]
fn a_closed_connection_leaves_no_queued_send_behind() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.join(1, "general");
    h.mode = StoreMode::Held;
    h.say(1, "general", "a-1", "one");
    h.say(1, "general", "a-2", "two");
    h.note("the connection dies with a-1 at the store and a-2 queued");
    h.disconnect(1);
    h.store.set_fail_mode(FailMode::Next(1));
    h.run_store();
    h.deliver(false);
    h.run_store();
    h.deliver(false);
    assert_eq!(h.server.pending_store_ops(), 0, "a-2 was never issued");
    assert_eq!(
        h.store
            .head(&super::harness::ch("general"))
            .map_or(0, |x| x.1.0),
        0
    );
    h.note("alice resends both on a new connection, in order");
    h.connect(2, "alice");
    h.join(2, "general");
    let a1 = h.say(2, "general", "a-1", "one");
    let a2 = h.say(2, "general", "a-2", "two");
    for _ in 0..10 {
        h.run_store();
        h.deliver(false);
    }
    assert_eq!(send_ack(&h, 2, a1).seq.0, 1);
    assert_eq!(send_ack(&h, 2, a2).seq.0, 2);
    assert_snapshot!(h.trace());
}

/// Found by the lab (seed 877, streams): alice left a channel and joined
/// it again before the leave's ack, so her client kept the sends it had in
/// flight. The first of them failed at the store after the leave; the gate
/// was not closed (she had left), and her later sends still queued were
/// stored ahead of the failed one's retry.
#[test]
fn sends_queued_across_a_leave_and_a_join_wait_behind_a_failed_one() {
    let mut h = Harness::new();
    h.alice_and_bob_in("general");
    h.mode = StoreMode::Held;
    let burst: Vec<ReqId> = ["a-1", "a-2", "a-3", "a-4"]
        .iter()
        .map(|id| h.say(1, "general", id, id))
        .collect();
    assert_eq!(
        h.held(),
        2,
        "a-1 and a-2 are at the store, a-3 and a-4 queued"
    );
    h.note("alice leaves and joins again while a-1 and a-2 are at the store");
    h.leave(1, "general");
    h.store.set_fail_mode(FailMode::Next(1));
    h.run_store();
    h.deliver(false);
    h.join(1, "general");
    for _ in 0..10 {
        h.run_store();
        h.deliver(false);
    }
    for req in &burst {
        assert_eq!(h.nacked(1, *req), ErrorCode::Unavailable);
    }
    h.note("alice resends the burst in order");
    let again = h.say_burst(1, "general", &["a-1", "a-2", "a-3", "a-4"]);
    for _ in 0..10 {
        h.run_store();
        h.deliver(false);
    }
    let seqs: Vec<u64> = again.iter().map(|r| send_ack(&h, 1, *r).seq.0).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_snapshot!(h.trace());
}

/// The issue-12 trace (a plain socket.io-client app through a fault proxy,
/// found by a black-box run, not by the lab): #38 is refused
/// `rate_limited`, which closes the gate, so the pipelined #39 is refused
/// too; #39's refusal is still on the wire when #38's backoff ends, so the
/// client resends #38 and sends #40-#43 behind it. The gate used to open
/// when #38 was admitted, and #40-#43 were stored before #39. A client
/// that resends each refused message in the order it first sent them must
/// find its messages stored in that order: the gate passes to #39.
#[test]
fn a_refused_send_is_not_overtaken_while_its_refusal_is_on_the_wire() {
    let config = ServerConfig {
        messages_per_sec: 1,
        messages_burst: 5,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, MemStoreConfig::default(), crate::server::Open);
    h.connect(1, "alice");
    h.join(1, "general");
    h.note("#33-#37 spend the burst");
    let earlier = h.say_burst(1, "general", &["m-33", "m-34", "m-35", "m-36", "m-37"]);
    let refused = h.say_burst(1, "general", &["m-38", "m-39"]);
    assert_eq!(send_ack(&h, 1, earlier[4]).seq.0, 5);
    assert_eq!(h.nacked(1, refused[0]), ErrorCode::RateLimited);
    assert_eq!(
        h.nacked(1, refused[1]),
        ErrorCode::RateLimited,
        "behind #38"
    );
    h.note("#38's backoff ends; #39's refusal has not reached the client yet");
    h.advance(5_000);
    let m38 = h.say(1, "general", "m-38", "m-38");
    let later = h.say_burst(1, "general", &["m-40", "m-41", "m-42", "m-43"]);
    assert_eq!(send_ack(&h, 1, m38).seq.0, 6);
    for req in &later {
        assert_eq!(
            h.nacked(1, *req),
            ErrorCode::RateLimited,
            "#40-#43 may not overtake #39, whose refusal is still on its way"
        );
    }
    h.note("#39's refusal arrives; the client resends #39, then #40-#43, in order");
    h.advance(1_000);
    let m39 = h.say(1, "general", "m-39", "m-39");
    let later = h.say_burst(1, "general", &["m-40", "m-41", "m-42", "m-43"]);
    assert_eq!(send_ack(&h, 1, m39).seq.0, 7);
    for (i, req) in later.iter().enumerate() {
        assert_eq!(send_ack(&h, 1, *req).seq.0, 8 + i as u64);
    }
    assert_snapshot!(h.trace());
}

/// A send refused by its user's budget (spent by another connection of
/// the same user) closes the gate like one refused by its connection's.
#[test]
fn a_send_refused_by_the_user_budget_closes_the_gate_too() {
    let config = ServerConfig {
        messages_per_sec: 1,
        messages_burst: 2,
        user_budget_factor: 1,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, MemStoreConfig::default(), crate::server::Open);
    h.connect(1, "alice");
    h.connect(2, "alice");
    h.join(1, "general");
    h.join(2, "general");
    let other = h.say_burst(2, "general", &["b-1", "b-2"]);
    assert_eq!(send_ack(&h, 2, other[1]).seq.0, 2);
    let refused = h.say_burst(1, "general", &["a-1", "a-2"]);
    assert_eq!(
        h.nacked(1, refused[0]),
        ErrorCode::RateLimited,
        "the user's budget is spent"
    );
    assert_eq!(
        h.nacked(1, refused[1]),
        ErrorCode::RateLimited,
        "behind a-1"
    );
    h.advance(2_000);
    let jumped = h.say(1, "general", "a-2", "a-2");
    assert_eq!(
        h.nacked(1, jumped),
        ErrorCode::RateLimited,
        "a-2 may not overtake a-1"
    );
    let a1 = h.say(1, "general", "a-1", "a-1");
    let a2 = h.say(1, "general", "a-2", "a-2");
    assert_eq!(send_ack(&h, 1, a1).seq.0, 3);
    assert_eq!(send_ack(&h, 1, a2).seq.0, 4);
}

/// Found by the lab: seed 2156 (streams, store failures, unsubscribes).
/// Sends at the store when their connection left the channel failed there
/// afterwards; the gate they closed outlived the membership and held the
/// channel's next sends, after a re-join, for messages the client had
/// already given up (an app that leaves a channel fails what it had not
/// sent). A failure after the leave holds nothing back.
#[test]
fn sends_failing_after_their_connection_left_the_channel_hold_nothing_back() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.join(1, "general");
    h.mode = StoreMode::Held;
    h.say(1, "general", "a-1", "one");
    h.note("the app leaves the channel while a-1 is at the store; the store fails");
    h.leave(1, "general");
    h.store.set_fail_mode(FailMode::Next(1));
    h.run_store();
    h.deliver(false);
    h.mode = StoreMode::Immediate;
    h.note("back in the channel, the next message goes through");
    h.join(1, "general");
    let next = h.say(1, "general", "a-2", "two");
    assert_eq!(send_ack(&h, 1, next).seq.0, 1);
}

/// Found by the lab: seed 298 (mixed, an app restart resending what had
/// just been committed). A retry of a stored message, queued as a
/// duplicate, was refused when an earlier send failed behind it, and left
/// waiting in the gate: its client, which had its outcome, never resent
/// it, and every later send was held until the gate gave up on it. A retry
/// of a stored message holds no place.
#[test]
fn a_retry_of_a_stored_message_is_not_held_in_the_gate() {
    let config = ServerConfig {
        messages_per_sec: 1,
        messages_burst: 2,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, MemStoreConfig::default(), crate::server::Open);
    h.alice_and_bob_in("general");
    let stored = h.say_burst(1, "general", &["a-1", "a-2", "a-3"]);
    assert_eq!(send_ack(&h, 1, stored[0]).seq.0, 1);
    assert_eq!(h.nacked(1, stored[2]), ErrorCode::RateLimited, "a-3 waits");
    h.note("bob's send is at the store; alice's retry of a-1 queues behind it");
    h.mode = StoreMode::Held;
    h.say(2, "general", "b-1", "bob's");
    h.advance(1_000);
    let retry = h.say(1, "general", "a-1", "a-1");
    h.note("a-3 comes again and is refused again: the retry of a-1 is not behind it");
    let again = h.say(1, "general", "a-3", "a-3");
    assert_eq!(h.nacked(1, again), ErrorCode::RateLimited);
    h.mode = StoreMode::Immediate;
    h.run_store();
    h.deliver(false);
    h.drive();
    assert_eq!(send_ack(&h, 1, retry).seq.0, 1, "the original answer");
    h.advance(1_000);
    let a3 = h.say(1, "general", "a-3", "a-3");
    h.advance(1_000);
    let a4 = h.say(1, "general", "a-4", "a-4");
    assert!(send_ack(&h, 1, a3).seq < send_ack(&h, 1, a4).seq);
}
