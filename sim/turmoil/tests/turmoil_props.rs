//! The turmoil harness (issue 5): the real tokio drivers over turmoil's
//! simulated TCP, under generated workloads and faults, judged by the lab's
//! oracle; then one named scenario with readable assertions.
//!
//! A failing case prints the shrunk plan, the broken invariant and each
//! client's latest events; proptest records its seed in
//! `proptest-regressions/turmoil_props.txt`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use lockstep_core::sabotage::{Break, Sabotage};
use lockstep_sim::oracle::Invariant;
use lockstep_turmoil::{Action, Failure, FailureKind, Plan, Step, Tweaks, run, run_with};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Cases per run: each is a few dozen steps and up to a minute of virtual
/// time; this many keep the suite within CI's budget in a debug build.
/// `TURMOIL_CASES=<n>` runs more (a soak).
const CASES: u32 = 64;

fn cases() -> u32 {
    std::env::var("TURMOIL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        // Each case is a whole simulation: keep shrinking bounded too.
        max_shrink_iters: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/turmoil_props.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// Under any plan of sends, membership changes, partitions, holds,
    /// latency changes and server bounces, no invariant breaks, and once
    /// everything is healed the world settles: every client connected and
    /// at the head of every log it wants, every send resolved, presence
    /// true.
    #[test]
    fn the_real_drivers_keep_every_promise_under_faults(plan in lockstep_turmoil::plan(30)) {
        match run(&plan) {
            Ok(report) => {
                if std::env::var_os("TURMOIL_VERBOSE").is_some() {
                    eprintln!("{} clients, {} steps: {report}", plan.client_count(), plan.steps.len());
                }
            }
            Err(failure) => panic!("{failure}"),
        }
    }
}

fn step(after_ms: u16, action: Action) -> Step {
    Step { after_ms, action }
}

/// c0 is cut off (half-open stream) while both clients send, the server
/// is bounced while the partition lasts, then the link is repaired.
fn partition_and_bounce() -> Plan {
    let send = |client| Action::Send {
        client,
        channel: 0,
        count: 1,
    };
    Plan {
        seed: 5,
        clients: 2,
        steps: vec![
            step(1_000, send(0)),
            step(200, send(1)),
            step(300, Action::Partition { client: 0 }),
            // Sent into the void: the stream is half-open.
            step(100, send(0)),
            step(100, send(0)),
            step(200, send(1)),
            step(1_000, Action::Bounce),
            step(500, send(1)),
            step(300, send(0)),
            step(1_500, Action::Repair { client: 0 }),
            step(200, send(0)),
            step(200, send(1)),
        ],
    }
}

/// Both clients must notice (c0 by its heartbeat, c1 by the bounce),
/// reconnect to the new server, rejoin, resend what was not stored, and
/// end at the head of `general` with every send stored exactly once.
#[test]
fn a_partition_and_a_server_bounce_lose_nothing() {
    let report = run(&partition_and_bounce()).unwrap_or_else(|f| panic!("{f}"));
    // Every send was accepted and stored: none failed, none refused.
    assert_eq!(report.sends, 9, "{report}");
    assert_eq!(report.stored, 9, "{report}");
    assert_eq!(report.refused, 0, "{report}");
    // The log holds exactly the nine messages (and nothing twice: the
    // oracle's invariant 2 passed).
    assert_eq!(report.logged, 9, "{report}");
    // Each client connected twice: c1 again after the bounce, c0 again
    // after its partition was repaired.
    assert_eq!(report.connects, 4, "{report}");
    assert!(report.heal_time < Duration::from_secs(20), "{report}");
}

/// c1 gives `general` up and wants it back, once at once (before the
/// leave is done) and once later (after the client forgot the channel),
/// while c0 keeps sending.
fn leave_and_rejoin() -> Plan {
    let send = Action::Send {
        client: 0,
        channel: 0,
        count: 2,
    };
    let leave = Action::Unsubscribe {
        client: 1,
        channel: 0,
    };
    let join = Action::Subscribe {
        client: 1,
        channel: 0,
    };
    Plan {
        seed: 9,
        clients: 2,
        steps: vec![
            step(500, send),
            step(100, leave),
            step(0, join),
            step(300, send),
            step(100, leave),
            step(1_000, send),
            step(1_000, join),
            step(300, send),
        ],
    }
}

/// Each time c1's stream goes on, or starts over, without gap or
/// duplicate, and ends at the head; while it is out, nothing of `general`
/// reaches it.
#[test]
fn leaving_and_rejoining_a_channel_keeps_the_stream_whole() {
    let report = run(&leave_and_rejoin()).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(report.stored, 8, "{report}");
    assert_eq!(report.logged, 8, "{report}");
}

/// A server that keeps a leaving connection in the channel's room is
/// caught by the tap on the real client's connection (7).
#[test]
fn the_oracle_sees_frames_of_a_channel_left() {
    let failure = expect_failure(
        &leave_and_rejoin(),
        Tweaks {
            server_machine: |s| s.set_sabotage(Sabotage::only(Break::ServerKeepsRoomOnLeave)),
            ..Tweaks::default()
        },
    );
    assert_eq!(broken(&failure)[0], Invariant::OnlyJoined, "{failure}");
}

/// Runs `plan` with a bug switched on; it must fail.
fn expect_failure(plan: &Plan, tweaks: Tweaks) -> Failure {
    match run_with(plan, &tweaks) {
        Ok(report) => panic!("the sabotage went unnoticed: {report}"),
        Err(failure) => {
            if std::env::var_os("TURMOIL_VERBOSE").is_some() {
                eprintln!("{failure}");
            }
            failure
        }
    }
}

/// Runs the partition and bounce scenario with a bug switched on.
fn sabotaged_client(tweaks: Tweaks) -> Failure {
    expect_failure(&partition_and_bounce(), tweaks)
}

fn broken(failure: &Failure) -> Vec<Invariant> {
    match &failure.kind {
        FailureKind::Violations(vs) => vs.iter().filter_map(|v| v.invariant()).collect(),
        other => panic!("expected violations, got {other:?}\n{failure}"),
    }
}

/// The oracle bites through the real driver's event stream: a client that
/// hides its `connecting` state breaks the state chart (9).
#[test]
fn the_oracle_sees_a_state_skipped_by_the_real_client() {
    let failure = sabotaged_client(Tweaks {
        client_machine: |_, c| c.set_sabotage(Sabotage::only(Break::SkipConnectingEvent)),
        ..Tweaks::default()
    });
    assert_eq!(broken(&failure)[0], Invariant::StateChart, "{failure}");
}

/// A client whose lost connection keeps its timers (its heartbeat) armed
/// is caught from the real driver's readings at the state change that
/// follows the loss: `reconnecting` with more than the reconnect timer (8).
#[test]
fn the_oracle_sees_timers_kept_past_a_lost_connection() {
    let failure = sabotaged_client(Tweaks {
        client_machine: |_, c| c.set_sabotage(Sabotage::only(Break::LostConnectionKeepsTimers)),
        ..Tweaks::default()
    });
    assert_eq!(broken(&failure)[0], Invariant::NoLeaks, "{failure}");
    // Judged from the readings, not from the harness losing step with them.
    assert!(
        failure
            .to_string()
            .contains("timers armed while reconnecting"),
        "{failure}"
    );
}

/// A store that acks and forgets is caught on the first ack (1).
#[test]
fn the_oracle_sees_an_acked_message_missing_from_the_store() {
    let failure = sabotaged_client(Tweaks {
        store_machine: |s| s.set_sabotage(Sabotage::only(Break::StoreForgetsAppends)),
        ..Tweaks::default()
    });
    assert_eq!(broken(&failure)[0], Invariant::AckedIsStored, "{failure}");
}

/// A client that never resends what was in flight when its connection
/// died leaves sends without an outcome: the heal phase does not settle
/// (4, liveness).
#[test]
fn the_heal_phase_sees_a_send_that_never_resolves() {
    let failure = sabotaged_client(Tweaks {
        client_machine: |_, c| c.set_sabotage(Sabotage::only(Break::OutboxForgetsResend)),
        ..Tweaks::default()
    });
    match &failure.kind {
        FailureKind::NotConverged { what, .. } => {
            assert!(what.contains("without an outcome"), "{failure}");
        }
        other => panic!("expected no convergence, got {other:?}\n{failure}"),
    }
}
