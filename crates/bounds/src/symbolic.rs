//! The symbolic interval domain with symbolic linear relaxation (MixTrain's domain).
//!
//! Cost of the dense pass on `mnist_small` per image (`d_in = 784` input symbols, `k1`, `k2`
//! unstable neurons after the two convolutions): conv1 on the identity, once per *batch*
//! (784 rows x 50,176 MAC = 39 M MAC); conv2 on the 784 input rows (784 x 401,408 = 315 M MAC)
//! and on the `k1` error rows; fc1 on `784 + k1 + k2` rows of 1,568 (123 M MAC for the input
//! rows). About 0.9-1.2 GFLOP per image in all, so the pass is compute-bound: 30-38 ms per image
//! here (about 30 GFLOP/s). The rows are very sparse, which sets the floor for a pass that
//! exploits it: an input pixel reaches 64 of the 3,136 neurons after conv1 and 288 of the 1,568
//! after conv2, so conv2 on the input rows needs 784 x 288 x 256 = 58 M MAC and fc1 784 x 288 x
//! 100 = 23 M MAC: about 0.16 GFLOP per image plus the error rows, 6-7x less than dense.

use burn::tensor::module::conv2d;
use burn::tensor::{IndexingUpdateOp, Int, Tensor};
use mixtrain_nn::{Conv2d, Linear, Normalize};

use crate::domain::{Domain, Layout, ReluRelaxation, apply, flat_normalization, fold_spec};
use crate::{BoundsError, InputSet};

/// How the neurons depend on the input symbols `eta` (one per input value, in `[-1, 1]`,
/// scaled by the input radius).
#[derive(Clone, Debug)]
enum Coeffs {
    /// Before any affine layer: the identity.
    Identity,
    /// After affine layers only: the same `[d_in, d]` matrix for every point (it does not depend
    /// on the input, so it is computed once per batch, not once per point).
    Shared(Tensor<2>),
    /// After a ReLU has scaled columns point by point: `[n, d_in, d]`.
    PerSample(Tensor<3>),
}

/// Each neuron is `z_j = c_j + sum_i A[i, j] r_i eta_i + sum_k E[k, j] xi_k` with every
/// `eta_i, xi_k` in `[-1, 1]`: `A` carries the input dependence, `E` one row per error symbol
/// introduced by an unstable ReLU. Affine layers are exact; an unstable ReLU (`l < 0 < u`) is
/// relaxed to `lambda z + mu +- mu` with `lambda = u / (u - l)`, `mu = -lambda l / 2`, which
/// keeps the correlations that intervals lose. Margins are formed symbolically before
/// concretising, so terms shared by `z_y` and `z_j` cancel.
///
/// `E` is kept compact: a ReLU adds one row per neuron that is unstable for at least one point
/// of the batch (`max_n #unstable` rows, zero where a point's neuron is stable).
#[derive(Clone, Debug)]
pub struct Symbolic {
    centre: Tensor<2>,
    coeffs: Coeffs,
    /// `[n, d_in]`, the radius of the input box (after normalisation).
    input_radius: Tensor<2>,
    /// `[n, k, d]`.
    errors: Option<Tensor<3>>,
    layout: Layout,
}

/// The convolution without bias applied to each row `[rows, d]` reshaped as an image.
fn rows_conv(rows: Tensor<2>, layout: [usize; 3], layer: &Conv2d) -> Tensor<2> {
    let [c, h, w] = layout;
    let n = rows.dims()[0];
    conv2d(
        rows.reshape([n, c, h, w]),
        layer.weight.val(),
        None,
        layer.options(),
    )
    .flatten(1, 3)
}

impl Symbolic {
    /// Maps every coefficient row (input and error) through a bias-free linear map of rows.
    fn map_rows(
        self,
        centre: Tensor<2>,
        layout: Layout,
        f: impl Fn(Tensor<2>) -> Tensor<2>,
    ) -> Self {
        let n = centre.dims()[0];
        let coeffs = match self.coeffs {
            Coeffs::Identity => {
                let d_in = self.input_radius.dims()[1];
                Coeffs::Shared(f(Tensor::eye(d_in, &centre.device())))
            }
            Coeffs::Shared(a) => Coeffs::Shared(f(a)),
            Coeffs::PerSample(a) => {
                let [_, d_in, d] = a.dims();
                let mapped = f(a.reshape([n * d_in, d]));
                let out = mapped.dims()[1];
                Coeffs::PerSample(mapped.reshape([n, d_in, out]))
            }
        };
        let errors = self.errors.map(|e| {
            let [_, k, d] = e.dims();
            let mapped = f(e.reshape([n * k, d]));
            let out = mapped.dims()[1];
            mapped.reshape([n, k, out])
        });
        Self {
            centre,
            coeffs,
            input_radius: self.input_radius,
            errors,
            layout,
        }
    }

    /// Multiplies every column `j` of `A` and `E` by `scale[:, j]` (`[n, d]`, or `[1, d]`).
    fn scale_columns(
        coeffs: Coeffs,
        errors: Option<Tensor<3>>,
        scale: Tensor<2>,
        d_in: usize,
    ) -> (Coeffs, Option<Tensor<3>>) {
        let col = scale.unsqueeze_dim::<3>(1); // [n or 1, 1, d]
        let coeffs = match coeffs {
            Coeffs::Identity => {
                let eye: Tensor<3> = Tensor::<2>::eye(d_in, &col.device()).unsqueeze_dim(0);
                Coeffs::PerSample(eye * col.clone())
            }
            Coeffs::Shared(a) if col.dims()[0] == 1 => {
                Coeffs::Shared(a * col.clone().squeeze_dim::<2>(0))
            }
            Coeffs::Shared(a) => Coeffs::PerSample(a.unsqueeze_dim::<3>(0) * col.clone()),
            Coeffs::PerSample(a) => Coeffs::PerSample(a * col.clone()),
        };
        (coeffs, errors.map(|e| e * col))
    }
}

impl Domain for Symbolic {
    const NAME: &'static str = "symbolic";

    fn input(set: &InputSet) -> Self {
        let [_, c, h, w] = set.lower.dims();
        let (centre, input_radius) = set.centre_radius();
        Self {
            centre,
            coeffs: Coeffs::Identity,
            input_radius,
            errors: None,
            layout: Layout::Image([c, h, w]),
        }
    }

    fn normalize(self, layer: &Normalize) -> Result<Self, BoundsError> {
        let (mean, inv) = flat_normalization(layer, self.layout, &self.centre.device());
        let centre = (self.centre - mean) * inv.clone();
        if let Coeffs::Identity = self.coeffs {
            // eta is symmetric: scaling the identity equals scaling the input radius
            let input_radius = self.input_radius * inv;
            return Ok(Self {
                centre,
                input_radius,
                ..self
            });
        }
        let d_in = self.input_radius.dims()[1];
        let (coeffs, errors) = Self::scale_columns(self.coeffs, self.errors, inv, d_in);
        Ok(Self {
            centre,
            coeffs,
            errors,
            ..self
        })
    }

    fn conv2d(self, layer: &Conv2d) -> Result<Self, BoundsError> {
        let n = self.centre.dims()[0];
        let Layout::Image(shape) = self.layout else {
            unreachable!("conv acts on images")
        };
        let out = self.layout.after_conv(layer);
        let [c, h, w] = shape;
        let centre = layer
            .forward(self.centre.clone().reshape([n, c, h, w]))
            .flatten(1, 3);
        Ok(self.map_rows(centre, Layout::Image(out), |rows| {
            rows_conv(rows, shape, layer)
        }))
    }

    fn linear(self, layer: &Linear) -> Result<Self, BoundsError> {
        let centre = layer.forward(self.centre.clone());
        let out = layer.weight.val().dims()[1];
        let weight = layer.weight.val();
        Ok(self.map_rows(centre, Layout::Flat(out), |rows| {
            rows.matmul(weight.clone())
        }))
    }

    fn relu(self) -> Result<Self, BoundsError> {
        let (lower, upper) = self.concretize();
        let [n, d] = lower.dims();
        let relax = ReluRelaxation::new(&lower, &upper);
        // lambda z + mu +- mu, with mu half the upper line's intercept
        let mu = relax.intercept(lower) * 0.5;
        let (lambda, unstable) = (relax.slope, relax.unstable);
        let centre = lambda.clone() * self.centre + mu.clone();
        let d_in = self.input_radius.dims()[1];
        let (coeffs, errors) = Self::scale_columns(self.coeffs, self.errors, lambda, d_in);

        // One new error row per neuron unstable for some point: sort each point's unstable
        // neurons first, keep the batch maximum count of rows, and put mu at those neurons.
        let count: i64 = unstable.clone().int().sum_dim(1).max().into_scalar();
        let errors = if count == 0 {
            errors
        } else {
            let k = count as usize;
            let (_, order) = unstable.float().sort_descending_with_indices(1);
            let index: Tensor<2, Int> = order.narrow(1, 0, k);
            let values = mu.gather(1, index.clone()); // [n, k], 0 where stable
            let fresh = Tensor::<3>::zeros([n, k, d], &centre.device()).scatter(
                2,
                index.unsqueeze_dim(2),
                values.unsqueeze_dim(2),
                IndexingUpdateOp::Assign,
            );
            Some(match errors {
                Some(e) => Tensor::cat(vec![e, fresh], 1),
                None => fresh,
            })
        };
        Ok(Self {
            centre,
            coeffs,
            errors,
            ..self
        })
    }

    fn flatten(self) -> Result<Self, BoundsError> {
        Ok(Self {
            layout: Layout::Flat(self.layout.features()),
            ..self
        })
    }

    fn margins(self, last: &Linear, labels: &Tensor<1, Int>) -> Result<Tensor<2>, BoundsError> {
        let (w, b) = fold_spec(last, labels); // [n, classes, d], [n, classes]
        let [n, classes, d] = w.dims();
        let centre = apply(w.clone(), self.centre) + b;
        // input coefficients of each margin: [n, classes, d_in]
        let coeffs: Tensor<3> = match self.coeffs {
            Coeffs::Identity => w.clone(),
            Coeffs::Shared(a) => {
                let d_in = a.dims()[0];
                w.clone()
                    .reshape([n * classes, d])
                    .matmul(a.transpose())
                    .reshape([n, classes, d_in])
            }
            Coeffs::PerSample(a) => w.clone().matmul(a.swap_dims(1, 2)),
        };
        let spread = coeffs
            .abs()
            .matmul(self.input_radius.unsqueeze_dim::<3>(2))
            .squeeze_dim::<2>(2);
        let mut lower = centre - spread;
        if let Some(e) = self.errors {
            let errors = w.matmul(e.swap_dims(1, 2)); // [n, classes, k]
            lower = lower - errors.abs().sum_dim(2).squeeze_dim::<2>(2);
        }
        Ok(lower)
    }

    fn concretize(&self) -> (Tensor<2>, Tensor<2>) {
        let mut spread: Tensor<2> = match &self.coeffs {
            Coeffs::Identity => self.input_radius.clone(),
            Coeffs::Shared(a) => self.input_radius.clone().matmul(a.clone().abs()),
            Coeffs::PerSample(a) => self
                .input_radius
                .clone()
                .unsqueeze_dim::<3>(1)
                .matmul(a.clone().abs())
                .squeeze_dim::<2>(1),
        };
        if let Some(e) = &self.errors {
            spread = spread + e.clone().abs().sum_dim(1).squeeze_dim::<2>(1);
        }
        (
            self.centre.clone() - spread.clone(),
            self.centre.clone() + spread,
        )
    }
}
