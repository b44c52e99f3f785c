//! Branch and bound against the truth: on tiny networks with two inputs, every activation
//! pattern is enumerated and the margin minimised exactly over its region (a polygon: the
//! minimum of a linear function lies at a vertex), and the verdicts must agree with it.

use burn::tensor::{Tensor, TensorData};
use mixtrain_bounds::{AlphaCrown, BranchAndBound, InputDomain, InputSet, Verdict};
use mixtrain_nn::{Backend, Layer, Network};

mod common;

/// A fully connected network's affine layers on the host, in f64: `(weight [in][out], bias)`.
struct Mlp(Vec<(Vec<Vec<f64>>, Vec<f64>)>);

impl Mlp {
    fn of(net: &Network) -> Self {
        let read = |t: Tensor<1>| -> Vec<f64> {
            let v: Vec<f32> = t.into_data().convert::<f32>().try_to_vec().unwrap();
            v.into_iter().map(f64::from).collect()
        };
        let layers = net
            .layers
            .iter()
            .filter_map(|layer| match layer {
                Layer::Linear(l) => {
                    let [d_in, d_out] = l.weight.val().dims();
                    let w = read(l.weight.val().flatten(0, 1));
                    let rows = (0..d_in)
                        .map(|i| w[i * d_out..(i + 1) * d_out].to_vec())
                        .collect();
                    Some((rows, read(l.bias.val())))
                }
                _ => None,
            })
            .collect();
        Self(layers)
    }

    fn affine((w, b): &(Vec<Vec<f64>>, Vec<f64>), x: &[f64]) -> Vec<f64> {
        (0..b.len())
            .map(|k| b[k] + x.iter().zip(w).map(|(x, row)| x * row[k]).sum::<f64>())
            .collect()
    }

    fn logits(&self, x: &[f64]) -> Vec<f64> {
        let (last, hidden) = self.0.split_last().unwrap();
        let mut a = x.to_vec();
        for layer in hidden {
            a = Self::affine(layer, &a)
                .into_iter()
                .map(|z| z.max(0.0))
                .collect();
        }
        Self::affine(last, &a)
    }

    fn margin(&self, x: &[f64], label: usize) -> f64 {
        let z = self.logits(x);
        (0..z.len())
            .filter(|&j| j != label)
            .map(|j| z[label] - z[j])
            .fold(f64::INFINITY, f64::min)
    }

    /// The exact minimum of the smallest margin over the box `[lo, hi]` (two inputs): over
    /// every activation pattern, the vertices of its region.
    fn min_margin(&self, lo: [f64; 2], hi: [f64; 2], label: usize) -> f64 {
        let (_, hidden) = self.0.split_last().unwrap();
        let neurons: usize = hidden.iter().map(|(_, b)| b.len()).sum();
        let mut best = f64::INFINITY;
        for pattern in 0..1u32 << neurons {
            // each constraint g(x) = a . x + c >= 0
            let mut constraints: Vec<([f64; 2], f64)> = vec![
                ([1.0, 0.0], -lo[0]),
                ([-1.0, 0.0], hi[0]),
                ([0.0, 1.0], -lo[1]),
                ([0.0, -1.0], hi[1]),
            ];
            let mut current: Vec<([f64; 2], f64)> = vec![([1.0, 0.0], 0.0), ([0.0, 1.0], 0.0)];
            let mut bit = 0;
            for (w, b) in hidden {
                let mut next = Vec::new();
                for k in 0..b.len() {
                    let mut a = [0.0; 2];
                    let mut c = b[k];
                    for (i, (ai, ci)) in current.iter().enumerate() {
                        a[0] += w[i][k] * ai[0];
                        a[1] += w[i][k] * ai[1];
                        c += w[i][k] * ci;
                    }
                    let active = pattern >> bit & 1 == 1;
                    bit += 1;
                    let s = if active { 1.0 } else { -1.0 };
                    constraints.push(([s * a[0], s * a[1]], s * c));
                    next.push(if active { (a, c) } else { ([0.0; 2], 0.0) });
                }
                current = next;
            }
            for (i, (a1, c1)) in constraints.iter().enumerate() {
                for (a2, c2) in &constraints[i + 1..] {
                    let det = a1[0] * a2[1] - a1[1] * a2[0];
                    if det.abs() < 1e-12 {
                        continue;
                    }
                    let x = [
                        (-c1 * a2[1] + c2 * a1[1]) / det,
                        (-a1[0] * c2 + a2[0] * c1) / det,
                    ];
                    let feasible = constraints
                        .iter()
                        .all(|(a, c)| a[0] * x[0] + a[1] * x[1] + c >= -1e-9);
                    if feasible {
                        best = best.min(self.margin(&x, label));
                    }
                }
            }
        }
        best
    }
}

/// The verdicts of `settings` after a root bound by `root`, checked against the exact minimum
/// margin, on networks of three shapes, each at two radii around the one where the point stops
/// being robust (found by bisection on the exact minimum: 0.97 and 1.03 times it), where bounds
/// are tight; returns how many points were verified, falsified and needed a split.
fn agreement(settings: BranchAndBound, root: AlphaCrown) -> (usize, usize, usize) {
    let device = Backend::Flex.device(None).unwrap();
    let (mut verified, mut falsified, mut branched) = (0, 0, 0);
    for seed in 0..15u64 {
        let widths: &[usize] = [&[8, 6][..], &[12], &[5, 5, 4]][seed as usize % 3];
        let net = common::mlp(seed, 2, widths, 3);
        let mlp = Mlp::of(&net);
        let centre = [0.3 + 0.03 * seed as f32, 0.65 - 0.025 * seed as f32];
        let label = {
            let z = mlp.logits(&[centre[0] as f64, centre[1] as f64]);
            (0..3).max_by(|&a, &b| z[a].total_cmp(&z[b])).unwrap()
        };
        let x = Tensor::<4>::from_data(TensorData::new(centre.to_vec(), [1, 1, 1, 2]), &device);
        let ball = |eps: f32| {
            let point = InputSet::linf(x.clone(), eps, InputDomain::Unit).unwrap();
            let corners = |t: &Tensor<4>| -> [f64; 2] {
                let v: Vec<f32> = t.clone().into_data().try_to_vec().unwrap();
                [v[0] as f64, v[1] as f64]
            };
            let (lo, hi) = (corners(&point.lower), corners(&point.upper));
            (point, lo, hi)
        };
        let truth = |eps: f32| {
            let (_, lo, hi) = ball(eps);
            mlp.min_margin(lo, hi, label)
        };
        if truth(0.5) > 0.0 {
            continue;
        }
        let (mut robust, mut not) = (0.0f32, 0.5f32);
        for _ in 0..12 {
            let mid = (robust + not) / 2.0;
            if truth(mid) > 0.0 {
                robust = mid
            } else {
                not = mid
            }
        }
        for eps in [0.97 * robust, 1.03 * not] {
            let (point, lo, hi) = ball(eps);
            let truth = mlp.min_margin(lo, hi, label);
            let decision = settings
                .decide(&net, &point, label as i64, &root, true)
                .unwrap();
            let case = format!("seed {seed}, eps {eps}: exact minimum margin {truth}");
            branched += usize::from(decision.subproblems > 2);
            if truth > 1e-4 {
                assert_eq!(decision.verdict, Verdict::Verified, "{case}");
                verified += 1;
            } else if truth < -1e-4 {
                assert_eq!(decision.verdict, Verdict::Falsified, "{case}");
                let x = decision.counterexample.expect("a falsified point's input");
                let x: Vec<f64> = x.into_iter().map(f64::from).collect();
                assert!(
                    (0..2).all(|i| lo[i] <= x[i] && x[i] <= hi[i]),
                    "{case}: {x:?}"
                );
                assert!(
                    mlp.margin(&x, label) < 0.0,
                    "{case}: {x:?} is classified right"
                );
                falsified += 1;
            }
        }
    }
    (verified, falsified, branched)
}

#[test]
fn verdicts_agree_with_enumerating_every_activation_pattern() {
    let settings = BranchAndBound {
        timeout: 20.0,
        batch: 8,
        ..BranchAndBound::default()
    };
    let (verified, falsified, branched) = agreement(settings, AlphaCrown::default());
    assert!(
        verified >= 5 && falsified >= 5 && branched >= 1,
        "{verified} verified, {falsified} falsified, {branched} branched"
    );
}

#[test]
fn branching_alone_decides_what_a_plain_crown_root_leaves() {
    // CROWN at the root: the splits and their multipliers must decide every point, with and
    // without recomputed intermediate bounds (without multipliers a subproblem with every
    // neuron fixed is still bounded over the whole box, and may stay undecided)
    let root = AlphaCrown {
        iterations: 0,
        intermediate: mixtrain_bounds::Intermediate::Forward,
        ..AlphaCrown::default()
    };
    for intermediate in [false, true] {
        let settings = BranchAndBound {
            timeout: 20.0,
            batch: 8,
            intermediate,
            ..BranchAndBound::default()
        };
        let (verified, falsified, branched) = agreement(settings, root);
        assert!(
            verified >= 5 && falsified >= 5 && branched >= 1,
            "{verified} verified, {falsified} falsified, {branched} branched"
        );
    }
}
