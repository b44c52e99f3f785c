//! The symbolic interval domain with symbolic linear relaxation (MixTrain's domain).
//!
//! Every neuron is an affine function of independent symbols in `[-1, 1]`: one per input value
//! and one per ReLU neuron (its error symbol, scaled by `mu`, zero where the neuron is stable).
//! The symbols are grouped in *sources* (the input, then one per ReLU layer), and each source's
//! coefficients are stored in the cheapest exact form ([`sources`]: lazy chains of
//! convolutions, their composed patches, or dense rows).
//!
//! At a residual block every source is made dense, so that the path and the skip extend the
//! same rows over the same symbols and the block's sum adds them row by row (the path's own
//! error symbols are appended). On a ResNet the symbolic domain is therefore the authors'
//! dense forward pass from the first block on, with its memory: `[n, symbols, features]` per
//! source.
//!
//! On a float-sound input set a [`Drift`] rides along: whatever order the lazy sources
//! multiply their chains in, a coefficient computed as a product of layers is within
//! `gamma_K` (`K` the chain's summed dot lengths) of the exact product, in proportion to the
//! product of the layers' magnitudes; so one forward pass of magnitudes (`|W| m + |b|`, a
//! vector per point, cheap beside the coefficients) bounds how far every neuron's exact value
//! may lie from its computed form, and every concretisation widens by it.

mod patches;
mod sources;
#[cfg(test)]
mod tests;

use burn::tensor::Device;
use burn::tensor::{IndexingUpdateOp, Int, Tensor};
use mixtrain_nn::{Conv2d, Linear, Network};

use self::patches::TwoConv;
use self::sources::{Adjoints, Coeffs, Op, Source, SourceRows, has_patch_rule};
use crate::domain::forward;
use crate::numeric::{ReluRelaxation, apply, conv_abs, flat_channels, fold_spec, image};
use crate::rounding::{UNDERFLOW, slack, up};
use crate::{BoundsError, Domain, InputSet, Margins};

/// Each neuron is `z_j = c_j + sum_i A[i, j] r_i eta_i + sum_k E[k, j] mu_k xi_k` with every
/// `eta_i, xi_k` in `[-1, 1]`: `A` carries the input dependence, `E` one row per error symbol
/// introduced by an unstable ReLU. Affine layers are exact; an unstable ReLU (`l < 0 < u`) is
/// relaxed to `lambda z + mu +- mu` with `lambda = u / (u - l)`, `mu = -lambda l / 2`, which
/// keeps the correlations that intervals lose. Margins are formed symbolically before
/// concretising, so terms shared by `z_y` and `z_j` cancel.
#[derive(Clone, Debug)]
pub struct Symbolic {
    /// `[n, features]`.
    centre: Tensor<2>,
    /// Every bias-free step since the input, in order: the tape the lazy sources read.
    ops: Vec<Op>,
    sources: Vec<Source>,
    /// On a float-sound input set, how far rounding may have moved the representation.
    drift: Option<Drift>,
}

/// A float-sound pass's rounding so far: for every input of the box, each neuron's exact value
/// lies within `deviation` (`[n, features]`) of the form as computed, exactly evaluated at
/// some symbols in `[-1, 1]`, and the form's terms (centre, coefficients times radii) sum in
/// absolute value to at most `magnitude`; a concretisation sums at most `symbols` terms.
#[derive(Clone, Debug)]
struct Drift {
    deviation: Tensor<2>,
    magnitude: Tensor<2>,
    symbols: usize,
}

impl Drift {
    /// Through an affine layer `z = A x + b` with sums of `n` terms: `abs` maps magnitudes
    /// `m` to `|A| m`, `bias` is `|b|`. The deviation is carried by `|A|` and grows by the
    /// rounding of the layer's products, `slack(n) (|A| m + |b|)`.
    fn affine(self, n: usize, abs: impl Fn(Tensor<2>) -> Tensor<2>, bias: Tensor<2>) -> Self {
        let s = slack(n);
        // the centre's bias is added once: one rounding
        let deviation = abs(self.deviation + self.magnitude.clone() * s) + bias.clone() * slack(1);
        Self {
            deviation: up(deviation, n + 2),
            magnitude: up(abs(self.magnitude) + bias, n),
            symbols: self.symbols,
        }
    }

    /// How far a concretisation of the form may be from the exact bounds: the deviation, and
    /// the rounding of summing the terms.
    fn widening(&self) -> Tensor<2> {
        self.deviation.clone() + self.magnitude.clone() * slack(self.symbols + 2) + UNDERFLOW
    }
}

impl Domain for Symbolic {
    const NAME: &'static str = "symbolic";

    /// Float sound, the centre and radius (rounded from the corners) widen like interval's.
    fn input(set: &InputSet) -> Self {
        let (centre, radius) = set.centre_radius();
        let drift = set.float_sound.then(|| {
            let magnitude = centre.clone().abs() + radius.clone();
            Drift {
                deviation: magnitude.clone() * slack(1),
                magnitude: up(magnitude, 1),
                symbols: centre.dims()[1] + 1,
            }
        });
        Self {
            centre,
            ops: Vec::new(),
            sources: vec![Source::chain(radius, 0)],
            drift,
        }
    }

    fn channel_affine(self, scale: Tensor<2>, shift: Tensor<2>) -> Result<Self, BoundsError> {
        let centre = self.centre.clone() * scale.clone() + shift.clone();
        let magnitude = scale.clone().abs();
        let drift = self
            .drift
            .clone()
            .map(|d| d.affine(2, |m| m * magnitude.clone(), shift.abs()));
        Ok(Self {
            drift,
            ..self.append(centre, Op::Scale(scale))
        })
    }

    fn conv2d(
        self,
        layer: &Conv2d,
        input: [usize; 3],
        output: [usize; 3],
    ) -> Result<Self, BoundsError> {
        let centre = layer
            .forward(image(self.centre.clone(), input))
            .flatten(1, 3);
        let op = Op::Conv {
            conv: layer.clone(),
            input,
            output,
        };
        let drift = self.drift.clone().map(|d| {
            let [_, ci, k, _] = layer.weight.val().dims();
            let abs = |m: Tensor<2>| conv_abs(m, layer, input);
            d.affine(
                ci * k * k + 1,
                abs,
                flat_channels(layer.bias.val().abs(), output),
            )
        });
        Ok(Self {
            drift,
            ..self.append(centre, op)
        })
    }

    /// Every source's rows over the layer's outputs, chains by one backward walk of the tape.
    fn linear(self, layer: &Linear) -> Result<Self, BoundsError> {
        let centre = layer.forward(self.centre.clone());
        let drift = self.drift.clone().map(|d| {
            let weight = layer.weight.val().abs();
            let n = weight.dims()[0] + 1;
            let bias = layer.bias.val().abs().unsqueeze_dim(0);
            d.affine(n, |m| m.matmul(weight.clone()), bias)
        });
        let rows = layer.weight.val().transpose().unsqueeze_dim(0); // [1, out, d]
        let sources = self
            .back_substitute(rows)
            .into_iter()
            .map(|source| Source {
                radius: source.radius,
                coeffs: Coeffs::Dense(source.rows.swap_dims(1, 2)),
                symbols: source.symbols,
            })
            .collect();
        Ok(Self {
            centre,
            ops: self.ops,
            sources,
            drift,
        })
    }

    /// `lambda z + mu +- mu`, with `mu` half the upper line's intercept: the slopes scale every
    /// source, and the unstable neurons' `mu` are a new source of error symbols. Float sound,
    /// the deviation scales by `lambda` and grows by the products' rounding and by the chord's
    /// dip below ReLU (its slope and intercept rounded: `gamma_2 (|l| + |u|)`).
    fn relu(self, lower: Tensor<2>, upper: Tensor<2>) -> Result<Self, BoundsError> {
        let relax = ReluRelaxation::new(&lower, &upper);
        let mu = relax.intercept(lower.clone()) * 0.5;
        let lambda = relax.slope;
        let drift = self.drift.clone().map(|d| {
            let dip = (lower.abs() + upper.abs()) * relax.unstable.float() * slack(2);
            let scaled = lambda.clone() * d.magnitude;
            Drift {
                deviation: up(
                    lambda.clone() * d.deviation + scaled.clone() * slack(2) + dip,
                    4,
                ),
                magnitude: up(scaled + mu.clone() * 2.0, 2),
                symbols: d.symbols + lambda.dims()[1],
            }
        });
        let centre = lambda.clone() * self.centre.clone() + mu.clone();
        let mut next = self.append(centre, Op::Scale(lambda));
        next.sources.push(Source::chain(mu, next.ops.len()));
        next.drift = drift;
        Ok(next)
    }

    /// Both branches start from dense rows over the same symbols (same radii, same compaction),
    /// so that the symbols of the block input stay aligned: the lazy chains cannot be shared
    /// by two tapes. This is the authors' representation; it costs a dense coefficient tensor
    /// per source (`[n, symbols, features]`) through the block, the memory the trainer's budget
    /// check accounts for.
    fn branch(self) -> Result<(Self, Self), BoundsError> {
        let sources = self
            .sources
            .into_iter()
            .map(|s| s.densify(&self.ops))
            .collect();
        let dense = Self { sources, ..self };
        Ok((dense.clone(), dense))
    }

    /// Adds the rows of the sources both branches share; the error symbols the path's ReLUs
    /// introduced are the path's alone and are appended (dense, as the path's tape ends here).
    fn residual_sum(self, skip: Self) -> Result<Self, BoundsError> {
        let ops = self.ops;
        let mut sources: Vec<Source> = self.sources.into_iter().map(|s| s.densify(&ops)).collect();
        for (path, skip) in sources.iter_mut().zip(skip.sources) {
            let (Coeffs::Dense(a), Coeffs::Dense(b)) = (&path.coeffs, skip.coeffs) else {
                unreachable!("branch() and densify() leave every source dense")
            };
            let [ba, d_s, d] = a.dims();
            let n = ba.max(b.dims()[0]);
            path.coeffs = Coeffs::Dense(a.clone().expand([n, d_s, d]) + b.expand([n, d_s, d]));
        }
        let drift = self.drift.zip(skip.drift).map(|(p, s)| Drift {
            deviation: up(
                p.deviation + s.deviation + (p.magnitude.clone() + s.magnitude.clone()) * slack(2),
                4,
            ),
            magnitude: up(p.magnitude + s.magnitude, 2),
            symbols: p.symbols.max(s.symbols),
        });
        Ok(Self {
            centre: self.centre + skip.centre,
            ops,
            sources,
            drift,
        })
    }

    fn margins(self, last: &Linear, labels: &Tensor<1, Int>) -> Result<Tensor<2>, BoundsError> {
        Ok(self.margin_rows(last, labels).0)
    }

    fn concretize(&self) -> (Tensor<2>, Tensor<2>) {
        let spread = self
            .sources
            .iter()
            .map(|s| s.spread(&self.ops))
            .reduce(|a, b| a + b)
            .unwrap_or_else(|| self.centre.zeros_like());
        let spread = match &self.drift {
            Some(drift) => spread + drift.widening(),
            None => spread,
        };
        (
            self.centre.clone() - spread.clone(),
            self.centre.clone() + spread,
        )
    }

    fn device(&self) -> Device {
        self.centre.device()
    }
}

impl Symbolic {
    /// Appends a bias-free step to every source. A leading scaling of a source's symmetric
    /// symbols only rescales them; a chain that loses its patch rule is made dense; the second
    /// convolution of a two-convolution chain composes its patches.
    fn append(mut self, centre: Tensor<2>, op: Op) -> Self {
        let at = self.ops.len();
        self.ops.push(op.clone());
        let ops = &self.ops;
        let sources = self
            .sources
            .into_iter()
            .map(|source| match (source.coeffs, &op) {
                (Coeffs::Dense(a), op) => Source {
                    coeffs: Coeffs::Dense(sources::chain_forward(a, std::slice::from_ref(op))),
                    ..source
                },
                (Coeffs::Chain { start, .. }, Op::Scale(s)) if start == at => {
                    Source::chain(source.radius * s.clone().abs(), at + 1)
                }
                (Coeffs::Chain { start, patches }, _) if has_patch_rule(&ops[start..]) => {
                    let patches = match &ops[start..] {
                        [
                            Op::Conv { conv: a, input, .. },
                            Op::Scale(slopes),
                            Op::Conv {
                                conv: b,
                                input: mid,
                                output,
                            },
                        ] => {
                            let n = source.radius.dims()[0];
                            let slopes = slopes.clone().expand([n as i32, -1]);
                            let geometry = TwoConv::new(a, *input, b, *mid, *output);
                            Some(geometry.compose(a, slopes, b))
                        }
                        _ => patches,
                    };
                    Source {
                        coeffs: Coeffs::Chain { start, patches },
                        ..source
                    }
                }
                (coeffs @ Coeffs::Chain { .. }, _) => Source { coeffs, ..source }.densify(ops),
            })
            .collect();
        Self {
            centre,
            ops: self.ops,
            sources,
            drift: self.drift,
        }
    }

    /// Rows over the current neurons (`[n or 1, m, d]`) expressed over each source's symbols,
    /// with the matching radii, one [`SourceRows`] per source: back-substitution.
    fn back_substitute(&self, rows: Tensor<3>) -> Vec<SourceRows> {
        let mut adjoints = Adjoints::new(&self.ops, rows.clone());
        self.sources
            .iter()
            .map(|source| source.back_substitute(&self.ops, &rows, &mut adjoints))
            .collect()
    }

    /// The margins' lower bounds `[n, classes]` and their equations' rows on every source.
    /// Float sound, the rows `w` (one rounding each, then `d` more terms on every chain) carry
    /// the deviation and the magnitude; the bound widens by both.
    fn margin_rows(&self, last: &Linear, labels: &Tensor<1, Int>) -> (Tensor<2>, Vec<SourceRows>) {
        let (w, b) = fold_spec(last, labels); // [n, classes, d], [n, classes]
        let mut lower = apply(w.clone(), self.centre.clone()) + b.clone();
        if let Some(drift) = &self.drift {
            let d = w.dims()[2];
            let s = slack(d + drift.symbols + 3);
            let magnitude = drift.deviation.clone() + drift.magnitude.clone() * s;
            let widening = apply(w.clone().abs(), magnitude) + b.abs() * slack(2);
            lower = lower - up(widening, d + 2) - UNDERFLOW;
        }
        let rows = self.back_substitute(w);
        for source in &rows {
            lower = lower - apply(source.rows.clone().abs(), source.radius.clone());
        }
        (lower, rows)
    }
}

/// The symbolic domain's margin equations, seen from the input.
///
/// With `x = c + r eta` (`c`, `r` the box's centre and radius, `eta` in `[-1, 1]` per pixel),
/// each margin's lower equation is `z_y - z_j >= b_j + sum_i input[j, i] eta_i - e_j` for every
/// `x` of the box, where `e_j` collects the ReLU error symbols. `input[j, i]` is how much
/// pixel `i` moving across the box moves margin `j`: the *interval gradient* of the interval
/// attack, which steps against its sign to lower the worst margin.
#[derive(Clone, Debug)]
pub struct MarginEquations {
    /// The margins' lower bounds, the same as [`margins`](crate::margins) in the
    /// [`Symbolic`] domain gives.
    pub margins: Margins,
    /// `[n, classes, c * h * w]`, zero on the label's own row and on pixels of zero radius.
    pub input: Tensor<3>,
}

/// Bounds the margins of `labels` over `set` in the [`Symbolic`] domain and returns their
/// equations' input coefficients with them.
pub fn margin_equations(
    net: &Network,
    set: &InputSet,
    labels: Tensor<1, Int>,
) -> Result<MarginEquations, BoundsError> {
    let (state, last) = forward::<Symbolic>(net, set, &labels, |_, _| {})?;
    let (lower, mut rows) = state.margin_rows(last, &labels);
    // the input is always the first source
    let input = rows.swap_remove(0);
    let [n, c, h, w] = set.lower.dims();
    let coeffs = input.rows * input.radius.unsqueeze_dim(1); // [n, classes, d_s]
    let input = match input.symbols {
        None => coeffs,
        Some(index) => {
            let [_, classes, k] = coeffs.dims();
            Tensor::zeros([n, classes, c * h * w], &coeffs.device()).scatter(
                2,
                index.unsqueeze_dim::<3>(1).expand([n, classes, k]),
                coeffs,
                IndexingUpdateOp::Add,
            )
        }
    };
    Ok(MarginEquations {
        margins: Margins { lower, labels },
        input,
    })
}
