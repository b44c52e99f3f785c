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
    bound_with(net, set, labels, adaptive(pre_relu))
}

/// A ReLU's pre-activation bounds `[n, d]` and the slopes `alpha` of the lower lines of its
/// unstable neurons, `[n, specs, d]` (one per row of the function carried back, alpha-CROWN)
/// or `[n, 1, d]` (shared, CROWN). Any `alpha` in `[0, 1]` gives a sound bound; the
/// stable neurons' lines are exact whatever `alpha` holds there.
pub(crate) struct ReluLines {
    pub lower: Tensor<2>,
    pub upper: Tensor<2>,
    pub alpha: Tensor<3>,
}

/// CROWN's adaptive lower slopes, `alpha = [u >= -l]`, which minimise the area of the relaxation.
pub(crate) fn adaptive(pre_relu: PreRelu) -> Vec<ReluLines> {
    pre_relu
        .into_iter()
        .map(|(lower, upper)| {
            let alpha = upper
                .clone()
                .greater_equal(lower.clone().neg())
                .float()
                .unsqueeze_dim(1);
            ReluLines {
                lower,
                upper,
                alpha,
            }
        })
        .collect()
}

/// The margin lower bounds `[n, classes]` with the given lines at every ReLU.
pub(crate) fn bound_with(
    net: &Network,
    set: &InputSet,
    labels: &Tensor<1, Int>,
    mut relus: Vec<ReluLines>,
) -> Result<Tensor<2>, BoundsError> {
    let (body, last) = body_and_last(net, set, labels)?;
    let (lambda, bias) = fold_spec(last, labels); // [n, classes, d], [n, classes]
    let input = ActShape::Image(net.architecture().input);
    let f = Backward { lambda, bias }.layers(body, input, &mut relus)?;
    Ok(f.minimum(set))
}

/// Lower and upper bounds `[n, m]` of the neurons `rows` `[n, m, d]` picks out of the output
/// of `layers` (the first layers of a network whose input has shape `input`): each row is a
/// one-hot vector over the `d` neurons (or zero, which bounds nothing: both bounds 0), and is
/// carried back twice, once for the lower bound and once, negated, for the upper. `relus` are
/// the lines of the ReLUs among `layers`, their `alpha` `[n, 2 m, ..]` or `[n, 1, ..]`.
pub(crate) fn bound_neurons(
    layers: &[Layer],
    input: ActShape,
    set: &InputSet,
    mut relus: Vec<ReluLines>,
    rows: Tensor<3>,
) -> Result<(Tensor<2>, Tensor<2>), BoundsError> {
    let [n, m, _] = rows.dims();
    let lambda = Tensor::cat(vec![rows.clone(), rows.neg()], 1);
    let bias = Tensor::zeros([n, 2 * m], &set.lower.device());
    let f = Backward { lambda, bias }.layers(layers, input, &mut relus)?;
    let both = f.minimum(set);
    let lower = both.clone().slice([0..n, 0..m]);
    let upper = both.slice([0..n, m..2 * m]).neg();
    Ok((lower, upper))
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
    /// the bounds of their ReLUs from the end of `relus`: the one place a layer is matched to
    /// its backward rule.
    fn layers(
        self,
        layers: &[Layer],
        input: ActShape,
        relus: &mut Vec<ReluLines>,
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
                    let lines = relus.pop().ok_or_else(|| BoundsError::Network {
                        model: String::new(),
                        message: "fewer ReLU bounds recorded than ReLUs".into(),
                    })?;
                    f.relu(lines)
                }
                (Layer::Flatten(_), _) => f,
                (Layer::Residual(block), _) => f.residual(block, input, relus)?,
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

    /// The function minimised over the input box in closed form: `[n, specs]`.
    fn minimum(self, set: &InputSet) -> Tensor<2> {
        let (centre, radius) = set.centre_radius();
        self.bias + apply(self.lambda.clone(), centre) - apply(self.lambda.abs(), radius)
    }

    /// The chord where the coefficient is negative, the lower line `alpha z` where positive;
    /// stable neurons pass through (active) or vanish (inactive).
    fn relu(self, lines: ReluLines) -> Self {
        let ReluLines {
            lower,
            upper,
            alpha,
        } = lines;
        let relax = ReluRelaxation::new(&lower, &upper);
        let intercept = relax.intercept(lower);
        let slope =
            alpha * relax.unstable.float().unsqueeze_dim(1) + relax.active.float().unsqueeze_dim(1);
        let positive = relu(self.lambda.clone());
        let negative = self.lambda - positive.clone();
        let bias = self.bias + apply(negative.clone(), intercept);
        let lambda = positive * slope + negative * relax.slope.unsqueeze_dim(1);
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
        relus: &mut Vec<ReluLines>,
    ) -> Result<Self, BoundsError> {
        let lambda = self.lambda.clone();
        let path = self.layers(&block.path, input, relus)?;
        let skip = Self {
            lambda,
            bias: path.bias,
        };
        let skip = match &block.skip {
            Some(conv) => skip.layers(&[Layer::Conv2d(conv.clone())], input, relus)?,
            None => skip,
        };
        Ok(Self {
            lambda: path.lambda + skip.lambda,
            bias: skip.bias,
        })
    }
}
