//! Named scenarios (issue 4), run through the full lab: a workload with
//! faults, then heal everything and require convergence within a bounded
//! time. Each asserts convergence and a clean oracle, then snapshots the
//! whole trace, redacting nothing (the trace is deterministic), so a
//! protocol change shows up in review as a readable diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use lockstep_core::wire::LogEvent;
use lockstep_sim::net::{PartitionKind, StreamPartition};
use lockstep_sim::op::Op;
use lockstep_sim::world::World;

/// Every client is at the head of every channel it wants, in the store's
/// epoch, and delivered each seq once, in order.
fn assert_everyone_at_head(w: &World, members: &[(u32, &str)]) {
    for &(i, channel) in members {
        let head = head(w, channel);
        let v = view(w, c(i), channel);
        assert_eq!(v.last_seq, head, "c{i} {channel}");
        assert_eq!(
            v.epoch,
            w.store().head(&ch(channel)).map(|(e, _)| e),
            "c{i} {channel}"
        );
    }
}

/// Every message in `channel`'s log is there once (no dedupe key twice).
fn assert_no_duplicate(w: &World, channel: &str) {
    let mut keys: Vec<_> = log(w, channel)
        .into_iter()
        .filter_map(|e| match e {
            LogEvent::Message(m) => Some((m.author_id, m.client_msg_id)),
            _ => None,
        })
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "{channel} holds a message twice");
}

fn run_happy_path() -> World {
    let mut w = world(3, &["room-0", "room-1"]);
    join(&mut w, c(0), "room-0");
    join(&mut w, c(1), "room-0");
    join(&mut w, c(2), "room-0");
    apply_all(
        &mut w,
        &[
            Op::Subscribe {
                client: c(1),
                channel: ch("room-1"),
            },
            Op::Subscribe {
                client: c(2),
                channel: ch("room-1"),
            },
        ],
    );
    run_to(&mut w, 500);
    send(&mut w, c(0), "room-0", 20);
    run_to(&mut w, 600);
    w.apply(&Op::Typing {
        client: c(1),
        channel: ch("room-0"),
        active: true,
    });
    run_to(&mut w, 900);
    send(&mut w, c(1), "room-0", 30);
    send(&mut w, c(2), "room-1", 40);
    run_to(&mut w, 1_200);
    apply_all(
        &mut w,
        &[
            Op::Edit {
                client: c(0),
                channel: ch("room-0"),
                pick: 0,
            },
            Op::Read {
                client: c(2),
                channel: ch("room-0"),
            },
            Op::Typing {
                client: c(1),
                channel: ch("room-0"),
                active: false,
            },
        ],
    );
    run_to(&mut w, 1_500);
    heal_and_converge(&mut w);

    assert_eq!(head(&w, "room-0").0, 3, "two messages and an edit");
    assert_eq!(head(&w, "room-1").0, 1);
    assert_everyone_at_head(
        &w,
        &[
            (0, "room-0"),
            (1, "room-0"),
            (2, "room-0"),
            (1, "room-1"),
            (2, "room-1"),
        ],
    );
    for i in 0..3 {
        assert_eq!(delivered(&w, c(i), "room-0"), seqs(3), "c{i}");
        assert!(view(&w, c(i), "room-0").typing.is_empty());
    }
    assert!(
        lines_with(&w, &["reconnecting"]).is_empty(),
        "no fault, no retry"
    );
    assert_no_violation(&w);
    w
}

fn run_reconnect_recovery() -> World {
    let mut w = world(3, &["room-0"]);
    for i in 0..3 {
        join(&mut w, c(i), "room-0");
    }
    run_to(&mut w, 500);
    send(&mut w, c(0), "room-0", 10);
    send(&mut w, c(1), "room-0", 10);
    run_to(&mut w, 600);

    // c1's connection is reset. The others keep talking, and c1's user
    // writes while offline: the message waits in the outbox.
    w.apply(&Op::DropConnection { client: c(1) });
    run_to(&mut w, 650);
    send(&mut w, c(1), "room-0", 10);
    send(&mut w, c(0), "room-0", 10);
    send(&mut w, c(2), "room-0", 10);
    run_to(&mut w, 700);
    send(&mut w, c(0), "room-0", 10);
    run_to(&mut w, 800);
    assert_eq!(
        w.client(c(1)).expect("a client machine").outbox().count(),
        1,
        "held while offline"
    );
    heal_and_converge(&mut w);

    assert_eq!(head(&w, "room-0").0, 6);
    assert_no_duplicate(&w, "room-0");
    assert_everyone_at_head(&w, &[(0, "room-0"), (1, "room-0"), (2, "room-0")]);
    for i in 0..3 {
        assert_eq!(delivered(&w, c(i), "room-0"), seqs(6), "c{i}");
    }
    // c1 came back with its position and got the missed events recovered.
    assert_eq!(
        lines_with(&w, &["c1 <- ack", "join room-0", "recovered"])
            .iter()
            .filter(|l| !l.contains("not recovered"))
            .count(),
        1
    );
    // Its offline message went out once, after the re-join.
    assert_eq!(lines_with(&w, &["c1 -> send"]).len(), 2);
    assert_no_violation(&w);
    w
}

fn run_partition_heal() -> World {
    let mut p = params(2, &["room-0"]);
    // Partitions stall streams half-open: nobody is told, only the
    // heartbeat (or the server's idle timeout) finds out.
    p.faults.stream_partition = StreamPartition::Stall;
    let mut w = world_from(p);
    join(&mut w, c(0), "room-0");
    join(&mut w, c(1), "room-0");
    run_to(&mut w, 500);
    send(&mut w, c(0), "room-0", 10);
    run_to(&mut w, 1_000);

    w.apply(&Op::Partition {
        clients: vec![c(1)],
        kind: PartitionKind::Symmetric,
    });
    // Both sides write into the void.
    send(&mut w, c(1), "room-0", 10);
    run_to(&mut w, 2_000);
    send(&mut w, c(0), "room-0", 10);
    run_to(&mut w, 10_000);
    send(&mut w, c(0), "room-0", 10);
    run_to(&mut w, 31_000);
    // The half-open connection was found out by the heartbeat, not by a
    // close notice: c1 is trying to reconnect.
    assert!(!is_connected(&w, c(1)));
    assert!(!lines_with(&w, &["c1 app: state reconnecting"]).is_empty());
    assert!(lines_with(&w, &["c1 transport"]).is_empty(), "nobody told");
    w.apply(&Op::Repair);
    heal_and_converge(&mut w);

    assert_eq!(head(&w, "room-0").0, 4);
    assert_no_duplicate(&w, "room-0");
    assert_everyone_at_head(&w, &[(0, "room-0"), (1, "room-0")]);
    for i in 0..2 {
        assert_eq!(delivered(&w, c(i), "room-0"), seqs(4), "c{i}");
    }
    // The server never heard of c1's half-open connection ending; its idle
    // timeout closes it later. user-1 is still present on the new one, so
    // nobody sees it leave, and the world stays converged.
    run_to(&mut w, 60_000);
    assert_eq!(lines_with(&w, &["server closes c1/k2"]).len(), 1);
    assert!(lines_with(&w, &["presence:leave"]).is_empty());
    assert_eq!(w.pending(), None);
    assert_no_violation(&w);
    w
}

fn run_server_restart() -> World {
    let mut w = world(3, &["room-0"]);
    for i in 0..3 {
        join(&mut w, c(i), "room-0");
    }
    run_to(&mut w, 500);
    send(&mut w, c(0), "room-0", 10);
    run_to(&mut w, 600);
    // A slow store: c1's send is still being committed when the server
    // dies, so its ack dies with the server. The commit lands anyway; c1
    // learns its outcome from the recovered log on re-join (its own message
    // comes back), with no resend and no duplicate.
    w.apply(&Op::StoreLatency { ms: 300 });
    send(&mut w, c(1), "room-0", 10);
    run_to(&mut w, 700);
    w.apply(&Op::Crash);
    run_to(&mut w, 1_000);
    // The others keep trying while the server is down.
    send(&mut w, c(2), "room-0", 10);
    run_to(&mut w, 3_000);
    send(&mut w, c(0), "room-0", 10);
    run_to(&mut w, 6_000);
    assert!(w.server().is_none());
    assert!((0..3).all(|i| !is_connected(&w, c(i))));
    w.apply(&Op::Bounce);
    heal_and_converge(&mut w);

    assert_eq!(head(&w, "room-0").0, 4, "every message once");
    assert_no_duplicate(&w, "room-0");
    assert_everyone_at_head(&w, &[(0, "room-0"), (1, "room-0"), (2, "room-0")]);
    for i in 0..3 {
        assert_eq!(delivered(&w, c(i), "room-0"), seqs(4), "c{i}");
        assert_eq!(
            w.client(c(i)).expect("a client machine").outbox().count(),
            0
        );
    }
    assert!(
        lines_with(&w, &["app:", "failed"]).is_empty(),
        "nothing lost"
    );
    assert_eq!(lines_with(&w, &["c1 -> send"]).len(), 1);
    assert_eq!(lines_with(&w, &["c1 app:", "sent as #2"]).len(), 1);
    assert_no_violation(&w);
    w
}

fn run_retried_send() -> World {
    let mut w = world(2, &["room-0"]);
    join(&mut w, c(0), "room-0");
    join(&mut w, c(1), "room-0");
    run_to(&mut w, 500);
    // c0's link delivers nothing for 12 s, then everything at once: the
    // send outlives the 10 s request timeout and is resent with the same
    // client message id while the original is still on its way.
    w.apply(&Op::Hold {
        client: c(0),
        duration_ms: 12_000,
    });
    send(&mut w, c(0), "room-0", 10);
    run_to(&mut w, 11_000);
    assert_eq!(lines_with(&w, &["c0 -> send room-0"]).len(), 2);
    heal_and_converge(&mut w);

    let stored = stored_msg_ids(&w, "room-0");
    assert_eq!(stored.len(), 1, "stored once");
    let cm = stored[0].to_string();
    assert_eq!(lines_with(&w, &["c0 -> send room-0", &cm]).len(), 2);
    assert_eq!(lines_with(&w, &["c1 <- message:new", &cm]).len(), 1);
    assert_eq!(delivered(&w, c(0), "room-0"), seqs(1));
    assert_eq!(delivered(&w, c(1), "room-0"), seqs(1));
    assert_eq!(lines_with(&w, &["c0 app:", "sent as #1"]).len(), 1);
    assert_no_violation(&w);
    w
}

// ---- the tests -------------------------------------------------------------

#[test]
fn happy_path() {
    insta::assert_snapshot!(trace(&run_happy_path()));
}

#[test]
fn reconnect_recovery() {
    insta::assert_snapshot!(trace(&run_reconnect_recovery()));
}

#[test]
fn partition_heal() {
    insta::assert_snapshot!(trace(&run_partition_heal()));
}

#[test]
fn server_restart() {
    insta::assert_snapshot!(trace(&run_server_restart()));
}

#[test]
fn retried_send() {
    insta::assert_snapshot!(trace(&run_retried_send()));
}

/// One scenario, one trace: running a scenario again gives the same trace,
/// line for line and hash for hash.
#[test]
fn each_scenario_replays_identically() {
    for scenario in [
        run_happy_path,
        run_reconnect_recovery,
        run_partition_heal,
        run_server_restart,
        run_retried_send,
    ] {
        let (a, b) = (scenario(), scenario());
        assert_eq!(a.trace().hash(), b.trace().hash());
        assert_eq!(a.trace().lines(), b.trace().lines());
    }
}
