//! Interval bound propagation (IBP) in centre/radius form.
//!
//! On a float-sound input set ([`InputSet::float_sound`]) every rule widens the radius by a
//! bound of its rounding (`crate::rounding`): an affine map's centre and radius are sums of
//! `n` products, each off by at most `gamma_n` times the same sum of magnitudes, so the radius
//! grows by `slack(n) (|W| (|c| + r) + |b|)`; the bounds read off the state widen by
//! `slack(1) (|c| + r)`.

use burn::tensor::{Device, Int, Tensor, activation::relu};
use mixtrain_kernels::conv2d;
use mixtrain_nn::{Conv2d, Linear};

use crate::numeric::{apply, conv_abs, flat_channels, fold_spec, image};
use crate::rounding::{UNDERFLOW, nonzero, slack, slack_of};
use crate::{BoundsError, Domain, InputSet};

/// Each neuron in `[c - r, c + r]`. Affine layers map the centre exactly and the radius by
/// `|W|`; ReLU clips the ends. Cost: one extra pass of each layer with `|W|` (two when float
/// sound).
#[derive(Clone, Debug)]
pub struct Interval {
    /// `[n, features]` centres, flat, channel-major.
    pub(crate) centre: Tensor<2>,
    /// `[n, features]` radii (`>= 0`), same order as `centre`.
    pub(crate) radius: Tensor<2>,
    /// Whether the radius covers the rounding of the computation too.
    float_sound: bool,
}

impl Interval {
    /// The state `[centre +- radius]`, its radius widened by `widening` when float sound (it
    /// is computed only then).
    fn widened(
        &self,
        centre: Tensor<2>,
        radius: Tensor<2>,
        widening: impl FnOnce() -> Tensor<2>,
    ) -> Self {
        let radius = if self.float_sound {
            radius + widening()
        } else {
            radius
        };
        Self {
            centre,
            radius,
            float_sound: self.float_sound,
        }
    }

    /// The slack of a layer whose sums run over the features of `magnitude` (this state's) and
    /// a bias, `n` terms at most: a zero feature (an inactive ReLU's) adds no rounding, so only
    /// the nonzero count.
    fn dot_slack(magnitude: &Tensor<2>, n: usize) -> Tensor<2> {
        slack_of(nonzero(magnitude) + 1.0, n)
    }

    /// `|c| + r`, the magnitude of every point of the state.
    fn magnitude(&self) -> Tensor<2> {
        self.centre.clone().abs() + self.radius.clone()
    }

    /// A state whose centre and radius were computed from sound bounds `[lower, upper]`.
    fn from_bounds(lower: Tensor<2>, upper: Tensor<2>, float_sound: bool) -> Self {
        let plain = Self {
            centre: (upper.clone() + lower.clone()) * 0.5,
            radius: (upper - lower) * 0.5,
            float_sound,
        };
        plain.widened(plain.centre.clone(), plain.radius.clone(), || {
            plain.magnitude() * slack(1)
        })
    }
}

impl Domain for Interval {
    const NAME: &'static str = "interval";

    fn input(set: &InputSet) -> Self {
        let lower = set.lower.clone().flatten(1, 3);
        let upper = set.upper.clone().flatten(1, 3);
        Self::from_bounds(lower, upper, set.float_sound)
    }

    fn channel_affine(self, scale: Tensor<2>, shift: Tensor<2>) -> Result<Self, BoundsError> {
        let centre = self.centre.clone() * scale.clone() + shift.clone();
        let radius = self.radius.clone() * scale.clone().abs();
        Ok(self.widened(centre, radius, || {
            (self.magnitude() * scale.abs() + shift.abs()) * slack(2)
        }))
    }

    fn conv2d(
        self,
        layer: &Conv2d,
        input: [usize; 3],
        output: [usize; 3],
    ) -> Result<Self, BoundsError> {
        let weight = layer.weight.val();
        let centre = conv2d(
            image(self.centre.clone(), input),
            weight.clone(),
            Some(layer.bias.val()),
            layer.options(),
        )
        .flatten(1, 3);
        let radius = conv_abs(self.radius.clone(), layer, input);
        let [_, ci, k, _] = weight.dims();
        Ok(self.widened(centre, radius, || {
            let bias = flat_channels(layer.bias.val().abs(), output);
            let magnitude = self.magnitude();
            let slack = Self::dot_slack(&magnitude, ci * k * k + 1);
            (conv_abs(magnitude, layer, input) + bias) * slack
        }))
    }

    fn linear(self, layer: &Linear) -> Result<Self, BoundsError> {
        let weight = layer.weight.val().abs();
        let centre = layer.forward(self.centre.clone());
        let radius = self.radius.clone().matmul(weight.clone());
        let n = weight.dims()[0] + 1;
        Ok(self.widened(centre, radius, || {
            let bias = layer.bias.val().abs().unsqueeze_dim(0);
            let magnitude = self.magnitude();
            let slack = Self::dot_slack(&magnitude, n);
            (magnitude.matmul(weight) + bias) * slack
        }))
    }

    fn relu(self, lower: Tensor<2>, upper: Tensor<2>) -> Result<Self, BoundsError> {
        Ok(Self::from_bounds(
            relu(lower),
            relu(upper),
            self.float_sound,
        ))
    }

    /// Each branch's box is the image of the block input's box; their sum holds the sum.
    fn residual_sum(self, skip: Self) -> Result<Self, BoundsError> {
        let centre = self.centre.clone() + skip.centre.clone();
        let radius = self.radius.clone() + skip.radius.clone();
        Ok(self.widened(centre, radius, || {
            (self.magnitude() + skip.magnitude()) * slack(2)
        }))
    }

    /// Float sound, the rows `W_y - W_j` (one rounding each), the dot products (`in + 1` terms)
    /// and the subtraction widen the bound by `slack(in + 2) (|w| (|c| + r) + |b|)`.
    fn margins(self, last: &Linear, labels: &Tensor<1, Int>) -> Result<Tensor<2>, BoundsError> {
        let (w, b) = fold_spec(last, labels); // [n, classes, in], [n, classes]
        let centre = apply(w.clone(), self.centre.clone()) + b.clone();
        let radius = apply(w.clone().abs(), self.radius.clone());
        let lower = centre - radius;
        if !self.float_sound {
            return Ok(lower);
        }
        let n = w.dims()[2] + 2;
        let magnitude = apply(w.abs(), self.magnitude()) * slack(n) + b.abs() * slack(2);
        Ok(lower - magnitude - UNDERFLOW)
    }

    fn concretize(&self) -> (Tensor<2>, Tensor<2>) {
        let (lower, upper) = (
            self.centre.clone() - self.radius.clone(),
            self.centre.clone() + self.radius.clone(),
        );
        if !self.float_sound {
            return (lower, upper);
        }
        let rounding = self.magnitude() * slack(1) + UNDERFLOW;
        (lower - rounding.clone(), upper + rounding)
    }

    fn device(&self) -> Device {
        self.centre.device()
    }
}
