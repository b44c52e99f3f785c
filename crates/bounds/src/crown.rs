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
//!
//! On a float-sound input set ([`InputSet::float_sound`]) the pass also carries a bound of
//! what rounding has cost the function so far ([`Rounding`]): every sum it computes is off by
//! at most `gamma_n` times the same sum of magnitudes, and each such error either is a
//! constant or scales with the magnitude of the current neurons, which a ReLU's bounds (or the
//! input box) then bound; the relaxation's chord, its slope and intercept rounded, may dip
//! below ReLU by at most `gamma_2 (|l| + |u|)`, which counts too. The bound reported is the
//! computed one minus all of it.

use burn::tensor::{Int, Tensor, activation::relu};
use mixtrain_nn::{ActShape, Conv2d, Layer, Linear, Network, Residual};

use crate::domain::{
    PreRelu, body_and_last, channel_affine, forward_recording, margins_recording, shape_error,
};
use crate::numeric::{
    ReluRelaxation, apply, conv_abs, conv_adjoint, conv_adjoint_of, dot, flat_channels, fold_spec,
};
use crate::rounding::{UNDERFLOW, nonzero, slack, slack_of, up};
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

/// IBP's margin bounds and CROWN-IBP's from one interval pass, and the interval bounds in front
/// of every ReLU it met: CROWN-IBP training interpolates between the two bounds (and may
/// regularise the interval ones), and the interval forward pass is shared.
pub fn interval_and_crown(
    net: &Network,
    set: &InputSet,
    labels: Tensor<1, Int>,
) -> Result<(Margins, Margins, PreRelu), BoundsError> {
    let (ibp, pre_relu) = margins_recording::<Interval>(net, set, labels.clone())?;
    let crown = bound(net, set, &labels, pre_relu.clone())?;
    Ok((
        ibp,
        Margins {
            lower: crown,
            labels,
        },
        pre_relu,
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
/// stable neurons' lines are exact whatever `alpha` holds there. `split`, where a branch and
/// bound subproblem constrains some of the neurons' signs, is the Lagrangian term added to the
/// function over the pre-activations (`[n, rows, d]`: `beta` on `z <= 0`, `-beta` on
/// `z >= 0`, zero elsewhere; beta-CROWN), sound on the subproblem for any `beta >= 0`.
pub(crate) struct ReluLines {
    pub lower: Tensor<2>,
    pub upper: Tensor<2>,
    pub alpha: Tensor<3>,
    pub split: Option<Tensor<3>>,
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
                split: None,
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
    // the rows W_y - W_j and their biases are rounded once each
    Backward::new(lambda, bias, set, true).minimum_after(body, input, set, &mut relus)
}

/// What a backward pass saw on its way besides its bound: the function's coefficients over
/// each ReLU's output (`[n, rows, d]`, by the ReLU's index; what a branching heuristic scores
/// neurons by) and over the input (`[n, rows, c*h*w]`; the box's corner that minimises it is
/// the relaxation's minimiser).
pub(crate) struct Trace {
    pub at_relu: Vec<Option<Tensor<3>>>,
    pub input: Tensor<3>,
}

/// The lower bounds `[n, rows]` of the functions `lambda . z + bias` (`[n, rows, d]`, `[n,
/// rows]`, each entry rounded once) over the output of `layers` (a network's first, whose
/// input has shape `input`), with the given lines at every ReLU among them, and where asked
/// (`traced`) the pass's [`Trace`].
pub(crate) fn bound_traced(
    layers: &[Layer],
    input: ActShape,
    set: &InputSet,
    (lambda, bias): (Tensor<3>, Tensor<2>),
    mut relus: Vec<ReluLines>,
    traced: bool,
) -> Result<(Tensor<2>, Option<Trace>), BoundsError> {
    let count = relus.len();
    let mut f = Backward::new(lambda, bias, set, true);
    f.trace = traced.then(Vec::new);
    let magnitude = set.magnitude();
    let mut f = f.layers(layers, input, magnitude.as_ref(), &mut relus)?;
    let trace = f.trace.take().map(|seen| {
        let mut at_relu = vec![None; count];
        for (relu, lambda) in seen {
            at_relu[relu] = Some(lambda);
        }
        Trace {
            at_relu,
            input: f.lambda.clone(),
        }
    });
    Ok((f.minimum(set), trace))
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
    let both =
        Backward::new(lambda, bias, set, false).minimum_after(layers, input, set, &mut relus)?;
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
    /// On a float-sound input set, what rounding may have cost the function so far.
    rounding: Option<Rounding>,
    /// Where kept, the function's coefficients over each ReLU's output met so far, with the
    /// ReLU's index.
    trace: Option<Vec<(usize, Tensor<3>)>>,
}

/// A float-sound pass's rounding so far, as a deficit of its lower bound: the exact function
/// is at least `lambda . z + bias - error - pending . |z|` for every feasible `z` (the current
/// neurons). `pending` (`[n, specs, d]`, `None` for zero) is the part that scales with the
/// magnitude of `z`, unknown between affine layers; at a ReLU, whose output lies in
/// `[0, relu(u)]`, and at the input box it becomes part of `error` (`[n, specs]`).
struct Rounding {
    error: Tensor<2>,
    pending: Option<Tensor<3>>,
    /// A bound on the magnitude of the current layer's input (`[n, d]`), where the layer in
    /// front of it is a ReLU or there is none: then an affine layer's error is concretised at
    /// once, a matrix-vector product forwards instead of a backward pass of magnitudes.
    input: Option<Tensor<2>>,
}

impl Rounding {
    /// Through an affine layer `z = A x + b`, from the function `lambda . z + bias` over its
    /// output: the computed `lambda A` (sums of at most `rows` terms, and of no more than
    /// `lambda`'s row has nonzeros) is within `gamma_rows |lambda| |A|` of exact, costing at most that times `|x|`; the computed
    /// `lambda . b` (one term per output; `layer_bias` is `|b|`, `[1, outputs]`) within
    /// `gamma_outputs |lambda| |b|`, and adding it to `bias` rounds once more; the pending
    /// `p . |z|` is at most `p |A| |x| + p |b|`. With the input's magnitude `m` known,
    /// `forwards` gives `|A| m` (rounded up) and the part in `|x|` is concretised at once; else
    /// `backwards` maps magnitudes `a` over the output to `a |A|`, and it stays pending.
    fn affine(
        self,
        lambda: &Tensor<3>,
        bias: &Tensor<2>,
        rows: usize,
        layer_bias: Tensor<2>,
        forwards: impl FnOnce(Tensor<2>) -> Tensor<2>,
        backwards: impl FnOnce(Tensor<3>) -> Tensor<3>,
    ) -> Self {
        let outputs = layer_bias.dims()[1];
        let plus_pending = |own: Tensor<3>| match &self.pending {
            Some(pending) => pending.clone() + own,
            None => own,
        };
        let terms = nonzero(lambda);
        let on_input = plus_pending(lambda.clone().abs() * slack_of(terms.clone(), rows));
        let on_bias = plus_pending(lambda.clone().abs() * slack_of(terms, outputs));
        let mut error = apply(on_bias, layer_bias) + bias.clone().abs() * slack(1);
        let pending = match self.input {
            Some(input) => {
                error = error + apply(on_input, forwards(input));
                None
            }
            None => Some(up(backwards(on_input), rows)),
        };
        Self {
            error: self.error + up(error, rows.max(outputs) + 2),
            pending,
            input: None,
        }
    }
}

impl Backward {
    /// The function `lambda . z + bias` over the output of a network's first layers, bounded
    /// over `set`; float sound, with the rounding of computing it (`rounded`: each entry
    /// rounded once, as the specification's rows `W_y - W_j` are; else exact).
    fn new(lambda: Tensor<3>, bias: Tensor<2>, set: &InputSet, rounded: bool) -> Self {
        let rounding = set.float_sound.then(|| match rounded {
            true => Rounding {
                error: bias.clone().abs() * slack(1),
                pending: Some(lambda.clone().abs() * slack(1)),
                input: None,
            },
            false => Rounding {
                error: bias.zeros_like(),
                pending: None,
                input: None,
            },
        });
        Self {
            lambda,
            bias,
            rounding,
            trace: None,
        }
    }

    /// The function's minimum over `set` after carrying it back through `layers` (the
    /// network's first, whose input has shape `input`).
    fn minimum_after(
        self,
        layers: &[Layer],
        input: ActShape,
        set: &InputSet,
        relus: &mut Vec<ReluLines>,
    ) -> Result<Tensor<2>, BoundsError> {
        let magnitude = set.magnitude();
        Ok(self
            .layers(layers, input, magnitude.as_ref(), relus)?
            .minimum(set))
    }

    /// Carries the function back through `layers` (whose input has shape `input`, and
    /// magnitude at most `magnitude` where known), consuming the bounds of their ReLUs from the
    /// end of `relus`: the one place a layer is matched to its backward rule.
    fn layers(
        self,
        layers: &[Layer],
        input: ActShape,
        magnitude: Option<&Tensor<2>>,
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
        for (index, (layer, (input, output))) in layers.iter().zip(shapes).enumerate().rev() {
            if let Some(rounding) = f.rounding.as_mut() {
                rounding.input = magnitude_after(&layers[..index], relus, magnitude);
            }
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
                    if let Some(trace) = f.trace.as_mut() {
                        trace.push((relus.len(), f.lambda.clone()));
                    }
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
        let layer_bias = layer.bias.val().reshape([1, 1, d_out]);
        let carry = |rows: Tensor<3>, weight: Tensor<2>| {
            rows.reshape([n * classes, d_out])
                .matmul(weight.transpose())
                .reshape([n, classes, d_in])
        };
        let rounding = self.rounding.map(|r| {
            let forwards = |m: Tensor<2>| up(m.matmul(weight.clone().abs()), d_in);
            let backwards = |a| carry(a, weight.clone().abs());
            let layer_bias = layer.bias.val().abs().unsqueeze_dim(0);
            r.affine(
                &self.lambda,
                &self.bias,
                d_out,
                layer_bias,
                forwards,
                backwards,
            )
        });
        let bias = self.bias + dot(self.lambda.clone(), layer_bias);
        let lambda = carry(self.lambda, weight);
        Self {
            lambda,
            bias,
            rounding,
            trace: self.trace,
        }
    }

    /// The bias into the constant (summed over each channel's positions), the adjoint on the
    /// coefficients.
    fn conv2d(self, conv: &Conv2d, input: [usize; 3], output: [usize; 3]) -> Self {
        let [n, classes, _] = self.lambda.dims();
        let [co, ho, wo] = output;
        let conv_bias = conv.bias.val().reshape([1, 1, co]);
        let shift = |rows: Tensor<3>, bias: Tensor<3>| {
            let per_channel = rows
                .reshape([n, classes, co, ho * wo])
                .sum_dim(3)
                .squeeze_dim::<3>(3);
            dot(per_channel, bias)
        };
        let k = conv.weight.val().dims()[2];
        let rounding = self.rounding.map(|r| {
            let [_, ci, _, _] = conv.weight.val().dims();
            let forwards = |m: Tensor<2>| up(conv_abs(m, conv, input), ci * k * k);
            let backwards = |a| conv_adjoint_of(a, conv, conv.weight.val().abs(), input, output);
            let layer_bias = flat_channels(conv.bias.val().abs(), output);
            // an input's adjoint sums at most co k k terms
            r.affine(
                &self.lambda,
                &self.bias,
                co * k * k,
                layer_bias,
                forwards,
                backwards,
            )
        });
        let bias = self.bias + shift(self.lambda.clone(), conv_bias);
        Self {
            lambda: conv_adjoint(self.lambda, conv, input, output),
            bias,
            rounding,
            trace: self.trace,
        }
    }

    /// The function minimised over the input box in closed form: `[n, specs]`. Float sound,
    /// from the corners (`sum max(lambda, 0) l + min(lambda, 0) u`: a centre and radius
    /// computed from them are rounded), less the rounding, pending and of the sum itself.
    fn minimum(self, set: &InputSet) -> Tensor<2> {
        let Some(rounding) = self.rounding else {
            let (centre, radius) = set.centre_radius();
            return self.bias + apply(self.lambda.clone(), centre)
                - apply(self.lambda.abs(), radius);
        };
        let lower: Tensor<2> = set.lower.clone().flatten(1, 3);
        let upper: Tensor<2> = set.upper.clone().flatten(1, 3);
        let terms = lower.dims()[1];
        let positive = relu(self.lambda.clone());
        let negative = self.lambda.clone() - positive.clone();
        let value =
            self.bias.clone() + apply(positive, lower.clone()) + apply(negative, upper.clone());
        let own = self.lambda.clone().abs() * slack_of(nonzero(&self.lambda), terms);
        let magnitude = match rounding.pending {
            Some(pending) => pending + own,
            None => own,
        };
        let error = rounding.error
            + apply(magnitude, lower.abs().max_pair(upper.abs()))
            + self.bias.abs() * slack(2);
        value - up(error, terms + 2) - UNDERFLOW
    }

    /// The chord where the coefficient is negative, the lower line `alpha z` where positive;
    /// stable neurons pass through (active) or vanish (inactive).
    /// A split's Lagrangian term, where given, is added to the function over the
    /// pre-activations.
    fn relu(self, lines: ReluLines) -> Self {
        let ReluLines {
            lower,
            upper,
            alpha,
            split,
        } = lines;
        let relax = ReluRelaxation::new(&lower, &upper);
        let intercept = relax.intercept(lower.clone());
        let unstable = relax.unstable.float();
        let slope =
            alpha * unstable.clone().unsqueeze_dim(1) + relax.active.float().unsqueeze_dim(1);
        let positive = relu(self.lambda.clone());
        let negative = self.lambda.clone() - positive.clone();
        let bias = self.bias.clone() + apply(negative.clone(), intercept.clone());
        let relaxed = positive * slope + negative.clone() * relax.slope.unsqueeze_dim(1);
        // with a split term the sum rounds once more, and may cancel: its rounding scales
        // with both terms' magnitudes
        let (lambda, magnitude) = match split {
            Some(split) => (relaxed.clone() + split.clone(), relaxed.abs() + split.abs()),
            None => (relaxed.clone(), relaxed.abs()),
        };
        let rounding = self.rounding.map(|r| {
            Self::relu_rounding(
                r,
                magnitude,
                &self.bias,
                negative.abs(),
                &lower,
                &upper,
                intercept,
                unstable,
            )
        });
        Self {
            lambda,
            bias,
            rounding,
            trace: self.trace,
        }
    }

    /// What a ReLU's step costs a float-sound pass, all of it concretised (the neurons `z` in
    /// `[l, u]`, the ReLU's output in `[0, relu(u)]`): the pending error at `relu(u)`; the
    /// chords' dip below ReLU (`gamma_2 (|l| + |u|)` on unstable neurons) where the coefficient
    /// is negative; the rounding of the products `lambda slope` (`gamma_1 |lambda'| |z|`) and of
    /// the bias's sum (`gamma_(d+1) |lambda^-| |intercept|`, and one rounding of `|bias|`);
    /// `magnitude` bounds `|lambda'|`'s terms.
    #[allow(clippy::too_many_arguments)]
    fn relu_rounding(
        rounding: Rounding,
        magnitude_of_lambda: Tensor<3>,
        bias: &Tensor<2>,
        negative: Tensor<3>,
        lower: &Tensor<2>,
        upper: &Tensor<2>,
        intercept: Tensor<2>,
        unstable: Tensor<2>,
    ) -> Rounding {
        let d = lower.dims()[1];
        let dip = (lower.clone().abs() + upper.clone().abs()) * unstable * slack(2);
        let magnitude = lower.clone().abs().max_pair(upper.clone().abs());
        let mut error = apply(negative.clone(), dip)
            + apply(magnitude_of_lambda, magnitude) * slack(1)
            + apply(negative, intercept.clone().abs()) * slack_of(nonzero(&intercept), d)
            + bias.clone().abs() * slack(1);
        if let Some(pending) = rounding.pending {
            error = error + apply(pending, relu(upper.clone()));
        }
        Rounding {
            error: rounding.error + up(error, d + 4),
            pending: None,
            input: None,
        }
    }

    fn channel_affine(self, scale: Tensor<2>, shift: Tensor<2>) -> Self {
        let rounding = self.rounding.map(|r| {
            let scale = scale.clone().abs();
            let forwards = |m: Tensor<2>| up(m * scale.clone(), 1);
            let backwards = |a: Tensor<3>| a * scale.clone().unsqueeze_dim(0);
            r.affine(
                &self.lambda,
                &self.bias,
                1,
                shift.clone().abs(),
                forwards,
                backwards,
            )
        });
        let bias = self.bias + apply(self.lambda.clone(), shift);
        Self {
            lambda: self.lambda * scale.unsqueeze_dim(0),
            bias,
            rounding,
            trace: self.trace,
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
        let pending = self.rounding.as_ref().and_then(|r| r.pending.clone());
        let path = self.layers(&block.path, input, None, relus)?;
        // the block's output is path + skip: its pending error applies to each
        let skip = Self {
            lambda,
            bias: path.bias,
            rounding: path.rounding.as_ref().map(|r| Rounding {
                error: r.error.clone(),
                pending,
                input: None,
            }),
            trace: None,
        };
        let skip = match &block.skip {
            Some(conv) => skip.layers(&[Layer::Conv2d(conv.clone())], input, None, relus)?,
            None => skip,
        };
        let lambda = path.lambda + skip.lambda;
        let rounding = path.rounding.zip(skip.rounding).map(|(p, s)| {
            let own = lambda.clone().abs() * slack(2);
            let pending = [p.pending, s.pending]
                .into_iter()
                .flatten()
                .fold(own, |a, b| a + b);
            Rounding {
                error: s.error,
                pending: Some(up(pending, 4)),
                input: None,
            }
        });
        Ok(Self {
            lambda,
            bias: skip.bias,
            rounding,
            trace: path.trace,
        })
    }
}

/// A bound on the magnitude of the output of `before` (the layers in front of the current one,
/// whose input's magnitude is at most `input` where known): `relu(u)` if the last of them but
/// flattens is a ReLU (whose lines are then the last of `relus`), `input` if there is none,
/// unknown otherwise.
fn magnitude_after(
    before: &[Layer],
    relus: &[ReluLines],
    input: Option<&Tensor<2>>,
) -> Option<Tensor<2>> {
    match before
        .iter()
        .rev()
        .find(|l| !matches!(l, Layer::Flatten(_)))
    {
        None => input.cloned(),
        Some(Layer::Relu(_)) => relus.last().map(|lines| relu(lines.upper.clone())),
        Some(_) => None,
    }
}
