//! Whole-system tests (issue 3): real client machines, the real server
//! machine and a `MemStore` on an explicit virtual clock, driven in bounded
//! steps by the lab's `World`, watched by the oracle after every step.
//!
//! Each test asserts the outcome it is named after, asserts the oracle found
//! nothing, and snapshots the readable trace for review.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use lockstep_core::client::SubscriptionState;
use lockstep_core::wire::{ErrorCode, LogEvent};
use lockstep_sim::net::PartitionKind;
use lockstep_sim::op::Op;

#[test]
fn two_clients_chat() {
    let mut w = world(2, &["room-0"]);
    join(&mut w, c(0), "room-0");
    join(&mut w, c(1), "room-0");
    run_to(&mut w, 500);
    send(&mut w, c(0), "room-0", 40);
    run_to(&mut w, 600);
    send(&mut w, c(1), "room-0", 60);
    run_to(&mut w, 1_000);

    assert_eq!(head(&w, "room-0").0, 2);
    let authors: Vec<_> = log(&w, "room-0")
        .iter()
        .map(|e| match e {
            LogEvent::Message(m) => m.author_id.to_string(),
            other => panic!("only messages expected, got {other:?}"),
        })
        .collect();
    assert_eq!(authors, ["user-0", "user-1"]);
    for i in 0..2 {
        assert_eq!(delivered(&w, c(i), "room-0"), seqs(2), "c{i}");
        assert_eq!(view(&w, c(i), "room-0").last_seq.0, 2);
        assert_eq!(
            w.client(c(i)).expect("a client machine").outbox().count(),
            0,
            "c{i} outbox empty"
        );
    }
    // Each sender got exactly one outcome, and its own broadcast did not
    // show the message twice (delivered once, above).
    assert_eq!(lines_with(&w, &["c0 app:", "sent as #1"]).len(), 1);
    assert_eq!(lines_with(&w, &["c1 app:", "sent as #2"]).len(), 1);
    assert_no_violation(&w);
    assert_eq!(w.pending(), None);
    insta::assert_snapshot!(trace(&w));
}

#[test]
fn a_late_joiner_gets_the_backlog() {
    let mut w = world(3, &["room-0"]);
    join(&mut w, c(0), "room-0");
    join(&mut w, c(1), "room-0");
    run_to(&mut w, 500);
    send(&mut w, c(0), "room-0", 10);
    send(&mut w, c(1), "room-0", 10);
    send(&mut w, c(0), "room-0", 10);
    run_to(&mut w, 1_000);
    assert_eq!(head(&w, "room-0").0, 3);

    // c2 arrives after the conversation happened.
    join(&mut w, c(2), "room-0");
    run_to(&mut w, 2_000);

    assert_eq!(delivered(&w, c(2), "room-0"), seqs(3));
    let v = view(&w, c(2), "room-0");
    assert_eq!(v.last_seq.0, 3);
    assert_eq!(v.subscription, SubscriptionState::Subscribed);
    assert_eq!(v.members.len(), 3);
    // The others see it arrive.
    assert_eq!(lines_with(&w, &["<- presence:join room-0 user-2"]).len(), 2);
    assert_no_violation(&w);
    assert_eq!(w.pending(), None);
    insta::assert_snapshot!(trace(&w));
}

#[test]
fn a_reconnecting_client_recovers_exactly_the_missed_events() {
    let mut w = world(2, &["room-0"]);
    join(&mut w, c(0), "room-0");
    join(&mut w, c(1), "room-0");
    run_to(&mut w, 500);
    send(&mut w, c(0), "room-0", 10);
    run_to(&mut w, 600);
    assert_eq!(delivered(&w, c(1), "room-0"), seqs(1));

    // c1's connection dies; c0 keeps talking while c1 is away.
    w.apply(&Op::DropConnection { client: c(1) });
    run_to(&mut w, 620);
    assert!(!is_connected(&w, c(1)));
    send(&mut w, c(0), "room-0", 10);
    send(&mut w, c(0), "room-0", 10);
    run_to(&mut w, 700);
    assert_eq!(head(&w, "room-0").0, 3);
    assert_eq!(delivered(&w, c(1), "room-0"), seqs(1), "nothing while away");

    run_to(&mut w, 3_000);
    assert!(is_connected(&w, c(1)));
    // The re-join names its position and the server answers with exactly
    // the two missed events, recovered.
    let rejoin = lines_with(&w, &["c1 -> join room-0", "since"]);
    assert_eq!(rejoin.len(), 1, "{rejoin:#?}");
    assert!(rejoin[0].ends_with("#1"), "{}", rejoin[0]);
    let ack = lines_with(&w, &["c1 <- ack", "join room-0", "events=2 recovered"]);
    assert_eq!(ack.len(), 1, "{ack:#?}");
    // Every event exactly once, in order, across the reconnect.
    assert_eq!(delivered(&w, c(1), "room-0"), seqs(3));
    assert_eq!(view(&w, c(1), "room-0").last_seq, head(&w, "room-0"));
    assert_no_violation(&w);
    assert_eq!(w.pending(), None);
    insta::assert_snapshot!(trace(&w));
}

#[test]
fn an_unauthorized_join_is_forbidden() {
    let mut w = world(2, &["room-0", "private:user-1"]);
    join(&mut w, c(0), "private:user-1");
    join(&mut w, c(1), "private:user-1");
    run_to(&mut w, 500);

    assert_eq!(
        view(&w, c(0), "private:user-1").subscription,
        SubscriptionState::Failed {
            code: ErrorCode::Forbidden
        }
    );
    assert_eq!(
        view(&w, c(1), "private:user-1").subscription,
        SubscriptionState::Subscribed
    );
    // The intruder cannot post there either: refused by its own client.
    send(&mut w, c(0), "private:user-1", 10);
    // The owner can.
    send(&mut w, c(1), "private:user-1", 10);
    run_to(&mut w, 1_000);
    assert!(lines_with(&w, &["c0 -> send"]).is_empty());
    assert_eq!(head(&w, "private:user-1").0, 1);
    assert!(delivered(&w, c(0), "private:user-1").is_empty());
    // A permanent refusal is not retried: one join only.
    assert_eq!(lines_with(&w, &["c0 -> join private:user-1"]).len(), 1);
    assert!(
        is_connected(&w, c(0)),
        "the refusal did not cost the connection"
    );
    assert_no_violation(&w);
    assert_eq!(w.pending(), None);
    insta::assert_snapshot!(trace(&w));
}

#[test]
fn an_oversized_message_is_refused_and_consumes_no_seq() {
    let mut w = world(2, &["room-0"]);
    join(&mut w, c(0), "room-0");
    join(&mut w, c(1), "room-0");
    run_to(&mut w, 500);
    send(&mut w, c(0), "room-0", 70_000);
    run_to(&mut w, 1_000);

    let failed = lines_with(&w, &["c0 app:", "failed", "too_large"]);
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(head(&w, "room-0").0, 0, "no seq consumed");
    assert!(lines_with(&w, &["c1 <- message:new"]).is_empty());

    // The next message takes seq 1: nothing was burnt.
    send(&mut w, c(0), "room-0", 10);
    run_to(&mut w, 1_500);
    assert_eq!(head(&w, "room-0").0, 1);
    assert_eq!(delivered(&w, c(1), "room-0"), seqs(1));
    assert!(is_connected(&w, c(0)));
    assert_no_violation(&w);
    assert_eq!(w.pending(), None);
    insta::assert_snapshot!(trace(&w));
}

#[test]
fn a_send_before_joining_is_refused_or_waits_for_the_join() {
    let mut w = world(2, &["room-0", "room-1"]);
    // c0 is connected to room-0 only; a send to room-1 is refused at once
    // by the client (no subscription wanted): nothing travels.
    join(&mut w, c(0), "room-0");
    join(&mut w, c(1), "room-1");
    run_to(&mut w, 500);
    send(&mut w, c(0), "room-1", 10);
    run_to(&mut w, 1_000);
    assert!(lines_with(&w, &["c0 -> send"]).is_empty());
    assert_eq!(
        w.client(c(0)).expect("a client machine").outbox().count(),
        0
    );
    assert_eq!(head(&w, "room-1").0, 0);

    // Subscribing and sending at once, before the join is acked: the
    // message waits in the outbox and goes out after the join.
    w.apply(&Op::Subscribe {
        client: c(0),
        channel: ch("room-1"),
    });
    send(&mut w, c(0), "room-1", 10);
    assert_eq!(
        w.client(c(0)).expect("a client machine").outbox().count(),
        1
    );
    run_to(&mut w, 1_500);
    let lines = w.trace().lines();
    let join_ack = lines
        .iter()
        .position(|l| l.contains("c0 <- ack") && l.contains("join room-1"))
        .expect("join acked");
    let sent = lines
        .iter()
        .position(|l| l.contains("c0 -> send room-1"))
        .expect("sent");
    assert!(join_ack < sent, "the send waited for the join");
    assert_eq!(head(&w, "room-1").0, 1);
    assert_eq!(delivered(&w, c(1), "room-1"), seqs(1));
    assert_no_violation(&w);
    assert_eq!(w.pending(), None);
    insta::assert_snapshot!(trace(&w));
}

#[test]
fn a_flood_hits_the_rate_limit_and_the_connection_keeps_working() {
    let mut w = world(2, &["room-0"]);
    join(&mut w, c(0), "room-0");
    join(&mut w, c(1), "room-0");
    run_to(&mut w, 500);
    for _ in 0..80 {
        send(&mut w, c(0), "room-0", 10);
    }
    let sent_ids: Vec<_> = w
        .client(c(0))
        .expect("a client machine")
        .outbox()
        .map(|e| e.command.id())
        .collect();
    assert_eq!(sent_ids.len(), 80);
    let flood_at = w.now().as_millis();
    let done = converge(&mut w);
    assert!(done - flood_at < 20_000, "took {} ms", done - flood_at);

    // Some sends were refused as rate limited...
    let limited = lines_with(&w, &["c0 <- nack", "rate_limited"]);
    assert!(!limited.is_empty());
    // ...yet every message was stored once, in the order sent...
    let stored: Vec<_> = stored_msg_ids(&w, "room-0")
        .into_iter()
        .map(lockstep_core::client::EntryId::Message)
        .collect();
    assert_eq!(stored, sent_ids);
    assert_eq!(lines_with(&w, &["c0 app:", "sent as"]).len(), 80);
    assert!(lines_with(&w, &["c0 app:", "failed"]).is_empty());
    assert_eq!(delivered(&w, c(1), "room-0"), seqs(80));
    // ...on the one connection that stayed up all along.
    assert_eq!(lines_with(&w, &["c0 opens"]).len(), 1);
    assert!(lines_with(&w, &["c0 app: state reconnecting"]).is_empty());
    assert!(is_connected(&w, c(0)));
    assert_no_violation(&w);
    insta::assert_snapshot!(trace(&w));
}

#[test]
fn presence_join_and_leave_are_seen_and_a_quick_reconnect_does_not_flap() {
    let mut w = world(2, &["room-0"]);
    join(&mut w, c(0), "room-0");
    run_to(&mut w, 500);
    assert_eq!(view(&w, c(0), "room-0").members.len(), 1);

    join(&mut w, c(1), "room-0");
    run_to(&mut w, 1_000);
    assert_eq!(
        lines_with(&w, &["c0 <- presence:join room-0 user-1"]).len(),
        1
    );
    let both: Vec<String> = view(&w, c(0), "room-0")
        .members
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(both, ["user-0", "user-1"]);

    // A dropped connection that comes back inside the 2 s grace: c0 sees
    // no leave and no second join.
    w.apply(&Op::DropConnection { client: c(1) });
    run_to(&mut w, 2_000);
    assert!(is_connected(&w, c(1)), "back within the grace");
    run_to(&mut w, 5_000);
    assert!(lines_with(&w, &["c0 <- presence:leave"]).is_empty());
    assert_eq!(lines_with(&w, &["c0 <- presence:join"]).len(), 1);
    assert_eq!(view(&w, c(0), "room-0").members.len(), 2);

    // A real departure is seen, after the grace.
    w.apply(&Op::Disconnect { client: c(1) });
    let left_at = w.now().as_millis();
    run_to(&mut w, 9_000);
    let leave = lines_with(&w, &["c0 <- presence:leave room-0 user-1"]);
    assert_eq!(leave.len(), 1);
    let leave_ms = leave_time_ms(&leave[0]);
    assert!(
        (left_at + 2_000..=left_at + 2_100).contains(&leave_ms),
        "leave at {leave_ms} ms, departure at {left_at} ms"
    );
    assert_eq!(view(&w, c(0), "room-0").members.len(), 1);
    assert_no_violation(&w);
    assert_eq!(w.pending(), None);
    insta::assert_snapshot!(trace(&w));
}

/// The virtual time of a trace line (`   12.345s  ...`), in ms.
fn leave_time_ms(line: &str) -> u64 {
    let t = line.split_whitespace().next().expect("a time");
    let (s, ms) = t.trim_end_matches('s').split_once('.').expect("s.ms");
    s.parse::<u64>().expect("seconds") * 1000 + ms.parse::<u64>().expect("ms")
}

#[test]
fn the_author_edits_and_deletes() {
    let mut w = world(2, &["room-0"]);
    join(&mut w, c(0), "room-0");
    join(&mut w, c(1), "room-0");
    run_to(&mut w, 500);
    send(&mut w, c(0), "room-0", 10);
    send(&mut w, c(0), "room-0", 10);
    run_to(&mut w, 1_000);
    w.apply(&Op::Edit {
        client: c(0),
        channel: ch("room-0"),
        pick: 0,
    });
    w.apply(&Op::Delete {
        client: c(0),
        channel: ch("room-0"),
        pick: 1,
    });
    // c1 has nothing of its own: its edit is a no-op (ops cannot name
    // another user's message).
    w.apply(&Op::Edit {
        client: c(1),
        channel: ch("room-0"),
        pick: 0,
    });
    run_to(&mut w, 1_500);

    let kinds: Vec<&str> = log(&w, "room-0").iter().map(LogEvent::kind).collect();
    assert_eq!(kinds, ["message", "message", "updated", "deleted"]);
    assert_eq!(lines_with(&w, &["c0 app:", "applied as #3"]).len(), 1);
    assert_eq!(lines_with(&w, &["c0 app:", "applied as #4"]).len(), 1);
    assert!(lines_with(&w, &["c1 -> update"]).is_empty());
    for i in 0..2 {
        assert_eq!(delivered(&w, c(i), "room-0"), seqs(4), "c{i}");
    }
    assert_no_violation(&w);
    assert_eq!(w.pending(), None);
    insta::assert_snapshot!(trace(&w));
}

#[test]
fn typing_expires() {
    let mut w = world(2, &["room-0"]);
    join(&mut w, c(0), "room-0");
    join(&mut w, c(1), "room-0");
    run_to(&mut w, 500);
    w.apply(&Op::Typing {
        client: c(0),
        channel: ch("room-0"),
        active: true,
    });
    run_to(&mut w, 600);
    let typing: Vec<String> = view(&w, c(1), "room-0")
        .typing
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(typing, ["user-0"]);
    assert!(view(&w, c(0), "room-0").typing.is_empty(), "not to oneself");

    // Nobody refreshes it: gone after the 5 s TTL.
    run_to(&mut w, 5_400);
    assert_eq!(view(&w, c(1), "room-0").typing.len(), 1, "still alive");
    run_to(&mut w, 6_000);
    assert!(view(&w, c(1), "room-0").typing.is_empty());
    assert_no_violation(&w);
    assert_eq!(w.pending(), None);
    insta::assert_snapshot!(trace(&w));
}

#[test]
fn a_retried_send_is_stored_once_and_broadcast_once() {
    let mut w = world(2, &["room-0"]);
    join(&mut w, c(0), "room-0");
    join(&mut w, c(1), "room-0");
    run_to(&mut w, 500);
    // The store turns slow: the commit outlasts the client's 10 s request
    // timeout, so the client resends with the same client message id.
    w.apply(&Op::StoreLatency { ms: 12_000 });
    send(&mut w, c(0), "room-0", 10);
    run_to(&mut w, 10_600);
    let cm = w
        .client(c(0))
        .expect("a client machine")
        .outbox()
        .next()
        .map(|e| e.command.id())
        .expect("still pending");
    let lockstep_core::client::EntryId::Message(cm) = cm else {
        panic!("a message entry")
    };
    let cm = cm.to_string();
    let frames = lines_with(&w, &["c0 -> send room-0", &cm]);
    assert_eq!(frames.len(), 2, "sent, then retried: {frames:#?}");
    // The store is quick again: the retry now races the slow original.
    w.apply(&Op::StoreLatency { ms: 0 });
    let done = converge(&mut w);
    assert!(done < 40_000, "converged at {done} ms");
    // Both requests get the one original answer, late but identical.
    run_for(&mut w, 1_000);
    assert_eq!(lines_with(&w, &["c0 <- ack", "send #1 "]).len(), 2);

    assert_eq!(stored_msg_ids(&w, "room-0").len(), 1);
    assert_eq!(stored_msg_ids(&w, "room-0")[0].to_string(), cm);
    assert_eq!(lines_with(&w, &["store commits", &cm]).len(), 1);
    assert_eq!(lines_with(&w, &["c1 <- message:new", &cm]).len(), 1);
    assert_eq!(delivered(&w, c(1), "room-0"), seqs(1));
    assert_eq!(delivered(&w, c(0), "room-0"), seqs(1));
    assert_eq!(lines_with(&w, &["c0 app:", &cm, "sent as #1"]).len(), 1);
    assert_no_violation(&w);
    insta::assert_snapshot!(trace(&w));
}

#[test]
fn read_watermarks_never_go_back() {
    // Two users; user-0 has two devices (c0 and c2), user-1 one (c1).
    let mut p = params(3, &["room-0"]);
    p.users = 2;
    let mut w = world_from(p);
    assert_eq!(w.user(c(2)), w.user(c(0)));
    for i in 0..3 {
        join(&mut w, c(i), "room-0");
    }
    run_to(&mut w, 500);
    send(&mut w, c(1), "room-0", 10);
    run_to(&mut w, 600);
    assert_eq!(view(&w, c(2), "room-0").last_seq.0, 1);

    // c2 stops hearing the server (its own frames still get through)
    // while the conversation and user-0's other device move on.
    w.apply(&Op::Partition {
        clients: vec![c(2)],
        kind: PartitionKind::ToClientOnly,
    });
    send(&mut w, c(1), "room-0", 10);
    send(&mut w, c(1), "room-0", 10);
    run_to(&mut w, 700);
    let read = |client| Op::Read {
        client,
        channel: ch("room-0"),
    };
    w.apply(&read(c(0)));
    run_to(&mut w, 800);
    assert_eq!(view(&w, c(0), "room-0").read_up_to.0, 3);
    // The lagging device reads what it has seen: #1, behind user-0's #3.
    w.apply(&read(c(2)));
    run_to(&mut w, 900);
    w.apply(&Op::Repair);
    run_to(&mut w, 2_000);

    assert_eq!(lines_with(&w, &["c2 -> read room-0", "up to #1"]).len(), 1);
    // The server answers with the watermark it keeps (#3), and tells nobody
    // about the stale read: user-1 saw user-0's watermark only advance.
    assert_eq!(lines_with(&w, &["c2 <- ack", "read #3"]).len(), 1);
    let seen: Vec<String> = lines_with(&w, &["c1 <- message:read room-0 user-0"]);
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert!(seen[0].ends_with("#3"));
    // The lagging device learns user-0's true watermark as a receipt (its
    // own `read_up_to` is what this device marked, never lowered).
    assert_eq!(
        lines_with(&w, &["c2 app: Read", "user-0", "up_to: #3"]).len(),
        1
    );
    assert!(view(&w, c(2), "room-0").read_up_to.0 >= 1);
    assert_eq!(view(&w, c(0), "room-0").read_up_to.0, 3);
    assert_no_violation(&w);
    assert_eq!(w.pending(), None);
    insta::assert_snapshot!(trace(&w));
}

#[test]
fn a_store_failure_answers_retryable_and_broadcasts_nothing() {
    let mut w = world(2, &["room-0"]);
    join(&mut w, c(0), "room-0");
    join(&mut w, c(1), "room-0");
    run_to(&mut w, 500);
    w.apply(&Op::StoreFail { duration_ms: 1_500 });
    send(&mut w, c(0), "room-0", 10);
    run_to(&mut w, 1_900);
    // Refused with a retryable error while the store fails; nothing
    // reached the other member, nothing is stored.
    assert!(!lines_with(&w, &["c0 <- nack", "unavailable"]).is_empty());
    assert!(lines_with(&w, &["c1 <- message:new"]).is_empty());
    assert_eq!(head(&w, "room-0").0, 0);
    assert_eq!(
        w.client(c(0)).expect("a client machine").outbox().count(),
        1,
        "kept for a retry"
    );

    // The store recovers; the retry is stored once and broadcast once.
    let done = converge(&mut w);
    assert!(done < 10_000, "converged at {done} ms");
    assert_eq!(stored_msg_ids(&w, "room-0").len(), 1);
    assert_eq!(lines_with(&w, &["c1 <- message:new"]).len(), 1);
    assert_eq!(delivered(&w, c(1), "room-0"), seqs(1));
    assert_eq!(lines_with(&w, &["c0 app:", "sent as #1"]).len(), 1);
    assert!(lines_with(&w, &["c0 app:", "failed"]).is_empty());
    assert!(
        is_connected(&w, c(0)),
        "one request failed, not the connection"
    );
    assert_eq!(lines_with(&w, &["c0 opens"]).len(), 1);
    assert_no_violation(&w);
    insta::assert_snapshot!(trace(&w));
}
