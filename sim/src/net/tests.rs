//! Behaviour of the virtual network under each fault.

use std::fmt::Write as _;

use lockstep_core::{Instant, Rng};

use super::*;

const C0: ClientIx = ClientIx(0);
const C1: ClientIx = ClientIx(1);

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn net(config: NetConfig, seed: u64) -> Network<u32> {
    Network::new(config, Rng::new(seed)).expect("valid config")
}

/// Runs the network until nothing is left, returning (time, delivery) pairs.
fn drain(n: &mut Network<u32>) -> Vec<(u64, Delivery<u32>)> {
    let mut out = Vec::new();
    while let Some(at) = n.next_ready_at() {
        while let Some(d) = n.poll_ready(at) {
            out.push((at.as_millis(), d));
        }
    }
    out
}

fn frames_to(out: &[(u64, Delivery<u32>)], want: Dir) -> Vec<u32> {
    out.iter()
        .filter_map(|(_, d)| match d {
            Delivery::Frame { dir, payload, .. } if *dir == want => Some(*payload),
            _ => None,
        })
        .collect()
}

fn jittery(kind: TransportKind) -> NetConfig {
    NetConfig {
        delay_ms_min: 1,
        delay_ms_max: 500,
        ..NetConfig::calm(2, kind)
    }
}

#[test]
fn stream_keeps_order_and_never_duplicates_under_jitter() {
    let mut n2 = net(jittery(TransportKind::Stream), 1);
    let conn2 = n2.open(t(0), C0).unwrap();
    let mut all = Vec::new();
    for i in 0..200u32 {
        // Interleave sends with partial drains, as a world would.
        n2.send(t(u64::from(i)), conn2, Dir::ToServer, i);
        n2.send(t(u64::from(i)), conn2, Dir::ToClient, 1000 + i);
        while let Some(d) = n2.poll_ready(t(u64::from(i))) {
            all.push((u64::from(i), d));
        }
    }
    all.append(&mut drain(&mut n2));
    assert_eq!(frames_to(&all, Dir::ToServer), (0..200).collect::<Vec<_>>());
    assert_eq!(
        frames_to(&all, Dir::ToClient),
        (1000..1200).collect::<Vec<_>>()
    );
    // The handshake comes first on the client's direction.
    assert_eq!(all[0].1, Delivery::Opened { conn: conn2 });
    // Delivery times never go backwards.
    assert!(all.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(n2.in_flight(), 0);
    assert_eq!(n2.stats().frames_delivered, 400);
    assert_eq!(n2.stats().frames_reordered, 0);
    assert_eq!(n2.stats().frames_duplicated, 0);
}

#[test]
fn datagram_with_full_dup_duplicates_every_frame() {
    let config = NetConfig {
        dup_permille: 1000,
        ..jittery(TransportKind::Datagram)
    };
    let mut n = net(config, 2);
    let conn = n.open(t(0), C0).unwrap();
    for i in 0..50u32 {
        assert_eq!(
            n.send(t(0), conn, Dir::ToClient, i),
            SendOutcome::Duplicated
        );
    }
    let mut got = frames_to(&drain(&mut n), Dir::ToClient);
    assert_ne!(
        got,
        {
            let mut s = got.clone();
            s.sort_unstable();
            s
        },
        "independent jitter reorders datagrams"
    );
    got.sort_unstable();
    let want: Vec<u32> = (0..50).flat_map(|i| [i, i]).collect();
    assert_eq!(got, want);
    let s = n.stats();
    assert_eq!(
        (s.frames_sent, s.frames_duplicated, s.frames_delivered),
        (50, 50, 100)
    );
    assert!(s.frames_reordered > 0);
}

#[test]
fn datagram_loss_is_counted_and_accounted() {
    let config = NetConfig {
        loss_permille: 300,
        ..jittery(TransportKind::Datagram)
    };
    let mut n = net(config, 3);
    let conn = n.open(t(0), C0).unwrap();
    for i in 0..1000u32 {
        n.send(t(0), conn, Dir::ToServer, i);
    }
    let got = frames_to(&drain(&mut n), Dir::ToServer).len() as u64;
    let s = *n.stats();
    assert_eq!(s.frames_delivered, got);
    assert_eq!(
        s.frames_sent + s.frames_duplicated,
        s.frames_delivered + s.frames_lost
    );
    assert!((200..400).contains(&s.lost_random), "{s}");
}

#[test]
fn in_flight_frames_are_lost_when_the_connection_drops() {
    for kind in [TransportKind::Stream, TransportKind::Datagram] {
        let mut n = net(NetConfig::calm(2, kind), 4);
        let conn = n.open(t(0), C0).unwrap();
        let _ = drain(&mut n); // handshake
        for i in 0..10u32 {
            n.send(t(100), conn, Dir::ToServer, i);
            n.send(t(100), conn, Dir::ToClient, i);
        }
        assert_eq!(n.in_flight(), 20);
        assert!(n.drop_connection(t(101), C0));
        assert!(!n.is_open(conn));
        assert_eq!(n.in_flight(), 0);
        assert_eq!(
            n.send(t(102), conn, Dir::ToServer, 99),
            SendOutcome::NotOpen
        );
        let out = drain(&mut n);
        // Only the two close notices arrive, one for each end.
        let notices: Vec<_> = out.iter().map(|(_, d)| (d.to(), d.clone())).collect();
        assert_eq!(notices.len(), 2, "{kind}: {out:?}");
        for (_, d) in &notices {
            assert!(matches!(
                d,
                Delivery::Closed {
                    reason: CloseReason::Dropped,
                    ..
                }
            ));
        }
        assert_eq!(n.stats().lost_on_close, 20);
        assert_eq!(n.stats().connections_dropped, 1);
    }
}

#[test]
fn stream_buffer_overflow_closes_with_a_reason() {
    let config = NetConfig {
        stream_buffer_frames_max: 4,
        ..NetConfig::calm(2, TransportKind::Stream)
    };
    let mut n = net(config, 5);
    let conn = n.open(t(0), C0).unwrap();
    let _ = drain(&mut n);
    for i in 0..4u32 {
        assert_eq!(n.send(t(10), conn, Dir::ToClient, i), SendOutcome::Queued);
    }
    assert_eq!(n.send(t(10), conn, Dir::ToClient, 4), SendOutcome::Overflow);
    assert!(!n.is_open(conn));
    let out = drain(&mut n);
    assert!(frames_to(&out, Dir::ToClient).is_empty());
    let reasons: Vec<_> = out
        .iter()
        .map(|(_, d)| match d {
            Delivery::Closed { dir, reason, .. } => (*dir, *reason),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons
            .iter()
            .all(|(_, r)| *r == CloseReason::Overflow(Dir::ToClient))
    );
    let s = n.stats();
    assert_eq!(
        (s.lost_buffer_full, s.lost_on_close, s.frames_lost),
        (1, 4, 5)
    );
}

#[test]
fn stream_partition_holds_then_heal_delivers_in_order() {
    let mut n = net(jittery(TransportKind::Stream), 6);
    let conn = n.open(t(0), C0).unwrap();
    let other = n.open(t(0), C1).unwrap();
    let _ = drain(&mut n);
    n.partition(&[C0], PartitionKind::Symmetric);
    for i in 0..20u32 {
        n.send(t(1000), conn, Dir::ToServer, i);
        n.send(t(1000), other, Dir::ToServer, 100 + i);
    }
    let during = drain(&mut n);
    // The other client is untouched; c0's frames wait at the cut.
    assert_eq!(
        frames_to(&during, Dir::ToServer),
        (100..120).collect::<Vec<_>>()
    );
    assert_eq!(n.in_flight(), 20);
    assert!(n.is_open(conn));
    n.repair(t(5000), &[C0]);
    let after = drain(&mut n);
    assert_eq!(
        frames_to(&after, Dir::ToServer),
        (0..20).collect::<Vec<_>>()
    );
    assert!(after.iter().all(|(at, _)| *at >= 5001));
    assert_eq!(n.stats().frames_held, 20);
    assert_eq!(n.in_flight(), 0);
}

#[test]
fn stream_partition_in_stall_mode_is_half_open_until_the_buffer_fills() {
    let config = NetConfig {
        stream_partition: StreamPartition::Stall,
        stream_buffer_frames_max: 8,
        ..NetConfig::calm(1, TransportKind::Stream)
    };
    let mut n = net(config, 7);
    let conn = n.open(t(0), C0).unwrap();
    let _ = drain(&mut n);
    n.partition(&[C0], PartitionKind::ToClientOnly);
    n.send(t(10), conn, Dir::ToClient, 1);
    n.send(t(10), conn, Dir::ToServer, 2);
    let out = drain(&mut n);
    assert_eq!(
        frames_to(&out, Dir::ToServer),
        vec![2],
        "the other direction flows"
    );
    n.repair_all(t(100));
    n.send(t(100), conn, Dir::ToClient, 3);
    assert!(
        drain(&mut n).is_empty(),
        "a stalled direction stays stalled after the heal"
    );
    assert!(n.is_open(conn), "nobody is told: half-open");
    assert_eq!(n.stats().stalls, 1);
    for i in 0..6u32 {
        assert_eq!(n.send(t(200), conn, Dir::ToClient, i), SendOutcome::Queued);
    }
    assert_eq!(
        n.send(t(200), conn, Dir::ToClient, 9),
        SendOutcome::Overflow
    );
}

#[test]
fn datagram_partition_drops_and_close_notices_do_not_cross_it() {
    let mut n = net(NetConfig::calm(1, TransportKind::Datagram), 8);
    let conn = n.open(t(0), C0).unwrap();
    let _ = drain(&mut n);
    n.partition(&[C0], PartitionKind::ToServerOnly);
    assert_eq!(
        n.send(t(10), conn, Dir::ToServer, 1),
        SendOutcome::Lost(LossCause::Partition)
    );
    assert_eq!(n.send(t(10), conn, Dir::ToClient, 2), SendOutcome::Queued);
    n.close(t(11), conn, CloseReason::ClientClosed);
    let out = drain(&mut n);
    assert!(
        out.is_empty(),
        "the frame died with the conn, the notice at the cut: {out:?}"
    );
    assert_eq!(n.stats().notices_lost, 1);
}

#[test]
fn reopen_replaces_the_old_connection_and_tells_only_the_server() {
    let mut n = net(NetConfig::calm(1, TransportKind::Stream), 9);
    let a = n.open(t(0), C0).unwrap();
    let _ = drain(&mut n);
    let b = n.open(t(50), C0).unwrap();
    assert_ne!(a, b);
    assert_eq!(n.current(C0), Some(b));
    let out: Vec<_> = drain(&mut n).into_iter().map(|(_, d)| d).collect();
    assert_eq!(out.len(), 2);
    assert!(out.contains(&Delivery::Opened { conn: b }));
    assert!(out.contains(&Delivery::Closed {
        conn: a,
        dir: Dir::ToServer,
        reason: CloseReason::Replaced
    }));
    assert_eq!(
        n.open(t(60), ClientIx(7)),
        Err(NetError::UnknownClient(ClientIx(7)))
    );
}

#[test]
fn bad_configs_are_refused() {
    let mut c = NetConfig::calm(1, TransportKind::Stream);
    c.delay_ms_min = 10;
    c.delay_ms_max = 5;
    assert!(matches!(
        Network::<u32>::new(c, Rng::new(0)),
        Err(NetConfigError::DelayRange { .. })
    ));
    let mut c = NetConfig::calm(1, TransportKind::Stream);
    c.loss_permille = 1001;
    assert!(Network::<u32>::new(c, Rng::new(0)).is_err());
}

/// A busy mixed world with every fault, written out as a trace.
fn chaos_trace(seed: u64) -> String {
    let config = NetConfig {
        transports: vec![
            TransportKind::Stream,
            TransportKind::Datagram,
            TransportKind::Stream,
        ],
        delay_ms_min: 5,
        delay_ms_max: 80,
        loss_permille: 100,
        dup_permille: 100,
        reorder_permille: 100,
        reorder_ms_max: 200,
        stream_buffer_frames_max: 16,
        datagram_buffer_frames_max: 16,
        stream_partition: StreamPartition::Resume,
    };
    let mut n: Network<u32> = net(config, seed);
    let mut rng = Rng::new(seed ^ 0xABCD);
    let mut conns: Vec<Option<ConnId>> = vec![None; 3];
    let mut out = String::new();
    for step in 0..400u64 {
        let now = t(step * 7);
        let c = ClientIx(rng.below(3) as u32);
        match rng.below(20) {
            0 => conns[c.index()] = n.open(now, c).ok(),
            1 => {
                n.drop_connection(now, c);
            }
            2 => n.partition(&[c], PartitionKind::Symmetric),
            3 => n.repair(now, &[c]),
            _ => {
                if let Some(conn) = conns[c.index()] {
                    let dir = if rng.below(2) == 0 {
                        Dir::ToServer
                    } else {
                        Dir::ToClient
                    };
                    n.send(now, conn, dir, step as u32);
                }
            }
        }
        while let Some(d) = n.poll_ready(now) {
            writeln!(out, "{now} {d:?}").unwrap();
        }
    }
    n.repair_all(t(10_000));
    for (at, d) in drain(&mut n) {
        writeln!(out, "{} {d:?}", t(at)).unwrap();
    }
    let s = n.stats();
    writeln!(out, "{s}").unwrap();
    // Every frame is delivered, lost or still in flight (stalled or held).
    assert_eq!(
        s.frames_sent + s.frames_duplicated,
        s.frames_delivered + s.frames_lost + n.in_flight()
    );
    out
}

#[test]
fn one_seed_gives_one_delivery_sequence() {
    let a = chaos_trace(42);
    let b = chaos_trace(42);
    assert_eq!(a, b);
    assert_ne!(a, chaos_trace(43));
    assert!(a.lines().count() > 100, "the trace is busy: {a}");
}

#[test]
fn accounting_balances_after_chaos() {
    for seed in 0..50 {
        chaos_trace(seed);
    }
    let mut n = net(jittery(TransportKind::Datagram), 1);
    let conn = n.open(t(0), C0).unwrap();
    n.send(t(0), conn, Dir::ToServer, 1);
    let _ = drain(&mut n);
    let s = n.stats();
    assert_eq!(
        s.frames_sent + s.frames_duplicated,
        s.frames_delivered + s.frames_lost + n.in_flight()
    );
}

#[test]
fn trace_of_a_partition_a_heal_and_a_drop() {
    let mut n = net(
        NetConfig {
            transports: vec![TransportKind::Stream, TransportKind::Datagram],
            delay_ms_min: 10,
            delay_ms_max: 40,
            ..NetConfig::calm(2, TransportKind::Stream)
        },
        11,
    );
    let mut out = String::new();
    let mut log = |n: &mut Network<u32>, now: u64, what: &str| {
        writeln!(out, "{} -- {what}", t(now)).unwrap();
        while let Some(d) = n.poll_ready(t(now)) {
            writeln!(out, "{}    {d}", t(now)).unwrap();
        }
    };
    let a = n.open(t(0), C0).unwrap();
    let b = n.open(t(0), C1).unwrap();
    log(&mut n, 100, "both clients opened at 0");
    n.partition(&[C0, C1], PartitionKind::ToServerOnly);
    for i in 1..=3 {
        n.send(t(100), a, Dir::ToServer, i);
        n.send(t(100), b, Dir::ToServer, 10 + i);
        n.send(t(100), a, Dir::ToClient, 20 + i);
    }
    log(
        &mut n,
        200,
        "partition to-server; c0 and c1 send 3 each, server sends 3 to c0",
    );
    n.repair_all(t(200));
    log(
        &mut n,
        300,
        "heal: c0's held frames arrive in order, c1's datagrams are gone",
    );
    n.drop_connection(t(300), C0);
    log(&mut n, 400, "drop c0: both ends told");
    writeln!(out, "{}", n.stats()).unwrap();
    insta::assert_snapshot!(out);
}

#[test]
fn a_hold_delays_everything_and_loses_nothing() {
    for kind in [TransportKind::Stream, TransportKind::Datagram] {
        let mut n = net(jittery(kind), 12);
        let conn = n.open(t(0), C0).unwrap();
        let _ = drain(&mut n);
        // In flight before the hold, and sent during it.
        for i in 0..10u32 {
            n.send(t(1_000), conn, Dir::ToServer, i);
        }
        n.hold(t(1_001), C0, 2_000);
        for i in 10..20u32 {
            n.send(t(1_500), conn, Dir::ToServer, i);
        }
        let out = drain(&mut n);
        assert!(out.iter().all(|(at, _)| *at >= 3_001), "{kind}: {out:?}");
        let mut got = frames_to(&out, Dir::ToServer);
        if kind == TransportKind::Stream {
            assert_eq!(got, (0..20).collect::<Vec<_>>());
        }
        got.sort_unstable();
        assert_eq!(got, (0..20).collect::<Vec<_>>(), "{kind}");
        assert_eq!(n.stats().frames_lost, 0);
        assert_eq!(n.stats().holds, 1);
    }
}

mod stream_property {
    //! Whatever the faults, a stream direction delivers a prefix of what was
    //! sent on it, in order, exactly once.

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Act {
        Send(u8, bool),
        Open(u8),
        Drop(u8),
        Partition(u8, u8),
        Repair,
        Hold(u8, u16),
        Advance(u16),
    }

    fn act() -> impl Strategy<Value = Act> {
        prop_oneof![
            10 => (any::<u8>(), any::<bool>()).prop_map(|(c, d)| Act::Send(c, d)),
            1 => any::<u8>().prop_map(Act::Open),
            1 => any::<u8>().prop_map(Act::Drop),
            1 => (any::<u8>(), 0u8..3).prop_map(|(c, k)| Act::Partition(c, k)),
            1 => Just(Act::Repair),
            1 => (any::<u8>(), any::<u16>()).prop_map(|(c, ms)| Act::Hold(c, ms)),
            4 => any::<u16>().prop_map(Act::Advance),
        ]
    }

    proptest! {
        #[test]
        fn stream_delivers_a_prefix_in_order(
            seed in any::<u64>(),
            stall in any::<bool>(),
            acts in proptest::collection::vec(act(), 0..300),
        ) {
            let config = NetConfig {
                stream_partition: if stall { StreamPartition::Stall } else { StreamPartition::Resume },
                stream_buffer_frames_max: 32,
                ..jittery(TransportKind::Stream)
            };
            let mut n = net(config, seed);
            let mut now = 0u64;
            let mut next = 0u32;
            let mut sent: BTreeMap<(ConnId, Dir), Vec<u32>> = BTreeMap::new();
            let mut got: BTreeMap<(ConnId, Dir), Vec<u32>> = BTreeMap::new();
            let collect = |n: &mut Network<u32>, now: u64, got: &mut BTreeMap<_, Vec<u32>>| {
                while let Some(d) = n.poll_ready(t(now)) {
                    if let Delivery::Frame { conn, dir, payload } = d {
                        got.entry((conn, dir)).or_default().push(payload);
                    }
                }
            };
            for a in acts {
                let c = |x: u8| ClientIx(u32::from(x % 2));
                match a {
                    Act::Send(x, to_server) => {
                        if let Some(conn) = n.current(c(x)) {
                            let dir = if to_server { Dir::ToServer } else { Dir::ToClient };
                            if n.send(t(now), conn, dir, next) == SendOutcome::Queued {
                                sent.entry((conn, dir)).or_default().push(next);
                            }
                            next += 1;
                        }
                    }
                    Act::Open(x) => { n.open(t(now), c(x)).unwrap(); }
                    Act::Drop(x) => { n.drop_connection(t(now), c(x)); }
                    Act::Partition(x, k) => {
                        let kind = [PartitionKind::Symmetric, PartitionKind::ToServerOnly, PartitionKind::ToClientOnly][k as usize];
                        n.partition(&[c(x)], kind);
                    }
                    Act::Repair => n.repair_all(t(now)),
                    Act::Hold(x, ms) => n.hold(t(now), c(x), u64::from(ms)),
                    Act::Advance(ms) => now += u64::from(ms),
                }
                collect(&mut n, now, &mut got);
            }
            n.repair_all(t(now));
            while let Some(at) = n.next_ready_at() {
                now = now.max(at.as_millis());
                collect(&mut n, now, &mut got);
            }
            for (key, delivered) in &got {
                let all = sent.get(key).map(Vec::as_slice).unwrap_or(&[]);
                prop_assert!(all.starts_with(delivered), "{key:?}: sent {all:?} got {delivered:?}");
            }
            if !stall {
                // After the heal, a connection still open has delivered all.
                for (key, all) in &sent {
                    if n.is_open(key.0) {
                        let delivered = got.get(key).map(Vec::as_slice).unwrap_or(&[]);
                        prop_assert_eq!(delivered, all.as_slice());
                    }
                }
            }
            let s = *n.stats();
            prop_assert_eq!(s.frames_sent, s.frames_delivered + s.frames_lost + n.in_flight());
            prop_assert_eq!(s.frames_duplicated + s.frames_reordered, 0);
        }
    }
}
