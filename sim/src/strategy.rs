//! Proptest strategies for scenarios that shrink well.
//!
//! A scenario is drawn as a few shrinkable knobs (client count, loss, dup,
//! whether the connect-and-join prologue runs) plus a vector of
//! `(delta_ms, op)` whose client and channel choices are raw numbers taken
//! modulo the world's size. Proptest can therefore drop ops (the vector
//! shrinks), drop clients (the count shrinks and every op stays valid),
//! calm the network (loss and dup shrink to 0) and pull ops together (deltas
//! shrink to 0), and the minimal failing scenario prints in a few lines.

use proptest::collection::vec;
use proptest::prelude::*;

use crate::net::{ClientIx, PartitionKind};
use crate::op::Op;
use crate::scenario::Scenario;
use crate::swarm::{
    BODY_LEN_MAX, CLIENTS_OVERRIDE_MAX, SAFETY_MS_MAX, SwarmOverrides, SwarmParams, TransportPolicy,
};

/// Bounds of generated scenarios.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StrategyConfig {
    /// Most clients (at least 1, at most the override limit).
    pub clients_max: u32,
    /// Most ops after the prologue.
    pub ops_max: usize,
    /// Longest gap between two ops, in virtual ms.
    pub delta_ms_max: u64,
    /// Fixed transport assignment, or drawn from the seed.
    pub transport: Option<TransportPolicy>,
    /// Whether fault ops and a lossy network may appear at all.
    pub faults: bool,
}

impl Default for StrategyConfig {
    /// Up to 6 clients and 60 ops, 2 s apart at most, faults on.
    fn default() -> Self {
        StrategyConfig {
            clients_max: 6,
            ops_max: 60,
            delta_ms_max: 2_000,
            transport: None,
            faults: true,
        }
    }
}

/// An op before it is fitted to a world: indices are raw numbers.
#[derive(Clone, Debug)]
enum Raw {
    Send(u32, u32, u32),
    Subscribe(u32, u32),
    Unsubscribe(u32, u32),
    Read(u32, u32),
    Typing(u32, u32, bool),
    Edit(u32, u32, u32),
    Delete(u32, u32, u32),
    Connect(u32),
    Disconnect(u32),
    Drop(u32),
    Partition(Vec<u32>, PartitionKind),
    Repair,
    Hold(u32, u64),
    Crash,
    Bounce,
    StoreFail(u64),
    StoreLatency(u64),
    AppRestart(u32),
}

fn partition_kind() -> impl Strategy<Value = PartitionKind> {
    prop_oneof![
        Just(PartitionKind::Symmetric),
        Just(PartitionKind::ToServerOnly),
        Just(PartitionKind::ToClientOnly),
    ]
}

fn body_len() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 1u32..=256, 1 => 1u32..=BODY_LEN_MAX]
}

/// Workload arms first: proptest shrinks a `prop_oneof!` toward its first
/// arm, and a send is the simplest op to read in a minimal case.
fn raw_op(faults: bool) -> BoxedStrategy<Raw> {
    let n = any::<u32>;
    let workload = prop_oneof![
        10 => (n(), n(), body_len()).prop_map(|(c, ch, len)| Raw::Send(c, ch, len)),
        3 => (n(), n()).prop_map(|(c, ch)| Raw::Subscribe(c, ch)),
        1 => (n(), n()).prop_map(|(c, ch)| Raw::Unsubscribe(c, ch)),
        2 => (n(), n()).prop_map(|(c, ch)| Raw::Read(c, ch)),
        2 => (n(), n(), any::<bool>()).prop_map(|(c, ch, a)| Raw::Typing(c, ch, a)),
        2 => (n(), n(), n()).prop_map(|(c, ch, p)| Raw::Edit(c, ch, p)),
        1 => (n(), n(), n()).prop_map(|(c, ch, p)| Raw::Delete(c, ch, p)),
        1 => n().prop_map(Raw::Connect),
        1 => n().prop_map(Raw::Disconnect),
    ];
    if !faults {
        return workload.boxed();
    }
    let fault = prop_oneof![
        3 => n().prop_map(Raw::Drop),
        2 => (vec(n(), 1..=3), partition_kind()).prop_map(|(cs, k)| Raw::Partition(cs, k)),
        2 => Just(Raw::Repair),
        1 => (n(), 1u64..=5_000).prop_map(|(c, ms)| Raw::Hold(c, ms)),
        1 => Just(Raw::Crash),
        1 => Just(Raw::Bounce),
        1 => (1u64..=3_000).prop_map(Raw::StoreFail),
        1 => (0u64..=200).prop_map(Raw::StoreLatency),
        1 => n().prop_map(Raw::AppRestart),
    ];
    prop_oneof![4 => workload, 1 => fault].boxed()
}

/// Fits a raw op to a world of `clients` clients and the params' channels.
fn fit(raw: Raw, params: &SwarmParams) -> Op {
    let client = |c: u32| ClientIx(c % params.clients.max(1));
    let channels = &params.channels;
    let channel = |ch: u32| channels[ch as usize % channels.len()].clone();
    match raw {
        Raw::Send(c, ch, body_len) => Op::Send {
            client: client(c),
            channel: channel(ch),
            body_len,
        },
        Raw::Subscribe(c, ch) => Op::Subscribe {
            client: client(c),
            channel: channel(ch),
        },
        Raw::Unsubscribe(c, ch) => Op::Unsubscribe {
            client: client(c),
            channel: channel(ch),
        },
        Raw::Read(c, ch) => Op::Read {
            client: client(c),
            channel: channel(ch),
        },
        Raw::Typing(c, ch, active) => Op::Typing {
            client: client(c),
            channel: channel(ch),
            active,
        },
        Raw::Edit(c, ch, pick) => Op::Edit {
            client: client(c),
            channel: channel(ch),
            pick,
        },
        Raw::Delete(c, ch, pick) => Op::Delete {
            client: client(c),
            channel: channel(ch),
            pick,
        },
        Raw::Connect(c) => Op::Connect { client: client(c) },
        Raw::Disconnect(c) => Op::Disconnect { client: client(c) },
        Raw::Drop(c) => Op::DropConnection { client: client(c) },
        Raw::Partition(cs, kind) => {
            let mut clients: Vec<ClientIx> = cs.into_iter().map(client).collect();
            clients.sort_unstable();
            clients.dedup();
            Op::Partition { clients, kind }
        }
        Raw::Repair => Op::Repair,
        Raw::Hold(c, duration_ms) => Op::Hold {
            client: client(c),
            duration_ms,
        },
        Raw::Crash => Op::Crash,
        Raw::Bounce => Op::Bounce,
        Raw::StoreFail(duration_ms) => Op::StoreFail { duration_ms },
        Raw::StoreLatency(ms) => Op::StoreLatency { ms },
        Raw::AppRestart(c) => Op::AppRestart { client: client(c) },
    }
}

/// Scenarios within `config`'s bounds. Ops are explicit, so the drawn
/// per-minute fault rates are zeroed; the network knobs (delay, loss, dup,
/// reorder, partition mode, buffer) still apply. With the prologue on, every
/// client connects and joins one channel at time 0.
pub fn scenario(config: StrategyConfig) -> impl Strategy<Value = Scenario> {
    let clients_max = config.clients_max.clamp(1, CLIENTS_OVERRIDE_MAX);
    let noise_permille: u32 = if config.faults { 200 } else { 0 };
    (
        any::<u64>(),
        1..=clients_max,
        any::<bool>(),
        0..=noise_permille,
        0..=noise_permille / 2,
        vec(
            (0..=config.delta_ms_max, raw_op(config.faults)),
            0..=config.ops_max,
        ),
    )
        .prop_map(move |(seed, clients, prologue, loss, dup, raws)| {
            build(config, seed, clients, prologue, (loss, dup), raws)
        })
}

fn build(
    config: StrategyConfig,
    seed: u64,
    clients: u32,
    prologue: bool,
    (loss_permille, dup_permille): (u32, u32),
    raws: Vec<(u64, Raw)>,
) -> Scenario {
    let end_ms: u64 = raws.iter().map(|(d, _)| *d).sum();
    let overrides = SwarmOverrides {
        clients: Some(clients),
        safety_ms: Some(end_ms.saturating_add(1_000).min(SAFETY_MS_MAX)),
        transport: config.transport,
        calm: !config.faults,
        kinds: None,
    };
    let mut params = match SwarmParams::draw(seed, &overrides) {
        Ok(p) => p,
        Err(_) => unreachable!("overrides are within bounds by construction"),
    };
    let f = &mut params.faults;
    f.loss_permille = loss_permille;
    f.dup_permille = dup_permille;
    f.drops_per_min = 0;
    f.partitions_per_min = 0;
    f.holds_per_min = 0;
    f.crashes_per_min = 0;
    f.store_fails_per_min = 0;
    f.store_latency_changes_per_min = 0;
    f.app_restarts_per_min = 0;
    let mut ops = Vec::with_capacity(raws.len() + 2 * clients as usize);
    if prologue {
        for c in 0..clients {
            let client = ClientIx(c);
            let channel = params.channels[c as usize % params.channels.len()].clone();
            ops.push((0, Op::Connect { client }));
            ops.push((0, Op::Subscribe { client, channel }));
        }
    }
    let mut at_ms = 0u64;
    for (delta_ms, raw) in raws {
        at_ms += delta_ms;
        ops.push((at_ms, fit(raw, &params)));
    }
    Scenario { seed, params, ops }
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    use super::*;

    fn runner(cases: u32) -> TestRunner {
        TestRunner::new_with_rng(
            Config {
                cases,
                failure_persistence: None,
                ..Config::default()
            },
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        )
    }

    #[test]
    fn generated_scenarios_are_well_formed() {
        let mut r = runner(200);
        let strategy = scenario(StrategyConfig::default());
        for _ in 0..200 {
            let s = strategy.new_tree(&mut r).unwrap().current();
            s.check().unwrap();
            assert!(s.params.clients <= 6);
            assert!(s.ops.len() <= 60 + 2 * 6);
        }
    }

    #[test]
    fn calm_config_has_no_faults() {
        let mut r = runner(50);
        let strategy = scenario(StrategyConfig {
            faults: false,
            ..StrategyConfig::default()
        });
        for _ in 0..50 {
            let s = strategy.new_tree(&mut r).unwrap().current();
            assert_eq!(s.fault_count(), 0);
            assert_eq!(s.params.faults.loss_permille, 0);
        }
    }

    #[test]
    fn a_failure_shrinks_to_a_minimal_scenario() {
        // A stand-in bug: "a partition followed, later, by a send fails".
        let mut r = runner(2_000);
        let result = r.run(&scenario(StrategyConfig::default()), |s| {
            let cut = s
                .ops
                .iter()
                .position(|(_, op)| matches!(op, Op::Partition { .. }));
            let bad = cut.is_some_and(|i| {
                s.ops[i..]
                    .iter()
                    .any(|(_, op)| matches!(op, Op::Send { .. }))
            });
            prop_assert!(!bad);
            Ok(())
        });
        let Err(proptest::test_runner::TestError::Fail(_, minimal)) = result else {
            panic!("the stand-in bug was not found: {result:?}");
        };
        assert_eq!(minimal.ops.len(), 2, "{minimal}");
        assert_eq!(minimal.params.clients, 1, "{minimal}");
        assert_eq!(minimal.params.faults.loss_permille, 0);
        insta::assert_snapshot!(
            minimal
                .ops
                .iter()
                .map(|(at, op)| format!("{at} ms {op}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
