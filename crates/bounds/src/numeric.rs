//! The numeric pieces the domains share: the ReLU relaxation, the adjoint of a convolution, the
//! specification folded into the last layer, and the small contractions between them. They know
//! nothing of domains; every domain builds on them.

use burn::tensor::ops::ConvTransposeOptions;
use burn::tensor::{Bool, Int, Tensor};
use mixtrain_kernels::{conv_transpose2d, conv2d};

use crate::BoundsError;
use mixtrain_nn::{Conv2d, Linear};

/// The linear relaxation of ReLU on pre-activation bounds `[l, u]`, shared by the domains that
/// relax (symbolic forwards, CROWN backwards): on an unstable neuron (`l < 0 < u`)
/// `slope z <= relu(z) <= slope (z - l)` with `slope = u / (u - l)`; the slope is 1 on an active
/// neuron and 0 on an inactive one, where ReLU is linear. Gradients flow through the slope.
pub(crate) struct ReluRelaxation {
    /// `[n, d]`.
    pub slope: Tensor<2>,
    /// `l < 0 < u`.
    pub unstable: Tensor<2, Bool>,
    /// `l >= 0`.
    pub active: Tensor<2, Bool>,
}

impl ReluRelaxation {
    pub(crate) fn new(lower: &Tensor<2>, upper: &Tensor<2>) -> Self {
        let active = lower.clone().greater_equal_elem(0.0);
        let unstable = lower
            .clone()
            .lower_elem(0.0)
            .bool_and(upper.clone().greater_elem(0.0));
        let width = (upper.clone() - lower.clone()).mask_fill(unstable.clone().bool_not(), 1.0);
        let slope = lower
            .zeros_like()
            .mask_where(unstable.clone(), upper.clone() / width)
            .mask_fill(active.clone(), 1.0);
        Self {
            slope,
            unstable,
            active,
        }
    }

    /// `-slope * l` on unstable neurons, 0 elsewhere: the intercept of the upper line.
    pub(crate) fn intercept(&self, lower: Tensor<2>) -> Tensor<2> {
        (self.slope.clone() * lower)
            .neg()
            .mask_fill(self.unstable.clone().bool_not(), 0.0)
    }
}

/// The last layer with the specification folded in: for each point, rows `W_y - W_j`
/// (`[n, classes, in]`) and biases `b_y - b_j` (`[n, classes]`). Bounding these rows directly is
/// tighter than bounding the logits and subtracting.
pub(crate) fn fold_spec(last: &Linear, labels: &Tensor<1, Int>) -> (Tensor<3>, Tensor<2>) {
    let wt = last.weight.val().transpose(); // [classes, in]
    let b = last.bias.val(); // [classes]
    let wy = wt.clone().select(0, labels.clone()); // [n, in]
    let by = b.clone().select(0, labels.clone()); // [n]
    let w = wy.unsqueeze_dim::<3>(1) - wt.unsqueeze_dim::<3>(0);
    let bias = by.unsqueeze_dim::<2>(1) - b.unsqueeze_dim::<2>(0);
    (w, bias)
}

/// `sum_d a[n, c, d] * b[.., .., d]` with `b` broadcast over the leading dimensions: `[n, c]`.
pub(crate) fn dot(a: Tensor<3>, b: Tensor<3>) -> Tensor<2> {
    (a * b).sum_dim(2).squeeze_dim::<2>(2)
}

/// Each point's rows `w` `[n, rows, d]` applied to its vector `v` `[n, d]`: `[n, rows]`.
pub(crate) fn apply(w: Tensor<3>, v: Tensor<2>) -> Tensor<2> {
    dot(w, v.unsqueeze_dim(1))
}

/// A per-channel vector `[c]` repeated over every position of a `[c, h, w]` image, `[1, c*h*w]`.
pub(crate) fn flat_channels(values: Tensor<1>, [c, h, w]: [usize; 3]) -> Tensor<2> {
    values
        .reshape([1, c, 1, 1])
        .expand([1, c, h, w])
        .flatten(1, 3)
}

/// A flat `[n, c*h*w]` tensor as images `[n, c, h, w]`.
pub(crate) fn image(flat: Tensor<2>, [c, h, w]: [usize; 3]) -> Tensor<4> {
    let n = flat.dims()[0];
    flat.reshape([n, c, h, w])
}

/// Rows over a convolution's outputs `[b, m, co*ho*wo]` (`output` is `[co, ho, wo]`) carried to
/// its inputs `[b, m, ci*hi*wi]` (weights only): the adjoint of the convolution, a transposed
/// convolution.
pub(crate) fn conv_adjoint(
    rows: Tensor<3>,
    conv: &Conv2d,
    input: [usize; 3],
    output: [usize; 3],
) -> Tensor<3> {
    conv_adjoint_of(rows, conv, conv.weight.val(), input, output)
}

/// [`conv_adjoint`] with `weight` in place of the convolution's own (its magnitudes `|W|`, for
/// rounding bounds).
pub(crate) fn conv_adjoint_of(
    rows: Tensor<3>,
    conv: &Conv2d,
    weight: Tensor<4>,
    input: [usize; 3],
    output: [usize; 3],
) -> Tensor<3> {
    let [b, m, _] = rows.dims();
    let [ci, hi, wi] = input;
    let [co, ho, wo] = output;
    let k = weight.dims()[2];
    let pad_out = |s: usize| (s + 2 * conv.padding - k) % conv.stride;
    let options = ConvTransposeOptions::new(
        [conv.stride; 2],
        [conv.padding; 2],
        [pad_out(hi), pad_out(wi)],
        [1, 1],
        1,
    );
    conv_transpose2d(rows.reshape([b * m, co, ho, wo]), weight, None, options).reshape([
        b,
        m,
        ci * hi * wi,
    ])
}

/// `|W| x` through a convolution, without its bias, for flat `[n, c*h*w]` activations of shape
/// `input`: radii and magnitudes carried forwards (interval's radius, the rounding bounds).
pub(crate) fn conv_abs(x: Tensor<2>, conv: &Conv2d, input: [usize; 3]) -> Tensor<2> {
    conv2d(
        image(x, input),
        conv.weight.val().abs(),
        None,
        conv.options(),
    )
    .flatten(1, 3)
}

/// A boolean tensor's values on the host. Backends store booleans differently (wgpu as `u32`),
/// so they are read as integers.
pub fn read_bools<const D: usize>(t: Tensor<D, Bool>) -> Result<Vec<bool>, BoundsError> {
    let ints: Vec<i64> = t
        .int()
        .into_data()
        .convert::<i64>()
        .try_to_vec()
        .map_err(|e| BoundsError::Input(format!("reading booleans back: {e:?}")))?;
    Ok(ints.into_iter().map(|i| i != 0).collect())
}

/// A float tensor's values on the host, as `f32` whatever the backend's float type.
pub fn read_floats<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, BoundsError> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec()
        .map_err(|e| BoundsError::Input(format!("reading floats back: {e:?}")))
}
