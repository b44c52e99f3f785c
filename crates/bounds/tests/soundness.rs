//! Soundness: on random small networks of every layer kind, no sampled point of the input box,
//! no corner of a tiny box and no point found by a few steps of gradient ascent on a margin
//! leaves the bounds of any domain, float sound or not. Tolerance: the forward pass's float32
//! round-off, `1e-4 * (1 + |value|)`.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use mixtrain_bounds::{AlphaCrown, DomainKind, InputDomain, InputSet, Intermediate, Margins};
use mixtrain_nn::{Architecture, Backend, LayerSpec, Network};
use proptest::prelude::*;

fn device() -> Device {
    Backend::Flex.device(None).unwrap()
}

/// A residual block's shape: `(out channels, stride, batch norm in the path, average pooling
/// after the block's ReLU)`.
type BlockShape = (usize, usize, bool, bool);

/// A random architecture: optional normalisation, 1-3 convolutions (three take the symbolic
/// domain's dense path, fewer its patches), an optional residual block (identity or projection
/// skip, optional batch norm in its path, optional average pooling after it), flatten, 1-2
/// hidden linear layers, ReLU after every hidden layer.
fn arch_strategy() -> impl Strategy<Value = Architecture> {
    (
        1usize..=2,
        4usize..=7,
        any::<bool>(),
        prop::collection::vec((1usize..=4, 2usize..=3, 1usize..=2, 0usize..=1), 1..=3),
        prop::option::of((1usize..=3, 1usize..=2, any::<bool>(), any::<bool>())),
        prop::collection::vec(2usize..=8, 1..=2),
        2usize..=4,
    )
        .prop_map(
            |(channels, side, normalize, convs, block, hidden, classes)| {
                let mut layers = Vec::new();
                if normalize {
                    layers.push(LayerSpec::Normalize {
                        mean: vec![0.4; channels],
                        std: vec![0.3; channels],
                    });
                }
                let (mut c, mut s) = (channels, side);
                for (i, (out, k, stride, pad)) in convs.into_iter().enumerate() {
                    if s + 2 * pad < k {
                        continue;
                    }
                    layers.push(LayerSpec::Conv2d {
                        name: format!("conv{i}"),
                        in_channels: c,
                        out_channels: out,
                        kernel: k,
                        stride,
                        padding: pad,
                    });
                    layers.push(LayerSpec::Relu);
                    c = out;
                    s = (s + 2 * pad - k) / stride + 1;
                }
                if let Some(shape) = block {
                    (c, s) = push_block(&mut layers, c, s, shape);
                }
                layers.push(LayerSpec::Flatten);
                let mut d = c * s * s;
                for (i, h) in hidden.into_iter().enumerate() {
                    layers.push(LayerSpec::Linear {
                        name: format!("fc{i}"),
                        in_features: d,
                        out_features: h,
                    });
                    layers.push(LayerSpec::Relu);
                    d = h;
                }
                layers.push(LayerSpec::Linear {
                    name: "out".into(),
                    in_features: d,
                    out_features: classes,
                });
                Architecture {
                    name: "random".into(),
                    input: [channels, side, side],
                    classes,
                    layers,
                }
            },
        )
}

/// Appends `Residual - ReLU [- AvgPool]` to `layers`; returns the channels and side after.
fn push_block(
    layers: &mut Vec<LayerSpec>,
    c: usize,
    s: usize,
    (out, stride, batch_norm, pool): BlockShape,
) -> (usize, usize) {
    let conv = LayerSpec::conv2d;
    let mut path = vec![conv("block.a", c, out, 3, stride, 1)];
    if batch_norm {
        path.push(LayerSpec::BatchNorm2d {
            name: "block.bn".into(),
            channels: out,
            eps: 1e-5,
            momentum: 0.1,
        });
    }
    path.extend([LayerSpec::Relu, conv("block.b", out, out, 3, 1, 1)]);
    let skip =
        (out != c || stride != 1).then(|| Box::new(conv("block.skip", c, out, 1, stride, 0)));
    layers.extend([LayerSpec::Residual { path, skip }, LayerSpec::Relu]);
    let s = (s - 1) / stride + 1;
    if pool && s >= 2 {
        layers.push(LayerSpec::AvgPool2d {
            kernel: 2,
            stride: 1,
        });
        return (out, s - 1);
    }
    (out, s)
}

fn margins_at(net: &Network, x: Tensor<4>, labels: &[i64]) -> Vec<f32> {
    let logits = net.forward(x);
    let [n, classes] = logits.dims();
    let l: Vec<f32> = logits.into_data().try_to_vec().unwrap();
    (0..n)
        .flat_map(|i| (0..classes).map(move |j| (i, j)))
        .map(|(i, j)| l[i * classes + labels[i] as usize] - l[i * classes + j])
        .collect()
}

fn check(
    domain: DomainKind,
    net: &Network,
    set: &InputSet,
    labels: &[i64],
    points: &[Tensor<4>],
) -> Result<(), TestCaseError> {
    let bounds = domain.margins(net, set, label_tensor(labels)).unwrap();
    check_margins(domain.name(), bounds, net, labels, points)
}

fn label_tensor(labels: &[i64]) -> Tensor<1, Int> {
    Tensor::<1, Int>::from_data(TensorData::new(labels.to_vec(), [labels.len()]), &device())
}

fn check_margins(
    name: &str,
    bounds: Margins,
    net: &Network,
    labels: &[i64],
    points: &[Tensor<4>],
) -> Result<(), TestCaseError> {
    let lower: Vec<f32> = bounds.lower.into_data().try_to_vec().unwrap();
    for p in points {
        for (k, (m, lo)) in margins_at(net, p.clone(), labels)
            .iter()
            .zip(&lower)
            .enumerate()
        {
            prop_assert!(
                *m >= lo - 1e-4 * (1.0 + lo.abs()),
                "{name}: margin {m} below its lower bound {lo} (entry {k})"
            );
        }
    }
    Ok(())
}

/// Uniform points of the box, its centre, and a few steps of signed-gradient ascent on the
/// negated margins (a PGD attack on the bound), projected onto the box.
fn sample_points(net: &Network, set: &InputSet, labels: &[i64], seed: u64) -> Vec<Tensor<4>> {
    let dev = device();
    let (lo, hi) = (set.lower.clone(), set.upper.clone());
    let dims = lo.dims();
    let mut rng = seed;
    let mut uniform = |n: usize| -> Tensor<4> {
        let v: Vec<f32> = (0..n)
            .map(|_| {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (rng >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect();
        Tensor::from_data(TensorData::new(v, dims), &dev)
    };
    let count: usize = dims.iter().product();
    let mut points: Vec<Tensor<4>> = (0..8)
        .map(|_| lo.clone() + (hi.clone() - lo.clone()) * uniform(count))
        .collect();
    points.push((lo.clone() + hi.clone()) * 0.5);
    let ad = dev.clone().autodiff();
    let net_ad = net.clone().fork(&ad);
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels.to_vec(), [labels.len()]), &ad);
    let mut x = (lo.clone() + hi.clone()) * 0.5;
    let step = (hi.clone() - lo.clone()).max().into_scalar::<f32>() / 4.0;
    for _ in 0..5 {
        let xg = x.clone().autodiff().require_grad();
        let logits = net_ad.forward(xg.clone());
        let own = logits.clone().gather(1, y.clone().unsqueeze_dim(1));
        let grads = (logits - own).sum().backward(); // raise z_j - z_y for every j
        let g = xg.grad(&grads).unwrap();
        x = (x + g.sign() * step)
            .max_pair(lo.clone())
            .min_pair(hi.clone());
        points.push(x.clone());
    }
    points
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_point_leaves_the_bounds(arch in arch_strategy(), seed in any::<u64>(), eps in 0.0f32..0.3, image_domain in any::<bool>(), scale in 1.0f32..4.0) {
        let dev = device();
        let net = scaled(Network::init(&arch, seed, &dev).unwrap(), scale);
        let [c, h, w] = arch.input;
        let n = 3;
        let x = Tensor::<4>::from_data(TensorData::new((0..n * c * h * w).map(|i| (((i as u64 * 2654435761) ^ seed) % 1000) as f32 / 1000.0).collect::<Vec<f32>>(), [n, c, h, w]), &dev);
        let domain = if image_domain { InputDomain::Image } else { InputDomain::Unit };
        let set = InputSet::linf(x, eps, domain).unwrap();
        let labels: Vec<i64> = (0..n as i64).map(|i| (i + seed as i64).rem_euclid(arch.classes as i64)).collect();
        let points = sample_points(&net, &set, &labels, seed);
        let sound = set.clone().into_float_sound();
        for d in DomainKind::ALL {
            check(d, &net, &set, &labels, &points)?;
            check(d, &net, &sound, &labels, &points)?;
        }
    }

    #[test]
    fn alpha_crown_is_sound_and_never_looser_than_crown(arch in arch_strategy(), seed in any::<u64>(), eps in 0.0f32..0.3, iterations in 0usize..6, step in 0.01f32..2.0, intermediate in prop_oneof![Just(Intermediate::Forward), Just(Intermediate::Crown), Just(Intermediate::Optimised)], time_limit in prop_oneof![Just(None), Just(Some(0.0))], scale in 1.0f32..4.0) {
        let dev = device();
        let net = scaled(Network::init(&arch, seed, &dev).unwrap(), scale);
        let [c, h, w] = arch.input;
        let n = 3;
        let x = Tensor::<4>::from_data(TensorData::new((0..n * c * h * w).map(|i| (((i as u64 * 2246822519) ^ seed) % 1000) as f32 / 1000.0).collect::<Vec<f32>>(), [n, c, h, w]), &dev);
        let set = InputSet::linf(x, eps, InputDomain::Unit).unwrap();
        let labels: Vec<i64> = (0..n as i64).map(|i| (i + seed as i64).rem_euclid(arch.classes as i64)).collect();
        let alpha = AlphaCrown { iterations, step, intermediate, time_limit };
        let margins = alpha.margins(&net, &set, label_tensor(&labels)).unwrap();
        let crown: Vec<f32> = DomainKind::Crown.margins(&net, &set, label_tensor(&labels)).unwrap().lower.into_data().try_to_vec().unwrap();
        let optimised: Vec<f32> = margins.lower.clone().into_data().try_to_vec().unwrap();
        for (a, c) in optimised.iter().zip(crown) {
            prop_assert!(*a >= c, "alpha-crown {a} looser than crown {c}");
        }
        let points = sample_points(&net, &set, &labels, seed);
        check_margins("alpha-crown", margins, &net, &labels, &points)?;
    }

    #[test]
    fn best_is_never_looser_than_any_domain(arch in arch_strategy(), seed in any::<u64>(), eps in 0.0f32..0.3, scale in 1.0f32..4.0) {
        let dev = device();
        let net = scaled(Network::init(&arch, seed, &dev).unwrap(), scale);
        let [c, h, w] = arch.input;
        let x = Tensor::<4>::from_data(TensorData::new((0..2 * c * h * w).map(|i| ((i as u64 * 7919 + seed) % 1000) as f32 / 1000.0).collect::<Vec<f32>>(), [2, c, h, w]), &dev);
        let set = InputSet::linf(x, eps, InputDomain::Unit).unwrap();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1], [2]), &dev);
        // no time limit: alpha-CROWN alone and inside `best` must take the same steps whatever
        // else the machine runs (a loaded host had `best` stop earlier and end looser)
        let alpha = AlphaCrown { time_limit: None, ..AlphaCrown::default() };
        let lower = |d: DomainKind| -> Vec<f32> { d.margins_with(&alpha, &net, &set, labels.clone()).unwrap().lower.into_data().try_to_vec().unwrap() };
        let best = lower(DomainKind::Best);
        for d in DomainKind::ALL {
            for (b, o) in best.iter().zip(lower(d)) {
                prop_assert!(*b >= o - 1e-5 * (1.0 + o.abs()), "best {b} looser than {} {o}", d.name());
            }
        }
    }

    #[test]
    fn no_corner_of_a_tiny_box_leaves_the_bounds(seed in any::<u64>(), eps in 0.0f32..0.5, hidden in 2usize..6) {
        // 1x3x3 input: all 512 corners of the box.
        let arch = Architecture {
            name: "tiny".into(),
            input: [1, 3, 3],
            classes: 3,
            layers: vec![
                LayerSpec::Conv2d { name: "conv".into(), in_channels: 1, out_channels: 2, kernel: 2, stride: 1, padding: 0 },
                LayerSpec::Relu,
                LayerSpec::Flatten,
                LayerSpec::Linear { name: "fc".into(), in_features: 8, out_features: hidden },
                LayerSpec::Relu,
                LayerSpec::Linear { name: "out".into(), in_features: hidden, out_features: 3 },
            ],
        };
        let dev = device();
        let net = scaled(Network::init(&arch, seed, &dev).unwrap(), 3.0);
        let x: Vec<f32> = (0..9).map(|i| (((i as u64 * 40503) ^ seed) % 997) as f32 / 997.0).collect();
        let set = InputSet::linf(Tensor::from_data(TensorData::new(x, [1, 1, 3, 3]), &dev), eps, InputDomain::Unit).unwrap();
        let (lo, hi): (Vec<f32>, Vec<f32>) = (set.lower.clone().into_data().try_to_vec().unwrap(), set.upper.clone().into_data().try_to_vec().unwrap());
        let (lo, hi) = (&lo, &hi);
        let corners: Vec<f32> = (0..512u32).flat_map(|m| (0..9).map(move |i| if m >> i & 1 == 1 { hi[i] } else { lo[i] })).collect();
        let corners = Tensor::<4>::from_data(TensorData::new(corners, [512, 1, 3, 3]), &dev);
        let label = (seed % 3) as i64;
        let sound = set.clone().into_float_sound();
        let runs = DomainKind::ALL.into_iter().map(|d| (d, &set)).chain(DomainKind::ALL.into_iter().map(|d| (d, &sound)));
        for (d, set) in runs {
            let y = Tensor::<1, Int>::from_data(TensorData::new(vec![label], [1]), &dev);
            let lower: Vec<f32> = d.margins(&net, set, y).unwrap().lower.into_data().try_to_vec().unwrap();
            let all = margins_at(&net, corners.clone(), &[label; 512]);
            for (k, m) in all.iter().enumerate() {
                let lo = lower[k % 3];
                prop_assert!(*m >= lo - 1e-4 * (1.0 + lo.abs()), "{}: corner {} margin {m} below {lo}", d.name(), k / 3);
            }
        }
    }
}

/// Multiplies every weight by `scale`, so that ReLUs of random nets are often unstable, and
/// gives batch norms statistics and affine parameters away from the identity (negative scales
/// included).
fn scaled(mut net: Network, scale: f32) -> Network {
    fn walk(layers: &mut [mixtrain_nn::Layer], scale: f32) {
        use burn::module::Param;
        use mixtrain_nn::Layer;
        for layer in layers {
            match layer {
                Layer::Conv2d(c) => c.weight = Param::from_tensor(c.weight.val() * scale),
                Layer::Linear(f) => f.weight = Param::from_tensor(f.weight.val() * scale),
                Layer::BatchNorm2d(b) => {
                    let c = b.weight.val().dims()[0];
                    let v = |f: &dyn Fn(usize) -> f32| {
                        Tensor::<1>::from_data(
                            TensorData::new((0..c).map(f).collect::<Vec<f32>>(), [c]),
                            &device(),
                        )
                    };
                    b.weight = Param::from_tensor(v(&|i| if i % 2 == 0 { 1.5 } else { -0.7 }));
                    b.bias = Param::from_tensor(v(&|i| 0.1 * i as f32 - 0.1));
                    b.running_mean = Param::from_tensor(v(&|i| 0.2 - 0.15 * i as f32));
                    b.running_var = Param::from_tensor(v(&|i| 0.5 + 0.4 * i as f32));
                }
                Layer::Residual(r) => {
                    walk(&mut r.path, scale);
                    if let Some(c) = &mut r.skip {
                        c.weight = Param::from_tensor(c.weight.val() * scale);
                    }
                }
                _ => {}
            }
        }
    }
    walk(&mut net.layers, scale);
    net
}
