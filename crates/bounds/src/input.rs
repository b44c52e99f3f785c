use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::BoundsError;

/// The box every input must stay in, before the network's normalisation. Written `unit` or
/// `image` in configs and on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputDomain {
    /// `[0, 1]` per pixel.
    #[default]
    Unit,
    /// `[min(x), max(x)]` over the pixels of each image: what the MixTrain authors' evaluator
    /// clips to (for most MNIST images the same as `Unit`).
    Image,
}

impl InputDomain {
    /// The name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            InputDomain::Unit => "unit",
            InputDomain::Image => "image",
        }
    }
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
    /// The L_inf ball of radius `eps` around each image of `x`, clipped to `domain`. Unlike
    /// [`InputSet::new`] this reads nothing back: the corners are ordered by construction, and a
    /// NaN pixel gives NaN bounds, which never verify (and which the trainer's non-finite loss
    /// check stops on).
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

    /// An arbitrary box, `[n, c, h, w]` corners. Rejects corners of different shapes, NaNs and
    /// any `lower > upper` (which would make the radius negative and every bound unsound); the
    /// check costs one read back from the device.
    pub fn new(lower: Tensor<4>, upper: Tensor<4>) -> Result<Self, BoundsError> {
        if lower.dims() != upper.dims() {
            return Err(BoundsError::Input(format!(
                "lower corners {:?} and upper corners {:?} differ in shape",
                lower.dims(),
                upper.dims()
            )));
        }
        let gap = upper.clone() - lower.clone();
        // NaN in either corner makes the gap NaN, and NaN fails every comparison
        let bad: i64 = gap
            .greater_equal_elem(0.0)
            .bool_not()
            .int()
            .sum()
            .into_scalar();
        if bad > 0 {
            return Err(BoundsError::Input(format!(
                "{bad} coordinates have lower > upper or a NaN corner"
            )));
        }
        Ok(Self { lower, upper })
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
