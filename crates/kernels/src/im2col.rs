//! A 2-D convolution on contiguous `f32` slices (NCHW input and output, `[out, in, kh, kw]`
//! weights, one group, no dilation) as im2col plus matrix products, and its two gradients.
//!
//! Why not burn-flex's own: at the small channel counts of certified training its convolution
//! makes one small product per image and tile with fresh buffers, its weight gradient is a
//! convolution with the batch and channels swapped (a single "image" of `n` channels, so one
//! thread does it all) and its input gradient a transposed convolution. Here the batch is cut
//! into chunks of images that rayon's threads share; each chunk reuses one column buffer for its
//! images and every product writes straight into the output, so no pass copies a layout. A
//! chunk's products run on its thread alone (`Parallelism::None`): the batch, not the product,
//! is what is split. (Panels of several images side by side in one wider product measured no
//! faster at these sizes: the copies in and out ate the gain.)
//!
//! A chunk's size depends on the shapes only, and the weight gradient sums the chunks' parts in
//! chunk order, so the results do not depend on the number of threads.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// The sizes of one convolution: input `[n, c_in, h, w]`, weight `[c_out, c_in, kh, kw]`,
/// output `[n, c_out, ho, wo]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Images.
    pub n: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Output channels.
    pub c_out: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Step in each direction.
    pub stride: [usize; 2],
    /// Zeros added before the first row and column.
    pub padding: [usize; 2],
    /// Output height and width.
    pub output: [usize; 2],
}

impl Geometry {
    /// Rows of the column matrix: one per (input channel, kernel row, kernel column).
    pub fn k(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    /// Output positions of one image: the columns of its column matrix.
    pub fn l(&self) -> usize {
        self.output[0] * self.output[1]
    }

    fn image_in(&self) -> usize {
        self.c_in * self.input[0] * self.input[1]
    }

    fn image_out(&self) -> usize {
        self.c_out * self.l()
    }

    /// Panics, naming the slice, unless every slice has the length of its role.
    fn check(&self, slices: &[(&str, usize, usize)]) {
        for (name, len, want) in slices {
            assert_eq!(
                len, want,
                "conv2d {self:?}: `{name}` has {len} values, not {want}"
            );
        }
    }

    /// Images per chunk: the batch in at most `CHUNKS` chunks, whatever the number of threads
    /// (see the module's last note); 8 keeps 2 or 4 threads evenly busy.
    fn chunk(&self) -> usize {
        const CHUNKS: usize = 8;
        self.n.div_ceil(CHUNKS).max(1)
    }

    /// The input row and column that output `(o, 0)` reads at kernel offset `i`, and the range
    /// of outputs along that axis whose input lies inside the image (the rest read padding).
    fn span(&self, axis: usize, i: usize) -> (isize, std::ops::Range<usize>) {
        let (s, p, len, out) = (
            self.stride[axis],
            self.padding[axis],
            self.input[axis],
            self.output[axis],
        );
        let first = i as isize - p as isize;
        // outputs o with 0 <= first + o * s <= len - 1
        let lo = if first >= 0 {
            0
        } else {
            first.unsigned_abs().div_ceil(s)
        };
        let last = len as isize - 1 - first;
        let hi = if last < 0 {
            0
        } else {
            (last as usize / s + 1).min(out)
        };
        (first, lo..hi.max(lo))
    }

    /// Visits every stretch of one output row that reads inside the image, for every row of
    /// the column matrix: `(input row offset, column-matrix offset, first input column,
    /// output columns)`, so that `x[xr + (c0 + ow * stride) as usize]` pairs with
    /// `col[cr + ow]` for `ow` in the range. im2col and col2im are this walk, one each way.
    fn walk(&self, mut visit: impl FnMut(usize, usize, isize, std::ops::Range<usize>)) {
        let ([h, w], [_, wo], [kh, kw]) = (self.input, self.output, self.kernel);
        let l = self.l();
        for c in 0..self.c_in {
            for i in 0..kh {
                let (row0, rows) = self.span(0, i);
                for j in 0..kw {
                    let (col0, cols) = self.span(1, j);
                    let r = (c * kh + i) * kw + j;
                    for oh in rows.clone() {
                        let ih = (row0 + (oh * self.stride[0]) as isize) as usize;
                        visit((c * h + ih) * w, r * l + oh * wo, col0, cols.clone());
                    }
                }
            }
        }
    }

    /// Writes the `[k, l]` column matrix of one image into `col`, which must be zero where a
    /// tap reads padding: the walk writes the same entries for every image of a geometry, so a
    /// buffer allocated zeroed and used only for im2col stays so, and is not cleared per image.
    fn im2col(&self, x: &[f32], col: &mut [f32]) {
        let sw = self.stride[1];
        self.walk(|xr, cr, c0, cols| {
            for ow in cols {
                col[cr + ow] = x[(c0 + (xr + ow * sw) as isize) as usize];
            }
        });
    }

    /// Adds the `[k, l]` column matrix of one image back into its input gradient.
    fn col2im(&self, col: &[f32], dx: &mut [f32]) {
        let sw = self.stride[1];
        self.walk(|xr, cr, c0, cols| {
            for ow in cols {
                dx[(c0 + (xr + ow * sw) as isize) as usize] += col[cr + ow];
            }
        });
    }
}

/// `dst = (read_dst ? dst : 0) + lhs @ rhs` for row-major `dst` `[m, n]`, with `lhs` `[m, k]`
/// and `rhs` `[k, n]` given by their (row, column) strides.
#[allow(clippy::too_many_arguments)]
fn matmul(
    [m, n, k]: [usize; 3],
    dst: &mut [f32],
    read_dst: bool,
    lhs: &[f32],
    [lhs_rs, lhs_cs]: [usize; 2],
    rhs: &[f32],
    [rhs_rs, rhs_cs]: [usize; 2],
) {
    assert!(dst.len() >= m * n);
    assert!(m == 0 || k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(k == 0 || n == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the asserts above keep every element the strides reach inside its slice, and
    // `dst` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            read_dst,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// The convolution: `out` `[n, c_out, ho, wo]` from `x` `[n, c_in, h, w]`, `weight` and an
/// optional `bias` `[c_out]`.
pub fn forward(g: &Geometry, x: &[f32], weight: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    g.check(&[
        ("x", x.len(), g.n * g.image_in()),
        ("weight", weight.len(), g.c_out * g.k()),
        ("bias", bias.map_or(g.c_out, <[f32]>::len), g.c_out),
        ("out", out.len(), g.n * g.image_out()),
    ]);
    let (k, l, chunk) = (g.k(), g.l(), g.chunk());
    out.par_chunks_mut(chunk * g.image_out())
        .zip(x.par_chunks(chunk * g.image_in()))
        .for_each(|(out, x)| {
            let mut col = vec![0.0; k * l];
            for (out, x) in out.chunks_mut(g.image_out()).zip(x.chunks(g.image_in())) {
                g.im2col(x, &mut col);
                if let Some(bias) = bias {
                    for (row, b) in out.chunks_mut(l).zip(bias) {
                        row.fill(*b);
                    }
                }
                matmul(
                    [g.c_out, l, k],
                    out,
                    bias.is_some(),
                    weight,
                    [k, 1],
                    &col,
                    [l, 1],
                );
            }
        });
}

/// The gradient of the convolution's input, `dx` `[n, c_in, h, w]`, from the output's `dy`.
pub fn input_grad(g: &Geometry, weight: &[f32], dy: &[f32], dx: &mut [f32]) {
    g.check(&[
        ("weight", weight.len(), g.c_out * g.k()),
        ("dy", dy.len(), g.n * g.image_out()),
        ("dx", dx.len(), g.n * g.image_in()),
    ]);
    let (k, l, chunk) = (g.k(), g.l(), g.chunk());
    dx.par_chunks_mut(chunk * g.image_in())
        .zip(dy.par_chunks(chunk * g.image_out()))
        .for_each(|(dx, dy)| {
            let mut col = vec![0.0; k * l];
            for (dx, dy) in dx.chunks_mut(g.image_in()).zip(dy.chunks(g.image_out())) {
                // weight^T [k, c_out] @ dy [c_out, l]
                matmul([k, l, g.c_out], &mut col, false, weight, [1, k], dy, [l, 1]);
                dx.fill(0.0);
                g.col2im(&col, dx);
            }
        });
}

/// The gradients of the weight (`dw`, `[c_out, c_in, kh, kw]`) and, when asked, of the bias
/// (`db`, `[c_out]`), from the input `x` and the output's `dy`.
pub fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32], dw: &mut [f32], db: Option<&mut [f32]>) {
    g.check(&[
        ("x", x.len(), g.n * g.image_in()),
        ("dy", dy.len(), g.n * g.image_out()),
        ("dw", dw.len(), g.c_out * g.k()),
        ("db", db.as_ref().map_or(g.c_out, |b| b.len()), g.c_out),
    ]);
    let (k, l, chunk) = (g.k(), g.l(), g.chunk());
    let with_bias = db.is_some();
    let partials: Vec<(Vec<f32>, Vec<f32>)> = x
        .par_chunks(chunk * g.image_in())
        .zip(dy.par_chunks(chunk * g.image_out()))
        .map(|(x, dy)| {
            let mut col = vec![0.0; k * l];
            let mut dw = vec![0.0; g.c_out * k];
            let mut db = vec![0.0; g.c_out];
            for (i, (x, dy)) in x
                .chunks(g.image_in())
                .zip(dy.chunks(g.image_out()))
                .enumerate()
            {
                g.im2col(x, &mut col);
                // dy [c_out, l] @ col^T [l, k]
                matmul([g.c_out, k, l], &mut dw, i > 0, dy, [l, 1], &col, [1, l]);
                if with_bias {
                    for (b, row) in db.iter_mut().zip(dy.chunks(l)) {
                        *b += row.iter().sum::<f32>();
                    }
                }
            }
            (dw, db)
        })
        .collect();
    dw.fill(0.0);
    for (w, _) in &partials {
        dw.iter_mut().zip(w).for_each(|(a, b)| *a += b);
    }
    if let Some(db) = db {
        db.fill(0.0);
        for (_, b) in &partials {
            db.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        }
    }
}
