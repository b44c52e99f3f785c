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
use mixtrain_nn::{Layer, Network};

use crate::domain::{Layout, forward};
use crate::{BoundsError, DomainKind, InputSet, Interval, Symbolic};

/// Tensors of one layer's coefficients alive at once in a bounding pass (its input, its output
/// and an intermediate of the rule, e.g. the conv's reshaped input). Calibrated against measured
/// peaks (README, "Memory").
const LIVE_PER_LAYER: u64 = 3;

/// Tensors of one layer kept per family by a training step for the backward pass. Symbolic
/// coefficients are kept about once (a conv keeps its input, the ReLU relaxation's product its
/// operand; measured: 6.7 GiB on `cifar_resnet` against 11.7 estimated). CROWN's backward rows
/// are kept with their positive and negative parts and their products with the bounds (measured
/// below the estimate at 2). Interval vectors are small either way.
const KEPT_SYMBOLIC: u64 = 1;
const KEPT_CROWN: u64 = 4;
const KEPT_INTERVAL: u64 = 2;

/// Estimated bytes per bounded point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// A bounding pass without gradients (verification).
    pub eval_bytes: u64,
    /// A training step's forward pass with everything its backward pass keeps.
    pub train_bytes: u64,
}

/// Per-layer element counts of one point's tensors in `domain`, walked in forward order.
struct Walk<'a> {
    unstable: &'a [usize],
    relu: usize,
    classes: u64,
    /// Live symbolic symbols entering the current layer.
    symbols: u64,
    /// Largest single layer, and the sum over layers, per domain family: symbolic coefficients
    /// (`symbols x features`), CROWN's backward rows (`classes x features`), interval vectors.
    symbolic: (u64, u64),
    crown: (u64, u64),
    interval: (u64, u64),
}

impl Walk<'_> {
    fn layer(&mut self, features: u64) {
        for (family, size) in [
            (&mut self.symbolic, self.symbols * features),
            (&mut self.crown, self.classes * features),
            (&mut self.interval, 4 * features),
        ] {
            family.0 = family.0.max(size);
            family.1 += size;
        }
    }

    fn layers(&mut self, layers: &[Layer], mut layout: Layout) {
        for layer in layers {
            if let Layer::Residual(block) = layer {
                if let Some(conv) = &block.skip {
                    let out = Layout::Image(layout.after_conv(conv));
                    self.layer(out.features() as u64);
                }
                self.layers(&block.path, layout);
            }
            layout = layout.after(layer);
            if let Layer::Relu(_) = layer {
                self.symbols += self.unstable.get(self.relu).copied().unwrap_or(0) as u64;
                self.relu += 1;
            }
            if !matches!(layer, Layer::Flatten(_)) {
                self.layer(layout.features() as u64);
            }
        }
    }
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
    let mut unstable = Vec::new();
    let count = |l: &Tensor<2>, u: &Tensor<2>| -> usize {
        let count: Tensor<1, Int> = l
            .clone()
            .lower_elem(0.0)
            .bool_and(u.clone().greater_elem(0.0))
            .int()
            .sum_dim(1)
            .max_dim(0)
            .reshape([1]);
        count.into_scalar::<i64>() as usize
    };
    match probe {
        Probe::Interval => {
            forward::<Interval>(net, set, |l, u| unstable.push(count(l, u)))?;
        }
        Probe::Symbolic => {
            forward::<Symbolic>(net, set, |l, u| unstable.push(count(l, u)))?;
        }
    }
    Ok(unstable)
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
    let unstable = unstable_counts(net, set, probe)?;
    let [_, c, h, w] = set.lower.dims();
    let input = Layout::Image([c, h, w]);
    let mut walk = Walk {
        unstable: &unstable,
        relu: 0,
        classes: net.architecture().classes as u64,
        symbols: input.features() as u64,
        symbolic: (0, 0),
        crown: (0, 0),
        interval: (0, 0),
    };
    walk.layers(&net.layers, input);
    let (symbolic, crown, interval) = (
        (walk.symbolic, KEPT_SYMBOLIC),
        (walk.crown, KEPT_CROWN),
        (walk.interval, KEPT_INTERVAL),
    );
    let families = match domain {
        DomainKind::Interval => vec![interval],
        DomainKind::Symbolic => vec![symbolic],
        DomainKind::Crown => vec![interval, crown],
        DomainKind::CrownSymbolic => vec![symbolic, crown],
        DomainKind::Best => vec![interval, symbolic, crown, crown, crown],
    };
    let sum = |bytes: fn(&((u64, u64), u64)) -> u64| families.iter().map(bytes).sum::<u64>() * 4;
    Ok(Footprint {
        eval_bytes: sum(|((largest, _), _)| largest * LIVE_PER_LAYER),
        train_bytes: sum(|((_, all), kept)| all * kept),
    })
}
