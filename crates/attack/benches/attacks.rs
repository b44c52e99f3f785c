//! Attacks per batch on the MixTrain authors' eps-0.3 `mnist_small` and real MNIST test
//! images at eps 0.3: PGD-40 (step 0.01) and the interval-gradient attack (3 rounds of an
//! interval step and 40 PGD steps). Early stop is off, so every iteration does the same work
//! whatever the network's robustness. Throughput is in images per second; `--quick` takes a
//! batch of 10 and 10 PGD steps (one round for the interval attack).
//!
//! `cargo bench -p mixtrain-attack --bench attacks`.

use burn::tensor::{Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mixtrain_attack::{Attack, IntervalAttack, Pgd};
use mixtrain_bench::{Meta, PeakAlloc, peak_bytes, record};
use mixtrain_data::{DataDir, Split};
use mixtrain_nn::{Network, zoo};

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

fn attacks(c: &mut Criterion) {
    let device = mixtrain_bench::device();
    let quick = mixtrain_bench::quick();
    let (n, steps, rounds) = if quick { (10, 10, 1) } else { (50, 40, 3) };
    let arch = zoo::architecture("mnist_small").expect("zoo model");
    let net = match mixtrain_bench::reference("mnist_small_mixtrain_eps0.3.safetensors") {
        Some(path) => Network::load_safetensors(&arch, &path, &device)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        None => Network::init(&arch, 0, &device).expect("valid zoo architecture"),
    };
    let dir = DataDir::new(mixtrain_bench::data_dir());
    let mirror = mixtrain_bench::mirror();
    let set = mixtrain_data::ensure("mnist", &dir, Some(&mirror))
        .and_then(|_| mixtrain_data::load("mnist", Split::Test, &dir))
        .unwrap_or_else(|e| panic!("mnist from the mirror {}: {e}", mirror.display()))
        .take(n);
    let batch = set.batches(n, None).next().expect("a nonempty set");
    let dims = batch.dims();
    let x = Tensor::<4>::from_data(TensorData::new(batch.pixels, dims), &device);
    let y = Tensor::from_data(TensorData::new(batch.labels, [n]), &device);

    let pgd = Pgd {
        early_stop: false,
        ..Pgd::new(0.3, 0.01, steps)
    };
    let interval = IntervalAttack {
        interval_steps: rounds,
        ..IntervalAttack::new(pgd)
    };
    // PGD: a forward and an input-gradient pass per step, plus the final check
    let forward = 2.0 * arch.macs().expect("a valid zoo architecture") as f64;
    let pgd_flop = (3.0 * steps as f64 + 2.0) * forward * n as f64;
    let attacks: [(&str, &dyn Attack, Option<f64>); 2] =
        [("pgd", &pgd, Some(pgd_flop)), ("interval", &interval, None)];
    let (samples, warm_up, measurement) = mixtrain_bench::sampling();
    let mut group = c.benchmark_group("attack/mnist_small");
    group
        .sample_size(samples)
        .warm_up_time(warm_up)
        .measurement_time(measurement)
        .throughput(Throughput::Elements(n as u64));
    for (name, attack, flop) in attacks {
        let run = || {
            attack
                .run(&net, x.clone(), y.clone())
                .expect("a supported network")
                .broken
                .into_data()
        };
        group.bench_function(BenchmarkId::new(name, n), |b| b.iter(run));
        record(&Meta {
            id: format!("attack/mnist_small/{name}/{n}"),
            unit: "images".into(),
            peak_bytes: peak_bytes(|| {
                run();
            }),
            flop,
        });
    }
    group.finish();
}

criterion_group!(benches, attacks);
criterion_main!(benches);
