use serde::{Deserialize, Serialize};

/// Learning-rate schedules, evaluated per step so that a resumed run continues the same curve.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// Multiply by `gamma` every `every_epochs` epochs.
    Step {
        /// Epochs between two decays; at least 1.
        every_epochs: usize,
        /// The factor applied at each decay; positive and finite.
        gamma: f64,
    },
    /// Multiply by `gamma` at each of the given epochs (PyTorch's `MultiStepLR`).
    Milestones {
        /// Milestones in completed epochs: milestone `m` multiplies the rate by `gamma` from the
        /// first step after `m` epochs on.
        epochs: Vec<usize>,
        /// The factor applied at each milestone; positive and finite.
        gamma: f64,
    },
    /// Cosine decay from the base rate to `min_lr` over the whole run.
    Cosine {
        /// The rate at the end of the run; `>= 0`, default 0.
        #[serde(default)]
        min_lr: f64,
    },
}

impl LrSchedule {
    /// The rate at `step` (0-based, counted over the whole run) of `total_steps`, with
    /// `steps_per_epoch` steps in an epoch.
    pub fn lr(&self, base: f64, step: usize, steps_per_epoch: usize, total_steps: usize) -> f64 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step {
                every_epochs,
                gamma,
            } => {
                let epoch = step / steps_per_epoch.max(1);
                base * gamma.powi((epoch / every_epochs.max(1)) as i32)
            }
            LrSchedule::Milestones { ref epochs, gamma } => {
                let epoch = step / steps_per_epoch.max(1);
                let passed = epochs.iter().filter(|&&m| epoch >= m).count();
                base * gamma.powi(passed as i32)
            }
            LrSchedule::Cosine { min_lr } => {
                let t = step as f64 / total_steps.max(1) as f64;
                min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
            }
        }
    }

    /// A description of a bad schedule, if it is one.
    pub fn problem(&self) -> Option<String> {
        match *self {
            LrSchedule::Step {
                every_epochs: 0, ..
            } => Some("step schedule needs every_epochs >= 1".into()),
            LrSchedule::Step { gamma, .. } if !(gamma > 0.0 && gamma.is_finite()) => Some(format!(
                "step schedule gamma {gamma} must be positive and finite"
            )),
            LrSchedule::Milestones { gamma, .. } if !(gamma > 0.0 && gamma.is_finite()) => Some(
                format!("milestones schedule gamma {gamma} must be positive and finite"),
            ),
            LrSchedule::Cosine { min_lr } if !(min_lr >= 0.0 && min_lr.is_finite()) => Some(
                format!("cosine schedule min_lr {min_lr} must be >= 0 and finite"),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(LrSchedule::Constant.lr(0.1, 77, 10, 100), 0.1);
        let step = LrSchedule::Step {
            every_epochs: 2,
            gamma: 0.5,
        };
        assert_eq!(step.lr(1.0, 19, 10, 100), 1.0);
        assert_eq!(step.lr(1.0, 20, 10, 100), 0.5);
        assert_eq!(step.lr(1.0, 45, 10, 100), 0.25);
        let milestones = LrSchedule::Milestones {
            epochs: vec![2, 5],
            gamma: 0.1,
        };
        assert_eq!(milestones.lr(1.0, 19, 10, 100), 1.0);
        assert!((milestones.lr(1.0, 20, 10, 100) - 0.1).abs() < 1e-12);
        assert!((milestones.lr(1.0, 50, 10, 100) - 0.01).abs() < 1e-12);
        let cos = LrSchedule::Cosine { min_lr: 0.0 };
        assert_eq!(cos.lr(1.0, 0, 10, 100), 1.0);
        assert!((cos.lr(1.0, 50, 10, 100) - 0.5).abs() < 1e-12);
        assert!(cos.lr(1.0, 100, 10, 100).abs() < 1e-12);
        assert!(
            LrSchedule::Step {
                every_epochs: 0,
                gamma: 0.5
            }
            .problem()
            .is_some()
        );
        assert!(LrSchedule::Cosine { min_lr: -1.0 }.problem().is_some());
    }
}
