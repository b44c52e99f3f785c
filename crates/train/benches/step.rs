//! One training step per method on a batch of 50: the loss of the method (`step_loss`), its
//! backward pass and an Adam update, as the trainer runs them. Methods: natural, pgd (PGD-10),
//! ibp, crown-ibp (at beta = 1, its costliest point), mixtrain with k = 1 and k = 5 (symbolic
//! robust loss on k points), and the methods that add an attack to an IBP pass: sabr, mtl-ibp,
//! cc-ibp, exp-ibp (PGD-10 and IBP each; their cost against pgd's plus ibp's less natural's is
//! the check that a step costs no more than its parts). Throughput is in images per second.
//!
//! `mnist_small` carries the MixTrain authors' eps-0.3 weights (a trained network: its
//! instability pattern, which sets the symbolic domain's cost, is that of training's later
//! epochs) at eps 0.1 on real MNIST; `cifar_small` a seeded initialisation at eps 2/255 on the
//! CIFAR-10 sample (left out by `--quick`).
//!
//! `cargo bench -p mixtrain-train --bench step`.

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mixtrain_bench::{Meta, PeakAlloc, peak_bytes, record};
use mixtrain_data::{DataDir, Split};
use mixtrain_nn::{Network, zoo};
use mixtrain_train::{Method, TrainConfig, step_loss};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

const BATCH: usize = 50;

/// `(name, method, k)`.
const METHODS: [(&str, Method, usize); 10] = [
    ("natural", Method::Natural, 5),
    ("pgd", Method::Pgd, 5),
    ("ibp", Method::Ibp, 5),
    ("crown-ibp", Method::CrownIbp, 5),
    ("mixtrain-k1", Method::Mixtrain, 1),
    ("mixtrain-k5", Method::Mixtrain, 5),
    ("sabr", Method::Sabr, 5),
    ("mtl-ibp", Method::MtlIbp, 5),
    ("cc-ibp", Method::CcIbp, 5),
    ("exp-ibp", Method::ExpIbp, 5),
];

/// FLOPs of one step per image, where a model of them exists (`f` = one forward pass): a
/// natural step is `3f` (forward and backward); PGD-10 adds ten input-gradient passes; IBP
/// adds the interval pass (`2f`) and its backward; CROWN-IBP the backward pass of the
/// `classes` margin rows too; SABR and the expressive losses are a PGD step's work plus an
/// IBP pass and its backward. MixTrain's symbolic term has no simple model.
fn flop_per_image(method: Method, arch: &mixtrain_nn::Architecture, steps: usize) -> Option<f64> {
    let f = 2.0 * arch.macs().expect("a valid zoo architecture") as f64;
    let c = arch.classes as f64;
    match method {
        Method::Natural => Some(3.0 * f),
        Method::Pgd => Some(3.0 * f * (steps as f64 + 1.0)),
        Method::Ibp => Some(3.0 * f + 3.0 * 2.0 * f),
        Method::CrownIbp => Some(3.0 * f + 3.0 * (2.0 + c) * f),
        Method::Sabr | Method::MtlIbp | Method::CcIbp | Method::ExpIbp => {
            Some(3.0 * f * (steps as f64 + 1.0) + 3.0 * 2.0 * f)
        }
        Method::Mixtrain => None,
    }
}

/// The first test batch of `dataset`, or `None` (said on stderr) when it is not available (the
/// CIFAR-10 sample exists only in the offline mirror).
fn batch(dataset: &str, device: &Device) -> Option<(Tensor<4>, Tensor<1, Int>)> {
    let dir = DataDir::new(mixtrain_bench::data_dir());
    let mirror = mixtrain_bench::mirror();
    let set = match mixtrain_data::ensure(dataset, &dir, Some(&mirror))
        .and_then(|_| mixtrain_data::load(dataset, Split::Test, &dir))
    {
        Ok(set) => set.take(BATCH),
        Err(e) => {
            eprintln!("note: {dataset} skipped: {e}");
            return None;
        }
    };
    let b = set.batches(BATCH, None).next().expect("a nonempty set");
    let dims = b.dims();
    Some((
        Tensor::from_data(TensorData::new(b.pixels, dims), device),
        Tensor::from_data(TensorData::new(b.labels, [BATCH]), device),
    ))
}

fn steps(c: &mut Criterion) {
    let ad = mixtrain_bench::device().autodiff();
    let (samples, warm_up, measurement) = mixtrain_bench::sampling();
    let models: &[&str] = if mixtrain_bench::quick() {
        &["mnist_small"]
    } else {
        &["mnist_small", "cifar_small"]
    };
    for &model in models {
        let arch = zoo::architecture(model).expect("zoo model");
        let (dataset, eps, weights) = match model {
            "mnist_small" => (
                "mnist",
                0.1,
                mixtrain_bench::reference("mnist_small_mixtrain_eps0.3.safetensors"),
            ),
            _ => ("cifar10-sample", 2.0 / 255.0, None),
        };
        let net = match &weights {
            Some(path) => Network::load_safetensors(&arch, path, &ad)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            None => Network::init(&arch, 0, &ad).expect("valid zoo architecture"),
        };
        let Some((x, y)) = batch(dataset, &ad) else {
            continue;
        };
        let mut group = c.benchmark_group(format!("train-step/{model}"));
        group
            .sample_size(samples)
            .warm_up_time(warm_up)
            .measurement_time(measurement)
            .throughput(Throughput::Elements(BATCH as u64));
        for (name, method, k) in METHODS {
            let config = TrainConfig {
                model: model.into(),
                method,
                k,
                ..TrainConfig::default()
            };
            let mut rng = StdRng::seed_from_u64(0);
            let mut optim = AdamConfig::new().init();
            let mut net = Some(net.clone());
            let mut step = || {
                let current = net.take().expect("the model between steps");
                let loss = step_loss(&current, x.clone(), y.clone(), &config, eps, 0.5, &mut rng)
                    .expect("a supported network");
                let grads = GradientsParams::from_grads(loss.backward(), &current);
                net = Some(optim.step(1e-4, current, grads));
                ad.sync().expect("the device runs the step");
            };
            group.bench_function(BenchmarkId::new(name, BATCH), |b| b.iter(&mut step));
            record(&Meta {
                id: format!("train-step/{model}/{name}/{BATCH}"),
                unit: "images".into(),
                peak_bytes: peak_bytes(&mut step),
                flop: flop_per_image(method, &arch, config.pgd.steps).map(|f| f * BATCH as f64),
            });
        }
        group.finish();
    }
}

criterion_group!(benches, steps);
criterion_main!(benches);
