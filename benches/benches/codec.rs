//! Frame encode and decode: a typical `message:new` and a join reply
//! carrying 1,000 events.
// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lockstep_benches::frames::{join_ack, typical_message_new};
use lockstep_core::wire::{decode_server, encode_server};

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    for (name, frame, events) in [
        ("message_new", typical_message_new(), 1),
        ("join_ack_1000", join_ack(1_000), 1_000),
    ] {
        let bytes = encode_server(&frame);
        g.throughput(Throughput::Elements(events));
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| encode_server(std::hint::black_box(&frame)));
        });
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| decode_server(std::hint::black_box(&bytes)).is_ok());
        });
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
