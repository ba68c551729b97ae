//! Simulated events per second of the lab: whole 16-client worlds (stream
//! and datagram, faults on), run from their seeds, oracle included.
//! Target (docs/DESIGN.md §6): at least 1,000,000 events/s on one core.
// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use lockstep_sim::run::{RunOptions, run};
use lockstep_sim::scenario::Scenario;
use lockstep_sim::swarm::{SwarmOverrides, TransportPolicy};

fn world(seed: u64, transport: TransportPolicy) -> Scenario {
    let overrides = SwarmOverrides {
        clients: Some(16),
        transport: Some(transport),
        ..SwarmOverrides::default()
    };
    Scenario::generate(seed, &overrides).unwrap_or_else(|e| panic!("bench scenario: {e}"))
}

fn lab(c: &mut Criterion) {
    let mut group = c.benchmark_group("lab");
    group.sample_size(10);
    for (name, transport) in [
        ("16 clients stream", TransportPolicy::AllStream),
        ("16 clients datagram", TransportPolicy::AllDatagram),
    ] {
        let scenario = world(7, transport);
        let events = run(&scenario, RunOptions::default())
            .unwrap_or_else(|e| panic!("bench world: {e}"))
            .stats
            .events;
        group.throughput(Throughput::Elements(events));
        group.bench_function(name, |b| {
            b.iter(|| run(&scenario, RunOptions::default()).map(|r| r.stats.events))
        });
    }
    group.finish();
}

criterion_group!(benches, lab);
criterion_main!(benches);
