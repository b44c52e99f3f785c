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

use crate::domain::{
    Domain, Layout, ReluRelaxation, apply, conv_adjoint, dot, flat_normalization, fold_spec,
    forward,
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

    // the layout in front of each layer
    let [_, c, h, w] = set.lower.dims();
    let mut layouts = Vec::with_capacity(body.len());
    let mut layout = Layout::Image([c, h, w]);
    for layer in body {
        layouts.push(layout);
        layout = match layer {
            Layer::Conv2d(conv) => Layout::Image(layout.after_conv(conv)),
            Layer::Linear(l) => Layout::Flat(l.weight.val().dims()[1]),
            Layer::Flatten(_) => Layout::Flat(layout.features()),
            Layer::Normalize(_) | Layer::Relu(_) => layout,
        };
    }

    let (mut lambda, mut bias) = fold_spec(last, labels); // [n, classes, d], [n, classes]
    let [n, classes, _] = lambda.dims();
    for (layer, layout) in body.iter().zip(layouts).rev() {
        match layer {
            Layer::Linear(l) => {
                let weight = l.weight.val(); // [in, out]
                let [d_in, d_out] = weight.dims();
                bias = bias + dot(lambda.clone(), l.bias.val().reshape([1, 1, d_out]));
                lambda = lambda
                    .reshape([n * classes, d_out])
                    .matmul(weight.transpose())
                    .reshape([n, classes, d_in]);
            }
            Layer::Conv2d(conv) => {
                let Layout::Image(input) = layout else {
                    unreachable!("conv acts on images")
                };
                let [co, ho, wo] = layout.after_conv(conv);
                let per_channel = lambda
                    .clone()
                    .reshape([n, classes, co, ho * wo])
                    .sum_dim(3)
                    .squeeze_dim::<3>(3);
                bias = bias + dot(per_channel, conv.bias.val().reshape([1, 1, co]));
                lambda = conv_adjoint(lambda, conv, input);
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
                bias = bias + apply(negative.clone(), intercept);
                lambda = positive * alpha.unsqueeze_dim(1) + negative * slope.unsqueeze_dim(1);
            }
            Layer::Normalize(norm) => {
                let (mean, inv) = flat_normalization(norm, layout, &lambda.device());
                let shift = (mean * inv.clone()).neg();
                bias = bias + apply(lambda.clone(), shift);
                lambda = lambda * inv.unsqueeze_dim(0);
            }
            Layer::Flatten(_) => {}
        }
    }
    let (centre, radius) = set.centre_radius();
    bias + apply(lambda.clone(), centre) - apply(lambda.abs(), radius)
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
