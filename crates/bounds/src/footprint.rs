//! Memory estimates for bounding, before anything large is allocated.
//!
//! The symbolic domain's dense coefficients are `[symbols, features]` per point and layer, where
//! the symbols are the input's pixels plus one per unstable ReLU met so far: on a ResNet that is
//! gigabytes per point, and a training step keeps every layer's coefficients for the backward
//! pass. [`footprint`] counts the unstable ReLUs of the given points with one cheap interval
//! pass (interval bounds are looser than symbolic ones, so they over-count: the estimate errs
//! high), then sizes every domain's tensors from the architecture. The trainer refuses a
//! configuration whose estimate exceeds its memory budget instead of being killed half-way.

use burn::tensor::{Int, Tensor};
use mixtrain_nn::{ActShape, Layer, Network, visit_layers};

use crate::domain::forward_recording;
use crate::registry::Family;
use crate::{BoundsError, DomainKind, InputSet, Interval, Symbolic};

/// Tensors of one layer alive at once in a bounding pass (its input, its output and an
/// intermediate of the rule, e.g. the conv's reshaped input). Calibrated against measured
/// peaks (docs/performance.md, "Memory").
const LIVE_PER_LAYER: u64 = 3;

/// Tensors of one layer kept by a training step for the backward pass. Symbolic coefficients
/// are kept about once (a conv keeps its input, the ReLU relaxation's product its operand;
/// measured below the estimate on `cifar_resnet`). CROWN's backward rows are kept with their
/// positive and negative parts and their products with the bounds. Interval vectors are small
/// either way.
fn kept(family: Family) -> u64 {
    match family {
        Family::Interval => 2,
        Family::Symbolic => 1,
        Family::Crown | Family::Alpha => 4,
    }
}

/// Estimated bytes per bounded point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// A bounding pass without gradients (verification).
    pub eval_bytes: u64,
    /// A training step's forward pass with everything its backward pass keeps.
    pub train_bytes: u64,
}

/// How the unstable ReLUs of the estimate are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// One interval pass: cheap, and an over-count (interval bounds are the loosest), so the
    /// estimate errs high.
    Interval,
    /// One symbolic pass over the given points: the counts the symbolic domain really meets,
    /// at the cost of bounding them (check the interval estimate of that first).
    Symbolic,
}

/// The unstable ReLUs of each ReLU layer, the largest over the points of `set`.
fn unstable_counts(net: &Network, set: &InputSet, probe: Probe) -> Result<Vec<usize>, BoundsError> {
    let labels = Tensor::<1, Int>::zeros([set.len()], &set.lower.device());
    let pre_relu = match probe {
        Probe::Interval => forward_recording::<Interval>(net, set, &labels)?.1,
        Probe::Symbolic => forward_recording::<Symbolic>(net, set, &labels)?.1,
    };
    Ok(pre_relu
        .into_iter()
        .map(|(l, u)| {
            let count: Tensor<1, Int> = l
                .lower_elem(0.0)
                .bool_and(u.greater_elem(0.0))
                .int()
                .sum_dim(1)
                .max_dim(0)
                .reshape([1]);
            count.into_scalar::<i64>() as usize
        })
        .collect())
}

/// The largest single layer's elements and the sum over layers, per family, for one point.
#[derive(Default)]
struct Tally {
    symbolic: (u64, u64),
    crown: (u64, u64),
    interval: (u64, u64),
    alpha: (u64, u64),
}

impl Tally {
    /// One layer's output of `features`, with `symbols` symbolic rows, `classes` CROWN rows
    /// and `alpha_rows` rows of alpha-CROWN's intermediate backward passes.
    fn add(&mut self, symbols: u64, classes: u64, alpha_rows: u64, features: u64) {
        for (family, size) in [
            (&mut self.symbolic, symbols * features),
            (&mut self.crown, classes * features),
            (&mut self.interval, 4 * features),
            (&mut self.alpha, alpha_rows * features),
        ] {
            family.0 = family.0.max(size);
            family.1 += size;
        }
    }

    fn of(&self, family: Family) -> (u64, u64) {
        match family {
            Family::Interval => self.interval,
            Family::Symbolic => self.symbolic,
            Family::Crown => self.crown,
            Family::Alpha => self.alpha,
        }
    }
}

/// Estimates the memory of bounding one point of `set` in `domain` (the largest over its
/// points), for verification and for a training step, with the unstable ReLUs counted by
/// `probe`.
pub fn footprint(
    net: &Network,
    set: &InputSet,
    domain: DomainKind,
    probe: Probe,
) -> Result<Footprint, BoundsError> {
    let mut unstable = unstable_counts(net, set, probe)?.into_iter();
    let input = ActShape::Image(net.architecture().input);
    let classes = net.architecture().classes as u64;
    let mut symbols = input.features() as u64;
    let mut tally = Tally::default();
    let alpha_rows = alpha_neuron_rows(net, input)?;
    // every layer but the flatten (which moves nothing) holds its output
    visit_layers(&net.layers, input, &mut |layer, _, output| {
        if let Layer::Relu(_) = layer {
            symbols += unstable.next().unwrap_or(0) as u64;
        }
        if !matches!(layer, Layer::Flatten(_)) {
            tally.add(symbols, classes, alpha_rows, output.features() as u64);
        }
    })
    .map_err(|message| BoundsError::Network {
        model: net.architecture().name.clone(),
        message,
    })?;
    let families = domain.families();
    let sum = |bytes: &dyn Fn(Family) -> u64| families.iter().map(|f| bytes(*f)).sum::<u64>() * 4;
    // alpha-CROWN keeps the margins' graph for the gradient of the slopes even when it only
    // verifies; its intermediate passes hold one layer at a time
    let eval = |f: Family| match f {
        Family::Alpha => tally.crown.1 * kept(f) + tally.alpha.0 * LIVE_PER_LAYER,
        _ => tally.of(f).0 * LIVE_PER_LAYER,
    };
    let train = |f: Family| match f {
        Family::Alpha => (tally.crown.1 + tally.alpha.1) * kept(f),
        _ => tally.of(f).1 * kept(f),
    };
    Ok(Footprint {
        eval_bytes: sum(&eval),
        train_bytes: sum(&train),
    })
}

/// The rows alpha-CROWN's intermediate bounds carry back with the default settings: two per
/// neuron of every ReLU layer but the first, an over-count (only the unstable neurons are
/// carried back; nested ReLUs included, every row counted through every layer).
fn alpha_neuron_rows(net: &Network, input: ActShape) -> Result<u64, BoundsError> {
    let mut rows = 0;
    let mut seen = 0;
    visit_layers(&net.layers, input, &mut |layer, _, output| {
        if let Layer::Relu(_) = layer {
            if seen > 0 {
                rows += 2 * output.features() as u64;
            }
            seen += 1;
        }
    })
    .map_err(|message| BoundsError::Network {
        model: net.architecture().name.clone(),
        message,
    })?;
    Ok(rows)
}
