//! How the symbolic domain stores its coefficients: each group of symbols (a [`Source`]: the
//! input, then one per ReLU layer) keeps the cheapest exact form of its coefficients.
//!
//! - A **chain** of the bias-free steps met since the source (convolutions and diagonal
//!   scalings by ReLU slopes or normalisation), applied lazily. Convolutions are local, so the
//!   coefficients a chain implies are patches: a neuron after two convolutions depends on a
//!   window of the input, not on all of it. When a chain's second convolution arrives its
//!   patches are composed ([`TwoConv::compose`]); the bounds in front of the next ReLU and the
//!   next linear layer's rows both read them, never dense rows.
//! - **Dense** rows `[b, d_s, d]` once a linear layer has mixed every position: the layer's
//!   `out` rows are back-substituted to each source (which costs `out` rows instead of `d_s`):
//!   through the patches for a two-convolution chain, through the columns of the live symbols
//!   only for a one-convolution chain with few of them (a ReLU's unstable neurons), by
//!   transposed convolutions otherwise. Only the rows of symbols that are nonzero for some point
//!   of the batch are kept.
//! - A chain with three or more convolutions (the large models) has no patch rule; it is made
//!   dense from the identity, the classic forward pass.
//!
//! The costs of each form, in multiply-adds, are in `docs/bounds.md`.

use burn::tensor::{IndexingUpdateOp, Int, Tensor};
use mixtrain_kernels::conv2d;
use mixtrain_nn::Conv2d;

use super::patches::{TwoConv, conv_adjoint_at};
use crate::numeric::{conv_adjoint, image};

/// A bias-free step between a source and the current layer.
#[derive(Clone, Debug)]
pub(super) enum Op {
    /// Multiplies feature `j` by `s[., j]` (`[1 or n, d]`): ReLU slopes, a normalisation.
    Scale(Tensor<2>),
    /// A convolution (its weights only) from image shape `input` to `output`.
    Conv {
        conv: Conv2d,
        input: [usize; 3],
        output: [usize; 3],
    },
}

#[derive(Clone, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per source, a handful per state: boxing would only add indirection"
)]
pub(super) enum Coeffs {
    /// The steps `ops[start..]` of the domain's tape; kept only while [`has_patch_rule`] holds.
    /// A later source's chain is a suffix of an earlier one's, so one backward walk of the tape
    /// serves them all. A chain with two convolutions carries their composed `patches` (see
    /// [`TwoConv::compose`]), made when the second convolution arrives.
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
pub(super) struct Source {
    pub radius: Tensor<2>,
    pub coeffs: Coeffs,
    /// `[n, d_s]`: which of the source's original symbols each kept one is, once compacted
    /// ([`compact`]); `None` while every symbol is kept. Only the margin equations need it, to
    /// put the input coefficients back on their pixels.
    pub symbols: Option<Tensor<2, Int>>,
}

/// Rows over the current neurons back-substituted onto one source's symbols.
pub(super) struct SourceRows {
    /// `[b, m, d_s]`.
    pub rows: Tensor<3>,
    /// `[n, d_s]`.
    pub radius: Tensor<2>,
    pub symbols: Option<Tensor<2, Int>>,
}

/// Whether a chain's spread has a closed form here: after dropping trailing scalings, nothing,
/// one convolution, or convolution-scaling-convolution.
pub(super) fn has_patch_rule(ops: &[Op]) -> bool {
    match ops {
        [rest @ .., Op::Scale(_)] => has_patch_rule(rest),
        [] | [Op::Conv { .. }] | [Op::Conv { .. }, Op::Scale(_), Op::Conv { .. }] => true,
        _ => false,
    }
}

/// The geometry of a chain that starts with convolution-scaling-convolution.
pub(super) fn two_conv(ops: &[Op]) -> Option<TwoConv> {
    match ops {
        [
            Op::Conv { conv: a, input, .. },
            Op::Scale(_),
            Op::Conv {
                conv: b,
                input: mid,
                output,
            },
            ..,
        ] => Some(TwoConv::new(a, *input, b, *mid, *output)),
        _ => None,
    }
}

/// `sum_i |coefficient of symbol i| radius_i` for every current neuron, `[n, d]`; a chain with
/// two convolutions reads its `patches`.
fn chain_spread(radius: &Tensor<2>, ops: &[Op], patches: Option<&Tensor<4>>) -> Tensor<2> {
    match (ops, patches) {
        ([rest @ .., Op::Scale(s)], _) => chain_spread(radius, rest, patches) * s.clone().abs(),
        ([], _) => radius.clone(),
        ([Op::Conv { conv, input, .. }], _) => conv2d(
            image(radius.clone(), *input),
            conv.weight.val().abs(),
            None,
            conv.options(),
        )
        .flatten(1, 3),
        ([Op::Conv { .. }, Op::Scale(_), Op::Conv { .. }], Some(patches)) => two_conv(ops)
            .map(|geometry| geometry.spread(patches, radius))
            .unwrap_or_else(|| unreachable!("a convolution-scaling-convolution chain")),
        _ => unreachable!(
            "Symbolic::append makes a chain without a patch rule dense, and composes the \
             patches of a two-convolution chain with its second convolution"
        ),
    }
}

/// Applies a chain forwards to rows `[b, m, d_s]` (one per symbol): `[b', m, d]`.
pub(super) fn chain_forward(mut rows: Tensor<3>, ops: &[Op]) -> Tensor<3> {
    for op in ops {
        rows = match op {
            Op::Scale(s) => rows * s.clone().unsqueeze_dim(1),
            Op::Conv { conv, input, .. } => {
                let [b, m, _] = rows.dims();
                let [c, h, w] = *input;
                let out = conv2d(
                    rows.reshape([b * m, c, h, w]),
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
            Op::Conv {
                conv,
                input,
                output,
            } => conv_adjoint(rows, conv, *input, *output),
        };
    }
    rows
}

/// The symbols worth rows: those with a nonzero radius for some point. `None` when all are;
/// otherwise each point's nonzero symbols first (`[n, k]` indices, `k` the batch maximum, at
/// least 1) and their radii (zero in the padding). One host read.
pub(super) fn compact(radius: &Tensor<2>) -> Option<(Tensor<2, Int>, Tensor<2>)> {
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

/// Whether the columns of `k` input neurons of `conv` ([`conv_adjoint_at`]) cost at most half
/// of the whole transposed convolution, in multiply-adds and in memory: `k` against `ci
/// kernel^2` per output of the convolution.
pub(super) fn sparse_columns_pay(conv: &Conv2d, input: [usize; 3], k: usize) -> bool {
    let [ci, _, _] = input;
    let kernel = conv.weight.val().dims()[2];
    2 * k <= ci * kernel * kernel
}

/// Rows carried back along the tape: [`Adjoints::at`]`(i)` is the rows over the inputs of step
/// `i` (a scaling, or a transposed convolution per convolution), each step computed once and
/// shared by every chain that passes it: a later source's chain is a suffix of an earlier one's.
pub(super) struct Adjoints<'a> {
    ops: &'a [Op],
    rows: Vec<Option<Tensor<3>>>,
}

impl<'a> Adjoints<'a> {
    pub(super) fn new(ops: &'a [Op], rows: Tensor<3>) -> Self {
        let mut all = vec![None; ops.len() + 1];
        all[ops.len()] = Some(rows);
        Self { ops, rows: all }
    }

    fn at(&mut self, i: usize) -> Tensor<3> {
        if let Some(rows) = &self.rows[i] {
            return rows.clone();
        }
        let rows = chain_backward(self.at(i + 1), &self.ops[i..=i]);
        self.rows[i] = Some(rows.clone());
        rows
    }
}

impl Source {
    /// A source of `radius`'s symbols whose chain starts at step `start` of the tape.
    pub(super) fn chain(radius: Tensor<2>, start: usize) -> Self {
        Source {
            radius,
            coeffs: Coeffs::Chain {
                start,
                patches: None,
            },
            symbols: None,
        }
    }

    /// A chain source's rows (`[b, m, d_s]`, over all its symbols) restricted to the `live`
    /// symbols ([`compact`] of the radius), with their radii.
    fn compacted(&self, rows: Tensor<3>, live: Option<(Tensor<2, Int>, Tensor<2>)>) -> SourceRows {
        match live {
            None => SourceRows {
                rows,
                radius: self.radius.clone(),
                symbols: None,
            },
            Some((index, radius)) => SourceRows {
                rows: columns(rows, index.clone()),
                radius,
                symbols: Some(index),
            },
        }
    }

    /// The same source with dense rows: a chain applied forwards to the identity over the
    /// symbols that are nonzero somewhere (the classic forward pass).
    pub(super) fn densify(self, ops: &[Op]) -> Source {
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

    /// `sum_i |coefficient of symbol i| radius_i` for every current neuron, `[n, d]`.
    pub(super) fn spread(&self, ops: &[Op]) -> Tensor<2> {
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

    /// Rows over the current neurons (`[rb, m, d]`) back-substituted onto this source's
    /// symbols. A chain is carried back along the tape by `adjoints` and compacted to the
    /// symbols that are nonzero somewhere; a two-convolution chain goes through its patches,
    /// and a one-convolution chain with few live symbols (a ReLU's unstable neurons) through
    /// the columns of those symbols alone.
    pub(super) fn back_substitute(
        &self,
        ops: &[Op],
        rows: &Tensor<3>,
        adjoints: &mut Adjoints,
    ) -> SourceRows {
        let (start, patches) = match &self.coeffs {
            Coeffs::Chain { start, patches } => (*start, patches.as_ref()),
            Coeffs::Dense(a) => return self.dense_rows(a, rows),
        };
        let chain = &ops[start..];
        let scalings = chain
            .iter()
            .rev()
            .take_while(|op| matches!(op, Op::Scale(_)))
            .count();
        let live = compact(&self.radius);
        match (
            &chain[..chain.len() - scalings],
            two_conv(chain),
            patches,
            live,
        ) {
            (
                [Op::Conv { .. }, Op::Scale(_), Op::Conv { .. }],
                Some(geometry),
                Some(patches),
                live,
            ) => self.compacted(
                geometry.back_substitute(patches, adjoints.at(start + 3)),
                live,
            ),
            (
                [
                    Op::Conv {
                        conv,
                        input,
                        output,
                    },
                ],
                _,
                _,
                Some((index, radius)),
            ) if sparse_columns_pay(conv, *input, index.dims()[1]) => SourceRows {
                rows: conv_adjoint_at(adjoints.at(start + 1), conv, *input, *output, index.clone()),
                radius,
                symbols: Some(index),
            },
            (_, _, _, live) => self.compacted(adjoints.at(start), live),
        }
    }

    /// Rows over the current neurons times this source's dense coefficients, transposed.
    fn dense_rows(&self, a: &Tensor<3>, rows: &Tensor<3>) -> SourceRows {
        let [b, d_s, d] = a.dims();
        let [rb, m, _] = rows.dims();
        let rows = if b == 1 {
            rows.clone()
                .reshape([rb * m, d])
                .matmul(a.clone().reshape([d_s, d]).transpose())
                .reshape([rb, m, d_s])
        } else {
            rows.clone().matmul(a.clone().swap_dims(1, 2))
        };
        SourceRows {
            rows,
            radius: self.radius.clone(),
            symbols: self.symbols.clone(),
        }
    }
}
