//! The symbolic interval domain with symbolic linear relaxation (MixTrain's domain).
//!
//! Every neuron is an affine function of independent symbols in `[-1, 1]`: one per input value
//! and one per ReLU neuron (its error symbol, scaled by `mu`, zero where the neuron is stable).
//! The symbols are grouped in *sources* (the input, then one per ReLU layer), and each source's
//! coefficients are stored in the cheapest exact form:
//!
//! - a **chain** of the bias-free layers met since the source (convolutions and diagonal
//!   scalings by ReLU slopes or normalisation), applied lazily. Convolutions are local, so the
//!   coefficients a chain implies are patches: a neuron after two convolutions depends on a
//!   `10 x 10` window of the `28 x 28` input, not on all 784 pixels. When a chain's second
//!   convolution arrives its patches are composed ([`TwoConv::compose`]); the bounds in front
//!   of the next ReLU and the next linear layer's rows both read them, never dense rows.
//! - **dense** rows `[b, d_s, d]` once a linear layer has mixed every position: the layer's `out`
//!   rows are carried back to each source (which costs `out` rows instead of `d_s`): through the
//!   patches for a two-convolution chain, through the columns of the live symbols only for a
//!   one-convolution chain with few of them (a ReLU's unstable neurons), by transposed
//!   convolutions otherwise. Only the rows of symbols that are nonzero for some point of the
//!   batch are kept (E stays compact).
//! - A chain with three or more convolutions (the large models) has no patch rule here; it is
//!   made dense from the identity, the classic forward pass.
//! - At a residual block every source is made dense, so that the path and the skip extend the
//!   same rows over the same symbols and the block's sum adds them row by row (the path's own
//!   error symbols are appended). On a ResNet the symbolic domain is therefore the authors'
//!   dense forward pass from the first block on, with its memory: `[n, symbols, features]`
//!   per source.
//!
//! Cost on `mnist_small` per image, in multiply-adds (the dense pass needs 0.9-1.2 GFLOP,
//! dominated by the second convolution applied to 784 input rows):
//!
//! | step | MAC |
//! |---|---|
//! | conv2's patches, per tap of conv2 (`positions c2 kb^2 c1 c0 ka^2`) | 6.4 M |
//! | conv2's bounds from the patches (`|patch|` against the radius under each window) | 0.16 M |
//! | fc1's 100 rows on the input, through the patches (`100 c2 positions r^2`) | 15.7 M |
//! | fc1's rows on conv1's error symbols: the rows times their columns of conv2's matrix (`100 x 1568 x k`, `k` about 34 unstable neurons, 1% of 3136, at eps 0.1) | 5.3 M |
//! | the margins' 9 rows on every source | 0.8 M |
//! | total | **about 28 M (0.06 GFLOP)** |
//!
//! The input's part is the floor of this representation: the fold of fc1's rows touches each of
//! the `positions x c2 x r^2` patch entries once per row, and the patches are `kb^2 / r^2` of the
//! dense kernel-of-kernels product (40 M). The error rows could cost 0.4 M (128 nonzeros per
//! column) as a gather, but its operand grows with `m x co` per tap and outgrew memory at batch
//! 50; the product keeps a `[1568, k]` operand per point.
//!
//! Measured (criterion, 2 cores, batch 5): 3.1 ms per image forward, 8.0 ms forward and
//! backward (the k = 5 robust loss: 39.8 ms), against 30-38 ms forward for the dense pass and
//! 3.6 / 17 ms for this module's previous form (transposed convolutions for fc1's rows, 90 M
//! MAC). The arithmetic is about a quarter of that time at the machine's matrix-product rate;
//! the rest is memory traffic of the intermediates (the per-tap kernels, `[256, 32 x 49]` per
//! image, and the pulled windows, `[49 x 100, 100]`) and burn-flex's allocation of every output.

use burn::tensor::Device;
use burn::tensor::module::conv2d;
use burn::tensor::{IndexingUpdateOp, Int, Tensor};
use mixtrain_nn::{Conv2d, Linear, Network};

use crate::domain::{Domain, Layout, ReluRelaxation, apply, conv_adjoint, flat_channels};
use crate::domain::{fold_spec, forward, image};
use crate::patches::{TwoConv, conv_adjoint_at};
use crate::{BoundsError, InputSet, Margins};

/// A bias-free step between a source and the current layer.
#[derive(Clone, Debug)]
enum Op {
    /// Multiplies feature `j` by `s[., j]` (`[1 or n, d]`): ReLU slopes, a normalisation.
    Scale(Tensor<2>),
    /// A convolution (its weights only) from the given input layout.
    Conv(Conv2d, [usize; 3]),
}

#[derive(Clone, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per source, a handful per state: boxing would only add indirection"
)]
enum Coeffs {
    /// The steps `ops[start..]` of the domain's tape; kept only while [`has_patch_rule`] holds.
    /// A later source's chain is a suffix of an earlier one's, so one backward walk of the tape
    /// serves them all. A chain with two convolutions carries their composed `patches` (see
    /// [`TwoConv::compose`]), made when the second convolution arrives: the bounds in front of
    /// the next ReLU and the rows of the next linear layer both read them.
    Chain {
        start: usize,
        patches: Option<Tensor<4>>,
    },
    /// `[b, d_s, d]`: row `i` holds symbol `i`'s coefficients; `b = 1` when the batch shares them.
    Dense(Tensor<3>),
}

/// A group of symbols: the current neurons depend on them through `coeffs`, each scaled by
/// `radius` (`[n, d_s]`: the input box's radius, or a ReLU's `mu`).
#[derive(Clone, Debug)]
struct Source {
    radius: Tensor<2>,
    coeffs: Coeffs,
    /// `[n, d_s]`: which of the source's original symbols each kept one is, once compacted
    /// ([`compact`]); `None` while every symbol is kept. Only [`margin_equations`] needs it, to
    /// put the input coefficients back on their pixels.
    symbols: Option<Tensor<2, Int>>,
}

/// One of a source's rows pulled back onto its symbols.
struct Pulled {
    /// `[b, m, d_s]`.
    rows: Tensor<3>,
    /// `[n, d_s]`.
    radius: Tensor<2>,
    symbols: Option<Tensor<2, Int>>,
}

/// Each neuron is `z_j = c_j + sum_i A[i, j] r_i eta_i + sum_k E[k, j] mu_k xi_k` with every
/// `eta_i, xi_k` in `[-1, 1]`: `A` carries the input dependence, `E` one row per error symbol
/// introduced by an unstable ReLU. Affine layers are exact; an unstable ReLU (`l < 0 < u`) is
/// relaxed to `lambda z + mu +- mu` with `lambda = u / (u - l)`, `mu = -lambda l / 2`, which
/// keeps the correlations that intervals lose. Margins are formed symbolically before
/// concretising, so terms shared by `z_y` and `z_j` cancel. See the module docs for how `A` and
/// `E` are stored.
#[derive(Clone, Debug)]
pub struct Symbolic {
    centre: Tensor<2>,
    /// Every bias-free step since the input, in order.
    ops: Vec<Op>,
    sources: Vec<Source>,
    layout: Layout,
}

/// Whether a chain's spread has a closed form here: after dropping trailing scalings, nothing,
/// one convolution, or convolution-scaling-convolution.
fn has_patch_rule(ops: &[Op]) -> bool {
    match ops {
        [rest @ .., Op::Scale(_)] => has_patch_rule(rest),
        [] | [Op::Conv(..)] | [Op::Conv(..), Op::Scale(_), Op::Conv(..)] => true,
        _ => false,
    }
}

/// The geometry of a chain that starts with convolution-scaling-convolution.
fn two_conv(ops: &[Op]) -> Option<TwoConv> {
    match ops {
        [Op::Conv(a, source), Op::Scale(_), Op::Conv(b, mid), ..] => {
            Some(TwoConv::new(a, *source, b, *mid))
        }
        _ => None,
    }
}

/// `sum_i |coefficient of symbol i| radius_i` for every current neuron, `[n, d]`; a chain with
/// two convolutions reads its `patches`.
fn chain_spread(radius: &Tensor<2>, ops: &[Op], patches: Option<&Tensor<4>>) -> Tensor<2> {
    match ops {
        [rest @ .., Op::Scale(s)] => chain_spread(radius, rest, patches) * s.clone().abs(),
        [] => radius.clone(),
        [Op::Conv(a, source)] => conv2d(
            image(radius.clone(), *source),
            a.weight.val().abs(),
            None,
            a.options(),
        )
        .flatten(1, 3),
        [Op::Conv(..), Op::Scale(_), Op::Conv(..)] => {
            two_conv(ops).expect("a two-convolution chain").spread(
                patches.expect("push() composes the patches of every two-convolution chain"),
                radius,
            )
        }
        _ => unreachable!("chains without a patch rule are made dense as they grow"),
    }
}

/// Applies a chain forwards to rows `[b, m, d_s]` (one per symbol): `[b', m, d]`.
fn chain_forward(mut rows: Tensor<3>, ops: &[Op]) -> Tensor<3> {
    for op in ops {
        rows = match op {
            Op::Scale(s) => rows * s.clone().unsqueeze_dim(1),
            Op::Conv(conv, [c, h, w]) => {
                let [b, m, _] = rows.dims();
                let out = conv2d(
                    rows.reshape([b * m, *c, *h, *w]),
                    conv.weight.val(),
                    None,
                    conv.options(),
                );
                out.reshape([b as i32, m as i32, -1])
            }
        };
    }
    rows
}

/// Carries rows over the current neurons `[b, m, d]` back through a chain: `[b', m, d_s]`.
fn chain_backward(mut rows: Tensor<3>, ops: &[Op]) -> Tensor<3> {
    for op in ops.iter().rev() {
        rows = match op {
            Op::Scale(s) => rows * s.clone().unsqueeze_dim(1),
            Op::Conv(conv, input) => conv_adjoint(rows, conv, *input),
        };
    }
    rows
}

/// The symbols worth rows: those with a nonzero radius for some point. `None` when all are;
/// otherwise each point's nonzero symbols first (`[n, k]` indices, `k` the batch maximum, at
/// least 1) and their radii (zero in the padding). One host read.
fn compact(radius: &Tensor<2>) -> Option<(Tensor<2, Int>, Tensor<2>)> {
    let [_, d] = radius.dims();
    let live = radius.clone().greater_elem(0.0);
    let count: i64 = live.clone().int().sum_dim(1).max().into_scalar();
    let k = (count as usize).max(1);
    if k == d {
        return None;
    }
    let (_, order) = live.float().sort_descending_with_indices(1);
    let index = order.narrow(1, 0, k);
    let radius = radius.clone().gather(1, index.clone());
    Some((index, radius))
}

/// Each point's columns `index` (`[n, k]`) of `rows` (`[b, m, d]`, `b` 1 or `n`): `[n, m, k]`.
/// One row gather of the transposed rows, rather than a gather with an index per element.
fn columns(rows: Tensor<3>, index: Tensor<2, Int>) -> Tensor<3> {
    let [n, k] = index.dims();
    let [b, m, d] = rows.dims();
    let index = if b == 1 {
        index
    } else {
        let offsets = Tensor::<1, Int>::arange(0..n as i64, &index.device()).mul_scalar(d as i64);
        index + offsets.unsqueeze_dim(1)
    };
    rows.swap_dims(1, 2)
        .reshape([b * d, m])
        .select(0, index.reshape([n * k]))
        .reshape([n, k, m])
        .swap_dims(1, 2)
}

/// Rows `[n, k, d_s]` selecting each point's symbols `index` (`[n, k]`).
fn one_hot(index: Tensor<2, Int>, d_s: usize) -> Tensor<3> {
    let [n, k] = index.dims();
    let device = index.device();
    Tensor::<3>::zeros([n, k, d_s], &device).scatter(
        2,
        index.unsqueeze_dim(2),
        Tensor::ones([n, k, 1], &device),
        IndexingUpdateOp::Assign,
    )
}

impl Source {
    /// A chain source's rows (`[b, m, d_s]`, over all its symbols) restricted to the `live`
    /// symbols ([`compact`] of the radius), with their radii.
    fn compacted(&self, rows: Tensor<3>, live: Option<(Tensor<2, Int>, Tensor<2>)>) -> Pulled {
        match live {
            None => Pulled {
                rows,
                radius: self.radius.clone(),
                symbols: None,
            },
            Some((index, radius)) => Pulled {
                rows: columns(rows, index.clone()),
                radius,
                symbols: Some(index),
            },
        }
    }

    /// The same source with dense rows: a chain applied forwards to the identity over the
    /// symbols that are nonzero somewhere (the classic forward pass).
    fn densify(self, ops: &[Op]) -> Source {
        let Coeffs::Chain { start, .. } = self.coeffs else {
            return self;
        };
        let d_s = self.radius.dims()[1];
        let (identity, radius, symbols) = match compact(&self.radius) {
            None => (
                Tensor::<2>::eye(d_s, &self.radius.device()).unsqueeze_dim(0),
                self.radius,
                None,
            ),
            Some((index, radius)) => (one_hot(index.clone(), d_s), radius, Some(index)),
        };
        Source {
            radius,
            coeffs: Coeffs::Dense(chain_forward(identity, &ops[start..])),
            symbols,
        }
    }

    /// `[n, d]`.
    fn spread(&self, ops: &[Op]) -> Tensor<2> {
        match &self.coeffs {
            Coeffs::Chain { start, patches } => {
                chain_spread(&self.radius, &ops[*start..], patches.as_ref())
            }
            Coeffs::Dense(a) => {
                let [b, d_s, d] = a.dims();
                if b == 1 {
                    self.radius
                        .clone()
                        .matmul(a.clone().reshape([d_s, d]).abs())
                } else {
                    self.radius
                        .clone()
                        .unsqueeze_dim::<3>(1)
                        .matmul(a.clone().abs())
                        .squeeze_dim::<2>(1)
                }
            }
        }
    }
}

impl Symbolic {
    /// Appends a bias-free step to every source. A leading scaling of a source's symmetric
    /// symbols only rescales them; a chain that loses its patch rule is made dense.
    fn push(mut self, centre: Tensor<2>, layout: Layout, op: Op) -> Self {
        let at = self.ops.len();
        self.ops.push(op.clone());
        let ops = &self.ops;
        let sources = self
            .sources
            .into_iter()
            .map(|source| match (source.coeffs, &op) {
                (Coeffs::Dense(a), op) => Source {
                    coeffs: Coeffs::Dense(chain_forward(a, std::slice::from_ref(op))),
                    ..source
                },
                (Coeffs::Chain { start, .. }, Op::Scale(s)) if start == at => Source {
                    radius: source.radius * s.clone().abs(),
                    coeffs: Coeffs::Chain {
                        start: at + 1,
                        patches: None,
                    },
                    symbols: None,
                },
                (Coeffs::Chain { start, patches }, _) if has_patch_rule(&ops[start..]) => {
                    let patches = match &ops[start..] {
                        [Op::Conv(a, input), Op::Scale(slopes), Op::Conv(b, mid)] => {
                            let n = source.radius.dims()[0];
                            let slopes = slopes.clone().expand([n as i32, -1]);
                            Some(TwoConv::new(a, *input, b, *mid).compose(a, slopes, b))
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
            layout,
        }
    }

    /// Rows over the current neurons (`[n or 1, m, d]`) expressed over each source's symbols,
    /// with the matching radii, one [`Pulled`] per source. Chains are carried back along the
    /// tape by a [`Walk`] and compacted to the symbols that are nonzero somewhere; a
    /// two-convolution chain goes through its patches, and a one-convolution chain with few
    /// live symbols (a ReLU's unstable neurons) through the columns of those symbols alone.
    fn pull(&self, rows: Tensor<3>) -> Vec<Pulled> {
        let mut walk = Walk::new(&self.ops, rows.clone());
        let [rb, m, d] = rows.dims();
        self.sources
            .iter()
            .map(|source| match &source.coeffs {
                Coeffs::Chain { start, patches } => {
                    source.pull_chain(&self.ops, *start, patches.as_ref(), &mut walk)
                }
                Coeffs::Dense(a) => {
                    let [b, d_s, _] = a.dims();
                    let rows = if b == 1 {
                        rows.clone()
                            .reshape([rb * m, d])
                            .matmul(a.clone().reshape([d_s, d]).transpose())
                            .reshape([rb, m, d_s])
                    } else {
                        rows.clone().matmul(a.clone().swap_dims(1, 2))
                    };
                    Pulled {
                        rows,
                        radius: source.radius.clone(),
                        symbols: source.symbols.clone(),
                    }
                }
            })
            .collect()
    }
}

/// Rows carried back along the tape: [`Walk::at`]`(i)` is the rows over the inputs of step `i`
/// (a scaling, or a transposed convolution per convolution), each step computed once and shared
/// by every chain that passes it: a later source's chain is a suffix of an earlier one's.
struct Walk<'a> {
    ops: &'a [Op],
    back: Vec<Option<Tensor<3>>>,
}

impl<'a> Walk<'a> {
    fn new(ops: &'a [Op], rows: Tensor<3>) -> Self {
        let mut back = vec![None; ops.len() + 1];
        back[ops.len()] = Some(rows);
        Self { ops, back }
    }

    fn at(&mut self, i: usize) -> Tensor<3> {
        if let Some(rows) = &self.back[i] {
            return rows.clone();
        }
        let rows = chain_backward(self.at(i + 1), &self.ops[i..=i]);
        self.back[i] = Some(rows.clone());
        rows
    }
}

/// Whether the columns of `k` input neurons of `conv` ([`conv_adjoint_at`]) cost at most half
/// of the whole transposed convolution, in multiply-adds and in memory: `k` against `ci
/// kernel^2` per output of the convolution.
fn few_enough(conv: &Conv2d, input: [usize; 3], k: usize) -> bool {
    let [ci, _, _] = input;
    let kernel = conv.weight.val().dims()[2];
    2 * k <= ci * kernel * kernel
}

impl Source {
    /// This chain source's rows: `ops[start..]` carried back, then compacted.
    fn pull_chain(
        &self,
        ops: &[Op],
        start: usize,
        patches: Option<&Tensor<4>>,
        walk: &mut Walk,
    ) -> Pulled {
        let chain = &ops[start..];
        let scalings = chain
            .iter()
            .rev()
            .take_while(|op| matches!(op, Op::Scale(_)))
            .count();
        let live = compact(&self.radius);
        match (&chain[..chain.len() - scalings], patches, live) {
            ([Op::Conv(..), Op::Scale(_), Op::Conv(..)], Some(patches), live) => {
                let geometry = two_conv(chain).expect("two convolutions");
                self.compacted(geometry.pull(patches, walk.at(start + 3)), live)
            }
            ([Op::Conv(conv, input)], _, Some((index, radius)))
                if few_enough(conv, *input, index.dims()[1]) =>
            {
                Pulled {
                    rows: conv_adjoint_at(walk.at(start + 1), conv, *input, index.clone()),
                    radius,
                    symbols: Some(index),
                }
            }
            (_, _, live) => self.compacted(walk.at(start), live),
        }
    }
}

impl Symbolic {
    /// The margins' lower bounds `[n, classes]` and their equations' rows on every source.
    fn margin_rows(&self, last: &Linear, labels: &Tensor<1, Int>) -> (Tensor<2>, Vec<Pulled>) {
        let (w, b) = fold_spec(last, labels); // [n, classes, d], [n, classes]
        let mut lower = apply(w.clone(), self.centre.clone()) + b;
        let pulled = self.pull(w);
        for p in &pulled {
            lower = lower - apply(p.rows.clone().abs(), p.radius.clone());
        }
        (lower, pulled)
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
    let (state, last) = forward::<Symbolic>(net, set, |_, _| {})?;
    let (lower, pulled) = state.margin_rows(last, &labels);
    let input = pulled
        .into_iter()
        .next()
        .expect("the input is always the first source");
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

impl Domain for Symbolic {
    const NAME: &'static str = "symbolic";

    fn input(set: &InputSet) -> Self {
        let [_, c, h, w] = set.lower.dims();
        let (centre, radius) = set.centre_radius();
        Self {
            centre,
            ops: Vec::new(),
            sources: vec![Source {
                radius,
                coeffs: Coeffs::Chain {
                    start: 0,
                    patches: None,
                },
                symbols: None,
            }],
            layout: Layout::Image([c, h, w]),
        }
    }

    fn channel_affine(self, scale: Tensor<1>, shift: Tensor<1>) -> Result<Self, BoundsError> {
        let (scale, shift) = (
            flat_channels(scale, self.layout),
            flat_channels(shift, self.layout),
        );
        let centre = self.centre.clone() * scale.clone() + shift;
        let layout = self.layout;
        Ok(self.push(centre, layout, Op::Scale(scale)))
    }

    fn conv2d(self, layer: &Conv2d) -> Result<Self, BoundsError> {
        let Layout::Image(shape) = self.layout else {
            unreachable!("Architecture::check puts convolutions on images only")
        };
        let out = Layout::Image(self.layout.after_conv(layer));
        let centre = layer
            .forward(image(self.centre.clone(), shape))
            .flatten(1, 3);
        Ok(self.push(centre, out, Op::Conv(layer.clone(), shape)))
    }

    fn linear(self, layer: &Linear) -> Result<Self, BoundsError> {
        let centre = layer.forward(self.centre.clone());
        let weight = layer.weight.val(); // [d, out]
        let out = weight.dims()[1];
        // every source's rows over the layer's outputs, chains by one backward walk
        let sources = self
            .pull(weight.transpose().unsqueeze_dim(0))
            .into_iter()
            .map(|pulled| Source {
                radius: pulled.radius,
                coeffs: Coeffs::Dense(pulled.rows.swap_dims(1, 2)),
                symbols: pulled.symbols,
            })
            .collect();
        Ok(Self {
            centre,
            ops: self.ops,
            sources,
            layout: Layout::Flat(out),
        })
    }

    fn relu(self, lower: Tensor<2>, upper: Tensor<2>) -> Result<Self, BoundsError> {
        let relax = ReluRelaxation::new(&lower, &upper);
        // lambda z + mu +- mu, with mu half the upper line's intercept
        let mu = relax.intercept(lower) * 0.5;
        let lambda = relax.slope;
        let centre = lambda.clone() * self.centre.clone() + mu.clone();
        let layout = self.layout;
        let mut next = self.push(centre, layout, Op::Scale(lambda));
        next.sources.push(Source {
            radius: mu,
            coeffs: Coeffs::Chain {
                start: next.ops.len(),
                patches: None,
            },
            symbols: None,
        });
        Ok(next)
    }

    fn flatten(self) -> Result<Self, BoundsError> {
        Ok(Self {
            layout: Layout::Flat(self.layout.features()),
            ..self
        })
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
        let shared = skip.sources.len();
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
        debug_assert!(sources.len() >= shared);
        Ok(Self {
            centre: self.centre + skip.centre,
            ops,
            sources,
            layout: self.layout,
        })
    }

    fn margins(self, last: &Linear, labels: &Tensor<1, Int>) -> Result<Tensor<2>, BoundsError> {
        Ok(self.margin_rows(last, labels).0)
    }

    fn layout(&self) -> Layout {
        self.layout
    }

    fn device(&self) -> Device {
        self.centre.device()
    }

    fn concretize(&self) -> (Tensor<2>, Tensor<2>) {
        let spread = self
            .sources
            .iter()
            .map(|s| s.spread(&self.ops))
            .reduce(|a, b| a + b)
            .expect("the input is always a source");
        (
            self.centre.clone() - spread.clone(),
            self.centre.clone() + spread,
        )
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
    use mixtrain_nn::{Architecture, Layer, LayerSpec, Network};

    use super::*;
    use crate::domain::conv_adjoint;

    /// Two convolutions with awkward geometry (padding, a stride that drops a row) and their
    /// layouts: `[2, 9, 9] -> [3, 5, 5] -> [4, 2, 2]`.
    fn two_convs(device: &Device) -> (Conv2d, [usize; 3], Conv2d, [usize; 3]) {
        let conv = LayerSpec::conv2d;
        let arch = Architecture {
            name: "two-convs".into(),
            input: [2, 9, 9],
            classes: 2,
            layers: vec![
                conv("a", 2, 3, 3, 2, 1),
                LayerSpec::Relu,
                conv("b", 3, 4, 2, 2, 0),
                LayerSpec::Flatten,
                LayerSpec::Linear {
                    name: "out".into(),
                    in_features: 16,
                    out_features: 2,
                },
            ],
        };
        let net = Network::init(&arch, 7, device).unwrap();
        let (Layer::Conv2d(a), Layer::Conv2d(b)) = (net.layers[0].clone(), net.layers[2].clone())
        else {
            unreachable!()
        };
        (a, [2, 9, 9], b, [3, 5, 5])
    }

    /// A state whose only source is `radius`'s symbols through `ops`: lazily (pushed step by
    /// step, as the domain's rules do), or as dense rows.
    fn state(radius: &Tensor<2>, ops: &[Op], d: usize, lazy: bool) -> Symbolic {
        let [n, d_s] = radius.dims();
        let device = radius.device();
        let centre = Tensor::zeros([n, d], &device);
        let layout = Layout::Flat(d);
        if lazy {
            let input = Symbolic {
                centre: centre.clone(),
                ops: Vec::new(),
                sources: vec![Source {
                    radius: radius.clone(),
                    coeffs: Coeffs::Chain {
                        start: 0,
                        patches: None,
                    },
                    symbols: None,
                }],
                layout,
            };
            return ops.iter().fold(input, |state, op| {
                state.push(centre.clone(), layout, op.clone())
            });
        }
        let identity = Tensor::<2>::eye(d_s, &device).unsqueeze_dim(0);
        Symbolic {
            centre,
            ops: Vec::new(),
            sources: vec![Source {
                radius: radius.clone(),
                coeffs: Coeffs::Dense(chain_forward(identity, ops)),
                symbols: None,
            }],
            layout,
        }
    }

    fn assert_close(a: Tensor<2>, b: Tensor<2>) {
        let gap: f32 = (a.clone() - b).abs().max().into_scalar();
        let scale: f32 = a.abs().max().into_scalar();
        assert!(gap <= 1e-5 * (1.0 + scale), "gap {gap} at scale {scale}");
    }

    #[test]
    fn patches_and_backward_rows_equal_the_dense_coefficients() {
        let device = Device::flex();
        let (a, source, b, mid) = two_convs(&device);
        let n = 3;
        let radius = Tensor::<2>::random([n, 162], Distribution::Uniform(0.0, 1.0), &device);
        let slopes = Tensor::<2>::random([n, 75], Distribution::Uniform(0.0, 1.0), &device);
        let ops = vec![Op::Conv(a, source), Op::Scale(slopes), Op::Conv(b, mid)];
        for (ops, d) in [(&ops[..1], 75), (&ops[..], 16)] {
            let (_, spread) = state(&radius, ops, d, true).concretize();
            let (_, expected) = state(&radius, ops, d, false).concretize();
            assert_close(spread, expected);
        }

        let rows = Tensor::<3>::random([n, 5, 16], Distribution::Uniform(-1.0, 1.0), &device);
        let pulled = state(&radius, &ops, 16, true).pull(rows.clone()).remove(0);
        let expected = state(&radius, &ops, 16, false).pull(rows).remove(0);
        assert_close(
            pulled.rows.reshape([n * 5, 162]),
            expected.rows.reshape([n * 5, 162]),
        );
    }

    #[test]
    fn columns_of_a_few_neurons_equal_the_transposed_convolution() {
        let device = Device::flex();
        let (a, source, b, mid) = two_convs(&device);
        for (conv, input) in [(a, source), (b, mid)] {
            let [c, h, w] = input;
            let d_out = Layout::Image(input)
                .after_conv(&conv)
                .iter()
                .product::<usize>();
            let d_in = c * h * w;
            for b in [1, 3] {
                let rows =
                    Tensor::<3>::random([b, 4, d_out], Distribution::Uniform(-1.0, 1.0), &device);
                // every neuron once, in a different order per point, then a repeat
                let neurons = Tensor::<2, Int>::from_data(
                    TensorData::new(
                        (0..3)
                            .flat_map(|i| (0..d_in).map(move |j| ((j * 7 + i) % d_in) as i64))
                            .collect::<Vec<_>>(),
                        [3, d_in],
                    ),
                    &device,
                );
                let columns = conv_adjoint_at(rows.clone(), &conv, input, neurons.clone());
                let dense = conv_adjoint(rows, &conv, input)
                    .expand([3, 4, d_in])
                    .gather(2, neurons.unsqueeze_dim::<3>(1).expand([3, 4, d_in]));
                assert_close(columns.reshape([12, d_in]), dense.reshape([12, d_in]));
            }
        }
    }

    #[test]
    fn a_few_live_error_symbols_pull_exactly() {
        let device = Device::flex();
        let (_, _, b, mid) = two_convs(&device);
        let n = 2;
        // two live symbols per point: the sparse columns are used
        let mut radius = vec![0.0f32; n * 75];
        for (i, j) in [(0, 3), (0, 40), (1, 74), (1, 12)] {
            radius[i * 75 + j] = 0.5 + j as f32 / 100.0;
        }
        let radius = Tensor::<2>::from_data(TensorData::new(radius, [n, 75]), &device);
        let ops = vec![Op::Conv(b, mid)];
        assert!(matches!(&ops[0], Op::Conv(conv, input) if few_enough(conv, *input, 2)));
        let rows = Tensor::<3>::random([n, 5, 16], Distribution::Uniform(-1.0, 1.0), &device);
        let pulled = state(&radius, &ops, 16, true).pull(rows.clone()).remove(0);
        let expected = state(&radius, &ops, 16, false).pull(rows).remove(0);
        let symbols = pulled.symbols.expect("compacted");
        let expected = expected
            .rows
            .gather(2, symbols.unsqueeze_dim::<3>(1).expand([n, 5, 2]));
        assert_close(
            pulled.rows.reshape([n * 5, 2]),
            expected.reshape([n * 5, 2]),
        );
    }

    #[test]
    fn columns_of_a_few_neurons_have_the_transposed_convolutions_gradients() {
        let device = Device::flex().autodiff();
        let (_, _, conv, input) = two_convs(&device);
        let n = 2;
        let rows = Tensor::<3>::random([n, 4, 16], Distribution::Uniform(-1.0, 1.0), &device)
            .require_grad();
        let neurons = Tensor::<2, Int>::from_data(
            TensorData::new(vec![3i64, 40, 41, 74, 12, 0], [n, 3]),
            &device,
        );
        let probe = Tensor::<3>::random([n, 4, 3], Distribution::Uniform(-1.0, 1.0), &device);
        let columns = conv_adjoint_at(rows.clone(), &conv, input, neurons.clone());
        let dense = conv_adjoint(rows.clone(), &conv, input)
            .gather(2, neurons.unsqueeze_dim::<3>(1).expand([n, 4, 3]));
        let gradients = |values: Tensor<3>| {
            let grads = (values * probe.clone()).sum().backward();
            let weight = conv.weight.val().grad(&grads).unwrap().reshape([4, 12]);
            (rows.grad(&grads).unwrap().reshape([n * 4, 16]), weight)
        };
        let ((rows_a, weight_a), (rows_b, weight_b)) = (gradients(columns), gradients(dense));
        assert_close(rows_a, rows_b);
        assert_close(weight_a, weight_b);
    }
}
