//! CROWN: backward linear relaxation of the margin specification.
//!
//! Starting from the specification folded into the last layer (`Lambda = W_y - W_j`), the
//! linear function is carried backwards layer by layer: affine layers compose exactly (a
//! convolution's adjoint is the transposed convolution), and each ReLU is replaced by a linear
//! bound chosen by the sign of its coefficient: the chord `u / (u - l) (z - l)` where the
//! coefficient is negative, and `alpha z` where it is positive, with `alpha = 1` if `u >= -l`
//! else `0` (CROWN's adaptive lower bound). The pre-activation bounds `l, u` come from a forward
//! domain (`Interval` gives CROWN-IBP). At the input the function is minimised over the box in
//! closed form. Cost scales with the number of margins (classes), not with the input size.

use burn::tensor::{Int, Tensor, activation::relu};
use mixtrain_nn::{Layer, Linear, Network};

use mixtrain_nn::Conv2d;

use crate::domain::{
    Domain, Layout, ReluRelaxation, apply, channel_affine, conv_adjoint, dot, flat_channels,
    fold_spec, forward,
};
use crate::{BoundsError, InputSet, Interval, Margins, Symbolic};

/// Margin lower bounds by CROWN with intermediate bounds from domain `D`.
pub fn margins<D: Domain>(
    net: &Network,
    set: &InputSet,
    labels: Tensor<1, Int>,
) -> Result<Margins, BoundsError> {
    let mut pre_relu: Vec<(Tensor<2>, Tensor<2>)> = Vec::new();
    let (_, last) = forward::<D>(net, set, |l, u| pre_relu.push((l.clone(), u.clone())))?;
    let lower = backward(net, last, set, &labels, pre_relu);
    Ok(Margins { lower, labels })
}

/// IBP's margin bounds and CROWN-IBP's from one interval pass: CROWN-IBP training interpolates
/// between the two, and the interval forward pass is shared.
pub fn interval_and_crown(
    net: &Network,
    set: &InputSet,
    labels: Tensor<1, Int>,
) -> Result<(Margins, Margins), BoundsError> {
    let mut pre_relu: Vec<(Tensor<2>, Tensor<2>)> = Vec::new();
    let (interval, last) =
        forward::<Interval>(net, set, |l, u| pre_relu.push((l.clone(), u.clone())))?;
    let crown = backward(net, last, set, &labels, pre_relu);
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

/// The backward pass: margin lower bounds `[n, classes]` given the bounds in front of every
/// ReLU, in order.
pub(crate) fn backward(
    net: &Network,
    last: &Linear,
    set: &InputSet,
    labels: &Tensor<1, Int>,
    mut pre_relu: Vec<(Tensor<2>, Tensor<2>)>,
) -> Tensor<2> {
    let body = &net.layers[..net.layers.len() - 1];
    let [_, c, h, w] = set.lower.dims();
    let (lambda, bias) = fold_spec(last, labels); // [n, classes, d], [n, classes]
    let (lambda, bias) = back(
        body,
        Layout::Image([c, h, w]),
        Affine { lambda, bias },
        &mut pre_relu,
    );
    let (centre, radius) = set.centre_radius();
    bias + apply(lambda.clone(), centre) - apply(lambda.abs(), radius)
}

/// The linear function being carried backwards: `lambda . z + bias` over the current neurons
/// `z`, `[n, classes, d]` and `[n, classes]`.
struct Affine {
    lambda: Tensor<3>,
    bias: Tensor<2>,
}

/// Carries `f` back through `layers` (whose input has `layout`), consuming the bounds of their
/// ReLUs from the end of `pre_relu`; returns it over the layers' input.
fn back(
    layers: &[Layer],
    layout: Layout,
    f: Affine,
    pre_relu: &mut Vec<(Tensor<2>, Tensor<2>)>,
) -> (Tensor<3>, Tensor<2>) {
    let mut layouts = Vec::with_capacity(layers.len());
    let mut at = layout;
    for layer in layers {
        layouts.push(at);
        at = at.after(layer);
    }
    let Affine {
        mut lambda,
        mut bias,
    } = f;
    let [n, classes, _] = lambda.dims();
    for (layer, layout) in layers.iter().zip(layouts).rev() {
        (lambda, bias) = match layer {
            Layer::Linear(l) => {
                let weight = l.weight.val(); // [in, out]
                let [d_in, d_out] = weight.dims();
                let bias = bias + dot(lambda.clone(), l.bias.val().reshape([1, 1, d_out]));
                let lambda = lambda
                    .reshape([n * classes, d_out])
                    .matmul(weight.transpose())
                    .reshape([n, classes, d_in]);
                (lambda, bias)
            }
            Layer::Conv2d(conv) => conv_back(lambda, bias, conv, layout),
            Layer::AvgPool2d(pool) => {
                let conv = pool.as_conv(layout.channels(), &lambda.device());
                conv_back(lambda, bias, &conv, layout)
            }
            Layer::Relu(_) => {
                let (lower, upper) = pre_relu.pop().expect("one recorded bound per ReLU");
                let relax = ReluRelaxation::new(&lower, &upper);
                let intercept = relax.intercept(lower.clone());
                // CROWN's adaptive lower line: z where the upper end dominates, else 0
                let alpha = upper
                    .clone()
                    .greater_equal(lower.neg())
                    .float()
                    .mask_fill(relax.active, 1.0)
                    .mask_fill(upper.lower_equal_elem(0.0), 0.0);
                let slope = relax.slope;
                let positive = relu(lambda.clone());
                let negative = lambda - positive.clone();
                let bias = bias + apply(negative.clone(), intercept);
                let lambda = positive * alpha.unsqueeze_dim(1) + negative * slope.unsqueeze_dim(1);
                (lambda, bias)
            }
            Layer::Normalize(_) | Layer::BatchNorm2d(_) => {
                let (scale, shift) =
                    channel_affine(layer, &lambda.device()).expect("a per-channel affine layer");
                let bias = bias + apply(lambda.clone(), flat_channels(shift, layout));
                (lambda * flat_channels(scale, layout).unsqueeze_dim(0), bias)
            }
            Layer::Flatten(_) => (lambda, bias),
            // the path and the skip both read the block input: their functions add up
            Layer::Residual(block) => {
                let (path, bias) = back(
                    &block.path,
                    layout,
                    Affine {
                        lambda: lambda.clone(),
                        bias,
                    },
                    pre_relu,
                );
                let (skip, bias) = match &block.skip {
                    Some(conv) => conv_back(lambda, bias, conv, layout),
                    None => (lambda, bias),
                };
                (path + skip, bias)
            }
        };
    }
    (lambda, bias)
}

/// A convolution's step of the backward pass: its bias into the constant, its adjoint on the
/// coefficients.
fn conv_back(
    lambda: Tensor<3>,
    bias: Tensor<2>,
    conv: &Conv2d,
    layout: Layout,
) -> (Tensor<3>, Tensor<2>) {
    let Layout::Image(input) = layout else {
        unreachable!("conv acts on images")
    };
    let [n, classes, _] = lambda.dims();
    let [co, ho, wo] = layout.after_conv(conv);
    let per_channel = lambda
        .clone()
        .reshape([n, classes, co, ho * wo])
        .sum_dim(3)
        .squeeze_dim::<3>(3);
    let bias = bias + dot(per_channel, conv.bias.val().reshape([1, 1, co]));
    (conv_adjoint(lambda, conv, input), bias)
}

/// The intersection of the domains: interval and symbolic run forwards, and their bounds in
/// front of every ReLU drive three CROWN backward passes (interval's, symbolic's, and their
/// intersection neuron by neuron); the margin bounds of all five are intersected. Sound because
/// each is, and never looser than any single domain. All three backward passes are needed:
/// CROWN's adaptive lower line (`alpha = [u >= -l]`) makes it non-monotone in the intermediate
/// bounds, so tighter intermediates can give a looser margin. The forward domains do not yet
/// tighten each other inside the pass (symbolic does not use interval's bounds at its ReLUs).
pub fn best_margins(
    net: &Network,
    set: &InputSet,
    labels: Tensor<1, Int>,
) -> Result<Margins, BoundsError> {
    let mut from_interval = Vec::new();
    let (interval, last) =
        forward::<Interval>(net, set, |l, u| from_interval.push((l.clone(), u.clone())))?;
    let mut from_symbolic = Vec::new();
    let (symbolic, _) =
        forward::<Symbolic>(net, set, |l, u| from_symbolic.push((l.clone(), u.clone())))?;
    let intersected = from_interval
        .iter()
        .zip(&from_symbolic)
        .map(|((li, ui), (ls, us))| {
            (
                li.clone().max_pair(ls.clone()),
                ui.clone().min_pair(us.clone()),
            )
        })
        .collect();
    let lower = interval
        .margins(last, &labels)?
        .max_pair(symbolic.margins(last, &labels)?)
        .max_pair(backward(net, last, set, &labels, from_interval))
        .max_pair(backward(net, last, set, &labels, from_symbolic))
        .max_pair(backward(net, last, set, &labels, intersected));
    Ok(Margins { lower, labels })
}
