//! Interval bound propagation (IBP) in centre/radius form.

use burn::tensor::module::conv2d;
use burn::tensor::{Device, Int, Tensor, activation::relu};
use mixtrain_nn::{Conv2d, Linear};

use crate::domain::{Domain, Layout, apply, flat_channels, fold_spec};
use crate::{BoundsError, InputSet};

/// Each neuron in `[c - r, c + r]`. Affine layers map the centre exactly and the radius by
/// `|W|`; ReLU clips the ends. Cost: one extra pass of each layer with `|W|`.
#[derive(Clone, Debug)]
pub struct Interval {
    /// `[n, features]` centres, flat in the current [`Layout`]'s channel-major order.
    pub(crate) centre: Tensor<2>,
    /// `[n, features]` radii (`>= 0`), same order as `centre`.
    pub(crate) radius: Tensor<2>,
    layout: Layout,
}

impl Domain for Interval {
    const NAME: &'static str = "interval";

    fn input(set: &InputSet) -> Self {
        let [_, c, h, w] = set.lower.dims();
        let (centre, radius) = set.centre_radius();
        Self {
            centre,
            radius,
            layout: Layout::Image([c, h, w]),
        }
    }

    fn channel_affine(self, scale: Tensor<1>, shift: Tensor<1>) -> Result<Self, BoundsError> {
        let (scale, shift) = (
            flat_channels(scale, self.layout),
            flat_channels(shift, self.layout),
        );
        Ok(Self {
            centre: self.centre * scale.clone() + shift,
            radius: self.radius * scale.abs(),
            layout: self.layout,
        })
    }

    fn conv2d(self, layer: &Conv2d) -> Result<Self, BoundsError> {
        let n = self.centre.dims()[0];
        let Layout::Image([c, h, w]) = self.layout else {
            unreachable!("conv acts on images")
        };
        let out = self.layout.after_conv(layer);
        let weight = layer.weight.val();
        let centre = conv2d(
            self.centre.reshape([n, c, h, w]),
            weight.clone(),
            Some(layer.bias.val()),
            layer.options(),
        );
        let radius = conv2d(
            self.radius.reshape([n, c, h, w]),
            weight.abs(),
            None,
            layer.options(),
        );
        Ok(Self {
            centre: centre.flatten(1, 3),
            radius: radius.flatten(1, 3),
            layout: Layout::Image(out),
        })
    }

    fn linear(self, layer: &Linear) -> Result<Self, BoundsError> {
        let weight = layer.weight.val();
        let out = weight.dims()[1];
        Ok(Self {
            centre: layer.forward(self.centre),
            radius: self.radius.matmul(weight.abs()),
            layout: Layout::Flat(out),
        })
    }

    fn relu(self, lower: Tensor<2>, upper: Tensor<2>) -> Result<Self, BoundsError> {
        let (lower, upper) = (relu(lower), relu(upper));
        Ok(Self {
            centre: (upper.clone() + lower.clone()) * 0.5,
            radius: (upper - lower) * 0.5,
            layout: self.layout,
        })
    }

    fn flatten(self) -> Result<Self, BoundsError> {
        Ok(Self {
            layout: Layout::Flat(self.layout.features()),
            ..self
        })
    }

    /// Each branch's box is the image of the block input's box; their sum holds the sum.
    fn residual_sum(self, skip: Self) -> Result<Self, BoundsError> {
        Ok(Self {
            centre: self.centre + skip.centre,
            radius: self.radius + skip.radius,
            layout: self.layout,
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

    fn layout(&self) -> Layout {
        self.layout
    }

    fn device(&self) -> Device {
        self.centre.device()
    }
}
