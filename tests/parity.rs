//! Backend parity: the same networks, inputs and seeds give the same logits, the same margin
//! bounds in every domain and the same robust-loss gradients on every backend of the build,
//! compared with `ndarray` (the plainest implementation), and every backend's bounds are sound.
//!
//! Tolerance (float32: the backends sum in different orders, and GPU kernels contract
//! multiply-adds): `|value - ndarray's| <= 1e-4 + 1e-3 |ndarray's|` for logits, bounds and
//! gradients. Soundness: no sampled point of the box, no corner, no PGD point below the lower
//! bound by more than `1e-4 (1 + |bound|)`.
//!
//! `flex` is always compared. `wgpu` is compared when the build has it and an adapter opens:
//! `cargo test --features wgpu --test parity -- --nocapture` (CI installs Mesa's software Vulkan
//! driver, lavapipe, for it). `cuda` likewise with `--features cuda` and an NVIDIA GPU. Without
//! a device a GPU backend's part is skipped with a message naming the reason.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use mixtrain::attack::Pgd;
use mixtrain::bounds::{AlphaCrown, DomainKind, InputDomain, InputSet};
use mixtrain::loss::robust_cross_entropy;
use mixtrain::nn::{Architecture, Backend, LayerSpec, Network, adapter_name};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ATOL: f32 = 1e-4;
const RTOL: f32 = 1e-3;
const EPS: f32 = 0.03;
const POINTS: usize = 3;

/// Two convolutions (the symbolic domain's patch path), normalisation, two linear layers.
fn cnn() -> Architecture {
    Architecture {
        name: "parity_cnn".into(),
        input: [1, 8, 8],
        classes: 5,
        layers: vec![
            LayerSpec::Normalize {
                mean: vec![0.13],
                std: vec![0.31],
            },
            LayerSpec::conv2d("conv1", 1, 4, 3, 1, 1),
            LayerSpec::Relu,
            LayerSpec::conv2d("conv2", 4, 8, 4, 2, 1),
            LayerSpec::Relu,
            LayerSpec::Flatten,
            LayerSpec::linear("fc1", 8 * 4 * 4, 16),
            LayerSpec::Relu,
            LayerSpec::linear("fc2", 16, 5),
        ],
    }
}

/// A residual block with a strided projection skip and batch norm, then average pooling (the
/// symbolic domain's dense path).
fn resnet() -> Architecture {
    let path = vec![
        LayerSpec::conv2d("block.conv1", 4, 8, 4, 2, 1),
        LayerSpec::BatchNorm2d {
            name: "block.bn".into(),
            channels: 8,
            eps: 1e-5,
            momentum: 0.1,
        },
        LayerSpec::Relu,
        LayerSpec::conv2d("block.conv2", 8, 8, 3, 1, 1),
    ];
    Architecture {
        name: "parity_resnet".into(),
        input: [3, 8, 8],
        classes: 5,
        layers: vec![
            LayerSpec::Normalize {
                mean: vec![0.49, 0.48, 0.45],
                std: vec![0.25, 0.24, 0.26],
            },
            LayerSpec::conv2d("stem", 3, 4, 3, 1, 1),
            LayerSpec::Relu,
            LayerSpec::Residual {
                path,
                skip: Some(Box::new(LayerSpec::conv2d("block.skip", 4, 8, 2, 2, 0))),
            },
            LayerSpec::Relu,
            LayerSpec::AvgPool2d {
                kernel: 2,
                stride: 1,
            },
            LayerSpec::Flatten,
            LayerSpec::linear("fc", 8 * 3 * 3, 5),
        ],
    }
}

/// Seeded pixels in `[0, 1]` and labels, the same on every backend.
fn inputs(arch: &Architecture) -> (Vec<f32>, Vec<i64>) {
    let mut rng = StdRng::seed_from_u64(7);
    let [c, h, w] = arch.input;
    let pixels = (0..POINTS * c * h * w).map(|_| rng.random()).collect();
    let labels = (0..POINTS)
        .map(|_| rng.random_range(0..arch.classes as i64))
        .collect();
    (pixels, labels)
}

/// The network from seed 0 on `device`, batch-norm statistics taken from the clean inputs.
fn network(arch: &Architecture, device: &Device) -> (Network, Tensor<4>, Tensor<1, Int>) {
    let (pixels, labels) = inputs(arch);
    let [c, h, w] = arch.input;
    let x = Tensor::<4>::from_data(TensorData::new(pixels, [POINTS, c, h, w]), device);
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [POINTS]), device);
    let mut net = Network::init(arch, 0, device).expect("a valid architecture");
    if net.has_batch_norm() {
        net = net.refresh_statistics(x.clone());
    }
    (net, x, y)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data")
}

/// Asserts `got` matches `want` (ndarray's) within the stated tolerance.
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= ATOL + RTOL * w.abs(),
            "{what}[{i}]: {g} against ndarray's {w}"
        );
    }
}

/// Every float parameter's gradient, in module order (`None` for untracked ones: batch-norm
/// running statistics).
struct GradientsOf<'a> {
    grads: &'a GradientsParams,
    out: Vec<Option<Vec<f32>>>,
}

impl ModuleVisitor for GradientsOf<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.out.push(self.grads.get::<D>(param.id).map(values));
    }
}

/// What one backend computes on one network.
struct Results {
    logits: Vec<f32>,
    /// Margin lower bounds per domain of [`DomainKind::ALL`].
    bounds: Vec<Vec<f32>>,
    /// Robust-loss gradients per training domain (interval, symbolic, crown).
    gradients: Vec<Vec<Option<Vec<f32>>>>,
}

const TRAIN_DOMAINS: [DomainKind; 3] = [
    DomainKind::Interval,
    DomainKind::Symbolic,
    DomainKind::Crown,
];

fn compute(arch: &Architecture, device: &Device) -> Results {
    let (net, x, y) = network(arch, device);
    let set = InputSet::linf(x.clone(), EPS, InputDomain::Unit).expect("a valid box");
    let logits = values(net.forward(x.clone()));
    // alpha-CROWN's first Adam step moves each slope by the sign of its gradient, so where a
    // gradient is at rounding level the backends may step apart; its bound before any step
    // (every backward pass it runs, the intermediate ones included) is what must agree
    let alpha = AlphaCrown {
        iterations: 0,
        ..AlphaCrown::default()
    };
    let bounds: Vec<Vec<f32>> = DomainKind::ALL
        .iter()
        .map(|d| {
            let margins = d
                .margins_with(&alpha, &net, &set, y.clone())
                .expect("supported layers");
            values(margins.lower)
        })
        .collect();
    assert_sound(&net, &set, x, y, &bounds, device);

    let ad = device.clone().autodiff();
    let (tracked, x, y) = network(arch, &ad);
    let set = InputSet::linf(x, EPS, InputDomain::Unit).expect("a valid box");
    let gradients = TRAIN_DOMAINS
        .iter()
        .map(|d| {
            let margins = d
                .margins(&tracked, &set, y.clone())
                .expect("supported layers");
            let loss: Tensor<1> = robust_cross_entropy(&margins).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &tracked);
            let mut visitor = GradientsOf {
                grads: &grads,
                out: Vec::new(),
            };
            tracked.visit(&mut visitor);
            visitor.out
        })
        .collect();
    Results {
        logits,
        bounds,
        gradients,
    }
}

/// Margins `z_y - z_j` of the points `x` (`[n, classes]`).
fn margins_at(net: &Network, x: Tensor<4>, y: &Tensor<1, Int>) -> Vec<f32> {
    let logits = net.forward(x);
    let [_, classes] = logits.dims();
    let own = logits.clone().gather(1, y.clone().unsqueeze_dim(1));
    values(own.repeat_dim(1, classes) - logits)
}

/// No point of the box (random points, its corners for the first input, PGD points on each
/// margin) is below any domain's lower bound.
fn assert_sound(
    net: &Network,
    set: &InputSet,
    x: Tensor<4>,
    y: Tensor<1, Int>,
    bounds: &[Vec<f32>],
    device: &Device,
) {
    let mut rng = StdRng::seed_from_u64(11);
    let dims = set.lower.dims();
    let lower = values(set.lower.clone());
    let upper = values(set.upper.clone());
    let mut points: Vec<Tensor<4>> = (0..32)
        .map(|i| {
            let corner = i % 2 == 0;
            let p: Vec<f32> = lower
                .iter()
                .zip(&upper)
                .map(|(l, u)| {
                    let t: f32 = rng.random();
                    let t = if corner { t.round() } else { t };
                    l + t * (u - l)
                })
                .collect();
            Tensor::from_data(TensorData::new(p, dims), device)
        })
        .collect();
    let pgd = Pgd::new(EPS, EPS / 4.0, 10);
    points.push(pgd.perturb(net, x, y.clone()).expect("a supported network"));
    for p in points {
        let at = margins_at(net, p, &y);
        for (domain, bound) in DomainKind::ALL.iter().zip(bounds) {
            for (i, (m, b)) in at.iter().zip(bound).enumerate() {
                assert!(
                    *m >= b - 1e-4 * (1.0 + b.abs()),
                    "{} on {}: margin {i} is {m} at a point of the box, below its bound {b}",
                    domain.name(),
                    adapter_name(device),
                );
            }
        }
    }
}

/// The devices to compare with ndarray: flex, and each GPU backend (wgpu, cuda) where it is
/// built and a device opens.
fn others() -> Vec<(String, Device)> {
    let mut devices = vec![(
        "flex".to_string(),
        Backend::Flex.device(None).expect("the CPU backend"),
    )];
    for backend in [Backend::Wgpu, Backend::Cuda] {
        match backend.device(None) {
            Ok(device) => {
                let name = format!("{backend} ({})", adapter_name(&device));
                println!("backend parity: comparing {name} with ndarray");
                devices.push((name, device));
            }
            Err(e) => println!("backend parity: SKIPPED {backend}: {e}"),
        }
    }
    devices
}

#[test]
fn every_backend_agrees_with_ndarray_and_stays_sound() {
    let reference = Backend::Ndarray.device(None).expect("the CPU backend");
    let others = others();
    for arch in [cnn(), resnet()] {
        let want = compute(&arch, &reference);
        for (name, device) in &others {
            let got = compute(&arch, device);
            let at = |what: &str| format!("{} on {name}: {what}", arch.name);
            assert_close(&got.logits, &want.logits, &at("logits"));
            for ((domain, g), w) in DomainKind::ALL.iter().zip(&got.bounds).zip(&want.bounds) {
                assert_close(g, w, &at(&format!("{} bounds", domain.name())));
            }
            for ((domain, g), w) in TRAIN_DOMAINS
                .iter()
                .zip(&got.gradients)
                .zip(&want.gradients)
            {
                assert_eq!(g.len(), w.len());
                for (i, (g, w)) in g.iter().zip(w).enumerate() {
                    let what = at(&format!(
                        "{} robust-loss gradient of parameter {i}",
                        domain.name()
                    ));
                    match (g, w) {
                        (Some(g), Some(w)) => assert_close(g, w, &what),
                        (None, None) => {}
                        _ => panic!("{what}: tracked on one backend only"),
                    }
                }
            }
            println!("backend parity: {} agrees on {name}", arch.name);
        }
    }
}
