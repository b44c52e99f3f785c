use serde::{Deserialize, Serialize};

/// The shape of the eps ramp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ramp {
    /// Straight from 0 to eps.
    #[default]
    Linear,
    /// auto_LiRPA's smoothed ramp: polynomial (`t^4`) for the first quarter, then linear, joined
    /// with a continuous slope. Small eps grows slowly while the bounds are still loose.
    Smooth,
}

/// eps over the run: an optional natural warm-up (no robust term at all), then a ramp from 0
/// to the target eps, then the target. Large eps from the first step makes verifiable training
/// collapse to a constant classifier, hence the ramp.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EpsSchedule {
    /// The shape of the ramp; default `linear`.
    pub ramp: Ramp,
    /// Epochs of natural training before the ramp starts.
    pub warmup_epochs: usize,
    /// Length of the ramp in epochs (fractions allowed); 0 starts at the full eps.
    pub ramp_epochs: f64,
    /// Length of the ramp in optimiser steps; overrides `ramp_epochs` when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp_steps: Option<usize>,
}

impl Default for EpsSchedule {
    fn default() -> Self {
        Self {
            ramp: Ramp::Linear,
            warmup_epochs: 0,
            ramp_epochs: 1.0,
            ramp_steps: None,
        }
    }
}

/// Exponent and joint of the smooth ramp (auto_LiRPA's `SmoothedScheduler` defaults).
const SMOOTH_BETA: f64 = 4.0;
const SMOOTH_MID: f64 = 0.25;

impl Ramp {
    /// The fraction of eps at ramp progress `t` in `[0, 1]`.
    fn fraction(self, t: f64) -> f64 {
        let t = t.clamp(0.0, 1.0);
        match self {
            Ramp::Linear => t,
            Ramp::Smooth => {
                // a t^beta up to the joint, then the line to (1, 1) with the same slope there
                let (b, m) = (SMOOTH_BETA, SMOOTH_MID);
                let a = 1.0 / (m.powf(b - 1.0) * (b * (1.0 - m) + m));
                let at_mid = a * m.powf(b);
                if t < m {
                    a * t.powf(b)
                } else {
                    at_mid + (1.0 - at_mid) * (t - m) / (1.0 - m)
                }
            }
        }
    }
}

impl EpsSchedule {
    /// Whether optimiser step `step` (0-based over the run) is in the natural warm-up.
    fn in_warmup(&self, step: usize, steps_per_epoch: usize) -> bool {
        step < self.warmup_epochs * steps_per_epoch
    }

    /// eps at step `step` for target `eps`: 0 in the warm-up; on the ramp, step `i` (0-based)
    /// of `n` gets the fraction at `(i + 1) / n`, so that the last ramp step trains at eps.
    pub fn eps(&self, eps: f64, step: usize, steps_per_epoch: usize) -> f64 {
        if self.in_warmup(step, steps_per_epoch) {
            return 0.0;
        }
        let since = step - self.warmup_epochs * steps_per_epoch;
        let ramp = self
            .ramp_steps
            .unwrap_or_else(|| (self.ramp_epochs * steps_per_epoch as f64).round() as usize);
        if since >= ramp {
            return eps;
        }
        eps * self.ramp.fraction((since + 1) as f64 / ramp as f64)
    }

    /// The progress through the ramp at `step`, in `[0, 1]` (1 once eps is reached).
    pub fn progress(&self, eps: f64, step: usize, steps_per_epoch: usize) -> f64 {
        if eps > 0.0 {
            self.eps(eps, step, steps_per_epoch) / eps
        } else {
            1.0
        }
    }

    /// A description of a bad schedule, if it is one.
    pub fn problem(&self) -> Option<String> {
        (!(self.ramp_epochs >= 0.0 && self.ramp_epochs.is_finite()))
            .then(|| format!("ramp_epochs {} must be >= 0", self.ramp_epochs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_linear_ramp_then_target() {
        let s = EpsSchedule {
            warmup_epochs: 1,
            ramp_epochs: 2.0,
            ..EpsSchedule::default()
        };
        // 10 steps per epoch: 10 warm-up steps, a 20-step ramp, then eps
        assert!(s.in_warmup(9, 10) && !s.in_warmup(10, 10));
        assert_eq!(s.eps(0.2, 9, 10), 0.0);
        assert!((s.eps(0.2, 10, 10) - 0.2 / 20.0).abs() < 1e-12);
        assert!((s.eps(0.2, 19, 10) - 0.1).abs() < 1e-12);
        assert!((s.eps(0.2, 29, 10) - 0.2).abs() < 1e-12);
        assert_eq!(s.eps(0.2, 500, 10), 0.2);
        let steps = EpsSchedule {
            ramp_steps: Some(4),
            ..EpsSchedule::default()
        };
        assert_eq!(steps.eps(1.0, 1, 1000), 0.5);
        let none = EpsSchedule {
            ramp_epochs: 0.0,
            ..EpsSchedule::default()
        };
        assert_eq!(none.eps(0.3, 0, 10), 0.3);
    }

    #[test]
    fn smooth_ramp_is_monotone_continuous_and_ends_at_one() {
        let f = |t| Ramp::Smooth.fraction(t);
        assert_eq!(f(0.0), 0.0);
        assert!((f(1.0) - 1.0).abs() < 1e-12);
        let mut last = 0.0;
        for i in 1..=1000 {
            let v = f(i as f64 / 1000.0);
            assert!(v > last, "strictly increasing at {i}");
            assert!(v - last < 0.0025, "no jump at {i}");
            last = v;
        }
        // slow start: at a tenth of the ramp, far below the linear ramp
        assert!(f(0.1) < 0.01);
        // the slopes meet at the joint
        let h = 1e-6;
        let left = (f(SMOOTH_MID) - f(SMOOTH_MID - h)) / h;
        let right = (f(SMOOTH_MID + h) - f(SMOOTH_MID)) / h;
        assert!((left - right).abs() < 1e-3, "{left} vs {right}");
    }
}
