//! The [`Domain`] trait (one transfer rule per layer kind) and the forward pass that runs a
//! domain through a network: the one place where a layer is matched to its rule.

use burn::tensor::{Device, Int, Tensor};
use mixtrain_nn::{ActShape, Conv2d, Layer, Linear, Network};

use crate::numeric::flat_channels;
use crate::{BoundsError, InputSet, Margins};

/// An abstract domain: a representation of a set of activations for a batch, with one
/// transfer rule per layer kind. The forward pass checks every layer's shapes before it calls
/// a rule, and hands image rules their shapes; the domains keep activations flat (`[n,
/// features]`, channel-major like PyTorch's `flatten`). The margin specification is folded into
/// the last (linear) layer, which is tighter than bounding the logits and subtracting.
///
/// A rule a domain lacks is an error naming the layer and the domain
/// ([`BoundsError::Unsupported`]); adding a layer kind means one method here, its rule in each
/// domain, and its arm in the forward pass below (and in CROWN's backward pass).
pub trait Domain: Sized + Clone {
    /// The name in errors and on the command line.
    const NAME: &'static str;

    /// The input set, before any layer.
    fn input(set: &InputSet) -> Self;

    /// A per-channel affine map `x * scale + shift` on an image, given per feature (`[1,
    /// features]`, each channel's value repeated over its positions; `scale` may be negative):
    /// input normalisation, and batch normalisation in evaluation mode.
    fn channel_affine(self, _scale: Tensor<2>, _shift: Tensor<2>) -> Result<Self, BoundsError> {
        Err(unsupported(
            "channel affine (normalize, batch_norm)",
            Self::NAME,
        ))
    }
    /// A convolution from `input` to `output` (`[c, h, w]` each); average pooling also comes
    /// here, as [`AvgPool2d::as_conv`].
    ///
    /// [`AvgPool2d::as_conv`]: mixtrain_nn::AvgPool2d::as_conv
    fn conv2d(
        self,
        _layer: &Conv2d,
        _input: [usize; 3],
        _output: [usize; 3],
    ) -> Result<Self, BoundsError> {
        Err(unsupported("conv2d", Self::NAME))
    }
    /// A linear layer other than the last (the last goes to [`Domain::margins`]).
    fn linear(self, _layer: &Linear) -> Result<Self, BoundsError> {
        Err(unsupported("linear", Self::NAME))
    }
    /// ReLU, given sound bounds `[lower, upper]` of the current activations: this state's own
    /// [`Domain::concretize`], or tighter ones (intersected with another domain's).
    fn relu(self, _lower: Tensor<2>, _upper: Tensor<2>) -> Result<Self, BoundsError> {
        Err(unsupported("relu", Self::NAME))
    }
    /// `[c, h, w]` to `c*h*w` features. Domains keep activations flat, so by default nothing
    /// changes.
    fn flatten(self) -> Result<Self, BoundsError> {
        Ok(self)
    }

    /// The two starting states of a residual block's branches, `(path, skip)`: by default two
    /// copies. A domain whose representation is lazy puts it into a form both branches can
    /// extend and [`Domain::residual_sum`] can add.
    fn branch(self) -> Result<(Self, Self), BoundsError> {
        Ok((self.clone(), self))
    }
    /// The sum `path + skip` of the two branches of one block, both grown from the states
    /// [`Domain::branch`] gave.
    fn residual_sum(self, _skip: Self) -> Result<Self, BoundsError> {
        Err(unsupported("residual", Self::NAME))
    }

    /// Lower bounds `[n, classes]` of `z_y - z_j` after `last`, the network's final layer.
    fn margins(self, last: &Linear, labels: &Tensor<1, Int>) -> Result<Tensor<2>, BoundsError>;

    /// Concrete lower and upper bounds `[n, features]` of the current activations.
    fn concretize(&self) -> (Tensor<2>, Tensor<2>);

    /// The device the state's tensors live on, for the constants a rule builds.
    fn device(&self) -> Device;
}

fn unsupported(layer: &str, domain: &'static str) -> BoundsError {
    BoundsError::Unsupported {
        layer: layer.to_string(),
        domain,
    }
}

/// Propagates `set` through `net` in domain `D` and bounds the margins of `labels`.
pub fn margins<D: Domain>(
    net: &Network,
    set: &InputSet,
    labels: Tensor<1, Int>,
) -> Result<Margins, BoundsError> {
    let (state, last) = forward::<D>(net, set, &labels, |_, _| {})?;
    let lower = state.margins(last, &labels)?;
    Ok(Margins { lower, labels })
}

/// The network's layers but the last, which must be linear (the specification is folded into
/// it), after checking that `set` and `labels` fit the network.
pub(crate) fn body_and_last<'n>(
    net: &'n Network,
    set: &InputSet,
    labels: &Tensor<1, Int>,
) -> Result<(&'n [Layer], &'n Linear), BoundsError> {
    let arch = net.architecture();
    let network_error = |message: String| BoundsError::Network {
        model: arch.name.clone(),
        message,
    };
    let [n, c, h, w] = set.lower.dims();
    if [c, h, w] != arch.input {
        return Err(network_error(format!(
            "takes inputs {:?}, the input set has {:?}",
            arch.input,
            [c, h, w]
        )));
    }
    if labels.dims()[0] != n {
        return Err(BoundsError::Input(format!(
            "{} labels for {n} boxes",
            labels.dims()[0]
        )));
    }
    match net.layers.split_last() {
        Some((Layer::Linear(last), body)) => Ok((body, last)),
        _ => Err(network_error(
            "the last layer must be linear (the margin specification is folded into it)".into(),
        )),
    }
}

/// Runs `D` through every layer but the last, handing the bounds in front of each ReLU to
/// `before_relu` first; returns the final state and the last layer.
pub(crate) fn forward<'n, D: Domain>(
    net: &'n Network,
    set: &InputSet,
    labels: &Tensor<1, Int>,
    mut before_relu: impl FnMut(&Tensor<2>, &Tensor<2>),
) -> Result<(D, &'n Linear), BoundsError> {
    let (body, last) = body_and_last(net, set, labels)?;
    let input = ActShape::Image(net.architecture().input);
    let (state, _) = run(D::input(set), body, input, &mut before_relu)?;
    Ok((state, last))
}

/// Runs `state` through `layers` from an input of shape `shape`; returns the state and the
/// output shape.
fn run<D: Domain>(
    mut state: D,
    layers: &[Layer],
    mut shape: ActShape,
    before_relu: &mut impl FnMut(&Tensor<2>, &Tensor<2>),
) -> Result<(D, ActShape), BoundsError> {
    for layer in layers {
        let output = layer
            .output_shape(shape)
            .ok_or_else(|| shape_error(layer, shape))?;
        state = apply_layer(state, layer, shape, output, before_relu)?;
        shape = output;
    }
    Ok((state, shape))
}

/// A layer that cannot take its input's shape (a network assembled by hand).
pub(crate) fn shape_error(layer: &Layer, input: ActShape) -> BoundsError {
    BoundsError::Shape {
        layer: layer.kind(),
        input,
    }
}

/// A per-channel affine layer's map (from `mixtrain-nn`) per feature of its image input,
/// `[1, features]` each; `None` for other layers.
pub(crate) fn channel_affine(
    layer: &Layer,
    input: ActShape,
    device: &Device,
) -> Option<(Tensor<2>, Tensor<2>)> {
    let shape = input.image()?;
    let (scale, shift) = layer.channel_affine(device)?;
    Some((flat_channels(scale, shape), flat_channels(shift, shape)))
}

/// The rule of `layer` in `D`, the layer's shapes checked.
fn apply_layer<D: Domain>(
    state: D,
    layer: &Layer,
    input: ActShape,
    output: ActShape,
    before_relu: &mut impl FnMut(&Tensor<2>, &Tensor<2>),
) -> Result<D, BoundsError> {
    let images = input.image().zip(output.image());
    if let Some((scale, shift)) = channel_affine(layer, input, &state.device()) {
        return state.channel_affine(scale, shift);
    }
    match (layer, images) {
        (Layer::Conv2d(conv), Some((input, output))) => state.conv2d(conv, input, output),
        (Layer::AvgPool2d(pool), Some((input, output))) => {
            let conv = pool.as_conv(input[0], &state.device());
            state.conv2d(&conv, input, output)
        }
        (Layer::Linear(l), _) => state.linear(l),
        (Layer::Relu(_), _) => {
            let (lower, upper) = state.concretize();
            before_relu(&lower, &upper);
            state.relu(lower, upper)
        }
        (Layer::Flatten(_), _) => state.flatten(),
        (Layer::Residual(block), _) => {
            let (path, skip) = state.branch()?;
            let skip = match &block.skip {
                Some(conv) => run(skip, &[Layer::Conv2d(conv.clone())], input, before_relu)?.0,
                None => skip,
            };
            run(path, &block.path, input, before_relu)?
                .0
                .residual_sum(skip)
        }
        _ => Err(shape_error(layer, input)),
    }
}

/// The bounds `(lower, upper)`, `[n, features]` each, in front of every ReLU, in forward order,
/// as a forward domain met them.
pub type PreRelu = Vec<(Tensor<2>, Tensor<2>)>;

/// [`margins`], and the bounds in front of every ReLU that the forward pass met on the way:
/// what a training regulariser on the bounds' shape reads (Shi et al.'s warm-up
/// regularisers) without a second pass.
pub fn margins_recording<D: Domain>(
    net: &Network,
    set: &InputSet,
    labels: Tensor<1, Int>,
) -> Result<(Margins, PreRelu), BoundsError> {
    let (state, pre_relu) = forward_recording::<D>(net, set, &labels)?;
    let (_, last) = body_and_last(net, set, &labels)?;
    let lower = state.margins(last, &labels)?;
    Ok((Margins { lower, labels }, pre_relu))
}

/// Runs `D` forwards and records the bounds in front of every ReLU.
pub(crate) fn forward_recording<D: Domain>(
    net: &Network,
    set: &InputSet,
    labels: &Tensor<1, Int>,
) -> Result<(D, PreRelu), BoundsError> {
    let mut pre_relu = Vec::new();
    let (state, _) = forward::<D>(net, set, labels, |l, u| {
        pre_relu.push((l.clone(), u.clone()))
    })?;
    Ok((state, pre_relu))
}

/// Two domains' bounds in front of every ReLU, intersected neuron by neuron: sound because
/// both are.
pub(crate) fn intersect(a: &PreRelu, b: &PreRelu) -> PreRelu {
    a.iter()
        .zip(b)
        .map(|((la, ua), (lb, ub))| {
            (
                la.clone().max_pair(lb.clone()),
                ua.clone().min_pair(ub.clone()),
            )
        })
        .collect()
}
