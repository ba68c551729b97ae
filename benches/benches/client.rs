//! Client inbox throughput and the outbox send/ack cycle.
//!
//! docs/DESIGN.md §6 target: at least 5 million in-order inbound events per second
//! per core. Each sample feeds a fresh subscribed client `EVENTS` frames
//! and drains its events; set-up and frame building are outside the timing.
// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use std::time::{Duration, Instant as WallClock};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lockstep_benches::client::{Arrival, SendLoop, Subscribed};
use lockstep_core::ids::Seq;

/// Frames fed per measured run.
const EVENTS: u64 = 10_000;

fn inbox(c: &mut Criterion) {
    let mut g = c.benchmark_group("client/inbox");
    for (name, arrival) in [
        ("in_order", Arrival::InOrder),
        ("out_of_order_blocks_of_8", Arrival::OutOfOrder),
        ("duplicated", Arrival::Duplicated),
    ] {
        let frames = match arrival {
            Arrival::Duplicated => EVENTS * 2,
            _ => EVENTS,
        };
        g.throughput(Throughput::Elements(frames));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut f = Subscribed::new();
                    let events = f.inbound(Seq::ZERO, EVENTS, arrival);
                    let start = WallClock::now();
                    let delivered = f.feed(events);
                    total += start.elapsed();
                    assert_eq!(delivered as u64, EVENTS, "every event delivered once");
                }
                total
            });
        });
    }
    g.finish();
}

/// Sends per measured cycle: one full default send window.
const WINDOW: usize = 32;

fn outbox(c: &mut Criterion) {
    let mut g = c.benchmark_group("client/outbox");
    g.throughput(Throughput::Elements(WINDOW as u64));
    // One long-lived client: resolved entries leave the outbox, so its
    // state does not grow with the iterations (only the seq does).
    let mut l = SendLoop::new();
    g.bench_function("send_ack_cycle_window_32", |b| {
        b.iter(|| {
            let outcomes = l.cycle(WINDOW);
            assert_eq!(outcomes, WINDOW, "one outcome per send");
        });
    });
    g.finish();
}

criterion_group!(benches, inbox, outbox);
criterion_main!(benches);
