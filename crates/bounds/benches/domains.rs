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
//! Peak heap memory of one run of each configuration is measured by a counting allocator and
//! written to `target/criterion/bounds-peak-memory.csv` (and printed).
//!
//! `cargo bench -p mixtrain-bounds --bench domains` (about 10 minutes); a filter such as
//! `-- mnist_small/symbolic` runs a subset.

use std::alloc::{GlobalAlloc, Layout};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mixtrain_bounds::{DomainKind, InputDomain, InputSet};
use mixtrain_data::{DataDir, Split};
use mixtrain_nn::{Backend, Network, zoo};

/// The binaries' allocator (mimalloc, see the CLI) with a count of live bytes and their
/// high-water mark.
struct PeakAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to mimalloc; only counters are added.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { mimalloc::MiMalloc.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

/// Peak heap bytes above the level at the start, while `f` runs once.
fn peak_bytes(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed) - base
}

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

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mirror() -> PathBuf {
    DataDir::mirror_from_env().unwrap_or_else(|| workspace().join("../shared/datasets"))
}

fn workload(model: &'static str, plain: &Device, ad: &Device) -> Workload {
    let arch = zoo::architecture(model).expect("zoo model");
    let (dataset, eps, weights) = match model {
        "mnist_small" => (
            "mnist",
            0.1,
            Some(mirror().join("../reference/mnist_small_mixtrain_eps0.3.safetensors")),
        ),
        _ => ("cifar10-sample", 2.0 / 255.0, None),
    };
    let load = |device: &Device| match &weights {
        Some(path) => Network::load_safetensors(&arch, path, device)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        None => Network::init(&arch, 0, device).expect("valid zoo architecture"),
    };
    let dir = DataDir::new(workspace().join("target/bench-data"));
    let set = mixtrain_data::ensure(dataset, &dir, Some(&mirror()))
        .and_then(|_| mixtrain_data::load(dataset, Split::Test, &dir))
        .unwrap_or_else(|e| panic!("{dataset} from the mirror {}: {e}", mirror().display()))
        .take(*BATCHES.iter().max().unwrap());
    let batch = set.batches(set.len(), None).next().expect("a nonempty set");
    Workload {
        model,
        eps,
        plain: load(plain),
        tracked: load(ad),
        images: batch.pixels.clone(),
        labels: batch.labels.clone(),
        shape: set.shape(),
    }
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
    }
}

fn domains(c: &mut Criterion) {
    let plain = Backend::Flex.device(None).expect("the CPU backend");
    let ad = plain.clone().autodiff();
    let mut memory = vec!["model,domain,batch,mode,peak_heap_mib".to_string()];
    for model in ["mnist_small", "cifar_small"] {
        let work = workload(model, &plain, &ad);
        let mut group = c.benchmark_group(work.model);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for domain in DomainKind::ALL {
            for n in BATCHES {
                group.throughput(Throughput::Elements(n as u64));
                let id = |mode: &str| BenchmarkId::new(format!("{}/{mode}", domain.name()), n);
                group.bench_function(id("forward"), |b| {
                    b.iter(|| work.forward(domain, n, &plain))
                });
                group.bench_function(id("forward+backward"), |b| {
                    b.iter(|| work.forward_backward(domain, n, &ad))
                });
                for (mode, bytes) in [
                    ("forward", peak_bytes(|| work.forward(domain, n, &plain))),
                    (
                        "forward+backward",
                        peak_bytes(|| work.forward_backward(domain, n, &ad)),
                    ),
                ] {
                    memory.push(format!(
                        "{model},{},{n},{mode},{:.1}",
                        domain.name(),
                        bytes as f64 / (1024.0 * 1024.0)
                    ));
                }
            }
        }
        group.finish();
    }
    let out = workspace().join("target/criterion");
    std::fs::create_dir_all(&out).expect("criterion's output directory");
    let table = memory.join("\n") + "\n";
    std::fs::write(out.join("bounds-peak-memory.csv"), &table).expect("writable target dir");
    println!("peak heap per configuration (MiB):\n{table}");
}

criterion_group!(benches, domains);
criterion_main!(benches);
