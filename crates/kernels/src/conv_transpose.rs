//! [`conv_transpose2d`]: burn's `module::conv_transpose2d` with our CPU kernel on flex, and
//! burn's own kernel everywhere else.
//!
//! A transposed convolution is the adjoint of a convolution: the map from a convolution's
//! output back to its input that the convolution's input gradient applies. So it runs on the
//! same three kernels ([`crate::im2col`]) with the roles turned: its value is the convolution's
//! input gradient, the gradient of its input is the convolution's forward pass, and the
//! gradient of its weight is the convolution's weight gradient with input and output swapped.
//! Back-substitution (CROWN, CROWN-IBP) carries every bound's coefficients through each layer
//! this way.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::tensor::ops::ConvTransposeOptions;
use burn::tensor::{Tensor, module};

use crate::flex::{Ad, Route, State, dims, f32s, prepare, record, route, tensor};
use crate::im2col::{self, Geometry};

/// A 2-D transposed convolution of `x` `[n, c_in, h, w]` with `weight` `[c_in, c_out, kh, kw]`
/// and an optional `bias` `[c_out]`: the same contract and results as
/// `burn::tensor::module::conv_transpose2d` (to float rounding), with its gradients on an
/// autodiff device.
pub fn conv_transpose2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvTransposeOptions<2>,
) -> Tensor<4> {
    let supported = bias.is_none() && supported(&x, &weight, &options);
    match route(&x, &weight, None, supported) {
        Route::AutodiffFlex((x, w, _)) => {
            let out = forward(x.primitive(), w.primitive(), &options);
            let kind = prepare(TransposeBackward, [x.node(), w.node()]);
            Tensor::from_primitive::<Ad>(record(kind, &x, &w, out, options))
        }
        Route::Flex((x, w, _)) => Tensor::from_primitive::<Flex>(forward(&x, &w, &options)),
        Route::Burn => module::conv_transpose2d(x, weight, bias, options),
    }
}

/// Our kernel takes no bias (back-substitution has none), one group, no dilation, matching
/// channels and an output padding below the stride, which makes it exactly the adjoint of a
/// convolution; burn takes (or reports) the rest.
fn supported(x: &Tensor<4>, weight: &Tensor<4>, options: &ConvTransposeOptions<2>) -> bool {
    let ([_, c, h, w], [c_w, _, kh, kw]) = (x.dims(), weight.dims());
    let sides = [(h, kh, 0), (w, kw, 1)].into_iter().all(|(len, k, a)| {
        options.padding_out[a] < options.stride[a]
            && len >= 1
            && (len - 1) * options.stride[a] + k + options.padding_out[a] > 2 * options.padding[a]
    });
    sides && c == c_w && options.groups == 1 && options.dilation == [1, 1]
}

/// The backward rule: parents `[x, weight]`.
#[derive(Debug)]
struct TransposeBackward;

impl Backward<Flex, 2> for TransposeBackward {
    type State = State<ConvTransposeOptions<2>>;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (x_id, w_id, options) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_id);
        let w: FlexTensor = checkpointer.retrieve_node_output(w_id);
        let g = geometry(&x, &w, &options);
        let [node_x, node_w] = &ops.parents;
        if let Some(node) = node_x {
            let w = w.to_contiguous();
            let mut dx = vec![0.0; g.n * g.c_out * g.l()];
            im2col::forward(&g, f32s(&dy), f32s(&w), None, &mut dx);
            let shape = [g.n, g.c_out, g.output[0], g.output[1]];
            grads.register::<Flex>(node.id, tensor(dx, shape));
        }
        if let Some(node) = node_w {
            let x = x.to_contiguous();
            let mut dw = vec![0.0; g.c_out * g.k()];
            im2col::weight_grad(&g, f32s(&dy), f32s(&x), &mut dw, None);
            let shape = [g.c_out, g.c_in, g.kernel[0], g.kernel[1]];
            grads.register::<Flex>(node.id, tensor(dw, shape));
        }
    }
}

/// The transposed convolution on flex tensors: the input gradient of the convolution it is the
/// adjoint of.
fn forward(x: &FlexTensor, w: &FlexTensor, options: &ConvTransposeOptions<2>) -> FlexTensor {
    let g = geometry(x, w, options);
    let (x, w) = (x.to_contiguous(), w.to_contiguous());
    let [h, wd] = g.input;
    let mut out = vec![0.0; g.n * g.c_in * h * wd];
    im2col::input_grad(&g, f32s(&w), f32s(&x), &mut out);
    tensor(out, [g.n, g.c_in, h, wd])
}

/// The convolution this transposed convolution is the adjoint of: its input is our output, its
/// output our input, its weight ours.
fn geometry(x: &FlexTensor, w: &FlexTensor, options: &ConvTransposeOptions<2>) -> Geometry {
    let [n, c, h, wd] = dims(x);
    let [_, c_out, kh, kw] = dims(w);
    let side = |axis: usize, len: usize, k: usize| {
        (len - 1) * options.stride[axis] + k + options.padding_out[axis] - 2 * options.padding[axis]
    };
    Geometry {
        n,
        c_in: c_out,
        input: [side(0, h, kh), side(1, wd, kw)],
        c_out: c,
        kernel: [kh, kw],
        stride: options.stride,
        padding: options.padding,
        output: [h, wd],
    }
}
