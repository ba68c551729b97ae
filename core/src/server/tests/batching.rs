//! Append batching and pipelining: what queues behind a channel's appends
//! in flight goes to the store as one command, in order, and fails or
//! commits as one; up to `appends_in_flight` commands of a channel are at
//! the store at once, handled in issue order, and a failure fails what was
//! issued behind it.

use insta::assert_snapshot;

use super::harness::{Harness, StoreMode, ch};
use super::scenarios::send_ack;
use crate::server::ServerConfig;
use crate::store::{FailMode, MemStoreConfig};
use crate::wire::ErrorCode;

fn append_commands(h: &Harness<crate::server::Open>) -> usize {
    h.trace()
        .lines()
        .filter(|l| l.contains("<- append"))
        .count()
}

/// With pipelining off.
#[test]
fn appends_queued_behind_one_in_flight_commit_together_up_to_the_limit() {
    let config = ServerConfig {
        max_append_batch: 3,
        appends_in_flight: 1,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, MemStoreConfig::default(), crate::server::Open);
    h.alice_and_bob_in("general");
    h.mode = StoreMode::Held;
    let mut sent = vec![h.say(1, "general", "a-1", "one")];
    h.note("a-1 is at the store; the rest queue behind it");
    for i in 2..=6 {
        sent.push(h.say(1, "general", &format!("a-{i}"), "more"));
    }
    let bob = h.say(2, "general", "b-1", "bob's");
    assert_eq!(h.held(), 1, "one append command per channel at a time");
    for _ in 0..10 {
        h.run_store();
        h.deliver(false);
    }
    let seqs: Vec<u64> = sent.iter().map(|r| send_ack(&h, 1, *r).seq.0).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6], "alice's order is kept");
    assert_eq!(send_ack(&h, 2, bob).seq.0, 7);
    assert_eq!(append_commands(&h), 3, "1 alone, then 3 and 3");
    assert_eq!(
        h.event_seqs(2),
        [1, 2, 3, 4, 5, 6, 7],
        "broadcast in seq order"
    );
    assert_snapshot!(h.trace());
}

#[test]
fn a_burst_of_sends_handed_over_before_polling_leaves_as_one_command() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.join(1, "general");
    let reqs = h.say_burst(1, "general", &["a-1", "a-2", "a-3", "a-4"]);
    let seqs: Vec<u64> = reqs.iter().map(|r| send_ack(&h, 1, *r).seq.0).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(append_commands(&h), 1, "no lone first send");
    assert_snapshot!(h.trace());
}

/// With pipelining off.
#[test]
fn a_failed_batch_refuses_every_entry_and_the_gate_waits_for_the_earliest() {
    let config = ServerConfig {
        appends_in_flight: 1,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, MemStoreConfig::default(), crate::server::Open);
    h.alice_and_bob_in("general");
    h.mode = StoreMode::Held;
    let a1 = h.say(1, "general", "a-1", "one");
    let a2 = h.say(1, "general", "a-2", "two");
    let b1 = h.say(2, "general", "b-1", "bob's");
    let a3 = h.say(1, "general", "a-3", "three");
    h.run_store();
    h.deliver(false);
    assert_eq!(send_ack(&h, 1, a1).seq.0, 1);
    h.note("a-2, b-1 and a-3 went as one command; it fails");
    h.store.set_fail_mode(FailMode::Next(1));
    h.run_store();
    h.deliver(false);
    for (conn, req) in [(1, a2), (2, b1), (1, a3)] {
        assert_eq!(h.nacked(conn, req), ErrorCode::Unavailable);
    }
    assert_eq!(h.store.head(&ch("general")).map(|x| x.1.0), Some(1));
    h.mode = StoreMode::Immediate;
    let jumped = h.say(1, "general", "a-3", "three");
    assert_eq!(
        h.nacked(1, jumped),
        ErrorCode::Unavailable,
        "a-3 may not overtake a-2"
    );
    let a2 = h.say(1, "general", "a-2", "two");
    let a3 = h.say(1, "general", "a-3", "three");
    let b1 = h.say(2, "general", "b-1", "bob's");
    assert_eq!(send_ack(&h, 1, a2).seq.0, 2);
    assert_eq!(send_ack(&h, 1, a3).seq.0, 3);
    assert_eq!(send_ack(&h, 2, b1).seq.0, 4);
    assert_snapshot!(h.trace());
}

#[test]
fn the_next_batch_starts_while_the_previous_commits_and_completions_are_handled_in_order() {
    let config = ServerConfig {
        max_append_batch: 3,
        ..ServerConfig::default()
    };
    assert_eq!(config.appends_in_flight, 2, "the default pipelines");
    let mut h = Harness::with(config, MemStoreConfig::default(), crate::server::Open);
    h.alice_and_bob_in("general");
    h.mode = StoreMode::Held;
    let mut sent = vec![h.say(1, "general", "a-1", "one")];
    sent.push(h.say(1, "general", "a-2", "two"));
    h.note("a-1 and a-2 are at the store as two commands; the rest queue");
    for i in 3..=6 {
        sent.push(h.say(1, "general", &format!("a-{i}"), "more"));
    }
    assert_eq!(h.held(), 2, "two append commands of one channel at once");
    assert!(h.trace().contains("append general (behind)"));
    h.note("from here completions are handed back newest first");
    for _ in 0..10 {
        h.run_store();
        h.deliver(true);
    }
    let seqs: Vec<u64> = sent.iter().map(|r| send_ack(&h, 1, *r).seq.0).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6], "alice's order is kept");
    assert_eq!(
        h.event_seqs(2),
        [1, 2, 3, 4, 5, 6],
        "broadcast in seq order, whatever order completions came in"
    );
    assert_eq!(h.server.pending_store_ops(), 0);
    assert_snapshot!(h.trace());
}

#[test]
fn a_failed_command_fails_the_one_issued_behind_it_and_nothing_overtakes() {
    let mut h = Harness::new();
    h.alice_and_bob_in("general");
    h.mode = StoreMode::Held;
    let a1 = h.say(1, "general", "a-1", "one");
    let a2 = h.say(1, "general", "a-2", "two");
    let b1 = h.say(2, "general", "b-1", "bob's");
    let a3 = h.say(1, "general", "a-3", "three");
    assert_eq!(h.held(), 2, "a-1 and a-2 at the store, b-1 and a-3 queued");
    h.note("the store fails a-1's command; a-2's, issued behind it, fails by the chain rule");
    h.store.set_fail_mode(FailMode::Next(1));
    h.run_store();
    assert_eq!(h.store.head(&ch("general")).map(|x| x.1.0), None);
    h.deliver(true);
    for (conn, req) in [(1, a1), (1, a2), (1, a3)] {
        assert_eq!(h.nacked(conn, req), ErrorCode::Unavailable);
    }
    h.mode = StoreMode::Immediate;
    h.run_store();
    h.deliver(false);
    assert_eq!(
        send_ack(&h, 2, b1).seq.0,
        1,
        "bob's send was queued, not failed"
    );
    let jumped = h.say(1, "general", "a-2", "two");
    assert_eq!(
        h.nacked(1, jumped),
        ErrorCode::Unavailable,
        "a-2 may not overtake a-1"
    );
    let a1 = h.say(1, "general", "a-1", "one");
    let a2 = h.say(1, "general", "a-2", "two");
    let a3 = h.say(1, "general", "a-3", "three");
    let seqs: Vec<u64> = [a1, a2, a3]
        .iter()
        .map(|r| send_ack(&h, 1, *r).seq.0)
        .collect();
    assert_eq!(seqs, [2, 3, 4]);
    assert_eq!(h.event_seqs(2), [1, 2, 3, 4]);
    assert_snapshot!(h.trace());
}
