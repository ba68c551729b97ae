//! The send-order gate: pipelined sends keep their order through retryable
//! refusals (rate limits, store failures). Found by the lab (seed 45, calm
//! stream world): a rate-limited send was overtaken by a later one.

use insta::assert_snapshot;

use super::harness::{Harness, StoreMode};
use super::scenarios::send_ack;
use crate::server::ServerConfig;
use crate::store::{FailMode, MemStoreConfig};
use crate::wire::ErrorCode;

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
