//! The warm-up regularisers of Shi et al. 2021 ("Fast certified robust training with short
//! warmup"), on the interval bounds in front of every ReLU. Early in the eps ramp, IBP's bounds
//! tend to explode layer by layer and its ReLUs to die (an inactive neuron has the tightest
//! bound); these two terms push back, so that a short ramp trains as well as a long one:
//!
//! - *tightness*: per ReLU layer `relu(tol - r_0 / r_i) / tol`, with `r_i` the mean radius of
//!   the layer's pre-activation bounds and `r_0` the input's: zero while no layer's bounds grow
//!   beyond `r_0 / tol`;
//! - *ReLU balance*: per layer, over its stable neurons (lower bound `> 0`: active, upper `< 0`:
//!   inactive), the ratio of the active to the inactive side's mean centre and of their spread
//!   of centres, each folded into `[0, 1]` as `min / max`; `(relu(tol - mean ratio) + relu(tol -
//!   spread ratio)) / tol`: zero while neither side outweighs the other by more than `1 / tol`.
//!
//! Each is averaged over the ReLU layers. The trainer weighs their sum by `lambda (1 - eps_t /
//! eps)`, which vanishes as the ramp ends.

use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use mixtrain_bounds::{InputSet, PreRelu};

/// The two regularisers' values, each averaged over the ReLU layers (`[1]` tensors).
pub struct Warmup {
    /// The bound tightness term.
    pub tightness: Tensor<1>,
    /// The ReLU balance term.
    pub relu: Tensor<1>,
}

impl Warmup {
    /// Both terms for the bounds `pre_relu` that an interval pass met on `set`, with tolerance
    /// `tol` (Shi et al.'s default 0.5). `None` for a network without ReLUs.
    pub fn new(set: &InputSet, pre_relu: &PreRelu, tol: f64) -> Option<Self> {
        let layers = pre_relu.len();
        if layers == 0 {
            return None;
        }
        let r0 = (set.upper.clone() - set.lower.clone()).mean() * 0.5;
        let (mut tightness, mut balance) = (r0.zeros_like(), r0.zeros_like());
        for (lower, upper) in pre_relu {
            let radius = (upper.clone() - lower.clone()).mean() * 0.5;
            tightness = tightness + relu((r0.clone() / radius.clamp_min(1e-12)).neg() + tol);
            balance = balance + relu_balance(lower, upper, tol);
        }
        let scale = 1.0 / (tol * layers as f64);
        Some(Self {
            tightness: tightness * scale,
            relu: balance * scale,
        })
    }

    /// The sum of the two terms.
    pub fn total(self) -> Tensor<1> {
        self.tightness + self.relu
    }
}

/// One layer's `relu(tol - mean ratio) + relu(tol - spread ratio)` (before the division by
/// `tol`). A side without stable neurons makes its ratio 0 (the term at its most), never NaN.
fn relu_balance(lower: &Tensor<2>, upper: &Tensor<2>, tol: f64) -> Tensor<1> {
    let centre = (upper.clone() + lower.clone()) * 0.5;
    let active = lower.clone().greater_elem(0.0).float();
    let inactive = upper.clone().lower_elem(0.0).float();
    let mean_active = (centre.clone() * active.clone()).mean();
    let mean_inactive = (centre.clone() * inactive.clone()).mean().neg();
    let spread = (centre.clone() - centre.clone().mean().unsqueeze::<2>()).powi_scalar(2);
    let spread_active = (spread.clone() * active).sum();
    let spread_inactive = (spread * inactive).sum();
    relu(folded_ratio(mean_active, mean_inactive).neg() + tol)
        + relu(folded_ratio(spread_active, spread_inactive).neg() + tol)
}

/// `min(a, b) / max(a, b)` for `a, b >= 0`: `a / b` or its inverse, whichever is at most 1; 0
/// when both are 0.
fn folded_ratio(a: Tensor<1>, b: Tensor<1>) -> Tensor<1> {
    a.clone().min_pair(b.clone()) / a.max_pair(b).clamp_min(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_scalar::<f32>() as f64
    }

    #[test]
    fn regularisers_match_a_hand_computed_layer() {
        let device = Device::flex();
        // input radius 0.1 (one point, two pixels)
        let x = Tensor::<4>::from_floats([[[[0.5, 0.5]]]], &device);
        let set =
            mixtrain_bounds::InputSet::linf(x, 0.1, mixtrain_bounds::InputDomain::Unit).unwrap();
        // four neurons: active (centre 1, radius 0.5), active (centre 2, radius 1.5), inactive
        // (centre -1, radius 0.5), unstable (centre 0, radius 1)
        let lower = Tensor::<2>::from_floats([[0.5, 0.5, -1.5, -1.0]], &device);
        let upper = Tensor::<2>::from_floats([[1.5, 3.5, -0.5, 1.0]], &device);
        let warmup = Warmup::new(&set, &vec![(lower, upper)], 0.5).unwrap();
        // mean radius 0.875: relu(0.5 - 0.1 / 0.875) / 0.5
        let tightness = (0.5 - 0.1 / 0.875) / 0.5;
        assert!((scalar(warmup.tightness) - tightness).abs() < 1e-6);
        // means over the 4 neurons: active 3/4, inactive 1/4, ratio 1/3; centres' mean 0.5,
        // squared deviations 0.25, 2.25, 2.25, 0.25: active 2.5, inactive 2.25, ratio 0.9
        let relu_term = ((0.5 - 1.0 / 3.0) + 0.0) / 0.5;
        assert!((scalar(warmup.relu) - relu_term).abs() < 1e-6);
        // the tolerance turns both off when bounds are tight and balanced enough
        let lower = Tensor::<2>::from_floats([[0.5, -0.7]], &device);
        let upper = Tensor::<2>::from_floats([[0.7, -0.5]], &device);
        let warmup = Warmup::new(&set, &vec![(lower, upper)], 0.5).unwrap();
        assert_eq!(scalar(warmup.total()), 0.0);
    }

    #[test]
    fn a_layer_without_stable_neurons_gives_the_largest_term_not_nan() {
        let device = Device::flex();
        let x = Tensor::<4>::from_floats([[[[0.5]]]], &device);
        let set =
            mixtrain_bounds::InputSet::linf(x, 0.1, mixtrain_bounds::InputDomain::Unit).unwrap();
        let lower = Tensor::<2>::from_floats([[-1.0, -2.0]], &device);
        let upper = Tensor::<2>::from_floats([[1.0, 2.0]], &device);
        let warmup = Warmup::new(&set, &vec![(lower, upper)], 0.5).unwrap();
        assert_eq!(scalar(warmup.relu), 2.0);
    }
}
