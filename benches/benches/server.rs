//! Server fan-out of one message and a join with a 1,000-event backlog.
//!
//! docs/DESIGN.md §6 target: fan-out under 100 ns per member beyond encoding the
//! frame once. `fanout/full/N` times `handle_store` of a committed append
//! through draining its outputs (the sender's ack and the broadcast, routed
//! by the bench driver to every member's queue); the store itself runs
//! outside the timing. `fanout/encoded_once/N` times only encoding the
//! broadcast once and handing the bytes to N queues, so the per-member
//! cost is the slope between N=1 and N=10,000; `encoded_once_via_members`
//! does the same with the member list taken from `Server::members`.
// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant as WallClock};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lockstep_benches::frames::{channel, typical_body, typical_message_new};
use lockstep_benches::server::{Backlog, Driver, fan_out_encoded};
use lockstep_core::server::ConnId;
use lockstep_core::wire::encode_server;

const MEMBERS: [u64; 3] = [1, 100, 10_000];

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("server/fanout");
    for members in MEMBERS {
        g.throughput(Throughput::Elements(members));
        let mut d = Driver::with_members(members);
        let body = typical_body();
        g.bench_function(format!("full/{members}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let Some((op, result)) = d.prepare_append(ConnId(1), &body) else {
                        continue;
                    };
                    let start = WallClock::now();
                    d.complete(op, result);
                    total += start.elapsed();
                    d.clear_outbound();
                }
                total
            });
        });
        let frame = typical_message_new();
        let list: Vec<ConnId> = (1..=members).map(ConnId).collect();
        g.bench_function(format!("encoded_once/{members}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = WallClock::now();
                    let bytes: Arc<[u8]> = encode_server(&frame).into();
                    let n = fan_out_encoded(&bytes, &list, &mut d.outbound);
                    total += start.elapsed();
                    assert_eq!(n as u64, members);
                    d.clear_outbound();
                }
                total
            });
        });
        // The same, but asking the machine for the member list
        // (`Server::members`, which collects and sorts it per call) instead
        // of keeping a room mirror in the driver.
        let ch = channel();
        g.bench_function(format!("encoded_once_via_members/{members}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = WallClock::now();
                    let bytes: Arc<[u8]> = encode_server(&frame).into();
                    let list = d.server.members(&ch);
                    let n = fan_out_encoded(&bytes, &list, &mut d.outbound);
                    total += start.elapsed();
                    assert_eq!(n as u64, members);
                    d.clear_outbound();
                }
                total
            });
        });
    }
    g.finish();
}

fn join(c: &mut Criterion) {
    let mut g = c.benchmark_group("server/join");
    g.throughput(Throughput::Elements(1_000));
    let mut backlog = Backlog::new(1_000);
    g.bench_function("backlog_1000_events", |b| {
        b.iter(|| {
            let bytes = backlog.join_once();
            assert!(bytes > 100_000, "the ack carries the backlog");
        });
    });
    g.finish();
}

criterion_group!(benches, fanout, join);
criterion_main!(benches);
