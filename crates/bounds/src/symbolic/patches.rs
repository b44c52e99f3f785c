//! Local coefficient forms for the symbolic domain: the patches of two composed convolutions,
//! and the columns of a transposed convolution at a few input neurons.
//!
//! Both are built from row gathers (`select` along dimension 0 of a 2-D tensor) with index
//! tables computed on the host, matrix products, and row scatter-adds (`select_assign` along
//! dimension 0): whole rows move at once, and the gradients are the same ops again, so the
//! backward pass costs what the forward does. burn's `unfold4d` is a convolution with one-hot
//! kernels and a transposed convolution's weight gradient is a direct convolution with the whole
//! feature map as kernel; both cost far more than the gathers here.

use burn::tensor::ops::PadMode;
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};
use mixtrain_nn::Conv2d;

use crate::numeric::image;

/// A 1-D index tensor from host values.
fn index(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let len = values.len();
    Tensor::from_data(TensorData::new(values, [len]), device)
}

/// The flat positions, in a frame `[_, fw]`, of the `k x k` windows at stride `s` whose top-left
/// corners are `(py s, px s)` for the `[oh, ow]` output positions: offset-major (all positions
/// for the window's first offset, then the next), or position-major.
fn window_index(
    k: usize,
    s: usize,
    fw: usize,
    [oh, ow]: [usize; 2],
    offset_major: bool,
) -> Vec<i64> {
    let at = |p: usize, d: usize| (((p / ow) * s + d / k) * fw + (p % ow) * s + d % k) as i64;
    let (positions, offsets) = (oh * ow, k * k);
    if offset_major {
        (0..offsets)
            .flat_map(|d| (0..positions).map(move |p| at(p, d)))
            .collect()
    } else {
        (0..positions)
            .flat_map(|p| (0..offsets).map(move |d| at(p, d)))
            .collect()
    }
}

/// An image `[n, c, h, w]` placed at offset `pad` in a zero frame `[fh, fw]`, one row per frame
/// position: `[fh fw, c n]`, ready for row gathers of windows.
fn framed(x: Tensor<4>, pad: usize, [fh, fw]: [usize; 2]) -> Tensor<2> {
    let [n, c, h, w] = x.dims();
    x.swap_dims(0, 1)
        .pad(
            [(pad, fh - pad - h), (pad, fw - pad - w)],
            PadMode::Constant(0.0),
        )
        .reshape([c * n, fh * fw])
        .transpose()
}

/// The geometry of `b . diag(slopes) . a`, two convolutions with a diagonal scaling between
/// them, seen from `a`'s input (the *source*).
///
/// Output neuron `(c2, p)` depends on a source window of side `r = (kb - 1) sa + ka` whose
/// corner is `p sa sb - pd` (`pd = pb sa + pa`), so its coefficients are a patch `[c0, r, r]`.
/// The source sits at offset `pd` in a zero frame large enough for every window.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TwoConv {
    source: [usize; 3],
    mid: [usize; 3],
    out: [usize; 3],
    ka: usize,
    kb: usize,
    sa: usize,
    sb: usize,
    pb: usize,
    r: usize,
    pd: usize,
    frame: [usize; 2],
}

impl TwoConv {
    pub(crate) fn new(
        a: &Conv2d,
        source: [usize; 3],
        b: &Conv2d,
        mid: [usize; 3],
        out: [usize; 3],
    ) -> Self {
        let [_, _, ka, _] = a.weight.val().dims();
        let [_, _, kb, _] = b.weight.val().dims();
        let (sa, sb) = (a.stride, b.stride);
        let r = (kb - 1) * sa + ka;
        let pd = b.padding * sa + a.padding;
        let side = |o: usize, len: usize| ((o - 1) * sa * sb + r).max(pd + len);
        Self {
            source,
            mid,
            out,
            ka,
            kb,
            sa,
            sb,
            pb: b.padding,
            r,
            pd,
            frame: [side(out[1], source[1]), side(out[2], source[2])],
        }
    }

    fn positions(&self) -> usize {
        self.out[1] * self.out[2]
    }

    /// Source values per patch, `c0 r r`.
    fn window(&self) -> usize {
        self.source[0] * self.r * self.r
    }

    /// Where each position's window lies in the flat source frame.
    fn windows(&self, offset_major: bool) -> Vec<i64> {
        let [_, h2, w2] = self.out;
        window_index(
            self.r,
            self.sa * self.sb,
            self.frame[1],
            [h2, w2],
            offset_major,
        )
    }

    /// The patches of `b . diag(slopes) . a` (`slopes`: `[n, c1 h1 w1]`): `[c0 r r, c2, n,
    /// positions]`, the layout their scatter-add leaves (the consumers read it through strides).
    ///
    /// `patch[p, c2, delta] = sum_{c1, t} slopes[c1, p sb - pb + t] Wb[c2, c1, t] Wa[c1, .,
    /// delta - t sa]`. For each tap `t` of `b`, the weights alone give a `[(c0 ka ka, c2), c1]`
    /// matrix `Wa Wb[., ., t]`; times the slopes each position reads at that tap (a gather, `[c1,
    /// n positions]`) it gives the `ka x ka` kernels of every `(c2, p)`, which a scatter-add
    /// lays at offset `t sa` in the window. That is `positions c2 kb^2 c1 c0 ka^2` MAC (6.4 M
    /// per image on `mnist_small`), where the dense kernel-of-kernels product needs `positions
    /// c2 c1 kb^2 c0 r^2` (40 M); the gradient with respect to the slopes and weights is two
    /// small products.
    pub(crate) fn compose(&self, a: &Conv2d, slopes: Tensor<2>, b: &Conv2d) -> Tensor<4> {
        let [n, _] = slopes.dims();
        let device = slopes.device();
        let ([c0, _, _], [c1, h1, w1], [c2, h2, w2]) = (self.source, self.mid, self.out);
        let (ka, kb, l) = (self.ka, self.kb, self.positions());
        let (t, kernel) = (kb * kb, c0 * ka * ka);
        let frame = [h1 + 2 * self.pb, w1 + 2 * self.pb];
        let read = window_index(kb, self.sb, frame[1], [h2, w2], true);
        // [t, c1, (n, p)]
        let g = framed(slopes.reshape([n, c1, h1, w1]), self.pb, frame)
            .select(0, index(read, &device))
            .reshape([t, l, c1 * n])
            .swap_dims(1, 2)
            .reshape([t, c1, n * l]);
        let wa = a
            .weight
            .val()
            .reshape([c1, kernel])
            .transpose()
            .reshape([1, kernel, 1, c1]);
        let wb = b
            .weight
            .val()
            .reshape([c2, c1, t])
            .permute([2, 0, 1])
            .unsqueeze_dim::<4>(1);
        // [(t, c0 ka ka), (c2, n, p)]
        let kernels = (wa * wb)
            .reshape([t, kernel * c2, c1])
            .matmul(g)
            .reshape([t * kernel, c2 * n * l]);
        let (r, sa) = (self.r, self.sa);
        let mut lay = Vec::with_capacity(t * kernel);
        for ty in 0..kb {
            for tx in 0..kb {
                for c in 0..c0 {
                    for ky in 0..ka {
                        for kx in 0..ka {
                            lay.push((c * r * r + (ty * sa + ky) * r + tx * sa + kx) as i64);
                        }
                    }
                }
            }
        }
        Tensor::zeros([self.window(), c2 * n * l], &device)
            .select_assign(0, index(lay, &device), kernels, IndexingUpdateOp::Add)
            .reshape([self.window(), c2, n, l])
    }

    /// `sum_i |coefficient of source symbol i| radius_i` for every output neuron, `[n, c2 h2
    /// w2]`, from the patches: `|patch|` against the radius under each window.
    pub(crate) fn spread(&self, patches: &Tensor<4>, radius: &Tensor<2>) -> Tensor<2> {
        let [window, c2, n, l] = patches.dims();
        let device = radius.device();
        let c0 = self.source[0];
        let rr = self.r * self.r;
        // [(c0, delta), 1, n, p]
        let under = framed(image(radius.clone(), self.source), self.pd, self.frame)
            .select(0, index(self.windows(true), &device))
            .reshape([rr, l, c0, n])
            .permute([2, 0, 3, 1])
            .reshape([window, 1, n, l]);
        (patches.clone().abs() * under)
            .sum_dim(0)
            .reshape([c2, n, l])
            .swap_dims(0, 1)
            .reshape([n, c2 * l])
    }

    /// Rows over the output neurons (`[b, m, c2 h2 w2]`, `b` 1 or `n`) carried to the source:
    /// `[n, m, c0 h0 w0]`. Per position, the patches times the rows' `c2` columns (`m c2 c0
    /// r^2` MAC), then the windows are scatter-added onto the source frame.
    pub(crate) fn back_substitute(&self, patches: &Tensor<4>, rows: Tensor<3>) -> Tensor<3> {
        let [window, c2, n, l] = patches.dims();
        let [b, m, _] = rows.dims();
        let device = rows.device();
        let [c0, h0, w0] = self.source;
        let rr = self.r * self.r;
        let [fh, fw] = self.frame;
        let area = fh * fw;
        // both operands as one contiguous matrix per (point, position), by 2-D transposes: a
        // strided operand would touch a cache line per element
        let rows = rows
            .swap_dims(1, 2)
            .reshape([b, c2, l, m])
            .swap_dims(1, 2)
            .expand([n, l, c2, m]);
        // [(n, p, c0, delta), m]
        let values = patches
            .clone()
            .reshape([window * c2, n * l])
            .transpose()
            .reshape([n, l, window, c2])
            .matmul(rows)
            .reshape([n * l * window, m]);
        let windows = self.windows(false);
        let mut spots = Vec::with_capacity(n * l * window);
        for i in 0..n {
            for p in 0..l {
                for c in 0..c0 {
                    let base = (i * c0 + c) * area;
                    spots.extend(
                        windows[p * rr..(p + 1) * rr]
                            .iter()
                            .map(|&w| base as i64 + w),
                    );
                }
            }
        }
        Tensor::zeros([n * c0 * area, m], &device)
            .select_assign(0, index(spots, &device), values, IndexingUpdateOp::Add)
            .reshape([n, c0 * area, m])
            .swap_dims(1, 2)
            .reshape([n, m, c0, fh, fw])
            .narrow(3, self.pd, h0)
            .narrow(4, self.pd, w0)
            .reshape([n, m, c0 * h0 * w0])
    }
}

/// Columns `neurons` (`[n, k]`: each point's input neurons, flat `c h w`) of the adjoint of `conv`
/// applied to `rows` (`[b, m, co ho wo]`, `b` 1 or `n`): `[n, m, k]`, what
/// [`conv_adjoint`](crate::numeric::conv_adjoint) followed by a gather gives.
///
/// An input neuron is read by at most `ceil(kernel / stride)^2` output positions, through one
/// tap each: its column of the convolution's matrix has at most `co ceil(kernel / stride)^2`
/// nonzeros, which a scatter lays into a `[co ho wo, k]` matrix per point, and the rows times that
/// matrix are the columns: `m co ho wo k` MAC against `m co ho wo ci kernel^2` for the whole
/// transposed convolution, with an operand of `co ho wo k` values per point instead of an output
/// of `m ci hi wi`. The symbolic domain needs the columns of the unstable neurons only.
pub(crate) fn conv_adjoint_at(
    rows: Tensor<3>,
    conv: &Conv2d,
    input: [usize; 3],
    output: [usize; 3],
    neurons: Tensor<2, Int>,
) -> Tensor<3> {
    let [n, k] = neurons.dims();
    let device = rows.device();
    let [ci, hi, wi] = input;
    let [co, ho, wo] = output;
    let kk = conv.weight.val().dims()[2];
    let (stride, pad) = (conv.stride, conv.padding);
    let per_axis = kk.div_ceil(stride);
    // (output coordinate, tap) pairs reading input coordinate i
    let readers = |i: usize, len_out: usize| -> Vec<(usize, usize)> {
        (0..kk)
            .filter_map(|t| {
                let at = (i + pad).checked_sub(t)?;
                (at % stride == 0 && at / stride < len_out).then_some((at / stride, t))
            })
            .collect()
    };
    let (hw, outputs) = (hi * wi, ho * wo);
    let taps = per_axis * per_axis;
    let (mut position, mut tap) = (Vec::with_capacity(hw * taps), Vec::with_capacity(hw * taps));
    for y in 0..hi {
        let ys = readers(y, ho);
        for x in 0..wi {
            let xs = readers(x, wo);
            for j in 0..per_axis {
                for i in 0..per_axis {
                    // a missing reader adds the zero tap appended to every channel's kernel
                    let (p, t) = match (ys.get(j), xs.get(i)) {
                        (Some(&(oy, ty)), Some(&(ox, tx))) => (oy * wo + ox, ty * kk + tx),
                        _ => (0, kk * kk),
                    };
                    position.push(p as i64);
                    tap.push(t as i64);
                }
            }
        }
    }
    let flat = neurons.reshape([n * k]);
    let channel = flat.clone().div_scalar(hw as i64).reshape([n * k, 1]);
    let q = flat.remainder_scalar(hw as i64);
    let position = index(position, &device)
        .reshape([hw, taps])
        .select(0, q.clone());
    let tap = index(tap, &device).reshape([hw, taps]).select(0, q);
    // the weight of every (output channel; point, neuron, tap)
    let weights = (channel.mul_scalar((kk * kk + 1) as i64) + tap).reshape([n * k * taps]);
    let weights = conv
        .weight
        .val()
        .reshape([co, ci, kk * kk])
        .pad([(0, 1)], PadMode::Constant(0.0))
        .reshape([co, ci * (kk * kk + 1)])
        .select(1, weights)
        .reshape([co * n * k * taps, 1]);
    // ... and where it goes in the points' [co ho wo, k] matrices
    let column = Tensor::<1, Int>::arange(0..k as i64, &device).reshape([1, k, 1]);
    let point = Tensor::<1, Int>::arange(0..n as i64, &device)
        .mul_scalar((co * outputs * k) as i64)
        .reshape([n, 1, 1]);
    let channel = Tensor::<1, Int>::arange(0..co as i64, &device)
        .mul_scalar((outputs * k) as i64)
        .reshape([co, 1, 1, 1]);
    let spots = (position.reshape([n, k, taps]).mul_scalar(k as i64) + column + point)
        .unsqueeze_dim::<4>(0)
        + channel;
    let matrix = Tensor::zeros([n * co * outputs * k, 1], &device)
        .select_assign(
            0,
            spots.reshape([co * n * k * taps]),
            weights,
            IndexingUpdateOp::Add,
        )
        .reshape([n, co * outputs, k]);
    rows.matmul(matrix)
}
