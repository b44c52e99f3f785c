//! Interval bound propagation (IBP) in centre/radius form.

use burn::tensor::module::conv2d;
use burn::tensor::{Device, Int, Tensor, activation::relu};
use mixtrain_nn::{Conv2d, Linear};

use crate::numeric::{apply, fold_spec, image};
use crate::{BoundsError, Domain, InputSet};

/// Each neuron in `[c - r, c + r]`. Affine layers map the centre exactly and the radius by
/// `|W|`; ReLU clips the ends. Cost: one extra pass of each layer with `|W|`.
#[derive(Clone, Debug)]
pub struct Interval {
    /// `[n, features]` centres, flat, channel-major.
    pub(crate) centre: Tensor<2>,
    /// `[n, features]` radii (`>= 0`), same order as `centre`.
    pub(crate) radius: Tensor<2>,
}

impl Domain for Interval {
    const NAME: &'static str = "interval";

    fn input(set: &InputSet) -> Self {
        let (centre, radius) = set.centre_radius();
        Self { centre, radius }
    }

    fn channel_affine(self, scale: Tensor<2>, shift: Tensor<2>) -> Result<Self, BoundsError> {
        Ok(Self {
            centre: self.centre * scale.clone() + shift,
            radius: self.radius * scale.abs(),
        })
    }

    fn conv2d(
        self,
        layer: &Conv2d,
        input: [usize; 3],
        _output: [usize; 3],
    ) -> Result<Self, BoundsError> {
        let weight = layer.weight.val();
        let centre = conv2d(
            image(self.centre, input),
            weight.clone(),
            Some(layer.bias.val()),
            layer.options(),
        );
        let radius = conv2d(
            image(self.radius, input),
            weight.abs(),
            None,
            layer.options(),
        );
        Ok(Self {
            centre: centre.flatten(1, 3),
            radius: radius.flatten(1, 3),
        })
    }

    fn linear(self, layer: &Linear) -> Result<Self, BoundsError> {
        Ok(Self {
            centre: layer.forward(self.centre),
            radius: self.radius.matmul(layer.weight.val().abs()),
        })
    }

    fn relu(self, lower: Tensor<2>, upper: Tensor<2>) -> Result<Self, BoundsError> {
        let (lower, upper) = (relu(lower), relu(upper));
        Ok(Self {
            centre: (upper.clone() + lower.clone()) * 0.5,
            radius: (upper - lower) * 0.5,
        })
    }

    /// Each branch's box is the image of the block input's box; their sum holds the sum.
    fn residual_sum(self, skip: Self) -> Result<Self, BoundsError> {
        Ok(Self {
            centre: self.centre + skip.centre,
            radius: self.radius + skip.radius,
        })
    }

    fn margins(self, last: &Linear, labels: &Tensor<1, Int>) -> Result<Tensor<2>, BoundsError> {
        let (w, b) = fold_spec(last, labels); // [n, classes, in], [n, classes]
        let centre = apply(w.clone(), self.centre) + b;
        let radius = apply(w.abs(), self.radius);
        Ok(centre - radius)
    }

    fn concretize(&self) -> (Tensor<2>, Tensor<2>) {
        (
            self.centre.clone() - self.radius.clone(),
            self.centre.clone() + self.radius.clone(),
        )
    }

    fn device(&self) -> Device {
        self.centre.device()
    }
}
