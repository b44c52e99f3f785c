//! Data loading and batching on real MNIST: reading a split from its gzipped IDX files
//! (decompression, parsing, scaling to `[0, 1]`), and one shuffled epoch of batches of 50
//! (what the trainer does on the host before each step). Throughput is in images per second.
//!
//! `cargo bench -p mixtrain-data --bench loading`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mixtrain_bench::{Meta, PeakAlloc, peak_bytes, record};
use mixtrain_data::{DataDir, Split};

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

fn loading(c: &mut Criterion) {
    let dir = DataDir::new(mixtrain_bench::data_dir());
    let mirror = mixtrain_bench::mirror();
    mixtrain_data::ensure("mnist", &dir, Some(&mirror))
        .unwrap_or_else(|e| panic!("mnist from the mirror {}: {e}", mirror.display()));
    let load = |split| mixtrain_data::load("mnist", split, &dir).expect("a verified dataset");
    let (samples, warm_up, measurement) = mixtrain_bench::sampling();
    let mut group = c.benchmark_group("data/mnist");
    group
        .sample_size(samples)
        .warm_up_time(warm_up)
        .measurement_time(measurement);

    let test = load(Split::Test);
    group.throughput(Throughput::Elements(test.len() as u64));
    group.bench_function("load-test", |b| b.iter(|| load(Split::Test)));
    record(&Meta {
        id: "data/mnist/load-test".into(),
        unit: "images".into(),
        peak_bytes: peak_bytes(|| drop(load(Split::Test))),
        flop: None,
    });

    let train = load(Split::Train);
    let epoch = |seed| {
        train
            .batches(50, Some(seed))
            .map(|b| b.pixels.len())
            .sum::<usize>()
    };
    group.throughput(Throughput::Elements(train.len() as u64));
    let mut seed = 0;
    group.bench_function("shuffled-epoch-batch-50", |b| {
        b.iter(|| {
            seed += 1;
            epoch(seed)
        })
    });
    record(&Meta {
        id: "data/mnist/shuffled-epoch-batch-50".into(),
        unit: "images".into(),
        peak_bytes: peak_bytes(|| {
            epoch(0);
        }),
        flop: None,
    });
    group.finish();
}

criterion_group!(benches, loading);
criterion_main!(benches);
