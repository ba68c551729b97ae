//! Scenarios are reproducible, bounded and self-consistent.

use super::*;
use crate::net::{ClientIx, TransportKind};
use crate::swarm::{
    BODY_LEN_MAX, CLIENTS_DRAWN_MAX, CLIENTS_OVERRIDE_MAX, ROOMS_MAX, ROOMS_MIN, SwarmError,
    TransportPolicy,
};

fn gen_default(seed: u64) -> Scenario {
    Scenario::generate(seed, &SwarmOverrides::default()).unwrap()
}

#[test]
fn same_seed_same_scenario_and_display() {
    for seed in [0, 1, 42, u64::MAX] {
        let a = gen_default(seed);
        let b = gen_default(seed);
        assert_eq!(a, b);
        assert_eq!(a.to_string(), b.to_string());
        assert_eq!(a.seed, seed);
    }
    assert_ne!(gen_default(1).params, gen_default(2).params);
}

#[test]
fn params_respect_bounds() {
    for seed in 0..300 {
        let p = SwarmParams::draw(seed, &SwarmOverrides::default()).unwrap();
        assert!((1..=CLIENTS_DRAWN_MAX).contains(&p.clients), "{p}");
        assert!((1..=p.clients).contains(&p.users));
        assert_eq!(p.transports.len(), p.clients as usize);
        let rooms = p
            .channels
            .iter()
            .filter(|c| c.as_str().starts_with("room-"))
            .count();
        assert!((ROOMS_MIN as usize..=ROOMS_MAX as usize).contains(&rooms));
        assert!(p.channels.len() <= rooms + 1);
        let f = &p.faults;
        assert!(f.delay_ms_min <= f.delay_ms_max);
        assert!(f.loss_permille <= 200 && f.dup_permille <= 100 && f.reorder_permille <= 200);
        assert!(!f.partition_kinds.is_empty());
        assert!((2_000..=60_000).contains(&p.safety_ms));
        assert!(p.weights.send > 0 && p.weights.connect > 0);
        p.net_config().validate().unwrap();
    }
}

#[test]
fn swarm_draws_differ_between_seeds() {
    // Swarm testing: some seeds have a fault, others not.
    let with_loss = (0..100)
        .filter(|&s| {
            SwarmParams::draw(s, &SwarmOverrides::default())
                .unwrap()
                .faults
                .loss_permille
                > 0
        })
        .count();
    assert!((20..80).contains(&with_loss), "{with_loss}");
}

#[test]
fn overrides_replace_one_value_and_keep_the_rest() {
    let base = SwarmParams::draw(7, &SwarmOverrides::default()).unwrap();
    let o = SwarmOverrides {
        clients: Some(40),
        safety_ms: Some(1_234),
        transport: Some(TransportPolicy::AllDatagram),
        calm: false,
        kinds: Some(crate::swarm::ClientPolicy::AllPlain),
    };
    let p = SwarmParams::draw(7, &o).unwrap();
    assert_eq!(p.clients, 40);
    assert!(
        p.kinds
            .iter()
            .all(|k| *k == crate::swarm::ClientKind::Plain)
    );
    assert_eq!(p.safety_ms, 1_234);
    assert!(p.transports.iter().all(|k| *k == TransportKind::Datagram));
    assert_eq!(p.faults, base.faults, "the fault mix does not move");
    assert_eq!(p.weights, base.weights);
    let calm = SwarmParams::draw(7, &SwarmOverrides { calm: true, ..o }).unwrap();
    assert_eq!(calm.faults, crate::swarm::FaultMix::calm());
    let s = Scenario::from_params(calm);
    assert_eq!(s.fault_count(), 0);
    assert!(matches!(
        SwarmParams::draw(
            7,
            &SwarmOverrides {
                clients: Some(0),
                ..o
            }
        ),
        Err(SwarmError::Clients { got: 0, .. })
    ));
    assert!(
        SwarmParams::draw(
            7,
            &SwarmOverrides {
                clients: Some(CLIENTS_OVERRIDE_MAX + 1),
                ..o
            }
        )
        .is_err()
    );
    assert!(
        SwarmParams::draw(
            7,
            &SwarmOverrides {
                safety_ms: Some(0),
                ..o
            }
        )
        .is_err()
    );
}

#[test]
fn ops_reference_only_existing_clients_and_channels() {
    for seed in 0..200 {
        let s = gen_default(seed);
        s.check().unwrap();
        assert!(
            s.ops
                .iter()
                .all(|(at, _)| *at < s.params.safety_ms.max(101))
        );
        for (_, op) in &s.ops {
            if let Op::Send { body_len, .. } = op {
                assert!((1..=BODY_LEN_MAX).contains(body_len));
            }
        }
    }
    let s = Scenario::generate(
        3,
        &SwarmOverrides {
            clients: Some(3),
            ..Default::default()
        },
    )
    .unwrap();
    for (_, op) in &s.ops {
        if let Some(c) = op.client() {
            assert!(c < ClientIx(3));
        }
    }
}

#[test]
fn check_refuses_malformed_scenarios() {
    let mut s = gen_default(5);
    s.ops.insert(0, (10, Op::Repair));
    s.ops.insert(1, (5, Op::Repair));
    assert!(matches!(
        s.check(),
        Err(ScenarioError::Unordered { index: 1, .. })
    ));
    let mut s = gen_default(5);
    s.ops.insert(
        0,
        (
            0,
            Op::Connect {
                client: ClientIx(999),
            },
        ),
    );
    assert!(matches!(
        s.check(),
        Err(ScenarioError::UnknownClient { client: 999, .. })
    ));
    let mut s = gen_default(5);
    let channel = lockstep_core::ids::ChannelId::new("nowhere").unwrap();
    s.ops.insert(
        0,
        (
            0,
            Op::Read {
                client: ClientIx(0),
                channel,
            },
        ),
    );
    assert!(matches!(
        s.check(),
        Err(ScenarioError::UnknownChannel { .. })
    ));
}

#[test]
fn a_scenario_reads_well() {
    let o = SwarmOverrides {
        clients: Some(3),
        safety_ms: Some(4_000),
        ..Default::default()
    };
    let s = Scenario::generate(336, &o).unwrap();
    insta::assert_snapshot!(s.to_string());
}

#[test]
fn big_worlds_print_counts_not_lists() {
    let o = SwarmOverrides {
        clients: Some(500),
        transport: Some(TransportPolicy::AllStream),
        ..Default::default()
    };
    let p = SwarmParams::draw(9, &o).unwrap();
    let text = p.to_string();
    assert!(text.contains("500 stream, 0 datagram"), "{text}");
    assert!(text.lines().count() <= 6, "{text}");
}
