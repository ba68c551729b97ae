//! The lab's own properties: seeded worlds with faults keep every invariant,
//! one seed gives one trace (in this process and in another), and every
//! seed that once found a bug stays fixed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::process::Command;

use proptest::prelude::*;

use lockstep_sim::run::{RunOptions, run};
use lockstep_sim::scenario::Scenario;
use lockstep_sim::strategy::{StrategyConfig, scenario};
use lockstep_sim::swarm::{ClientPolicy, SwarmOverrides, TransportPolicy};

fn overrides(transport: TransportPolicy) -> SwarmOverrides {
    SwarmOverrides {
        transport: Some(transport),
        ..SwarmOverrides::default()
    }
}

/// Runs `seed` on `transport`, with `kinds` fixed (the seeds found before
/// plain apps joined the lab ran only the client machine) or drawn.
fn assert_clean_with(seed: u64, transport: TransportPolicy, kinds: Option<ClientPolicy>) {
    let o = SwarmOverrides {
        kinds,
        ..overrides(transport)
    };
    let scenario = Scenario::generate(seed, &o).expect("valid overrides");
    let report = run(&scenario, RunOptions::default()).expect("valid world");
    if let Some(v) = report.violation {
        let kinds = if kinds.is_some() {
            " --kinds machine"
        } else {
            ""
        };
        panic!(
            "seed {seed} ({transport:?}) violates: {v}\n  reproduce with: cargo run --release -p lockstep-sim -- replay --seed {seed} --transport {}{kinds} --trace",
            flag(transport)
        );
    }
    assert!(
        report.converged_at_ms.is_some(),
        "seed {seed} never converged"
    );
}

fn assert_clean(seed: u64, transport: TransportPolicy) {
    assert_clean_with(seed, transport, None);
}

fn flag(t: TransportPolicy) -> &'static str {
    match t {
        TransportPolicy::AllStream => "stream",
        TransportPolicy::AllDatagram => "datagram",
        TransportPolicy::Mixed => "mixed",
    }
}

/// Every seed that found a bug, with the transport it found it on. Each is
/// named in a comment beside its fix in the machines.
#[test]
fn seeds_that_found_bugs_stay_fixed() {
    use TransportPolicy::{AllDatagram, AllStream, Mixed};
    let regressions = [
        (45, AllStream),     // rate-limited send overtaken: the send-order gate
        (212, AllStream),    // own broadcast before the ack: window slot never reused
        (90, AllStream),     // restored entry for an unwanted channel waited forever
        (250, AllStream),    // retry overtaken by a send queued before the failure
        (262, AllStream),    // dead connection's queued send stored ahead of its retry
        (106, AllStream),    // burst bigger than the stream buffer: reconnect loop
        (37, AllStream),     // half-open connection kept a user present: idle timeout
        (4, AllDatagram),    // pipelined sends reordered by the network
        (33, AllDatagram),   // a stale history page reported a truncation
        (2, AllDatagram),    // a lost leave left the user present
        (157, AllDatagram),  // a delayed join re-joined a left channel: stray leave
        (904, AllDatagram),  // a refresh answered while re-joining stayed in flight
        (1248, AllDatagram), // join before leave, arriving after it: stale join
        (272, Mixed),        // refused backlog read never retried in a quiet channel
        (2502, AllStream),   // leaving a channel freed window slots nobody used
        (12282, AllStream),  // a committed send's late retry closed the order gate
        (12942, AllStream),  // ...and so did its failed retry at the store
        (1273, Mixed),       // an expired gate let a later send overtake
        (10125, AllStream),  // a gate expiring mid-round passed to an older round's send
        (10367, Mixed),      // a window-1 sender's gate kept passing to a given-up send
        (30397, AllStream),  // sends refused from the queue were missing from the gate's order
        (272, AllStream),    // an event broadcast before the join's ack, past its head, was dropped
        (877, AllStream),    // sends queued across a leave and a join overtook a failed one
    ];
    for (seed, transport) in regressions {
        assert_clean_with(seed, transport, Some(ClientPolicy::AllMachine));
    }
    // Found with plain socket.io apps in the worlds (kinds drawn per seed).
    let regressions = [
        (792, AllStream),  // a message held behind earlier refused ones expired in the gate
        (2156, AllStream), // a gate outlived its connection's membership of the channel
        (298, Mixed),      // a stored message's queued retry was left waiting in the gate
    ];
    for (seed, transport) in regressions {
        assert_clean(seed, transport);
    }
}

#[test]
fn one_seed_one_trace() {
    for seed in [1, 2, 3] {
        let scenario = Scenario::generate(seed, &overrides(TransportPolicy::Mixed)).unwrap();
        let a = run(&scenario, RunOptions::default()).unwrap();
        let b = run(&scenario, RunOptions::default()).unwrap();
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(a.stats, b.stats, "seed {seed}");
        let c = Scenario::generate(seed + 100, &overrides(TransportPolicy::Mixed)).unwrap();
        let c = run(&c, RunOptions::default()).unwrap();
        assert_ne!(
            a.trace_hash, c.trace_hash,
            "different seeds, different worlds"
        );
    }
}

/// The wire round trip (every frame encoded and decoded) changes nothing
/// a world does: what the lab proves is what travels.
#[test]
fn frames_survive_their_encoding() {
    for seed in [5, 6] {
        let scenario = Scenario::generate(seed, &overrides(TransportPolicy::Mixed)).unwrap();
        let plain = run(&scenario, RunOptions::default()).unwrap();
        let wire = run(
            &scenario,
            RunOptions {
                wire: true,
                trace: false,
                servers: 1,
            },
        )
        .unwrap();
        assert!(wire.violation.is_none(), "{:?}", wire.violation);
        assert_eq!(plain.trace_hash, wire.trace_hash, "seed {seed}");
    }
}

/// The same seed replayed by the `lockstep-sim` binary, a separate
/// process, prints the same trace hash as this process computes.
#[test]
fn one_seed_one_trace_across_processes() {
    let seed = 11;
    let scenario = Scenario::generate(seed, &overrides(TransportPolicy::AllStream)).unwrap();
    let here = run(&scenario, RunOptions::default()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep-sim"))
        .args([
            "replay",
            "--seed",
            &seed.to_string(),
            "--transport",
            "stream",
        ])
        .output()
        .expect("the lockstep-sim binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = format!("trace {:016x}", here.trace_hash);
    assert!(
        stdout.contains(&expected),
        "the other process printed no `{expected}`:\n{stdout}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// Generated scenarios (workload and faults) keep every invariant; a
    /// failure shrinks to a minimal scenario, printed in full.
    #[test]
    fn generated_scenarios_keep_every_invariant(s in scenario(StrategyConfig::default())) {
        let report = run(&s, RunOptions::default()).unwrap();
        prop_assert!(report.violation.is_none(), "{}\n{}", s, report.violation.map(|v| v.to_string()).unwrap_or_default());
    }
}
