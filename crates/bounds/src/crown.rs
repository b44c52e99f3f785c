//! CROWN: backward linear relaxation of the margin specification.
//!
//! Starting from the specification folded into the last layer (`Lambda = W_y - W_j`), the
//! linear function is carried backwards layer by layer, one rule per layer kind ([`Backward`]):
//! affine layers compose exactly (a convolution's adjoint is the transposed convolution), and
//! each ReLU is replaced by a linear bound chosen by the sign of its coefficient: the chord
//! `u / (u - l) (z - l)` where the coefficient is negative, and `alpha z` where it is positive,
//! with `alpha = 1` if `u >= -l` else `0` (CROWN's adaptive lower bound). The pre-activation
//! bounds `l, u` come from a forward domain (`Interval` gives CROWN-IBP). At the input the
//! function is minimised over the box in closed form. Cost scales with the number of margins
//! (classes), not with the input size.

use burn::tensor::{Int, Tensor, activation::relu};
use mixtrain_nn::{ActShape, Conv2d, Layer, Linear, Network, Residual};

use crate::domain::{PreRelu, body_and_last, channel_affine, forward_recording, shape_error};
use crate::numeric::{ReluRelaxation, apply, conv_adjoint, dot, fold_spec};
use crate::{BoundsError, Domain, InputSet, Interval, Margins};

/// Margin lower bounds by CROWN with intermediate bounds from domain `D`.
pub fn margins<D: Domain>(
    net: &Network,
    set: &InputSet,
    labels: Tensor<1, Int>,
) -> Result<Margins, BoundsError> {
    let (_, pre_relu) = forward_recording::<D>(net, set, &labels)?;
    let lower = bound(net, set, &labels, pre_relu)?;
    Ok(Margins { lower, labels })
}

/// IBP's margin bounds and CROWN-IBP's from one interval pass: CROWN-IBP training interpolates
/// between the two, and the interval forward pass is shared.
pub fn interval_and_crown(
    net: &Network,
    set: &InputSet,
    labels: Tensor<1, Int>,
) -> Result<(Margins, Margins), BoundsError> {
    let (interval, pre_relu) = forward_recording::<Interval>(net, set, &labels)?;
    let (_, last) = body_and_last(net, set, &labels)?;
    let crown = bound(net, set, &labels, pre_relu)?;
    let ibp = interval.margins(last, &labels)?;
    Ok((
        Margins {
            lower: ibp,
            labels: labels.clone(),
        },
        Margins {
            lower: crown,
            labels,
        },
    ))
}

/// CROWN's margin lower bounds `[n, classes]` given the bounds in front of every ReLU.
pub(crate) fn bound(
    net: &Network,
    set: &InputSet,
    labels: &Tensor<1, Int>,
    pre_relu: PreRelu,
) -> Result<Tensor<2>, BoundsError> {
    let (body, last) = body_and_last(net, set, labels)?;
    let (lambda, bias) = fold_spec(last, labels); // [n, classes, d], [n, classes]
    let mut pre_relu = pre_relu;
    let input = ActShape::Image(net.architecture().input);
    let f = Backward { lambda, bias }.layers(body, input, &mut pre_relu)?;
    let (centre, radius) = set.centre_radius();
    Ok(f.bias + apply(f.lambda.clone(), centre) - apply(f.lambda.abs(), radius))
}

/// The linear function being carried backwards: `lambda . z + bias` over the current neurons
/// `z`, `[n, classes, d]` and `[n, classes]`. One method per layer kind turns it into the
/// function over that layer's input.
struct Backward {
    lambda: Tensor<3>,
    bias: Tensor<2>,
}

impl Backward {
    /// Carries the function back through `layers` (whose input has shape `input`), consuming
    /// the bounds of their ReLUs from the end of `pre_relu`: the one place a layer is matched to
    /// its backward rule.
    fn layers(
        self,
        layers: &[Layer],
        input: ActShape,
        pre_relu: &mut PreRelu,
    ) -> Result<Self, BoundsError> {
        let mut shapes = Vec::with_capacity(layers.len());
        let mut shape = input;
        for layer in layers {
            let output = layer
                .output_shape(shape)
                .ok_or_else(|| shape_error(layer, shape))?;
            shapes.push((shape, output));
            shape = output;
        }
        let mut f = self;
        for (layer, (input, output)) in layers.iter().zip(shapes).rev() {
            if let Some((scale, shift)) = channel_affine(layer, input, &f.lambda.device()) {
                f = f.channel_affine(scale, shift);
                continue;
            }
            let images = input.image().zip(output.image());
            f = match (layer, images) {
                (Layer::Linear(l), _) => f.linear(l),
                (Layer::Conv2d(conv), Some((input, output))) => f.conv2d(conv, input, output),
                (Layer::AvgPool2d(pool), Some((input, output))) => {
                    let conv = pool.as_conv(input[0], &f.lambda.device());
                    f.conv2d(&conv, input, output)
                }
                (Layer::Relu(_), _) => {
                    let (lower, upper) = pre_relu.pop().ok_or_else(|| BoundsError::Network {
                        model: String::new(),
                        message: "fewer ReLU bounds recorded than ReLUs".into(),
                    })?;
                    f.relu(lower, upper)
                }
                (Layer::Flatten(_), _) => f,
                (Layer::Residual(block), _) => f.residual(block, input, pre_relu)?,
                _ => return Err(shape_error(layer, input)),
            };
        }
        Ok(f)
    }

    fn linear(self, layer: &Linear) -> Self {
        let weight = layer.weight.val(); // [in, out]
        let [d_in, d_out] = weight.dims();
        let [n, classes, _] = self.lambda.dims();
        let bias = self.bias + dot(self.lambda.clone(), layer.bias.val().reshape([1, 1, d_out]));
        let lambda = self
            .lambda
            .reshape([n * classes, d_out])
            .matmul(weight.transpose())
            .reshape([n, classes, d_in]);
        Self { lambda, bias }
    }

    /// The bias into the constant (summed over each channel's positions), the adjoint on the
    /// coefficients.
    fn conv2d(self, conv: &Conv2d, input: [usize; 3], output: [usize; 3]) -> Self {
        let [n, classes, _] = self.lambda.dims();
        let [co, ho, wo] = output;
        let per_channel = self
            .lambda
            .clone()
            .reshape([n, classes, co, ho * wo])
            .sum_dim(3)
            .squeeze_dim::<3>(3);
        let bias = self.bias + dot(per_channel, conv.bias.val().reshape([1, 1, co]));
        Self {
            lambda: conv_adjoint(self.lambda, conv, input, output),
            bias,
        }
    }

    /// The chord where the coefficient is negative, CROWN's adaptive lower line where positive.
    fn relu(self, lower: Tensor<2>, upper: Tensor<2>) -> Self {
        let relax = ReluRelaxation::new(&lower, &upper);
        let intercept = relax.intercept(lower.clone());
        let alpha = upper
            .clone()
            .greater_equal(lower.neg())
            .float()
            .mask_fill(relax.active, 1.0)
            .mask_fill(upper.lower_equal_elem(0.0), 0.0);
        let positive = relu(self.lambda.clone());
        let negative = self.lambda - positive.clone();
        let bias = self.bias + apply(negative.clone(), intercept);
        let lambda = positive * alpha.unsqueeze_dim(1) + negative * relax.slope.unsqueeze_dim(1);
        Self { lambda, bias }
    }

    fn channel_affine(self, scale: Tensor<2>, shift: Tensor<2>) -> Self {
        let bias = self.bias + apply(self.lambda.clone(), shift);
        Self {
            lambda: self.lambda * scale.unsqueeze_dim(0),
            bias,
        }
    }

    /// The path and the skip both read the block input: their functions add up (the constant
    /// is carried through the path, then the skip adds its own).
    fn residual(
        self,
        block: &Residual,
        input: ActShape,
        pre_relu: &mut PreRelu,
    ) -> Result<Self, BoundsError> {
        let lambda = self.lambda.clone();
        let path = self.layers(&block.path, input, pre_relu)?;
        let skip = Self {
            lambda,
            bias: path.bias,
        };
        let skip = match &block.skip {
            Some(conv) => skip.layers(&[Layer::Conv2d(conv.clone())], input, pre_relu)?,
            None => skip,
        };
        Ok(Self {
            lambda: path.lambda + skip.lambda,
            bias: skip.bias,
        })
    }
}
