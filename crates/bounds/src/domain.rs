use burn::tensor::Device;
use burn::tensor::module::conv_transpose2d;
use burn::tensor::ops::ConvTransposeOptions;
use burn::tensor::{Bool, Int, Tensor};
use mixtrain_nn::{Conv2d, Layer, Linear, Network};

use crate::{BoundsError, InputSet, Margins};

/// The shape of the activations a domain currently represents; domains keep them flat
/// (`[n, features]`, channel-major like PyTorch's `flatten`) and reshape for convolutions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `[channels, height, width]` per input, before the network's flatten.
    Image([usize; 3]),
    /// Features per input, after the flatten.
    Flat(usize),
}

impl Layout {
    pub(crate) fn features(self) -> usize {
        match self {
            Layout::Image([c, h, w]) => c * h * w,
            Layout::Flat(d) => d,
        }
    }

    /// The layout after a convolution.
    pub(crate) fn after_conv(self, conv: &Conv2d) -> [usize; 3] {
        let [_, _, k, _] = conv.weight.val().dims();
        let out = conv.weight.val().dims()[0];
        let Layout::Image([_, h, w]) = self else {
            unreachable!("Architecture::check puts convolutions on images only")
        };
        let side = |s: usize| (s + 2 * conv.padding - k) / conv.stride + 1;
        [out, side(h), side(w)]
    }

    /// The layout after `layer`.
    pub(crate) fn after(self, layer: &Layer) -> Layout {
        match layer {
            Layer::Conv2d(conv) => Layout::Image(self.after_conv(conv)),
            Layer::AvgPool2d(pool) => {
                let Layout::Image([c, h, w]) = self else {
                    unreachable!("Architecture::check puts pooling on images only")
                };
                let side = |s: usize| (s - pool.kernel) / pool.stride + 1;
                Layout::Image([c, side(h), side(w)])
            }
            Layer::Linear(l) => Layout::Flat(l.weight.val().dims()[1]),
            Layer::Flatten(_) => Layout::Flat(self.features()),
            Layer::Residual(r) => r.path.iter().fold(self, |layout, l| layout.after(l)),
            Layer::Normalize(_) | Layer::Relu(_) | Layer::BatchNorm2d(_) => self,
        }
    }

    /// Channels of an image layout.
    pub(crate) fn channels(self) -> usize {
        match self {
            Layout::Image([c, _, _]) => c,
            Layout::Flat(_) => unreachable!("Architecture::check puts channel layers on images"),
        }
    }
}

/// A per-channel affine layer's `x * scale + shift`, `[c]` each: input normalisation and batch
/// normalisation (evaluation mode) are both this map, which is how every domain folds them.
pub(crate) fn channel_affine(layer: &Layer, device: &Device) -> Option<(Tensor<1>, Tensor<1>)> {
    match layer {
        Layer::Normalize(n) => Some(n.affine(device)),
        Layer::BatchNorm2d(b) => Some(b.affine()),
        _ => None,
    }
}

/// An abstract domain: a representation of a set of activations for a batch, with one
/// transfer rule per layer kind. The margin specification is folded into the last (linear)
/// layer, which is tighter than bounding the logits and subtracting.
pub trait Domain: Sized + Clone {
    /// The name in errors and on the command line.
    const NAME: &'static str;

    /// The input set, before any layer.
    fn input(set: &InputSet) -> Self;

    /// A per-channel affine map `x * scale + shift` (`[c]` each; `scale` may be negative):
    /// input normalisation, and batch normalisation in evaluation mode.
    fn channel_affine(self, _scale: Tensor<1>, _shift: Tensor<1>) -> Result<Self, BoundsError> {
        Err(unsupported(
            "channel affine (normalize, batch_norm)",
            Self::NAME,
        ))
    }
    /// A convolution; average pooling also comes here, as [`AvgPool2d::as_conv`].
    ///
    /// [`AvgPool2d::as_conv`]: mixtrain_nn::AvgPool2d::as_conv
    fn conv2d(self, _layer: &Conv2d) -> Result<Self, BoundsError> {
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
    /// `[c, h, w]` to `c*h*w` features; the values stay, only the [`Layout`] changes.
    fn flatten(self) -> Result<Self, BoundsError>;

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

    /// The layout of the current activations.
    fn layout(&self) -> Layout;

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
    let (state, last) = forward::<D>(net, set, |_, _| {})?;
    let lower = state.margins(last, &labels)?;
    Ok(Margins { lower, labels })
}

/// Runs `D` through every layer but the last (which must be linear), handing the bounds in front
/// of each ReLU to `before_relu` first; returns the final state and the last layer.
pub(crate) fn forward<'n, D: Domain>(
    net: &'n Network,
    set: &InputSet,
    mut before_relu: impl FnMut(&Tensor<2>, &Tensor<2>),
) -> Result<(D, &'n Linear), BoundsError> {
    let (last, body) = match net.layers.split_last() {
        Some((Layer::Linear(last), body)) => (last, body),
        _ => {
            return Err(BoundsError::Network {
                model: net.architecture().name.clone(),
                message:
                    "the last layer must be linear (the margin specification is folded into it)"
                        .into(),
            });
        }
    };
    let state = run(D::input(set), body, &mut before_relu)?;
    Ok((state, last))
}

/// Runs `state` through `layers`, recursing into residual blocks.
fn run<D: Domain>(
    mut state: D,
    layers: &[Layer],
    before_relu: &mut impl FnMut(&Tensor<2>, &Tensor<2>),
) -> Result<D, BoundsError> {
    for layer in layers {
        state = match layer {
            Layer::Normalize(_) | Layer::BatchNorm2d(_) => {
                let device = state.device();
                let (scale, shift) =
                    channel_affine(layer, &device).expect("a per-channel affine layer");
                state.channel_affine(scale, shift)?
            }
            Layer::Conv2d(c) => state.conv2d(c)?,
            Layer::AvgPool2d(p) => {
                let device = state.device();
                let conv = p.as_conv(state.layout().channels(), &device);
                state.conv2d(&conv)?
            }
            Layer::Linear(l) => state.linear(l)?,
            Layer::Relu(_) => {
                let (lower, upper) = state.concretize();
                before_relu(&lower, &upper);
                state.relu(lower, upper)?
            }
            Layer::Flatten(_) => state.flatten()?,
            Layer::Residual(block) => {
                let (path, skip) = state.branch()?;
                let skip = match &block.skip {
                    Some(conv) => skip.conv2d(conv)?,
                    None => skip,
                };
                run(path, &block.path, before_relu)?.residual_sum(skip)?
            }
        };
    }
    Ok(state)
}

/// The last layer with the specification folded in: for each point, rows `W_y - W_j`
/// (`[n, classes, in]`) and biases `b_y - b_j` (`[n, classes]`).
pub(crate) fn fold_spec(last: &Linear, labels: &Tensor<1, Int>) -> (Tensor<3>, Tensor<2>) {
    let wt = last.weight.val().transpose(); // [classes, in]
    let b = last.bias.val(); // [classes]
    let wy = wt.clone().select(0, labels.clone()); // [n, in]
    let by = b.clone().select(0, labels.clone()); // [n]
    let w = wy.unsqueeze_dim::<3>(1) - wt.unsqueeze_dim::<3>(0);
    let bias = by.unsqueeze_dim::<2>(1) - b.unsqueeze_dim::<2>(0);
    (w, bias)
}

/// The domains by name, for configs and the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DomainKind {
    /// [`Interval`](crate::Interval): interval bound propagation (IBP).
    Interval,
    /// [`Symbolic`](crate::Symbolic): MixTrain's symbolic interval with symbolic linear
    /// relaxation; the default.
    #[default]
    Symbolic,
    /// CROWN with interval intermediate bounds: CROWN-IBP's bound.
    Crown,
    /// CROWN with symbolic-interval intermediate bounds.
    CrownSymbolic,
    /// The intersection of the others (see [`crate::best_margins`]).
    Best,
}

impl DomainKind {
    /// Every domain, in the order the CLI, benches and tests list them.
    pub const ALL: [DomainKind; 5] = [
        DomainKind::Interval,
        DomainKind::Symbolic,
        DomainKind::Crown,
        DomainKind::CrownSymbolic,
        DomainKind::Best,
    ];

    /// The name in configs and on the command line (`interval`, `symbolic`, `crown`,
    /// `crown-symbolic`, `best`); [`FromStr`](std::str::FromStr) parses it back.
    pub fn name(self) -> &'static str {
        match self {
            DomainKind::Interval => crate::Interval::NAME,
            DomainKind::Symbolic => crate::Symbolic::NAME,
            DomainKind::Crown => "crown",
            DomainKind::CrownSymbolic => "crown-symbolic",
            DomainKind::Best => "best",
        }
    }

    /// [`margins`] in this domain.
    pub fn margins(
        self,
        net: &Network,
        set: &InputSet,
        labels: Tensor<1, Int>,
    ) -> Result<Margins, BoundsError> {
        match self {
            DomainKind::Interval => margins::<crate::Interval>(net, set, labels),
            DomainKind::Symbolic => margins::<crate::Symbolic>(net, set, labels),
            DomainKind::Crown => crate::crown::margins::<crate::Interval>(net, set, labels),
            DomainKind::CrownSymbolic => crate::crown::margins::<crate::Symbolic>(net, set, labels),
            DomainKind::Best => crate::crown::best_margins(net, set, labels),
        }
    }
}

impl std::str::FromStr for DomainKind {
    type Err = BoundsError;

    fn from_str(s: &str) -> Result<Self, BoundsError> {
        DomainKind::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                BoundsError::Input(format!(
                    "unknown domain {s:?}: this build has {}",
                    DomainKind::ALL.map(|d| d.name()).join(", ")
                ))
            })
    }
}

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

/// `sum_d a[n, c, d] * b[.., .., d]` with `b` broadcast over the leading dimensions: `[n, c]`.
pub(crate) fn dot(a: Tensor<3>, b: Tensor<3>) -> Tensor<2> {
    (a * b).sum_dim(2).squeeze_dim::<2>(2)
}

/// Each point's rows `w` `[n, rows, d]` applied to its vector `v` `[n, d]`: `[n, rows]`.
pub(crate) fn apply(w: Tensor<3>, v: Tensor<2>) -> Tensor<2> {
    dot(w, v.unsqueeze_dim(1))
}

/// A per-channel vector `[c]` repeated over every position of an image layout, `[1, c*h*w]`.
pub(crate) fn flat_channels(values: Tensor<1>, layout: Layout) -> Tensor<2> {
    let Layout::Image([c, h, w]) = layout else {
        unreachable!("Architecture::check puts channel layers on images only")
    };
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

/// Rows over a convolution's outputs `[b, m, co*ho*wo]` carried to its inputs `[b, m, ci*hi*wi]`
/// (weights only): the adjoint of the convolution, a transposed convolution.
pub(crate) fn conv_adjoint(rows: Tensor<3>, conv: &Conv2d, input: [usize; 3]) -> Tensor<3> {
    let [b, m, _] = rows.dims();
    let [ci, hi, wi] = input;
    let [co, ho, wo] = Layout::Image(input).after_conv(conv);
    let k = conv.weight.val().dims()[2];
    let pad_out = |s: usize| (s + 2 * conv.padding - k) % conv.stride;
    let options = ConvTransposeOptions::new(
        [conv.stride; 2],
        [conv.padding; 2],
        [pad_out(hi), pad_out(wi)],
        [1, 1],
        1,
    );
    conv_transpose2d(
        rows.reshape([b * m, co, ho, wo]),
        conv.weight.val(),
        None,
        options,
    )
    .reshape([b, m, ci * hi * wi])
}
