//! Plain socket.io apps in the lab (issue 12): the model of a browser app
//! that follows `docs/PROTOCOL.md`'s guidance for plain clients, beside the
//! client machine, watched by the same oracle.
//!
//! Each test asserts the outcome it is named after and that the oracle
//! found nothing; the first snapshots its trace for review.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::rc::Rc;

use lockstep_core::sabotage::{Break, Sabotage};
use lockstep_sim::op::Op;
use lockstep_sim::oracle::Invariant;
use lockstep_sim::world::{World, WorldConfig};

fn world_with(clients: u32, plain: &[u32], tweak: impl FnOnce(&mut WorldConfig)) -> World {
    let mut config = WorldConfig::new(params_with_plain(clients, &["room-0"], plain));
    config.trace_lines = true;
    tweak(&mut config);
    World::new(config).expect("valid world")
}

#[test]
fn a_plain_app_chats_with_a_client_machine_and_resumes_from_its_position() {
    let mut w = world_with(2, &[0], |_| {});
    assert!(w.plain(c(0)).is_some() && w.client(c(1)).is_some());
    join(&mut w, c(0), "room-0");
    join(&mut w, c(1), "room-0");
    run_to(&mut w, 500);
    for _ in 0..3 {
        send(&mut w, c(0), "room-0", 20);
    }
    send(&mut w, c(1), "room-0", 20);
    run_to(&mut w, 1_000);
    assert_eq!(head(&w, "room-0").0, 4);
    for i in 0..2 {
        assert_eq!(delivered(&w, c(i), "room-0"), seqs(4), "c{i}");
    }

    // The plain app's connection drops; messages go on without it, and it
    // writes two of its own while offline.
    w.apply(&Op::DropConnection { client: c(0) });
    for _ in 0..3 {
        send(&mut w, c(1), "room-0", 20);
    }
    send(&mut w, c(0), "room-0", 20);
    send(&mut w, c(0), "room-0", 20);
    heal_and_converge(&mut w);

    assert_eq!(head(&w, "room-0").0, 9);
    assert_eq!(delivered(&w, c(0), "room-0"), seqs(9), "no gap, no repeat");
    assert_eq!(delivered(&w, c(1), "room-0"), seqs(9));
    assert_eq!(view(&w, c(0), "room-0").last_seq.0, 9);
    assert!(
        !lines_with(&w, &["c0 -> join room-0", "since"]).is_empty(),
        "it re-joined from its position"
    );
    let mine: Vec<String> = stored_msg_ids(&w, "room-0")
        .iter()
        .map(ToString::to_string)
        .filter(|id| id.starts_with('p'))
        .collect();
    assert_eq!(mine.len(), 5, "every message stored once: {mine:?}");
    assert_eq!(w.plain(c(0)).unwrap().unresolved(), 0);
    assert_no_violation(&w);
    insta::assert_snapshot!(trace(&w));
}

/// The issue-12 client: sends pipelined into a tight rate limit, each
/// refused one resent when its own backoff ends while later ones are in
/// flight or new. Every message is stored once, in the order sent (the
/// oracle's invariant 5 checks each outcome).
#[test]
fn a_pipelining_plain_app_keeps_its_order_through_the_rate_limit() {
    let w = pipelining(Sabotage::default());
    assert_no_violation(&w);
    assert_eq!(w.pending(), None, "settled");
    assert_eq!(head(&w, "room-0").0, 30);
    assert!(
        lines_with(&w, &["c0 <- nack", "rate_limited", "must be resent first"]).len() > 10,
        "the gate held sends back"
    );
    assert!(
        lines_with(&w, &["c0 -> send room-0"]).len() > 30,
        "refused sends were resent"
    );
    assert_eq!(
        lines_with(&w, &["c0 app:", "sent as"]).len(),
        30,
        "one outcome each"
    );
    assert_eq!(delivered(&w, c(0), "room-0"), seqs(30));
    assert_no_violation(&w);
}

/// The same app with the server's order gate switched off: the oracle
/// sees its messages stored out of order (invariant 5), so the test above
/// measures the gate, not the timing.
#[test]
fn the_oracle_sees_a_plain_app_s_order_broken_without_the_gate() {
    let w = pipelining(Sabotage::only(Break::ServerIgnoresOrderGate));
    let first = w.oracle().violations().first().map(|v| v.invariant());
    assert_eq!(
        first,
        Some(Some(Invariant::SenderOrder)),
        "{:#?}",
        w.oracle().violations()
    );
}

/// A plain app sends 24 messages at once into a rate limit of 2 a second
/// (burst 3), then 6 more, and runs until the world settles (or the oracle
/// objects).
fn pipelining(sabotage: Sabotage) -> World {
    let mut w = world_with(1, &[0], |config| {
        config.server.messages_per_sec = 2;
        config.server.messages_burst = 3;
        config.hooks.server = Some(Rc::new(move |s| s.set_sabotage(sabotage.clone())));
    });
    join(&mut w, c(0), "room-0");
    run_to(&mut w, 500);
    for _ in 0..24 {
        send(&mut w, c(0), "room-0", 20);
    }
    run_for(&mut w, 2_000);
    for _ in 0..6 {
        send(&mut w, c(0), "room-0", 20);
    }
    let deadline = w.now().as_millis() + CONVERGE_MS_MAX;
    while w.oracle().violations().is_empty()
        && w.pending().is_some()
        && w.now().as_millis() < deadline
    {
        run_for(&mut w, 100);
    }
    w
}

/// A re-join whose missed events weigh more than a reply may carry: the
/// reply is cut (`recovered: false`) and the app pages the rest with
/// `channel:history` until `more` is false.
#[test]
fn a_join_reply_cut_by_its_byte_budget_is_paged_in_with_history() {
    let mut w = world_with(2, &[0], |config| {
        config.server.reply_bytes_max = 2_000;
    });
    join(&mut w, c(0), "room-0");
    join(&mut w, c(1), "room-0");
    run_to(&mut w, 500);
    send(&mut w, c(1), "room-0", 20);
    run_to(&mut w, 1_000);
    w.apply(&Op::Disconnect { client: c(0) });
    for _ in 0..20 {
        send(&mut w, c(1), "room-0", 300);
    }
    run_for(&mut w, 3_000);
    w.apply(&Op::Connect { client: c(0) });
    converge(&mut w);

    assert_eq!(head(&w, "room-0").0, 21);
    assert!(!lines_with(&w, &["c0 <- ack", "join room-0", "not recovered"]).is_empty());
    assert!(!lines_with(&w, &["c0 <- ack", "history room-0", "more"]).is_empty());
    assert_eq!(delivered(&w, c(0), "room-0"), seqs(21));
    assert_no_violation(&w);
}
