//! [`conv2d`]: burn's `module::conv2d` with our CPU kernel ([`crate::im2col`]) on flex, and
//! burn's own kernel everywhere else.
//!
//! On an autodiff flex device the convolution is one custom operation whose backward rule runs
//! our two gradient kernels; a plain flex device runs the forward kernel alone. GPU backends,
//! ndarray, grouped or dilated convolutions and other dtypes go to burn unchanged, so callers
//! keep one code path and the kernel is chosen per backend here.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{BackendPrimitive, DType, Float, Tensor, TensorData, module};

use crate::im2col::{self, Geometry};

type Ad = Autodiff<Flex>;

/// A 2-D convolution of `x` `[n, c_in, h, w]` with `weight` `[c_out, c_in, kh, kw]` and an
/// optional `bias` `[c_out]`: the same contract and results as `burn::tensor::module::conv2d`
/// (to float rounding), with its gradients on an autodiff device.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    match route(&x, &weight, bias.as_ref(), &options) {
        Route::AutodiffFlex((x, w, b)) => {
            Tensor::from_primitive::<Ad>(on_autodiff_flex(x, w, b, &options))
        }
        Route::Flex((x, w, b)) => {
            Tensor::from_primitive::<Flex>(forward(&x, &w, b.as_ref(), &options))
        }
        Route::Burn => module::conv2d(x, weight, bias, options),
    }
}

/// The input, weight and bias as backend `B`'s own tensors.
type Operands<B> = (FloatTensor<B>, FloatTensor<B>, Option<FloatTensor<B>>);

/// Which kernel runs a convolution, with the operands it takes.
enum Route {
    /// Ours, as one autodiff operation with our backward rule.
    AutodiffFlex(Operands<Ad>),
    /// Ours, forward only.
    Flex(Operands<Flex>),
    /// burn's.
    Burn,
}

/// Ours where every tensor is f32 on one flex device (autodiff or not), the convolution has
/// one group and no dilation, and the kernel fits the padded input (burn reports the other
/// case); burn's otherwise.
fn route(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    options: &ConvOptions<2>,
) -> Route {
    let f32s = x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && bias.is_none_or(|b| b.dtype() == DType::F32);
    let ([_, _, h, w], [_, _, kh, kw]) = (x.dims(), weight.dims());
    let [pb, pe] = [options.padding_begin(), options.padding_end()];
    let fits = h + pb[0] + pe[0] >= kh && w + pb[1] + pe[1] >= kw;
    if !(f32s && fits && options.groups == 1 && options.dilation == [1, 1]) {
        return Route::Burn;
    }
    if let Some(operands) = lift::<Ad>(x, weight, bias) {
        Route::AutodiffFlex(operands)
    } else if let Some(operands) = lift::<Flex>(x, weight, bias) {
        Route::Flex(operands)
    } else {
        Route::Burn
    }
}

/// The operands as backend `B`'s own tensors (cheap: the data is shared), or `None` where one
/// lives elsewhere.
fn lift<B: Backend>(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
) -> Option<Operands<B>>
where
    Float: BackendPrimitive<B, Primitive = FloatTensor<B>>,
    DispatchTensor: DispatchKindConversion<B>,
{
    let x = x.clone().try_into_primitive::<B>().ok()?;
    let w = weight.clone().try_into_primitive::<B>().ok()?;
    let b = match bias {
        Some(b) => Some(b.clone().try_into_primitive::<B>().ok()?),
        None => None,
    };
    Some((x, w, b))
}

fn on_autodiff_flex(
    x: FloatTensor<Ad>,
    w: FloatTensor<Ad>,
    b: Option<FloatTensor<Ad>>,
    options: &ConvOptions<2>,
) -> FloatTensor<Ad> {
    let out = forward(
        x.primitive(),
        w.primitive(),
        b.as_ref().map(|b| b.primitive()),
        options,
    );
    match b {
        Some(b) => record(
            ConvBackward::<3>
                .prepare::<NoCheckpointing>([x.node(), w.node(), b.node()])
                .compute_bound()
                .stateful(),
            &x,
            &w,
            out,
            options,
        ),
        None => record(
            ConvBackward::<2>
                .prepare::<NoCheckpointing>([x.node(), w.node()])
                .compute_bound()
                .stateful(),
            &x,
            &w,
            out,
            options,
        ),
    }
}

/// The backward rule: parents `[x, weight]` or `[x, weight, bias]`; the state keeps the
/// checkpointed input and weight and the geometry's options.
#[derive(Debug)]
struct ConvBackward<const N: usize>;

type State = (NodeId, NodeId, ConvOptions<2>);

fn record<const N: usize>(
    kind: OpsKind<ConvBackward<N>, Flex, State, NoCheckpointing, N>,
    x: &FloatTensor<Ad>,
    w: &FloatTensor<Ad>,
    out: FlexTensor,
    options: &ConvOptions<2>,
) -> FloatTensor<Ad>
where
    ConvBackward<N>: Backward<Flex, N, State = State>,
{
    match kind {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(x), prep.checkpoint(w), options.clone());
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

impl<const N: usize> Backward<Flex, N> for ConvBackward<N> {
    type State = State;

    fn backward(self, ops: Ops<State, N>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
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
            let mut db = vec![0.0; g.c_out];
            im2col::weight_grad(&g, f32s(&x), dy_s, &mut dw, Some(&mut db));
            if let Some(node) = node_w {
                let shape = [g.c_out, g.c_in, g.kernel[0], g.kernel[1]];
                grads.register::<Flex>(node.id, tensor(dw, shape));
            }
            if let Some(node) = node_b {
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

fn dims(t: &FlexTensor) -> [usize; 4] {
    let shape = t.layout().shape();
    [shape[0], shape[1], shape[2], shape[3]]
}

fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice()
        .expect("a contiguous f32 tensor (checked by `conv2d`)")
}

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;

    fn route_on(device: &Device, options: ConvOptions<2>) -> Route {
        let x = Tensor::<4>::zeros([2, 2, 5, 5], device);
        let w = Tensor::<4>::zeros([4, 2 / options.groups, 3, 3], device);
        let b = Tensor::<1>::zeros([4], device);
        route(&x, &w, Some(&b), &options)
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
}
