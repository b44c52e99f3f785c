//! alpha-CROWN: CROWN with the lower slopes of the unstable ReLUs optimised.
//!
//! CROWN bounds an unstable ReLU from below by `alpha z` with `alpha = [u >= -l]`, but every
//! `alpha` in `[0, 1]` gives a sound line, and the best choice depends on the margin being
//! bounded. alpha-CROWN (Xu et al., ICLR 2021) gives each margin its own slope per neuron,
//! `[n, classes, d]` per ReLU, starts from CROWN's choice and climbs the margins' lower bounds by
//! projected gradient ascent (Adam, the slopes clipped back to `[0, 1]` after every step); the
//! gradient is autodiff's through the backward pass. Every iterate is a sound bound, so the
//! result is the best bound met so far, never looser than CROWN, and valid wherever the loop
//! stops.
//!
//! Intermediate bounds ([`Intermediate`]): every ReLU layer but the first (whose bounds are
//! exact already) gets the pre-activation bounds of its unstable neurons tightened by CROWN
//! backward passes from those neurons (`2 m` rows: the lower and upper bound of each of the
//! `m`), intersected with the forward domains' bounds; stable neurons need no tighter bounds,
//! and are most of a layer. With the default, [`Intermediate::Optimised`], each of those passes
//! then gets slopes of its own, climbed together with the margins' for the margins' bounds (as
//! alpha-beta-CROWN does): each iteration recomputes the intermediate bounds, keeps the tightest
//! met, and passes the gradient of the current ones even where an earlier iterate's are tighter
//! (else a slope that is not yet the best would never learn). The measurements behind the
//! defaults are in `docs/bounds.md`.
//!
//! Only the points the cheaper bounds leave undecided are optimised ([`AlphaCrown::refine`]),
//! and the loop stops once every one of them is verified.

use std::time::{Duration, Instant};

use burn::module::Module;
use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};
use mixtrain_nn::{ActShape, Layer, Network};
use serde::{Deserialize, Serialize};

use crate::crown::{ReluLines, adaptive, bound, bound_neurons, bound_with};
use crate::domain::{PreRelu, body_and_last, forward_recording, intersect};
use crate::numeric::read_bools;
use crate::registry::by_name;
use crate::{BoundsError, InputSet, Interval, Margins, Symbolic};

/// Adam's moment decays (the usual ones) and the step's decay per iteration (auto_LiRPA's).
const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const STEP_DECAY: f32 = 0.98;
/// The most floats one intermediate layer's passes may carry (a batch's rows times the widest
/// layer in front) or optimise (its slopes: rows times the ReLU neurons in front; three times
/// that with Adam's moments); 64 Mi floats, 256 MiB. A layer past it keeps the forward
/// domains' bounds (past the first) or CROWN's from one pass (past the second): a wide
/// network's convolutions would otherwise exhaust memory. `mnist_small` always fits: at most 5
/// points x 2 x 1,568 unstable neurons x 3,136 in front = 47 Mi.
const CHAIN_SLOPES: usize = 64 << 20;

/// The alpha-CROWN verifier's settings; [`AlphaCrown::margins`] runs it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlphaCrown {
    /// Gradient steps on the slopes (0: CROWN with the tightest intermediate bounds).
    pub iterations: usize,
    /// Adam's step size on the slopes, decayed by 0.98 per step.
    pub step: f32,
    /// Where the bounds in front of the ReLUs come from.
    pub intermediate: Intermediate,
    /// Seconds per optimised point after which the slopes stop climbing (none: all
    /// `iterations`). Every iterate is sound, so the limit costs tightness, never soundness; it
    /// bounds the cost where unstable neurons abound (an undertrained network), whose
    /// intermediate passes carry a row per unstable neuron and can cost seconds a point.
    pub time_limit: Option<f64>,
}

/// The pre-activation bounds alpha-CROWN relaxes the ReLUs with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Intermediate {
    /// The forward domains' (interval and symbolic, intersected).
    Forward,
    /// The forward domains', and for the unstable neurons of every ReLU layer but the first,
    /// CROWN's from a backward pass of their own, once, before the slopes are optimised.
    Crown,
    /// As `Crown`, then each of those backward passes gets slopes of its own, optimised with
    /// the margins' for the margins' bounds (alpha-beta-CROWN's alpha-CROWN); the tightest
    /// bounds met are kept.
    #[default]
    Optimised,
}

impl Intermediate {
    /// Every choice, as configs and the command line name them.
    pub const ALL: [Intermediate; 3] = [
        Intermediate::Forward,
        Intermediate::Crown,
        Intermediate::Optimised,
    ];

    /// The name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Intermediate::Forward => "forward",
            Intermediate::Crown => "crown",
            Intermediate::Optimised => "optimised",
        }
    }
}

impl std::fmt::Display for Intermediate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Intermediate {
    type Err = BoundsError;

    fn from_str(s: &str) -> Result<Self, BoundsError> {
        by_name(
            s,
            &Intermediate::ALL,
            Intermediate::name,
            "intermediate bounds",
        )
    }
}

/// [`AlphaCrown::time_limit`]'s default, seconds per point (chosen in `docs/bounds.md`).
const TIME_LIMIT: f64 = 0.5;

impl Default for AlphaCrown {
    /// Chosen on MNIST's validation split with the MixTrain authors' eps-0.3 network
    /// (`docs/bounds.md`).
    fn default() -> Self {
        Self {
            iterations: 20,
            step: 0.3,
            intermediate: Intermediate::Optimised,
            time_limit: Some(TIME_LIMIT),
        }
    }
}

impl AlphaCrown {
    /// Lower bounds of the margins: intermediate bounds from interval and symbolic
    /// (intersected), the slopes optimised, never looser than CROWN (`DomainKind::Crown`).
    pub fn margins(
        &self,
        net: &Network,
        set: &InputSet,
        labels: Tensor<1, Int>,
    ) -> Result<Margins, BoundsError> {
        let (_, from_interval) = forward_recording::<Interval>(net, set, &labels)?;
        let (_, from_symbolic) = forward_recording::<Symbolic>(net, set, &labels)?;
        let lower = self.after_forward(net, set, &labels, from_interval, &from_symbolic)?;
        Ok(Margins { lower, labels })
    }

    /// [`AlphaCrown::margins`] from the forward domains' bounds in front of every ReLU: CROWN
    /// from interval's and from their intersection, then [`AlphaCrown::refine`].
    pub(crate) fn after_forward(
        &self,
        net: &Network,
        set: &InputSet,
        labels: &Tensor<1, Int>,
        from_interval: PreRelu,
        from_symbolic: &PreRelu,
    ) -> Result<Tensor<2>, BoundsError> {
        let pre_relu = intersect(&from_interval, from_symbolic);
        let crown = bound(net, set, labels, from_interval)?.max_pair(bound(
            net,
            set,
            labels,
            pre_relu.clone(),
        )?);
        self.refine(net, set, labels, pre_relu, crown)
    }

    /// Tightens the sound margin bounds `lower` `[n, classes]` by optimising the slopes of the
    /// points `lower` leaves undecided, from the bounds `pre_relu` in front of every ReLU: the
    /// decided points cost nothing, which is most of a batch at small eps.
    fn refine(
        &self,
        net: &Network,
        set: &InputSet,
        labels: &Tensor<1, Int>,
        pre_relu: PreRelu,
        lower: Tensor<2>,
    ) -> Result<Tensor<2>, BoundsError> {
        let verified = verified(lower.clone(), labels)?;
        let undecided: Vec<i64> = (0..verified.len() as i64)
            .filter(|&i| !verified[i as usize])
            .collect();
        if undecided.is_empty() {
            return Ok(lower);
        }
        let len = undecided.len();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(undecided, [len]), &lower.device());
        let subset = set.select(rows.clone());
        let bounds = pre_relu
            .iter()
            .map(|(l, u)| {
                (
                    l.clone().select(0, rows.clone()),
                    u.clone().select(0, rows.clone()),
                )
            })
            .collect();
        let labels = labels.clone().select(0, rows.clone());
        let old = lower.clone().select(0, rows.clone());
        let gain = (self.optimise(net, &subset, &labels, bounds)?.0 - old).clamp_min(0.0);
        Ok(lower.select_assign(0, rows, gain, IndexingUpdateOp::Add))
    }

    /// The margin lower bounds `[n, classes]` at the best slopes met while optimising them,
    /// starting from sound bounds `pre_relu` in front of every ReLU. The loop runs without
    /// autodiff on the network; on an autodiff device the bound is then evaluated once more at
    /// the best slopes, so its gradient is the margins' at those slopes held fixed (as
    /// auto_LiRPA's), not through the optimisation. Also returns the tightest bounds met in
    /// front of every ReLU (on the plain device).
    fn optimise(
        &self,
        net: &Network,
        set: &InputSet,
        labels: &Tensor<1, Int>,
        pre_relu: PreRelu,
    ) -> Result<(Tensor<2>, PreRelu), BoundsError> {
        let start = Instant::now();
        let (body, _) = body_and_last(net, set, labels)?;
        let input = ActShape::Image(net.architecture().input);
        let targets = self.targets(body);
        let pre_relu = tighten(body, input, set, &targets, pre_relu)?;
        let device = set.lower.device();
        let tracked = device.is_autodiff();
        let detached_net;
        let (plain_net, plain_set, plain_pre) = if tracked {
            detached_net = net.clone().fork(&device.clone().inner());
            let set = InputSet {
                lower: set.lower.clone().inner(),
                upper: set.upper.clone().inner(),
                float_sound: set.float_sound,
            };
            let pre = pre_relu
                .iter()
                .map(|(l, u)| (l.clone().inner(), u.clone().inner()))
                .collect();
            (&detached_net, set, pre)
        } else {
            (net, set.clone(), pre_relu.clone())
        };
        let mut plain_pre = plain_pre;
        let labels_plain = labels.clone().inner();
        let classes = net.architecture().classes;
        let mut alphas = expanded(&plain_pre, classes);
        let relus = alphas.len();
        let chains = match self.intermediate {
            Intermediate::Optimised => Chain::each(targets, &plain_pre, &mut alphas)?,
            _ => Vec::new(),
        };
        let mut best_alphas = alphas[..relus].to_vec();
        let mut best: Option<Tensor<2>> = None;
        let mut adam = Adam::new(&alphas, self.step);
        let deadline = self
            .time_limit
            .map(|limit| start + Duration::from_secs_f64(limit * set.len() as f64));
        for iteration in 0..=self.iterations {
            let leaves: Vec<Tensor<3>> = alphas
                .iter()
                .map(|a| a.clone().autodiff().require_grad())
                .collect();
            let mut bounds = plain_pre.clone();
            for chain in &chains {
                let narrowed = chain.narrow(body, input, &plain_set, &bounds, &leaves)?;
                // every iterate's bounds are sound: the next iteration starts from the tightest
                plain_pre[chain.target.relu] =
                    (narrowed.0.clone().inner(), narrowed.1.clone().inner());
                bounds[chain.target.relu] = narrowed;
            }
            let margins = bound_with(
                plain_net,
                &plain_set,
                &labels_plain,
                lines(&bounds, &leaves[..relus]),
            )?;
            // each margin's row of slopes bounds that margin alone: keep the best row
            let current = keep_best(
                best,
                margins.clone().inner(),
                &mut [(&mut best_alphas, &alphas)],
            );
            best = Some(current.clone());
            let late = deadline.is_some_and(|d| Instant::now() >= d);
            if iteration == self.iterations || late || all_verified(current, &labels_plain)? {
                break;
            }
            let grads = margins.sum().backward();
            adam.ascend(&mut alphas, leaves.iter().map(|t| t.grad(&grads)).collect());
        }
        let margins = match tracked {
            true => bound_with(net, set, labels, lines(&pre_relu, &best_alphas))?,
            false => best.expect("at least one evaluation"),
        };
        Ok((margins, plain_pre))
    }

    /// The margin lower bounds `[n, classes]` of every point of `set`, optimised whether or
    /// not cheaper bounds decide it, and the tightest bounds met in front of every ReLU: the
    /// root of a branch and bound, whose subproblems start from those bounds.
    pub(crate) fn root(
        &self,
        net: &Network,
        set: &InputSet,
        labels: &Tensor<1, Int>,
    ) -> Result<(Tensor<2>, PreRelu), BoundsError> {
        let (_, from_interval) = forward_recording::<Interval>(net, set, labels)?;
        let (_, from_symbolic) = forward_recording::<Symbolic>(net, set, labels)?;
        let pre_relu = intersect(&from_interval, &from_symbolic);
        self.optimise(net, set, labels, pre_relu)
    }

    /// The top-level ReLUs whose pre-activation bounds are tightened: with
    /// [`Intermediate::Crown`], every one with some ReLU in front (the first layer's bounds are
    /// exact already).
    fn targets(&self, body: &[Layer]) -> Vec<Target> {
        let mut targets = Vec::new();
        let mut relu = 0;
        for (layer, kind) in body.iter().enumerate() {
            if let Layer::Relu(_) = kind
                && relu > 0
                && self.intermediate != Intermediate::Forward
            {
                targets.push(Target { layer, relu });
            }
            relu += relu_count(std::slice::from_ref(kind));
        }
        targets
    }
}

/// `pre_relu` with the bounds in front of every top-level ReLU layer after the ReLU numbered
/// `after` tightened by CROWN passes from their unstable neurons ([`tighten`]): what a branch
/// and bound subproblem needs once a split in that ReLU has changed the chords behind them.
pub(crate) fn tighten_after(
    body: &[Layer],
    input: ActShape,
    set: &InputSet,
    after: usize,
    pre_relu: PreRelu,
) -> Result<PreRelu, BoundsError> {
    let targets: Vec<Target> = AlphaCrown::default()
        .targets(body)
        .into_iter()
        .filter(|t| t.relu > after)
        .collect();
    tighten(body, input, set, &targets, pre_relu)
}

/// `pre_relu` with the bounds in front of each target layer tightened, in order, by a CROWN
/// backward pass from each of its unstable neurons (the earlier targets' tightened bounds set
/// the chords). Stable neurons are left as they are: tighter bounds would not change their
/// exact lines.
fn tighten(
    body: &[Layer],
    input: ActShape,
    set: &InputSet,
    targets: &[Target],
    mut pre_relu: PreRelu,
) -> Result<PreRelu, BoundsError> {
    for target in targets {
        let (l, u) = pre_relu[target.relu].clone();
        let Some(rows) = unstable_rows(&l, &u)? else {
            continue;
        };
        let [n, m, _] = rows.dims();
        let widest = pre_relu[..target.relu]
            .iter()
            .map(|b| b.0.dims()[1])
            .fold(input.features(), usize::max);
        if n * 2 * m * widest > CHAIN_SLOPES {
            continue;
        }
        let lines = adaptive(pre_relu[..target.relu].to_vec());
        let (lower, upper) = bound_neurons(&body[..target.layer], input, set, lines, rows.clone())?;
        pre_relu[target.relu] = narrow(&(l, u), &rows, lower, upper, Tensor::max_pair);
    }
    Ok(pre_relu)
}

/// The bounds `[l, u]` `[n, d]` intersected with `lower` and `upper` `[n, m]` of the neurons
/// `rows` `[n, m, d]` picks (one-hot rows; the others' bounds are kept), `higher(old, new)`
/// choosing each lower bound (the upper bounds by negation).
fn narrow(
    (l, u): &(Tensor<2>, Tensor<2>),
    rows: &Tensor<3>,
    lower: Tensor<2>,
    upper: Tensor<2>,
    higher: fn(Tensor<2>, Tensor<2>) -> Tensor<2>,
) -> (Tensor<2>, Tensor<2>) {
    let picked = rows
        .clone()
        .sum_dim(1)
        .squeeze_dim::<2>(1)
        .greater_elem(0.5);
    let spread = |v: Tensor<2>| {
        (rows.clone() * v.unsqueeze_dim::<3>(2))
            .sum_dim(1)
            .squeeze_dim::<2>(1)
    };
    (
        l.clone()
            .mask_where(picked.clone(), higher(l.clone(), spread(lower))),
        u.clone()
            .mask_where(picked, higher(u.clone().neg(), spread(upper).neg()).neg()),
    )
}

/// The larger of two sound lower bounds, with the gradient of `new` whichever is larger: the
/// optimisation keeps the tightest bounds met, but a slope whose bound is not (yet) the
/// tightest must still learn from it (through `max_pair` it would get no gradient at all).
fn higher_learning(old: Tensor<2>, new: Tensor<2>) -> Tensor<2> {
    new.clone() + (old - new).clamp_min(0.0).detach()
}

/// CROWN's slopes for the ReLUs bounded by `bounds`, one row per function carried back:
/// `[n, rows, d]` each.
fn expanded(bounds: &[(Tensor<2>, Tensor<2>)], rows: usize) -> Vec<Tensor<3>> {
    adaptive(bounds.to_vec())
        .into_iter()
        .map(|lines| {
            let [n, _, d] = lines.alpha.dims();
            lines.alpha.expand([n, rows, d])
        })
        .collect()
}

/// An intermediate layer whose unstable neurons' bounds are optimised with the margins: the
/// rows picking them and where its slopes (one per ReLU in front) start among all slopes.
struct Chain {
    target: Target,
    rows: Tensor<3>,
    first: usize,
}

impl Chain {
    /// A chain per target with unstable neurons, within [`CHAIN_SLOPES`], its slopes (CROWN's
    /// to start) appended to `alphas`.
    fn each(
        targets: Vec<Target>,
        bounds: &PreRelu,
        alphas: &mut Vec<Tensor<3>>,
    ) -> Result<Vec<Chain>, BoundsError> {
        let mut chains = Vec::new();
        for target in targets {
            let (l, u) = &bounds[target.relu];
            let Some(rows) = unstable_rows(l, u)? else {
                continue;
            };
            let [n, m, _] = rows.dims();
            let in_front: usize = bounds[..target.relu].iter().map(|b| b.0.dims()[1]).sum();
            if n * 2 * m * in_front > CHAIN_SLOPES {
                continue;
            }
            let first = alphas.len();
            alphas.extend(expanded(&bounds[..target.relu], 2 * m));
            chains.push(Chain {
                target,
                rows,
                first,
            });
        }
        Ok(chains)
    }

    /// The target layer's bounds in `bounds` narrowed by a backward pass from its unstable
    /// neurons with the chain's slopes among `slopes`; the tightest value, the current
    /// iterate's gradient.
    fn narrow(
        &self,
        body: &[Layer],
        input: ActShape,
        set: &InputSet,
        bounds: &PreRelu,
        slopes: &[Tensor<3>],
    ) -> Result<(Tensor<2>, Tensor<2>), BoundsError> {
        let slopes = &slopes[self.first..self.first + self.target.relu];
        let (lower, upper) = bound_neurons(
            &body[..self.target.layer],
            input,
            set,
            lines(bounds, slopes),
            self.rows.clone(),
        )?;
        Ok(narrow(
            &bounds[self.target.relu],
            &self.rows,
            lower,
            upper,
            higher_learning,
        ))
    }
}

/// One-hot rows `[n, m, d]` picking each point's unstable neurons (`l < 0 < u`) of a layer
/// bounded by `[lower, upper]` `[n, d]`, with `m` the most any point has and the others'
/// padded with zero rows; `None` when no point has one. Read back to the host: the count
/// sets the shape of the backward pass.
fn unstable_rows(lower: &Tensor<2>, upper: &Tensor<2>) -> Result<Option<Tensor<3>>, BoundsError> {
    let [n, d] = lower.dims();
    let unstable = read_bools(
        lower
            .clone()
            .lower_elem(0.0)
            .bool_and(upper.clone().greater_elem(0.0)),
    )?;
    let picks: Vec<Vec<i64>> = unstable
        .chunks(d)
        .map(|row| (0..d as i64).filter(|&j| row[j as usize]).collect())
        .collect();
    let m = picks.iter().map(Vec::len).max().unwrap_or(0);
    if m == 0 {
        return Ok(None);
    }
    let (mut index, mut valid) = (Vec::with_capacity(n * m), Vec::with_capacity(n * m));
    for pick in &picks {
        for k in 0..m {
            index.push(pick.get(k).copied().unwrap_or(0));
            valid.push(if k < pick.len() { 1.0f32 } else { 0.0 });
        }
    }
    let device = lower.device();
    let index = Tensor::<3, Int>::from_data(TensorData::new(index, [n, m, 1]), &device);
    let valid = Tensor::<3>::from_data(TensorData::new(valid, [n, m, 1]), &device);
    let rows = Tensor::zeros([n, m, d], &device).scatter(2, index, valid, IndexingUpdateOp::Add);
    Ok(Some(rows))
}

/// Which points the margin bounds `lower` verify, read back to the host.
fn verified(lower: Tensor<2>, labels: &Tensor<1, Int>) -> Result<Vec<bool>, BoundsError> {
    let margins = Margins {
        lower,
        labels: labels.clone(),
    };
    read_bools(margins.verified())
}

/// Whether the margin bounds `lower` verify every point: then no step can change a verdict.
fn all_verified(lower: Tensor<2>, labels: &Tensor<1, Int>) -> Result<bool, BoundsError> {
    Ok(verified(lower, labels)?.into_iter().all(|v| v))
}

/// A ReLU layer whose pre-activation bounds are tightened: its index among the network's
/// layers and among the ReLUs.
struct Target {
    layer: usize,
    relu: usize,
}

/// The ReLUs among `layers`, nested ones included, in the order the forward pass meets them.
fn relu_count(layers: &[Layer]) -> usize {
    layers
        .iter()
        .map(|layer| match layer {
            Layer::Relu(_) => 1,
            Layer::Residual(block) => relu_count(&block.path),
            _ => 0,
        })
        .sum()
}

/// The first `slopes.len()` ReLUs' lines: their current bounds with the given slopes.
fn lines(bounds: &PreRelu, slopes: &[Tensor<3>]) -> Vec<ReluLines> {
    bounds
        .iter()
        .zip(slopes)
        .map(|((lower, upper), alpha)| ReluLines {
            lower: lower.clone(),
            upper: upper.clone(),
            alpha: alpha.clone(),
            split: None,
        })
        .collect()
}

/// Adam ascending, each step projected back onto `[0, upper]`: `[0, 1]` for slopes, `[0,
/// inf)` for Lagrange multipliers.
/// An iterate's bounds `plain` `[n, m]` against the best so far (none before the first): in
/// each `(kept, current)` pair of parameter sets (`[n, m, d]` per ReLU layer), the rows whose
/// bound improved take the current values. Returns the new best bounds.
pub(crate) fn keep_best(
    best: Option<Tensor<2>>,
    plain: Tensor<2>,
    sets: &mut [(&mut Vec<Tensor<3>>, &Vec<Tensor<3>>)],
) -> Tensor<2> {
    let Some(previous) = best else {
        return plain;
    };
    let improved = plain
        .clone()
        .greater(previous.clone())
        .unsqueeze_dim::<3>(2);
    for (kept, current) in sets.iter_mut() {
        for (kept, current) in kept.iter_mut().zip(current.iter()) {
            let mask = improved.clone().expand(current.dims());
            *kept = kept.clone().mask_where(mask, current.clone());
        }
    }
    previous.max_pair(plain)
}

pub(crate) struct Adam {
    step: f32,
    upper: f32,
    t: i32,
    first: Vec<Tensor<3>>,
    second: Vec<Tensor<3>>,
}

impl Adam {
    pub(crate) fn new(alphas: &[Tensor<3>], step: f32) -> Self {
        Self::bounded(alphas, step, 1.0)
    }

    pub(crate) fn bounded(alphas: &[Tensor<3>], step: f32, upper: f32) -> Self {
        let zeros: Vec<Tensor<3>> = alphas.iter().map(|t| t.zeros_like()).collect();
        Self {
            step,
            upper,
            t: 0,
            first: zeros.clone(),
            second: zeros,
        }
    }

    pub(crate) fn ascend(&mut self, alphas: &mut [Tensor<3>], gradients: Vec<Option<Tensor<3>>>) {
        self.t += 1;
        let step = self.step * STEP_DECAY.powi(self.t - 1);
        let (c1, c2) = (1.0 - BETA1.powi(self.t), 1.0 - BETA2.powi(self.t));
        let slots = alphas
            .iter_mut()
            .zip(&mut self.first)
            .zip(&mut self.second)
            .zip(gradients);
        for (((alpha, m), v), g) in slots {
            let Some(g) = g else { continue };
            *m = m.clone() * BETA1 + g.clone() * (1.0 - BETA1);
            *v = v.clone() * BETA2 + g.powi_scalar(2) * (1.0 - BETA2);
            let update = (m.clone() / c1) / ((v.clone() / c2).sqrt() + 1e-8);
            *alpha = (alpha.clone() + update * step).clamp(0.0, self.upper);
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;
    use mixtrain_nn::Backend;

    use super::*;

    #[test]
    fn slopes_stay_in_the_unit_interval_whatever_the_gradient() {
        let device = Backend::Flex.device(None).unwrap();
        let mut alphas = vec![Tensor::<3>::random(
            [2, 3, 50],
            Distribution::Uniform(0.0, 1.0),
            &device,
        )];
        let mut adam = Adam::new(&alphas, 5.0);
        for _ in 0..5 {
            let gradient =
                Tensor::<3>::random([2, 3, 50], Distribution::Uniform(-1e3, 1e3), &device);
            adam.ascend(&mut alphas, vec![Some(gradient)]);
            let values: Vec<f32> = alphas[0].clone().into_data().try_to_vec().unwrap();
            assert!(values.iter().all(|a| (0.0..=1.0).contains(a)), "{values:?}");
            assert!(values.contains(&0.0) && values.contains(&1.0));
        }
    }
}
