//! [`conv2d`]: burn's `module::conv2d` with our CPU kernel ([`crate::im2col`]) on flex, and
//! burn's own kernel everywhere else.
//!
//! On an autodiff flex device the convolution is one custom operation whose backward rule runs
//! our two gradient kernels; a plain flex device runs the forward kernel alone. GPU backends,
//! ndarray, grouped or dilated convolutions and other dtypes go to burn unchanged, so callers
//! keep one code path and the kernel is chosen per backend here.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, module};

use crate::flex::{Ad, Route, State, dims, f32s, prepare, record, route, tensor};
use crate::im2col::{self, Geometry};

/// A 2-D convolution of `x` `[n, c_in, h, w]` with `weight` `[c_out, c_in, kh, kw]` and an
/// optional `bias` `[c_out]`: the same contract and results as `burn::tensor::module::conv2d`
/// (to float rounding), with its gradients on an autodiff device.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    match route(&x, &weight, bias.as_ref(), supported(&x, &weight, &options)) {
        Route::AutodiffFlex((x, w, b)) => {
            Tensor::from_primitive::<Ad>(on_autodiff_flex(x, w, b, options))
        }
        Route::Flex((x, w, b)) => {
            Tensor::from_primitive::<Flex>(forward(&x, &w, b.as_ref(), &options))
        }
        Route::Burn => module::conv2d(x, weight, bias, options),
    }
}

/// Our kernel takes one group, no dilation, and a kernel that fits the padded input (burn
/// reports the other case).
fn supported(x: &Tensor<4>, weight: &Tensor<4>, options: &ConvOptions<2>) -> bool {
    let ([_, _, h, w], [_, _, kh, kw]) = (x.dims(), weight.dims());
    let [pb, pe] = [options.padding_begin(), options.padding_end()];
    let fits = h + pb[0] + pe[0] >= kh && w + pb[1] + pe[1] >= kw;
    fits && options.groups == 1 && options.dilation == [1, 1]
}

fn on_autodiff_flex(
    x: FloatTensor<Ad>,
    w: FloatTensor<Ad>,
    b: Option<FloatTensor<Ad>>,
    options: ConvOptions<2>,
) -> FloatTensor<Ad> {
    let out = forward(
        x.primitive(),
        w.primitive(),
        b.as_ref().map(|b| b.primitive()),
        &options,
    );
    match b {
        Some(b) => record(
            prepare(ConvBackward::<3>, [x.node(), w.node(), b.node()]),
            &x,
            &w,
            out,
            options,
        ),
        None => record(
            prepare(ConvBackward::<2>, [x.node(), w.node()]),
            &x,
            &w,
            out,
            options,
        ),
    }
}

/// The backward rule: parents `[x, weight]` or `[x, weight, bias]`.
#[derive(Debug)]
struct ConvBackward<const N: usize>;

impl<const N: usize> Backward<Flex, N> for ConvBackward<N> {
    type State = State<ConvOptions<2>>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (x_id, w_id, options) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_id);
        let w: FlexTensor = checkpointer.retrieve_node_output(w_id);
        let g = geometry(&x, &w, &options);
        let dy = dy.to_contiguous();
        let dy_s = f32s(&dy);
        let [node_x, node_w] = [&ops.parents[0], &ops.parents[1]];
        let node_b = ops.parents.get(2).and_then(Option::as_ref);
        if let Some(node) = node_x {
            let w = w.to_contiguous();
            let mut dx = vec![0.0; g.n * g.c_in * g.input[0] * g.input[1]];
            im2col::input_grad(&g, f32s(&w), dy_s, &mut dx);
            let shape = [g.n, g.c_in, g.input[0], g.input[1]];
            grads.register::<Flex>(node.id, tensor(dx, shape));
        }
        if node_w.is_some() || node_b.is_some() {
            let x = x.to_contiguous();
            let mut dw = vec![0.0; g.c_out * g.k()];
            let mut db = node_b.map(|_| vec![0.0; g.c_out]);
            im2col::weight_grad(&g, f32s(&x), dy_s, &mut dw, db.as_deref_mut());
            if let Some(node) = node_w {
                let shape = [g.c_out, g.c_in, g.kernel[0], g.kernel[1]];
                grads.register::<Flex>(node.id, tensor(dw, shape));
            }
            if let (Some(node), Some(db)) = (node_b, db) {
                grads.register::<Flex>(node.id, tensor(db, [g.c_out]));
            }
        }
    }
}

/// The convolution on flex tensors.
fn forward(
    x: &FlexTensor,
    w: &FlexTensor,
    b: Option<&FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let g = geometry(x, w, options);
    let (x, w, b) = (
        x.to_contiguous(),
        w.to_contiguous(),
        b.map(FlexTensor::to_contiguous),
    );
    let mut out = vec![0.0; g.n * g.c_out * g.l()];
    im2col::forward(&g, f32s(&x), f32s(&w), b.as_ref().map(f32s), &mut out);
    tensor(out, [g.n, g.c_out, g.output[0], g.output[1]])
}

fn geometry(x: &FlexTensor, w: &FlexTensor, options: &ConvOptions<2>) -> Geometry {
    let [n, c_in, h, wd] = dims(x);
    let [c_out, _, kh, kw] = dims(w);
    let [pb, pe] = [options.padding_begin(), options.padding_end()];
    let side = |axis: usize, len: usize, k: usize| {
        (len + pb[axis] + pe[axis] - k) / options.stride[axis] + 1
    };
    Geometry {
        n,
        c_in,
        input: [h, wd],
        c_out,
        kernel: [kh, kw],
        stride: options.stride,
        padding: pb,
        output: [side(0, h, kh), side(1, wd, kw)],
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;

    fn route_on(device: &Device, options: ConvOptions<2>) -> Route {
        let x = Tensor::<4>::zeros([2, 2, 5, 5], device);
        let w = Tensor::<4>::zeros([4, 2 / options.groups, 3, 3], device);
        let b = Tensor::<1>::zeros([4], device);
        route(&x, &w, Some(&b), supported(&x, &w, &options))
    }

    #[test]
    #[allow(deprecated)]
    fn ours_on_flex_burns_elsewhere() {
        let plain = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        assert!(matches!(
            route_on(&Device::flex(), plain.clone()),
            Route::Flex(_)
        ));
        let ad = Device::flex().autodiff();
        assert!(matches!(
            route_on(&ad, plain.clone()),
            Route::AutodiffFlex(_)
        ));
        assert!(matches!(route_on(&Device::ndarray(), plain), Route::Burn));
        let grouped = ConvOptions::new([1, 1], [1, 1], [1, 1], 2);
        assert!(matches!(route_on(&Device::flex(), grouped), Route::Burn));
        let dilated = ConvOptions::new([1, 1], [1, 1], [2, 2], 1);
        assert!(matches!(route_on(&Device::flex(), dilated), Route::Burn));
    }

    /// A tracked input with plain weights (an attack's frozen network) and a plain input with
    /// tracked weights (an input box through the trained network) are both ours on autodiff.
    #[test]
    fn mixed_operands_run_on_autodiff() {
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let plain = Device::flex();
        let ad = plain.clone().autodiff();
        for (x_on, w_on) in [(&ad, &plain), (&plain, &ad)] {
            let x = Tensor::<4>::zeros([2, 2, 5, 5], x_on);
            let w = Tensor::<4>::zeros([4, 2, 3, 3], w_on);
            let routed = route(&x, &w, None, supported(&x, &w, &options));
            assert!(matches!(routed, Route::AutodiffFlex(_)));
        }
    }
}
