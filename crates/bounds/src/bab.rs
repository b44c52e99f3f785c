//! Complete verification: branch and bound over the unstable ReLUs (beta-CROWN: Wang et al.,
//! NeurIPS 2021).
//!
//! A point that alpha-CROWN leaves undecided is decided margin by margin (each class `t` whose
//! margin `z_y - z_t` it could not prove positive, the worst first). A *subproblem* is the
//! point's box with some unstable ReLUs' signs fixed (a [`Split`]: `z >= 0` or `z <= 0`); the
//! two children of a subproblem split one more neuron, so together they cover it. A
//! subproblem's bound enforces its splits three ways, each sound on the subproblem: the split
//! neurons' pre-activation bounds are clamped at 0, so their relaxation is exact; the bounds in
//! front of the later ReLU layers are recomputed by CROWN from the clamped ones (intersected
//! with the parent's); and each split's constraint enters the backward pass with a Lagrange
//! multiplier `beta >= 0`, optimised with the slopes by projected gradient ascent as alpha-CROWN
//! optimises the slopes. Any `beta >= 0` gives a sound bound, so every iterate is one.
//!
//! The search is best first: each round bounds the children of the subproblems with the
//! lowest bounds, many at once (they are just more points of a batch); a child whose bound is
//! positive is pruned. The neuron a subproblem is split on next is chosen by filtered smart
//! branching (FSB: De Palma et al., 2021): BaBSR's intercept score from the subproblem's own
//! backward pass (how much the bound loses to the upper line of each unstable neuron:
//! `relu(-lambda) u (-l) / (u - l)`, with `lambda` the coefficient of the neuron's output)
//! names a few candidates per layer, and one more pass bounds both children of every
//! candidate, keeping the split whose worse child is best. While there are too few
//! subproblems to fill a batch, each is split on several neurons at once.
//!
//! Every bounded subproblem's relaxation minimiser (the box corner that minimises the final
//! linear function), and a few steps of projected gradient descent on the margin from it, are
//! run through the network: if the network's own float32 forward pass misclassifies one, the
//! point is falsified with that input, which lies in the box by construction. Otherwise the
//! margin is verified when no subproblem is left, and the point is `unknown` when the time
//! limit or the subproblem limit is reached first, or when a subproblem with every neuron
//! fixed still cannot be decided.

use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use mixtrain_nn::{ActShape, Layer, Network};
use serde::{Deserialize, Serialize};

use crate::alpha::{Adam, keep_best, tighten_after};
use crate::crown::{ReluLines, adaptive, bound_traced};
use crate::domain::{PreRelu, body_and_last};
use crate::numeric::{fold_spec, read_floats};
use crate::{AlphaCrown, BoundsError, InputSet, Verdict};

/// Branch and bound's settings; [`BranchAndBound::decide`] runs it on one point.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BranchAndBound {
    /// Seconds per point (its alpha-CROWN root included) before it is left `unknown`.
    pub timeout: f64,
    /// Subproblems bounded at once.
    pub batch: usize,
    /// Gradient steps on each batch's slopes and multipliers.
    pub iterations: usize,
    /// Adam's step on the slopes.
    pub alpha_step: f32,
    /// Adam's step on the multipliers of the splits.
    pub beta_step: f32,
    /// Whether a subproblem's bounds in front of the ReLU layers after its newest split are
    /// recomputed by CROWN (tighter, and a pass per layer more).
    pub intermediate: bool,
    /// The most subproblems waiting at once; past it the point is `unknown` (memory).
    pub max_subproblems: usize,
}

impl Default for BranchAndBound {
    fn default() -> Self {
        Self {
            timeout: 30.0,
            batch: 64,
            iterations: 10,
            alpha_step: 0.1,
            beta_step: 0.05,
            intermediate: true,
            max_subproblems: 200_000,
        }
    }
}

/// One point's decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// `verified`, `falsified` (with [`Decision::counterexample`]) or `unknown`.
    pub verdict: Verdict,
    /// The root's (alpha-CROWN's) lower bounds of the margins `z_y - z_j`, one per class.
    pub margins: Vec<f32>,
    /// Subproblems bounded, the root's included.
    pub subproblems: usize,
    /// The most splits any bounded subproblem had.
    pub depth: usize,
    /// For a falsified point, the input (`c*h*w` pixels, in the box) that the network's own
    /// forward pass misclassifies.
    pub counterexample: Option<Vec<f32>>,
    /// Wall-clock seconds spent on the point.
    pub seconds: f64,
}

/// One ReLU's sign fixed: its layer among the ReLUs, the neuron, and `z >= 0` (active) or
/// `z <= 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// The ReLU layer, counted in forward order.
    pub relu: usize,
    /// The neuron within it.
    pub neuron: usize,
    /// `z >= 0` if true, `z <= 0` if false.
    pub active: bool,
}

/// Bounds `(lower, upper)` in front of every ReLU of one subproblem, on the host.
type HostBounds = Vec<(Vec<f32>, Vec<f32>)>;

/// A subproblem waiting to be split, with what its last bound left: the bounds in front of
/// the ReLUs (its splits not yet clamped in), the slopes and the splits' multipliers (warm
/// starts for its children), its bound and the neuron to split next (none when every one is
/// stable).
#[derive(Clone)]
struct Subproblem {
    splits: Vec<Split>,
    bounds: Arc<HostBounds>,
    alphas: Arc<Vec<Vec<f32>>>,
    betas: Vec<f32>,
    lower: f32,
    next: Vec<(usize, usize)>,
    tries: u8,
}

impl Subproblem {
    /// The `2^n` children splitting each of `splits` (`n` of them) both ways, which start
    /// from this one's slopes and multipliers (the new splits' at 0).
    fn children(&self, splits: &[(usize, usize)]) -> Vec<Subproblem> {
        (0..1usize << splits.len())
            .map(|signs| {
                let mut child = self.clone();
                for (j, &(relu, neuron)) in splits.iter().enumerate() {
                    child.splits.push(Split {
                        relu,
                        neuron,
                        active: signs >> j & 1 == 0,
                    });
                    child.betas.push(0.0);
                }
                child.tries = 0;
                child
            })
            .collect()
    }
}

/// Candidate splits per ReLU layer that filtered smart branching bounds (by intercept score).
const CANDIDATES: usize = 3;

/// The most neurons one subproblem is split on at once (`2^4` children), when there are too
/// few subproblems to fill a batch.
const LEVELS: usize = 4;

/// Steps of projected gradient descent on the margin from each subproblem's relaxation
/// minimiser, and their size as a share of the box's width.
const PGD_STEPS: usize = 5;
const PGD_STEP: f32 = 0.25;

/// How the search of one margin ended.
enum Outcome {
    Verified,
    Falsified(Vec<f32>),
    Unknown,
}

impl BranchAndBound {
    /// Decides the point `point` (one box, `[1, c, h, w]`) with label `label`: alpha-CROWN
    /// (`alpha`'s settings) at the root, then branch and bound on each margin it leaves
    /// undecided. With `float_sound` every bound accounts for float32 rounding
    /// ([`InputSet::into_float_sound`]); counterexamples are searched in `point` itself.
    pub fn decide(
        &self,
        net: &Network,
        point: &InputSet,
        label: i64,
        alpha: &AlphaCrown,
        float_sound: bool,
    ) -> Result<Decision, BoundsError> {
        if point.len() != 1 || self.batch < 2 {
            return Err(BoundsError::Input(format!(
                "branch and bound decides one point at a time with a batch of at least 2 \
                 subproblems (given {} points, batch {})",
                point.len(),
                self.batch
            )));
        }
        if net.layers.iter().any(|l| matches!(l, Layer::Residual(_))) {
            return Err(BoundsError::Input(format!(
                "branch and bound splits the ReLUs of plain layer stacks; {} has residual \
                 blocks (verify it without --complete)",
                net.architecture().name
            )));
        }
        let clock = Instant::now();
        let device = point.lower.device();
        let sound = match float_sound && !point.float_sound {
            true => point.clone().into_float_sound(),
            false => point.clone(),
        };
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![label], [1]), &device);
        let (body, last) = body_and_last(net, point, &labels)?;
        let (root, pre_relu) = alpha.root(net, &sound, &labels)?;
        let margins = read_floats(root)?;
        let mut targets: Vec<usize> = (0..margins.len())
            .filter(|&j| j as i64 != label && margins[j] <= 0.0)
            .collect();
        targets.sort_by(|&a, &b| margins[a].total_cmp(&margins[b]));
        let bounds = Arc::new(host_bounds(&pre_relu)?);
        let alphas = Arc::new(
            adaptive(pre_relu)
                .into_iter()
                .map(|lines| read_floats(lines.alpha))
                .collect::<Result<Vec<_>, _>>()?,
        );
        let (rows, offsets) = fold_spec(last, &labels);
        let mut search = Search {
            settings: self,
            net,
            frozen: frozen(net, &device),
            body,
            input: ActShape::Image(net.architecture().input),
            sound,
            point: point.clone(),
            label,
            spec: (rows, offsets),
            clock,
            subproblems: 0,
            depth: 0,
        };
        let mut verdict = Verdict::Verified;
        let mut counterexample = None;
        for target in targets {
            let root = Subproblem {
                splits: Vec::new(),
                bounds: bounds.clone(),
                alphas: alphas.clone(),
                betas: Vec::new(),
                lower: margins[target],
                next: Vec::new(),
                tries: 0,
            };
            match search.margin(target, root)? {
                Outcome::Verified => {}
                Outcome::Falsified(x) => {
                    verdict = Verdict::Falsified;
                    counterexample = Some(x);
                    break;
                }
                Outcome::Unknown => verdict = Verdict::Unknown,
            }
            if search.out_of_time() {
                break;
            }
        }
        Ok(Decision {
            verdict,
            margins,
            subproblems: search.subproblems.max(1),
            depth: search.depth,
            counterexample,
            seconds: clock.elapsed().as_secs_f64(),
        })
    }
}

/// One point's search: what every margin's branch and bound shares.
struct Search<'a> {
    settings: &'a BranchAndBound,
    net: &'a Network,
    /// `net` on the autodiff device with its parameters frozen, for PGD on the input.
    frozen: Network,
    body: &'a [Layer],
    input: ActShape,
    /// The point's box as bounded (float sound where asked).
    sound: InputSet,
    /// The point's box itself, where counterexamples are taken.
    point: InputSet,
    label: i64,
    /// Every margin's row folded into the last layer, `[1, classes, d]` and `[1, classes]`.
    spec: (Tensor<3>, Tensor<2>),
    clock: Instant,
    subproblems: usize,
    depth: usize,
}

impl Search<'_> {
    fn out_of_time(&self) -> bool {
        self.clock.elapsed().as_secs_f64() >= self.settings.timeout
    }

    /// Branch and bound on the margin `z_y - z_target`, from the subproblem `root`.
    fn margin(&mut self, target: usize, root: Subproblem) -> Result<Outcome, BoundsError> {
        let (bounded, found) = self.bound(target, vec![root])?;
        if let Some(x) = found {
            return Ok(Outcome::Falsified(x));
        }
        let mut queue: Vec<Subproblem> = bounded.into_iter().filter(|s| s.lower <= 0.0).collect();
        let mut stalled = false;
        while !queue.is_empty() {
            if self.out_of_time() || queue.len() > self.settings.max_subproblems {
                return Ok(Outcome::Unknown);
            }
            // best first: the lowest bounds at the end; with fewer subproblems than half a
            // batch, each is split on several neurons at once
            queue.sort_by(|a, b| b.lower.total_cmp(&a.lower));
            let take = (self.settings.batch / 2).min(queue.len());
            let levels = (self.settings.batch / take).ilog2().clamp(1, LEVELS as u32) as usize;
            let mut batch = Vec::with_capacity(self.settings.batch);
            for parent in queue.split_off(queue.len() - take) {
                if !parent.next.is_empty() {
                    let splits = &parent.next[..levels.min(parent.next.len())];
                    batch.extend(parent.children(splits));
                } else if parent.tries < 2 {
                    // every neuron fixed: the bound is exact up to its multipliers, which a
                    // few more rounds of ascent may still bring past 0
                    batch.push(Subproblem {
                        tries: parent.tries + 1,
                        ..parent
                    });
                } else {
                    stalled = true;
                }
            }
            if batch.is_empty() {
                continue;
            }
            let (bounded, found) = self.bound(target, batch)?;
            if let Some(x) = found {
                return Ok(Outcome::Falsified(x));
            }
            queue.extend(bounded.into_iter().filter(|s| s.lower <= 0.0));
        }
        Ok(match stalled {
            true => Outcome::Unknown,
            false => Outcome::Verified,
        })
    }

    /// The margin's row folded into the last layer, for `b` subproblems: `[b, 1, d]`, `[b, 1]`.
    fn spec(&self, target: usize, b: usize) -> (Tensor<3>, Tensor<2>) {
        let (rows, offsets) = self.spec.clone();
        let device = rows.device();
        let d = rows.dims()[2];
        let t = Tensor::<1, Int>::from_data(TensorData::new(vec![target as i64], [1]), &device);
        (
            rows.select(1, t.clone()).expand([b, 1, d]),
            offsets.select(1, t).expand([b, 1]),
        )
    }

    /// The point's box, `b` times.
    fn boxes(&self, b: usize) -> InputSet {
        InputSet {
            lower: self.sound.lower.clone().repeat_dim(0, b),
            upper: self.sound.upper.clone().repeat_dim(0, b),
            float_sound: self.sound.float_sound,
        }
    }

    /// `subs` on the device: their splits clamped into the bounds in front of the ReLUs, and
    /// those behind each newest split recomputed where the settings ask.
    fn batch(&self, subs: &[Subproblem]) -> Result<Batch, BoundsError> {
        let device = self.sound.lower.device();
        let widths: Vec<usize> = subs[0].bounds.iter().map(|(l, _)| l.len()).collect();
        let signs: Vec<Tensor<2>> = (0..widths.len())
            .map(|r| split_signs(subs, r, widths[r], &device))
            .collect();
        let pre: PreRelu = (0..widths.len())
            .map(|r| {
                let l = stack(subs.iter().map(|s| &s.bounds[r].0), widths[r], &device);
                let u = stack(subs.iter().map(|s| &s.bounds[r].1), widths[r], &device);
                clamp((l, u), &signs[r])
            })
            .collect();
        let set = self.boxes(subs.len());
        let newest = subs
            .iter()
            .filter_map(|s| s.splits.last().map(|s| s.relu))
            .min();
        let (pre, tightened) = match newest {
            Some(after) if self.settings.intermediate => (
                tighten_after(self.body, self.input, &set, after, pre)?,
                true,
            ),
            _ => (pre, false),
        };
        Ok(Batch {
            set,
            pre,
            signs: signs.into_iter().map(|s| s.unsqueeze_dim(1)).collect(),
            widths,
            tightened,
        })
    }

    /// Bounds the margin `z_y - z_target` on each subproblem of `subs` at once: their bounds,
    /// slopes and multipliers updated, their next splits ranked; and the first relaxation
    /// minimiser that the network misclassifies, if any.
    fn bound(
        &mut self,
        target: usize,
        subs: Vec<Subproblem>,
    ) -> Result<(Vec<Subproblem>, Option<Vec<f32>>), BoundsError> {
        let b = subs.len();
        self.subproblems += b;
        self.depth = subs
            .iter()
            .map(|s| s.splits.len())
            .fold(self.depth, usize::max);
        let batch = self.batch(&subs)?;
        let device = self.sound.lower.device();
        let widths = batch.widths.clone();
        let per_relu = |values: &dyn Fn(&Subproblem, usize) -> Vec<f32>| -> Vec<Tensor<3>> {
            (0..widths.len())
                .map(|r| {
                    let flat: Vec<f32> = subs.iter().flat_map(|s| values(s, r)).collect();
                    Tensor::<3>::from_data(TensorData::new(flat, [b, 1, widths[r]]), &device)
                })
                .collect()
        };
        let alphas = per_relu(&|s, r| s.alphas[r].clone());
        let betas = per_relu(&|s, r| {
            let mut dense = vec![0.0; widths[r]];
            for (split, beta) in s.splits.iter().zip(&s.betas) {
                if split.relu == r {
                    dense[split.neuron] = *beta;
                }
            }
            dense
        });
        let (alphas, betas) = self.optimise(target, &batch, alphas, betas)?;
        let (lower, trace) = bound_traced(
            self.body,
            self.input,
            &batch.set,
            self.spec(target, b),
            lines(&batch.pre, &batch.signs, &alphas, &betas),
            true,
        )?;
        let trace = trace.expect("a traced pass keeps its trace");
        let lower = read_floats(lower)?;
        let candidates = candidates(&batch.pre, &trace.at_relu)?;
        let ranked = self.filtered(target, &batch, &alphas, &betas, candidates)?;
        let found = self.counterexample(target, trace.input)?;
        let empty = empty(&batch.pre)?;
        let host_pre = match batch.tightened {
            true => Some(host_bounds(&batch.pre)?),
            false => None,
        };
        let read_all = |ts: Vec<Tensor<3>>| -> Result<Vec<Vec<f32>>, BoundsError> {
            ts.into_iter().map(read_floats).collect()
        };
        let (host_alphas, host_betas) = (read_all(alphas)?, read_all(betas)?);
        let bounded = subs
            .into_iter()
            .zip(ranked)
            .enumerate()
            .map(|(i, (mut s, next))| {
                let own = |values: &Vec<f32>, r: usize| {
                    values[i * widths[r]..(i + 1) * widths[r]].to_vec()
                };
                s.alphas = Arc::new((0..widths.len()).map(|r| own(&host_alphas[r], r)).collect());
                s.betas = s
                    .splits
                    .iter()
                    .map(|split| host_betas[split.relu][i * widths[split.relu] + split.neuron])
                    .collect();
                if let Some(pre) = &host_pre {
                    s.bounds = Arc::new(
                        (0..widths.len())
                            .map(|r| (own(&pre[r].0, r), own(&pre[r].1, r)))
                            .collect(),
                    );
                }
                // the parent's bound holds on every child; an empty subproblem holds nothing
                s.lower = match empty[i] {
                    true => f32::INFINITY,
                    false => s.lower.max(lower[i]),
                };
                s.next = next;
                s
            })
            .collect();
        Ok((bounded, found))
    }

    /// The slopes and multipliers `[b, 1, d]` per ReLU that give each subproblem its best
    /// bound met in the settings' steps of projected gradient ascent from `alphas`, `betas`.
    fn optimise(
        &self,
        target: usize,
        batch: &Batch,
        mut alphas: Vec<Tensor<3>>,
        mut betas: Vec<Tensor<3>>,
    ) -> Result<(Vec<Tensor<3>>, Vec<Tensor<3>>), BoundsError> {
        let b = batch.set.len();
        let mut adam_alpha = Adam::new(&alphas, self.settings.alpha_step);
        let mut adam_beta = Adam::bounded(&betas, self.settings.beta_step, f32::INFINITY);
        let (mut best_alphas, mut best_betas) = (alphas.clone(), betas.clone());
        let mut best: Option<Tensor<2>> = None;
        for iteration in 0..=self.settings.iterations {
            let leaf = |t: &Tensor<3>| t.clone().autodiff().require_grad();
            let alpha_leaves: Vec<Tensor<3>> = alphas.iter().map(leaf).collect();
            let beta_leaves: Vec<Tensor<3>> = betas.iter().map(leaf).collect();
            let lower = bound_traced(
                self.body,
                self.input,
                &batch.set,
                self.spec(target, b),
                lines(&batch.pre, &batch.signs, &alpha_leaves, &beta_leaves),
                false,
            )?
            .0;
            let current = keep_best(
                best,
                lower.clone().inner(),
                &mut [(&mut best_alphas, &alphas), (&mut best_betas, &betas)],
            );
            best = Some(current.clone());
            if iteration == self.settings.iterations || read_floats(current.min())?[0] > 0.0 {
                break;
            }
            let grads = lower.sum().backward();
            let gradients = |leaves: &[Tensor<3>]| leaves.iter().map(|t| t.grad(&grads)).collect();
            adam_alpha.ascend(&mut alphas, gradients(&alpha_leaves));
            adam_beta.ascend(&mut betas, gradients(&beta_leaves));
        }
        Ok((best_alphas, best_betas))
    }

    /// Each subproblem's `candidates` ranked by the bound their split would give at once
    /// (filtered smart branching, FSB: De Palma et al. 2021): both children of every
    /// candidate are bounded in one pass with the subproblem's slopes and multipliers, and a
    /// candidate scores the lower of its two children's bounds.
    fn filtered(
        &self,
        target: usize,
        batch: &Batch,
        alphas: &[Tensor<3>],
        betas: &[Tensor<3>],
        candidates: Vec<Vec<(usize, usize)>>,
    ) -> Result<Vec<Vec<(usize, usize)>>, BoundsError> {
        let k = candidates.iter().map(Vec::len).max().unwrap_or(0);
        if k <= 1 {
            return Ok(candidates);
        }
        let b = candidates.len();
        let rows = 2 * k * b;
        let device = self.sound.lower.device();
        // row (i k + c) 2 + s: subproblem i with its candidate c split active (s = 0) or not
        let parent: Vec<i64> = (0..rows as i64).map(|row| row / (2 * k as i64)).collect();
        let parent = Tensor::<1, Int>::from_data(TensorData::new(parent, [rows]), &device);
        let pre: PreRelu = batch
            .pre
            .iter()
            .enumerate()
            .map(|(r, (l, u))| {
                let d = batch.widths[r];
                let mut sign = vec![0.0f32; rows * d];
                for (i, cands) in candidates.iter().enumerate() {
                    for (c, &(_, neuron)) in cands.iter().enumerate().filter(|(_, x)| x.0 == r) {
                        sign[((i * k + c) * 2) * d + neuron] = 1.0;
                        sign[((i * k + c) * 2 + 1) * d + neuron] = -1.0;
                    }
                }
                let sign = Tensor::<2>::from_data(TensorData::new(sign, [rows, d]), &device);
                let picked = |t: &Tensor<2>| t.clone().select(0, parent.clone());
                clamp((picked(l), picked(u)), &sign)
            })
            .collect();
        let picked = |ts: &[Tensor<3>]| -> Vec<Tensor<3>> {
            ts.iter()
                .map(|t| t.clone().select(0, parent.clone()))
                .collect()
        };
        let lower = bound_traced(
            self.body,
            self.input,
            &self.boxes(rows),
            self.spec(target, rows),
            lines(&pre, &picked(&batch.signs), &picked(alphas), &picked(betas)),
            false,
        )?
        .0;
        let lower = read_floats(lower)?;
        Ok(candidates
            .into_iter()
            .enumerate()
            .map(|(i, cands)| {
                let score = |c: usize| lower[(i * k + c) * 2].min(lower[(i * k + c) * 2 + 1]);
                let mut order: Vec<usize> = (0..cands.len()).collect();
                order.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
                order.into_iter().map(|c| cands[c]).collect()
            })
            .collect())
    }

    /// A counterexample from each subproblem's relaxation minimiser (the box corner that
    /// minimises its final linear function, `lambda` `[b, 1, c*h*w]` over the input): the
    /// corner itself, then [`PGD_STEPS`] steps of projected gradient descent on the margin
    /// from it, in the box. The first input the network misclassifies, as pixels.
    fn counterexample(
        &self,
        target: usize,
        lambda: Tensor<3>,
    ) -> Result<Option<Vec<f32>>, BoundsError> {
        let [b, _, features] = lambda.dims();
        let [_, c, h, w] = self.point.lower.dims();
        let flat = |t: &Tensor<4>| t.clone().reshape([1, features]).expand([b, features]);
        let (lower, upper) = (flat(&self.point.lower), flat(&self.point.upper));
        let lambda: Tensor<2> = lambda.squeeze_dim(1);
        let corner = upper
            .clone()
            .mask_where(lambda.greater_elem(0.0), lower.clone());
        let (lower, upper) = (lower.reshape([b, c, h, w]), upper.reshape([b, c, h, w]));
        let mut x = corner.reshape([b, c, h, w]);
        if let Some(found) = misclassified(self.net, x.clone(), self.label)? {
            return Ok(Some(found));
        }
        let step = (upper.clone() - lower.clone()) * PGD_STEP;
        let (label, target) = (self.label as usize, target);
        for _ in 0..PGD_STEPS {
            let tracked = x.clone().autodiff().require_grad();
            let logits = self.frozen.forward(tracked.clone());
            let margin = logits.clone().slice([0..b, label..label + 1])
                - logits.slice([0..b, target..target + 1]);
            let grads = margin.sum().backward();
            let gradient = tracked
                .grad(&grads)
                .expect("the input requires a gradient")
                .inner();
            x = (x - gradient.sign() * step.clone())
                .max_pair(lower.clone())
                .min_pair(upper.clone());
        }
        misclassified(self.net, x, self.label)
    }
}

/// A batch of subproblems on the device: the point's box once per subproblem, the bounds in
/// front of every ReLU (splits clamped in), the splits' signs `[b, 1, d]` (1 for `z >= 0`, -1
/// for `z <= 0`), the ReLU layers' widths, and whether the bounds were recomputed.
struct Batch {
    set: InputSet,
    pre: PreRelu,
    signs: Vec<Tensor<3>>,
    widths: Vec<usize>,
    tightened: bool,
}

/// Bounds `(l, u)` `[b, d]` with the splits `sign` clamped in: `l >= 0` where `z >= 0` is
/// imposed, `u <= 0` where `z <= 0` is, so the split neurons' relaxation is exact.
fn clamp((l, u): (Tensor<2>, Tensor<2>), sign: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    (
        l.clone()
            .mask_where(sign.clone().greater_elem(0.0), l.clamp_min(0.0)),
        u.clone()
            .mask_where(sign.clone().lower_elem(0.0), u.clamp_max(0.0)),
    )
}

/// The lines of every ReLU: the bounds `pre`, the slopes, and each split's Lagrangian term
/// `-beta sign z` (sound on the subproblem for any `beta >= 0`).
fn lines(
    pre: &PreRelu,
    signs: &[Tensor<3>],
    alphas: &[Tensor<3>],
    betas: &[Tensor<3>],
) -> Vec<ReluLines> {
    pre.iter()
        .zip(alphas.iter().zip(betas))
        .zip(signs)
        .map(|(((l, u), (alpha, beta)), sign)| ReluLines {
            lower: l.clone(),
            upper: u.clone(),
            alpha: alpha.clone(),
            split: Some((beta.clone() * sign.clone()).neg()),
        })
        .collect()
}

/// Which subproblems' bounds cross somewhere (`l > u`): splits that contradict each other,
/// so the subproblem holds no input.
fn empty(pre: &PreRelu) -> Result<Vec<bool>, BoundsError> {
    let b = pre[0].0.dims()[0];
    let crossed = pre
        .iter()
        .map(|(l, u)| l.clone().greater(u.clone()).any_dim(1).float())
        .reduce(|a, b| a + b);
    match crossed {
        Some(c) => Ok(read_floats(c.squeeze_dim::<1>(1))?
            .into_iter()
            .map(|c| c > 0.0)
            .collect()),
        None => Ok(vec![false; b]),
    }
}

/// Per subproblem, the unstable neurons (ReLU layer, neuron) worth trying as its next split:
/// in each layer the [`CANDIDATES`] with the highest intercept score (BaBSR's: how much the
/// bound loses to each one's upper line, `relu(-lambda) u (-l) / (u - l)` with `lambda` the
/// coefficient `[b, 1, d]` of its output in `at_relu`, plus a thousandth of `|lambda|` times
/// the same gap to rank those whose upper line is not used), best first.
fn candidates(
    pre: &PreRelu,
    at_relu: &[Option<Tensor<3>>],
) -> Result<Vec<Vec<(usize, usize)>>, BoundsError> {
    let b = pre[0].0.dims()[0];
    let mut scored: Vec<Vec<(f32, usize, usize)>> = vec![Vec::new(); b];
    for (r, ((l, u), lambda)) in pre.iter().zip(at_relu).enumerate() {
        let Some(lambda) = lambda else { continue };
        let lambda: Tensor<2> = lambda.clone().squeeze_dim(1);
        let unstable = l
            .clone()
            .lower_elem(0.0)
            .bool_and(u.clone().greater_elem(0.0));
        let width = (u.clone() - l.clone()).mask_fill(unstable.clone().bool_not(), 1.0);
        let gap = u.clone() * l.clone().neg() / width;
        let score = (relu(lambda.clone().neg()) + lambda.abs() * 1e-3) * gap;
        let score = score.mask_fill(unstable.bool_not(), -1.0);
        let k = CANDIDATES.min(l.dims()[1]);
        let (values, indices) = score.topk_with_indices(k, 1);
        let values = read_floats(values)?;
        let indices: Vec<i64> = indices
            .into_data()
            .convert::<i64>()
            .try_to_vec()
            .map_err(|e| BoundsError::Input(format!("reading indices back: {e:?}")))?;
        for i in 0..b {
            for j in 0..k {
                if values[i * k + j] >= 0.0 {
                    scored[i].push((values[i * k + j], r, indices[i * k + j] as usize));
                }
            }
        }
    }
    Ok(scored
        .into_iter()
        .map(|mut s| {
            s.sort_by(|a, b| b.0.total_cmp(&a.0));
            s.into_iter().map(|(_, r, k)| (r, k)).collect()
        })
        .collect())
}

/// `net` for gradients with respect to its input only: on the autodiff device, its
/// parameters frozen.
fn frozen(net: &Network, device: &Device) -> Network {
    net.valid().fork(&device.clone().autodiff()).no_grad()
}

/// The first of the inputs `x` (`[b, c, h, w]`) whose forward pass gives some class a logit
/// above `label`'s, as pixels.
pub(crate) fn misclassified(
    net: &Network,
    x: Tensor<4>,
    label: i64,
) -> Result<Option<Vec<f32>>, BoundsError> {
    let b = x.dims()[0];
    let logits = net.forward(x.clone());
    let classes = logits.dims()[1];
    let own = logits
        .clone()
        .slice([0..b, label as usize..label as usize + 1]);
    let beaten = read_floats((logits - own).max_dim(1).squeeze_dim::<1>(1))?;
    match beaten.iter().position(|&m| m > 0.0) {
        Some(i) if classes > 1 => Ok(Some(read_floats(x.slice(i..i + 1).flatten::<1>(0, 3))?)),
        _ => Ok(None),
    }
}

/// `[b, d]`: for each subproblem, `1` at the neurons of ReLU layer `relu` it splits `z >= 0`,
/// `-1` at those it splits `z <= 0`, 0 elsewhere.
fn split_signs(subs: &[Subproblem], relu: usize, d: usize, device: &Device) -> Tensor<2> {
    let mut dense = vec![0.0f32; subs.len() * d];
    for (i, sub) in subs.iter().enumerate() {
        for split in sub.splits.iter().filter(|s| s.relu == relu) {
            dense[i * d + split.neuron] = if split.active { 1.0 } else { -1.0 };
        }
    }
    Tensor::from_data(TensorData::new(dense, [subs.len(), d]), device)
}

/// The rows `rows` (`d` values each) stacked into `[rows, d]`.
fn stack<'a>(rows: impl Iterator<Item = &'a Vec<f32>>, d: usize, device: &Device) -> Tensor<2> {
    let values: Vec<f32> = rows.flat_map(|r| r.iter().copied()).collect();
    let n = values.len() / d.max(1);
    Tensor::from_data(TensorData::new(values, [n, d]), device)
}

/// The bounds in front of every ReLU, on the host (`[b * d]` each, row-major).
fn host_bounds(pre: &PreRelu) -> Result<HostBounds, BoundsError> {
    pre.iter()
        .map(|(l, u)| Ok((read_floats(l.clone())?, read_floats(u.clone())?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;
    use mixtrain_nn::{Architecture, Backend, LayerSpec};

    use super::*;
    use crate::InputDomain;

    fn tiny(seed: u64) -> Network {
        let arch = Architecture {
            name: "tiny".into(),
            input: [1, 1, 4],
            classes: 3,
            layers: vec![
                LayerSpec::Flatten,
                LayerSpec::Linear {
                    name: "fc1".into(),
                    in_features: 4,
                    out_features: 8,
                },
                LayerSpec::Relu,
                LayerSpec::Linear {
                    name: "fc2".into(),
                    in_features: 8,
                    out_features: 6,
                },
                LayerSpec::Relu,
                LayerSpec::Linear {
                    name: "out".into(),
                    in_features: 6,
                    out_features: 3,
                },
            ],
        };
        Network::init(&arch, seed, &Backend::Flex.device(None).unwrap()).unwrap()
    }

    /// The logits of `x` `[n, 4]` and the pre-activations in front of each ReLU, on the host.
    fn forward(net: &Network, x: Tensor<2>) -> (Vec<f32>, Vec<Vec<f32>>) {
        let mut a = x;
        let mut pre = Vec::new();
        for layer in &net.layers {
            match layer {
                Layer::Linear(l) => a = l.forward(a),
                Layer::Relu(_) => {
                    pre.push(read_floats(a.clone()).unwrap());
                    a = relu(a);
                }
                _ => {}
            }
        }
        (read_floats(a).unwrap(), pre)
    }

    #[test]
    fn a_network_with_residual_blocks_is_refused_by_name() {
        let device = Backend::Flex.device(None).unwrap();
        let arch = mixtrain_nn::zoo::architecture("cifar_resnet_n1_f1").unwrap();
        let net = Network::init(&arch, 0, &device).unwrap();
        let [c, h, w] = arch.input;
        let x = Tensor::<4>::zeros([1, c, h, w], &device) + 0.5;
        let point = InputSet::linf(x, 0.01, InputDomain::Unit).unwrap();
        let err = BranchAndBound::default()
            .decide(&net, &point, 0, &AlphaCrown::default(), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("residual") && err.contains(&arch.name),
            "{err}"
        );
    }

    #[test]
    fn every_subproblem_bound_holds_on_the_inputs_that_satisfy_its_splits() {
        let device = Backend::Flex.device(None).unwrap();
        let mut checked = 0;
        for seed in 0..6u64 {
            let net = tiny(seed);
            device.seed(seed);
            let x = Tensor::<4>::random([1, 1, 1, 4], Distribution::Uniform(0.2, 0.8), &device);
            let label = read_floats(net.forward(x.clone()).argmax(1).float()).unwrap()[0] as i64;
            let point = InputSet::linf(x, 0.3, InputDomain::Unit).unwrap();
            let sound = point.clone().into_float_sound();
            let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![label], [1]), &device);
            let (_, pre_relu) = AlphaCrown::default().root(&net, &sound, &labels).unwrap();
            let bounds = Arc::new(host_bounds(&pre_relu).unwrap());
            let unstable: Vec<(usize, usize)> = bounds
                .iter()
                .enumerate()
                .flat_map(|(r, (l, u))| {
                    (0..l.len())
                        .filter(move |&k| l[k] < 0.0 && u[k] > 0.0)
                        .map(move |k| (r, k))
                })
                .collect();
            // random splits of the unstable neurons, random slopes and multipliers: each is
            // sound, whatever its value
            let mut rng = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut next = move || {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (rng >> 33) as usize
            };
            let subs: Vec<Subproblem> = (0..8)
                .map(|_| {
                    let mut splits: Vec<Split> = Vec::new();
                    for _ in 0..=next() % 3.min(unstable.len()) {
                        let (relu, neuron) = unstable[next() % unstable.len().max(1)];
                        if splits.iter().all(|s| (s.relu, s.neuron) != (relu, neuron)) {
                            let active = next() % 2 == 0;
                            splits.push(Split {
                                relu,
                                neuron,
                                active,
                            });
                        }
                    }
                    let betas = splits
                        .iter()
                        .map(|_| (next() % 100) as f32 / 200.0)
                        .collect();
                    let alphas = bounds
                        .iter()
                        .map(|(l, _)| l.iter().map(|_| (next() % 100) as f32 / 99.0).collect())
                        .collect();
                    Subproblem {
                        splits,
                        bounds: bounds.clone(),
                        alphas: Arc::new(alphas),
                        betas,
                        lower: f32::NEG_INFINITY,
                        next: Vec::new(),
                        tries: 0,
                    }
                })
                .filter(|s| !s.splits.is_empty())
                .collect();
            if unstable.is_empty() || subs.is_empty() {
                continue;
            }
            let (body, last) = body_and_last(&net, &point, &labels).unwrap();
            let settings = BranchAndBound {
                iterations: 3,
                ..BranchAndBound::default()
            };
            let samples = Tensor::<2>::random([4000, 4], Distribution::Uniform(0.0, 1.0), &device);
            let lo: Tensor<2> = point.lower.clone().flatten(1, 3);
            let hi: Tensor<2> = point.upper.clone().flatten(1, 3);
            let samples = lo.clone() + samples * (hi - lo);
            let (logits, pre) = forward(&net, samples);
            for target in (0..3).filter(|&t| t != label as usize) {
                let mut search = Search {
                    settings: &settings,
                    net: &net,
                    frozen: frozen(&net, &device),
                    body,
                    input: ActShape::Image(net.architecture().input),
                    sound: sound.clone(),
                    point: point.clone(),
                    label,
                    spec: fold_spec(last, &labels),
                    clock: Instant::now(),
                    subproblems: 0,
                    depth: 0,
                };
                let (bounded, _) = search.bound(target, subs.clone()).unwrap();
                for sub in &bounded {
                    for n in 0..4000 {
                        let inside = sub.splits.iter().all(|s| {
                            let z = pre[s.relu][n * bounds[s.relu].0.len() + s.neuron];
                            if s.active { z >= 0.0 } else { z <= 0.0 }
                        });
                        if !inside {
                            continue;
                        }
                        let margin = logits[n * 3 + label as usize] - logits[n * 3 + target];
                        assert!(
                            margin >= sub.lower,
                            "seed {seed}, target {target}, splits {:?}: margin {margin} below \
                             the bound {}",
                            sub.splits,
                            sub.lower
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(
            checked > 10_000,
            "only {checked} samples satisfied their splits"
        );
    }
}
