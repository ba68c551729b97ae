//! Simulated events per second of the lab: whole 16-client worlds (stream
//! and datagram, faults on), run from their seeds, oracle included; the
//! clients run the client machine, or are all plain socket.io apps.
//! Target (docs/DESIGN.md §6): at least 1,000,000 events/s on one core.
// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use lockstep_sim::run::{RunOptions, run};
use lockstep_sim::scenario::Scenario;
use lockstep_sim::swarm::{ClientPolicy, SwarmOverrides, TransportPolicy};

fn world(seed: u64, transport: TransportPolicy, kinds: ClientPolicy) -> Scenario {
    let overrides = SwarmOverrides {
        clients: Some(16),
        transport: Some(transport),
        kinds: Some(kinds),
        ..SwarmOverrides::default()
    };
    Scenario::generate(seed, &overrides).unwrap_or_else(|e| panic!("bench scenario: {e}"))
}

fn lab(c: &mut Criterion) {
    let mut group = c.benchmark_group("lab");
    group.sample_size(10);
    for (name, transport, kinds) in [
        (
            "16 clients stream",
            TransportPolicy::AllStream,
            ClientPolicy::AllMachine,
        ),
        (
            "16 clients datagram",
            TransportPolicy::AllDatagram,
            ClientPolicy::AllMachine,
        ),
        (
            "16 plain apps stream",
            TransportPolicy::AllStream,
            ClientPolicy::AllPlain,
        ),
        (
            "16 plain apps datagram",
            TransportPolicy::AllDatagram,
            ClientPolicy::AllPlain,
        ),
    ] {
        let scenario = world(7, transport, kinds);
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
