//! Float soundness: networks whose margins sit within float32 rounding of zero. Each case is a
//! random network, a point and a box on which the network is affine (every hidden neuron is
//! stable under float64 interval arithmetic), so its exact minimum margin over the box is
//! computed in float64 (its own error is ~1e-16 of the magnitudes, far below float32's); the
//! last bias is then moved to put that minimum within a few thousand float32 roundings of
//! zero, either side. A
//! point the float-sound verifier calls verified must have a positive exact minimum; without
//! float soundness some points are verified wrongly, which shows the cases probe the rounding.

use burn::module::Param;
use burn::tensor::{Int, Tensor, TensorData};
use mixtrain_bounds::{DomainKind, InputDomain, InputSet, Verdict, Verifier};
use mixtrain_nn::{Architecture, Backend, Layer, LayerSpec, Network};

/// A linear congruential generator: deterministic cases without a dependency.
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n
    }
}

/// The network's layers in float64: per-feature affine maps `x * scale + shift` (the input
/// normalisation, with the float32 scale and shift the engine uses), linear layers `x W + b`,
/// ReLUs.
enum Exact {
    Scale(Vec<f64>, Vec<f64>),
    Linear {
        weight: Vec<f64>,
        bias: Vec<f64>,
        out: usize,
    },
    Relu,
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    let v: Vec<f32> = t.into_data().convert::<f32>().try_to_vec().unwrap();
    v.into_iter().map(f64::from).collect()
}

fn exact_layers(net: &Network, d: usize) -> Vec<Exact> {
    let device = Backend::Flex.device(None).unwrap();
    net.layers
        .iter()
        .filter_map(|layer| match layer {
            Layer::Linear(l) => Some(Exact::Linear {
                weight: floats(l.weight.val()),
                bias: floats(l.bias.val()),
                out: l.bias.val().dims()[0],
            }),
            Layer::Relu(_) => Some(Exact::Relu),
            Layer::Flatten(_) => None,
            other => {
                let (scale, shift) = other.channel_affine(&device).expect("an affine layer");
                let (scale, shift) = (floats(scale), floats(shift));
                Some(Exact::Scale(vec![scale[0]; d], vec![shift[0]; d]))
            }
        })
        .collect()
}

/// The network on the box `[lower, upper]` in float64, if it is affine there: the logits as
/// `x J + c` (`J` `[d, classes]` row-major, `c` `[classes]`); `None` if some hidden neuron may
/// change sign on the box (float64 interval arithmetic, with a margin).
fn affine_on_box(layers: &[Exact], lower: &[f64], upper: &[f64]) -> Option<(Vec<f64>, Vec<f64>)> {
    let d = lower.len();
    let (mut lo, mut hi) = (lower.to_vec(), upper.to_vec());
    // the map so far: value = x J + c, J [d, width]
    let mut jac: Vec<f64> = (0..d * d)
        .map(|k| if k / d == k % d { 1.0 } else { 0.0 })
        .collect();
    let mut c = vec![0.0; d];
    let mut width = d;
    for layer in layers {
        match layer {
            Exact::Scale(scale, shift) => {
                for i in 0..width {
                    (lo[i], hi[i]) =
                        sorted(lo[i] * scale[i] + shift[i], hi[i] * scale[i] + shift[i]);
                    c[i] = c[i] * scale[i] + shift[i];
                    for r in 0..d {
                        jac[r * width + i] *= scale[i];
                    }
                }
            }
            Exact::Linear { weight, bias, out } => {
                let out = *out;
                let mut next = (vec![0.0; out], vec![0.0; out]);
                let mut next_jac = vec![0.0; d * out];
                let mut next_c = bias.clone();
                for o in 0..out {
                    let (mut a, mut b) = (bias[o], bias[o]);
                    for i in 0..width {
                        let w = weight[i * out + o];
                        let (p, q) = sorted(w * lo[i], w * hi[i]);
                        a += p;
                        b += q;
                        next_c[o] += c[i] * w;
                        for r in 0..d {
                            next_jac[r * out + o] += jac[r * width + i] * w;
                        }
                    }
                    (next.0[o], next.1[o]) = (a, b);
                }
                (lo, hi) = next;
                (jac, c, width) = (next_jac, next_c, out);
            }
            Exact::Relu => {
                for i in 0..width {
                    let scale = lo[i].abs().max(hi[i].abs()).max(1.0);
                    if lo[i] > 1e-9 * scale {
                        continue;
                    }
                    if hi[i] < -1e-9 * scale {
                        (lo[i], hi[i], c[i]) = (0.0, 0.0, 0.0);
                        for r in 0..d {
                            jac[r * width + i] = 0.0;
                        }
                        continue;
                    }
                    return None;
                }
            }
        }
    }
    Some((jac, c))
}

fn sorted(a: f64, b: f64) -> (f64, f64) {
    (a.min(b), a.max(b))
}

/// The exact minimum over the box of `z_y - z_j` for the affine logits `x J + c`, and the
/// magnitude the float32 computation of it works with.
fn minimum(
    (jac, c): &(Vec<f64>, Vec<f64>),
    lower: &[f64],
    upper: &[f64],
    y: usize,
    j: usize,
) -> (f64, f64) {
    let classes = c.len();
    let mut value = c[y] - c[j];
    let mut magnitude = c[y].abs() + c[j].abs();
    for r in 0..lower.len() {
        let a = jac[r * classes + y] - jac[r * classes + j];
        value += (a * lower[r]).min(a * upper[r]);
        magnitude += a.abs() * lower[r].abs().max(upper[r].abs());
    }
    (value, magnitude)
}

fn architecture(rng: &mut Lcg) -> (Architecture, usize) {
    let d = 8 + rng.below(57);
    let mut layers = Vec::new();
    if rng.below(2) == 0 {
        layers.push(LayerSpec::Normalize {
            mean: vec![0.13],
            std: vec![0.31],
        });
    }
    layers.push(LayerSpec::Flatten);
    let mut width = d;
    for i in 0..1 + rng.below(2) {
        let out = 8 + rng.below(25);
        layers.push(LayerSpec::linear(&format!("fc{i}"), width, out));
        layers.push(LayerSpec::Relu);
        width = out;
    }
    layers.push(LayerSpec::linear("out", width, 3));
    let arch = Architecture {
        name: "near-zero".into(),
        input: [1, 1, d],
        classes: 3,
        layers,
    };
    (arch, d)
}

/// Per case: whether `verifier` verified the point, and the exact minimum margin over its box.
fn verdicts(verifiers: &[Verifier], cases: usize) -> Vec<Vec<(bool, f64)>> {
    let device = Backend::Flex.device(None).unwrap();
    let mut rng = Lcg(7);
    let mut results = vec![Vec::new(); verifiers.len()];
    let mut tried = 0;
    while results[0].len() < cases {
        tried += 1;
        assert!(tried < 20 * cases, "too few networks affine on their box");
        let (arch, d) = architecture(&mut rng);
        let mut net = Network::init(&arch, rng.below(1 << 30) as u64, &device).unwrap();
        let x: Vec<f32> = (0..d).map(|_| rng.uniform() as f32).collect();
        let eps = [0.0, 1e-4][rng.below(2)];
        let point = Tensor::<4>::from_data(TensorData::new(x, [1, 1, 1, d]), &device);
        let set = InputSet::linf(point, eps, InputDomain::Unit).unwrap();
        let lower = floats(set.lower.clone());
        let upper = floats(set.upper.clone());
        let Some(affine) = affine_on_box(&exact_layers(&net, d), &lower, &upper) else {
            continue;
        };
        // the label and its runner-up at the box's worst point
        let y = (0..3)
            .max_by(|&a, &b| affine.1[a].total_cmp(&affine.1[b]))
            .unwrap();
        let margins: Vec<(f64, f64)> = (0..3)
            .map(|j| minimum(&affine, &lower, &upper, y, j))
            .collect();
        let (closest, magnitude) = (0..3)
            .filter(|&j| j != y)
            .map(|j| margins[j])
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap();
        // move b_y so that the closest margin's minimum is a few roundings from zero
        let Some(Layer::Linear(last)) = net.layers.last_mut() else {
            unreachable!("the last layer is linear")
        };
        let mut bias: Vec<f32> = last.bias.val().into_data().try_to_vec().unwrap();
        // log-uniform from 1e-8 to 1e-3 of the magnitude, either sign: float32's rounding
        // is ~1e-7 of it, the float-sound bound's up to ~1e-5
        let size = 10f64.powf(-8.0 + 5.0 * rng.uniform());
        let offset = if rng.below(2) == 0 { size } else { -size } * magnitude;
        let moved = (f64::from(bias[y]) - closest + offset) as f32;
        let shift = f64::from(moved) - f64::from(bias[y]);
        bias[y] = moved;
        last.bias = Param::from_tensor(Tensor::from_data(TensorData::new(bias, [3]), &device));
        let exact = (0..3)
            .filter(|&j| j != y)
            .map(|j| margins[j].0 + shift)
            .fold(f64::INFINITY, f64::min);
        if exact.abs() < 1e-12 * magnitude {
            continue; // too close for float64 to tell
        }
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![y as i64], [1]), &device);
        for (verifier, out) in verifiers.iter().zip(&mut results) {
            let verdict = verifier.verify(&net, &set, labels.clone()).unwrap()[0].verdict;
            out.push((verdict == Verdict::Verified, exact));
        }
    }
    results
}

#[test]
fn float_sound_verdicts_hold_in_exact_arithmetic() {
    let sound: Vec<Verifier> = DomainKind::ALL.into_iter().map(Verifier::new).collect();
    let plain = Verifier {
        float_sound: false,
        ..Verifier::new(DomainKind::Crown)
    };
    let verifiers: Vec<Verifier> = sound.into_iter().chain([plain]).collect();
    let results = verdicts(&verifiers, 150);
    for (verifier, cases) in verifiers.iter().zip(&results) {
        let wrong = cases
            .iter()
            .filter(|(v, exact)| *v && *exact <= 0.0)
            .count();
        let verified = cases.iter().filter(|(v, _)| *v).count();
        let positive = cases.iter().filter(|(_, exact)| *exact > 0.0).count();
        println!(
            "{} (float sound: {}): {verified} verified of {positive} robust, {wrong} wrongly",
            verifier.domain, verifier.float_sound
        );
        if verifier.float_sound {
            assert_eq!(
                wrong, 0,
                "{}: verified points that are not robust",
                verifier.domain
            );
            assert!(verified > 0, "{}: verifies nothing", verifier.domain);
        } else {
            assert!(
                wrong > 0,
                "the cases never fool float32 arithmetic: they test nothing"
            );
        }
    }
}
