//! What every kernel of this crate needs to run behind burn's tensor API: the route to our
//! kernel or to burn's, the operands as flex tensors, the autodiff record of one operation and
//! slices of flex tensors.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::ops::{Backward, NodeGuard, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::{BackendPrimitive, DType, Float, Tensor, TensorData};

/// Autodiff over flex: the device training runs on.
pub(crate) type Ad = Autodiff<Flex>;

/// The input, weight and bias as backend `B`'s own tensors.
pub(crate) type Operands<B> = (FloatTensor<B>, FloatTensor<B>, Option<FloatTensor<B>>);

/// Which kernel runs an operation, with the operands it takes.
pub(crate) enum Route {
    /// Ours, as one autodiff operation with our backward rule.
    AutodiffFlex(Operands<Ad>),
    /// Ours, forward only.
    Flex(Operands<Flex>),
    /// burn's.
    Burn,
}

/// Ours where the operation is one our kernel takes (`supported`, the caller's check of its
/// options and shapes) and every tensor is f32 on flex; burn's otherwise (which also reports
/// whatever is wrong with the call). If any operand is on autodiff, all are: a plain one (a
/// frozen network's weights, an input box) joins as a constant, as it does in burn's own
/// operations.
pub(crate) fn route(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    supported: bool,
) -> Route {
    let f32s = x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && bias.is_none_or(|b| b.dtype() == DType::F32);
    if !(supported && f32s) {
        return Route::Burn;
    }
    let (x, weight, bias) = (x.clone(), weight.clone(), bias.cloned());
    let lifted = if x.is_autodiff()
        || weight.is_autodiff()
        || bias.as_ref().is_some_and(Tensor::is_autodiff)
    {
        lift::<Ad>(x.autodiff(), weight.autodiff(), bias.map(Tensor::autodiff))
            .map(Route::AutodiffFlex)
    } else {
        lift::<Flex>(x, weight, bias).map(Route::Flex)
    };
    lifted.unwrap_or(Route::Burn)
}

/// The operands as backend `B`'s own tensors (cheap: the data is shared), or `None` where one
/// lives elsewhere.
fn lift<B: Backend>(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>) -> Option<Operands<B>>
where
    Float: BackendPrimitive<B, Primitive = FloatTensor<B>>,
    DispatchTensor: DispatchKindConversion<B>,
{
    let x = x.try_into_primitive::<B>().ok()?;
    let w = weight.try_into_primitive::<B>().ok()?;
    let b = match bias {
        Some(b) => Some(b.try_into_primitive::<B>().ok()?),
        None => None,
    };
    Some((x, w, b))
}

/// The state of a backward rule: the checkpointed input and weight, and the operation's options.
pub(crate) type State<O> = (NodeId, NodeId, O);

/// The autodiff operation `op` over `parents`: compute-bound (recomputing it to save memory
/// would cost more than keeping its output), with our state.
pub(crate) fn prepare<T, const N: usize>(
    op: T,
    parents: [NodeGuard; N],
) -> OpsKind<T, Flex, T::State, NoCheckpointing, N>
where
    T: Backward<Flex, N>,
{
    op.prepare::<NoCheckpointing>(parents)
        .compute_bound()
        .stateful()
}

/// Records `out`, computed from `x` and `w`, as the output of the operation `kind` prepared.
pub(crate) fn record<T, O, const N: usize>(
    kind: OpsKind<T, Flex, State<O>, NoCheckpointing, N>,
    x: &FloatTensor<Ad>,
    w: &FloatTensor<Ad>,
    out: FlexTensor,
    options: O,
) -> FloatTensor<Ad>
where
    T: Backward<Flex, N, State = State<O>>,
    O: Clone + Send + std::fmt::Debug + 'static,
{
    match kind {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(x), prep.checkpoint(w), options);
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

pub(crate) fn dims(t: &FlexTensor) -> [usize; 4] {
    let shape = t.layout().shape();
    [shape[0], shape[1], shape[2], shape[3]]
}

pub(crate) fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice()
        .expect("a contiguous f32 tensor (checked by the route)")
}

pub(crate) fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}
