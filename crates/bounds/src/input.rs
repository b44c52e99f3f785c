use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::BoundsError;
use crate::rounding::slack;

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
    /// Whether bounds of this set account for the engine's float32 rounding (see
    /// [`InputSet::into_float_sound`]); off for training, where speed matters and a bound off by
    /// `1e-6` changes nothing.
    pub float_sound: bool,
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
        Ok(Self {
            lower,
            upper,
            float_sound: false,
        })
    }

    /// SABR's small boxes (Mueller et al. 2023, "Certified training: small boxes are all you
    /// need"): around each `centre` (an adversarial point of the eps-ball around `x`), the box of
    /// radius `radius` (SABR's `lambda * eps`), moved as little as possible to lie inside that
    /// ball clipped to `domain`; where the clipped ball is narrower than `2 radius`, the clipped
    /// ball itself. Every point of a small box lies in the ball, so its bound is a sound bound of
    /// those points (not of the ball: a training loss, not a certificate).
    pub fn small_box(
        x: Tensor<4>,
        centre: Tensor<4>,
        eps: f32,
        radius: f32,
        domain: InputDomain,
    ) -> Result<Self, BoundsError> {
        if !(0.0..=eps).contains(&radius) {
            return Err(BoundsError::Input(format!(
                "a small box's radius {radius} must be in [0, eps = {eps}]"
            )));
        }
        let ball = Self::linf(x, eps, domain)?;
        let centre = centre
            .max_pair(ball.lower.clone() + radius)
            .min_pair(ball.upper.clone() - radius);
        Ok(Self {
            lower: (centre.clone() - radius).max_pair(ball.lower),
            upper: (centre + radius).min_pair(ball.upper),
            float_sound: false,
        })
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
        Ok(Self {
            lower,
            upper,
            float_sound: false,
        })
    }

    /// The same boxes, to be bounded soundly in floating point: every domain widens each bound
    /// it reports by a rigorous bound of its float32 rounding, so a verified point is verified for the network's exact
    /// arithmetic. The corners themselves move out by a relative `9 * 2^-24`, since `x - eps`
    /// rounded may lie inside the exact ball.
    pub fn into_float_sound(self) -> Self {
        let widen = |t: Tensor<4>| t.abs() * slack(1);
        Self {
            lower: self.lower.clone() - widen(self.lower),
            upper: self.upper.clone() + widen(self.upper),
            float_sound: true,
        }
    }

    /// The boxes `rows` (a subset of the batch, in that order), with the same soundness.
    pub fn select(&self, rows: Tensor<1, Int>) -> Self {
        Self {
            lower: self.lower.clone().select(0, rows.clone()),
            upper: self.upper.clone().select(0, rows),
            float_sound: self.float_sound,
        }
    }

    /// The boxes `start..end` of the batch, with the same soundness.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        Self {
            lower: self.lower.clone().slice(range.clone()),
            upper: self.upper.clone().slice(range),
            float_sound: self.float_sound,
        }
    }

    /// `max(|lower|, |upper|)` flattened to `[n, c*h*w]` on a float-sound set (a bound on the
    /// magnitude of every input, for rounding bounds), else `None`.
    pub(crate) fn magnitude(&self) -> Option<Tensor<2>> {
        self.float_sound.then(|| {
            let lower: Tensor<2> = self.lower.clone().abs().flatten(1, 3);
            lower.max_pair(self.upper.clone().abs().flatten(1, 3))
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn pixels(p: [f32; 4], device: &Device) -> Tensor<4> {
        Tensor::<1>::from_floats(p, device).reshape([1, 1, 2, 2])
    }

    fn read(t: Tensor<4>) -> Vec<f32> {
        t.into_data().try_to_vec().unwrap()
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-6)
    }

    #[test]
    fn a_small_box_is_moved_inside_the_clipped_ball() {
        let device = Device::flex();
        let x = pixels([0.5, 0.02, 0.97, 0.3], &device);
        // the clipped ball: [0.4, 0.6], [0, 0.12], [0.87, 1], [0.2, 0.4]; a centre inside,
        // one past the domain, one past the domain's other side, one past the ball
        let centre = pixels([0.58, 0.0, 0.99, 0.21], &device);
        let set = InputSet::small_box(x.clone(), centre, 0.1, 0.04, InputDomain::Unit).unwrap();
        assert!(close(&read(set.lower), &[0.52, 0.0, 0.92, 0.2]));
        assert!(close(&read(set.upper), &[0.6, 0.08, 1.0, 0.28]));
        // radius 0.07 fits neither [0, 0.12] nor [0.87, 1]: those take the whole clipped ball
        let centre = pixels([0.5, 0.02, 0.97, 0.3], &device);
        let set = InputSet::small_box(x.clone(), centre, 0.1, 0.07, InputDomain::Unit).unwrap();
        assert!(close(&read(set.lower), &[0.43, 0.0, 0.87, 0.23]));
        assert!(close(&read(set.upper), &[0.57, 0.12, 1.0, 0.37]));
        let e = InputSet::small_box(x.clone(), x, 0.1, 0.2, InputDomain::Unit).unwrap_err();
        assert!(e.to_string().contains("radius"), "{e}");
    }
}
