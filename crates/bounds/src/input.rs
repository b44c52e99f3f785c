use burn::tensor::Tensor;

use crate::BoundsError;

/// The box every input must stay in, before the network's normalisation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputDomain {
    /// `[0, 1]` per pixel.
    #[default]
    Unit,
    /// `[min(x), max(x)]` over the pixels of each image: what the MixTrain authors' evaluator
    /// clips to (for most MNIST images the same as `Unit`).
    Image,
}

impl std::str::FromStr for InputDomain {
    type Err = BoundsError;

    fn from_str(s: &str) -> Result<Self, BoundsError> {
        match s {
            "unit" => Ok(InputDomain::Unit),
            "image" => Ok(InputDomain::Image),
            _ => Err(BoundsError::Input(format!(
                "unknown input domain {s:?}: expected unit or image"
            ))),
        }
    }
}

/// A batch of boxes `[lower, upper]` in pixel space, `[n, c, h, w]` each.
#[derive(Clone, Debug)]
pub struct InputSet {
    /// `[n, c, h, w]` lower corners, in pixel units (before normalisation).
    pub lower: Tensor<4>,
    /// `[n, c, h, w]` upper corners, in pixel units (before normalisation).
    pub upper: Tensor<4>,
}

impl InputSet {
    /// The L_inf ball of radius `eps` around each image of `x`, clipped to `domain`.
    pub fn linf(x: Tensor<4>, eps: f32, domain: InputDomain) -> Result<Self, BoundsError> {
        if !(eps >= 0.0 && eps.is_finite()) {
            return Err(BoundsError::Input(format!(
                "eps {eps} must be finite and >= 0"
            )));
        }
        let (lo, hi) = match domain {
            InputDomain::Unit => (x.zeros_like(), x.ones_like()),
            InputDomain::Image => {
                let [n, c, h, w] = x.dims();
                let flat = x.clone().reshape([n, c * h * w]);
                let lo = flat
                    .clone()
                    .min_dim(1)
                    .reshape([n, 1, 1, 1])
                    .expand([n, c, h, w]);
                let hi = flat.max_dim(1).reshape([n, 1, 1, 1]).expand([n, c, h, w]);
                (lo, hi)
            }
        };
        let lower = (x.clone() - eps).max_pair(lo);
        let upper = (x + eps).min_pair(hi);
        Ok(Self { lower, upper })
    }

    /// An arbitrary box; `lower <= upper` is the caller's to ensure.
    pub fn new(lower: Tensor<4>, upper: Tensor<4>) -> Self {
        Self { lower, upper }
    }

    /// Centre and radius, flattened to `[n, c*h*w]`.
    pub(crate) fn centre_radius(&self) -> (Tensor<2>, Tensor<2>) {
        let lower: Tensor<2> = self.lower.clone().flatten(1, 3);
        let upper: Tensor<2> = self.upper.clone().flatten(1, 3);
        ((upper.clone() + lower.clone()) * 0.5, (upper - lower) * 0.5)
    }

    /// The number of boxes `n` in the batch.
    pub fn len(&self) -> usize {
        self.lower.dims()[0]
    }

    /// Whether the batch has no box.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
