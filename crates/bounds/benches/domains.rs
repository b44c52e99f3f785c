//! Bounds per second for every domain on `mnist_small` and `cifar_small`, batches of 1, 5 and
//! 50, forward only (verification) and forward+backward (the robust loss of training: cross
//! entropy of the worst-case logits, differentiated with respect to the weights). Criterion's
//! throughput is in bounds (points) per second.
//!
//! `mnist_small` carries the MixTrain authors' eps-0.3 weights and real MNIST test images at
//! eps 0.1 (the reference setting); `cifar_small` has no published weights here, so it
//! runs a seeded initialisation on the real CIFAR-10 sample at eps 2/255. Data comes from
//! `MIXTRAIN_MIRROR` (default `../shared/datasets`), read in place.
//!
//! Peak heap memory of one run of each configuration (a counting allocator) and the FLOP count
//! where a model of it exists go to `target/bench-meta/` for `cargo xtask bench`'s report.
//!
//! `cargo bench -p mixtrain-bounds --bench domains` (about 10 minutes); a filter such as
//! `-- mnist_small/symbolic` runs a subset.

use std::path::PathBuf;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mixtrain_bench::{Meta, PeakAlloc, peak_bytes, record};
use mixtrain_bounds::{DomainKind, InputDomain, InputSet};
use mixtrain_data::{DataDir, Split};
use mixtrain_nn::{Network, zoo};

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

const BATCHES: [usize; 3] = [1, 5, 50];

struct Workload {
    model: &'static str,
    eps: f32,
    plain: Network,
    tracked: Network,
    images: Vec<f32>,
    labels: Vec<i64>,
    shape: [usize; 3],
}

/// The workload of `model`, or `None` (said on stderr) when its data is not available: the
/// CIFAR-10 sample exists only in the offline mirror.
fn workload(model: &'static str, plain: &Device, ad: &Device) -> Option<Workload> {
    let arch = zoo::architecture(model).expect("zoo model");
    let (dataset, eps, weights) = match model {
        "mnist_small" => (
            "mnist",
            0.1,
            mixtrain_bench::reference("mnist_small_mixtrain_eps0.3.safetensors"),
        ),
        _ => ("cifar10-sample", 2.0 / 255.0, None),
    };
    let load = |device: &Device| match &weights {
        Some(path) => Network::load_safetensors(&arch, path, device)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        None => Network::init(&arch, 0, device).expect("valid zoo architecture"),
    };
    let dir = DataDir::new(mixtrain_bench::data_dir());
    let mirror: PathBuf = mixtrain_bench::mirror();
    let set = match mixtrain_data::ensure(dataset, &dir, Some(&mirror))
        .and_then(|_| mixtrain_data::load(dataset, Split::Test, &dir))
    {
        Ok(set) => set.take(*BATCHES.iter().max().unwrap()),
        Err(e) => {
            eprintln!("note: {model} skipped: {dataset}: {e}");
            return None;
        }
    };
    let batch = set.batches(set.len(), None).next().expect("a nonempty set");
    Some(Workload {
        model,
        eps,
        plain: load(plain),
        tracked: load(ad),
        images: batch.pixels.clone(),
        labels: batch.labels.clone(),
        shape: set.shape(),
    })
}

impl Workload {
    fn inputs(&self, n: usize, device: &Device) -> (InputSet, Tensor<1, Int>) {
        let [c, h, w] = self.shape;
        let pixels = self.images[..n * c * h * w].to_vec();
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [n, c, h, w]), device);
        let y =
            Tensor::<1, Int>::from_data(TensorData::new(self.labels[..n].to_vec(), [n]), device);
        let set = InputSet::linf(x, self.eps, InputDomain::Unit).expect("a valid eps");
        (set, y)
    }

    /// Margin bounds, read back (verification).
    fn forward(&self, domain: DomainKind, n: usize, device: &Device) {
        let (set, y) = self.inputs(n, device);
        let margins = domain
            .margins(&self.plain, &set, y)
            .expect("supported layers");
        margins.lower.into_data();
    }

    /// The robust loss and its gradient with respect to every weight (training).
    fn forward_backward(&self, domain: DomainKind, n: usize, device: &Device) {
        let (set, y) = self.inputs(n, device);
        let margins = domain
            .margins(&self.tracked, &set, y.clone())
            .expect("supported layers");
        let loss = log_softmax(margins.worst_case_logits(), 1)
            .gather(1, y.unsqueeze_dim(1))
            .mean()
            .neg();
        let grads = loss.backward();
        drop(grads);
        device.sync().expect("the device runs the backward pass");
    }
}

/// FLOPs of one bound per image, where the domain's cost has a simple model: IBP pushes a
/// centre and a radius through every affine layer (2 forward passes), CROWN-IBP adds the
/// backward pass of the `classes` margin rows. The symbolic domains' cost depends on the
/// instability pattern (see `mixtrain_bounds::Symbolic`), so they get none.
fn flop_per_image(domain: DomainKind, work: &Workload) -> Option<f64> {
    let arch = work.plain.architecture();
    let forward = 2.0 * arch.macs().expect("a valid zoo architecture") as f64;
    match domain {
        DomainKind::Interval => Some(2.0 * forward),
        DomainKind::Crown => Some((2.0 + arch.classes as f64) * forward),
        _ => None,
    }
}

fn domains(c: &mut Criterion) {
    let plain = mixtrain_bench::device();
    let ad = plain.clone().autodiff();
    let (samples, warm_up, measurement) = mixtrain_bench::sampling();
    // quick: the batch training uses (k = 5) only
    let batches: &[usize] = if mixtrain_bench::quick() {
        &[5]
    } else {
        &BATCHES
    };
    for model in ["mnist_small", "cifar_small"] {
        let Some(work) = workload(model, &plain, &ad) else {
            continue;
        };
        let mut group = c.benchmark_group(work.model);
        group
            .sample_size(samples)
            .warm_up_time(warm_up)
            .measurement_time(measurement);
        for domain in DomainKind::ALL {
            for &n in batches {
                group.throughput(Throughput::Elements(n as u64));
                let id = |mode: &str| BenchmarkId::new(format!("{}/{mode}", domain.name()), n);
                group.bench_function(id("forward"), |b| {
                    b.iter(|| work.forward(domain, n, &plain))
                });
                group.bench_function(id("forward+backward"), |b| {
                    b.iter(|| work.forward_backward(domain, n, &ad))
                });
                let flop = flop_per_image(domain, &work).map(|f| f * n as f64);
                for (mode, bytes, factor) in [
                    (
                        "forward",
                        peak_bytes(|| work.forward(domain, n, &plain)),
                        1.0,
                    ),
                    (
                        "forward+backward",
                        peak_bytes(|| work.forward_backward(domain, n, &ad)),
                        3.0,
                    ),
                ] {
                    record(&Meta {
                        id: format!("{model}/{}/{mode}/{n}", domain.name()),
                        unit: "bounds".into(),
                        peak_bytes: bytes,
                        flop: flop.map(|f| f * factor),
                    });
                }
            }
        }
        group.finish();
    }
}

criterion_group!(benches, domains);
criterion_main!(benches);
