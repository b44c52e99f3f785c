//! Dynamic mixed training: how the natural and robust losses are balanced, re-tuned once per
//! epoch. MixTrain's exact rule is not published; the policies are those of
//! `shared/docs/MIXTRAIN.md`.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// How the mix of the two losses is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// `(1 - alpha) L_nat + alpha L_rob` with a constant `alpha`.
    Fixed,
    /// The authors' later recipe: `L_nat + w_t L_rob` on a batch with probability
    /// `probability` (else `L_nat` alone), `w_t = min(w0 growth^floor(e / every_epochs),
    /// max_weight)` with `e` the epochs since the warm-up.
    Schedule,
    /// `(1 - alpha) L_nat + alpha L_rob`, `alpha` moved by `step` after each epoch from the
    /// validation figures (see [`Dmt::after_epoch`]).
    Adaptive,
}

impl Policy {
    /// The name used in configs and logs: `fixed`, `schedule` or `adaptive`.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Fixed => "fixed",
            Policy::Schedule => "schedule",
            Policy::Adaptive => "adaptive",
        }
    }
}

/// The policy and its parameters. One flat table so that every field can be overridden on the
/// command line (`--set dmt.alpha=0.3`); a policy reads only its own fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DmtConfig {
    /// `None`: the training method's default (`adaptive` for MixTrain, `fixed` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// `fixed`: the weight of the robust loss; `adaptive`: its starting value. In `[0, 1]`;
    /// default 0.5.
    pub alpha: f64,
    /// `adaptive`: the change of alpha after an epoch; `>= 0`, default 0.1.
    pub step: f64,
    /// `adaptive`: how far validation clean accuracy (a fraction, not percent) may fall below
    /// its best before alpha is lowered; `>= 0`, default 0.01.
    pub acc_tolerance: f64,
    /// `adaptive`: the lower end of the range alpha is clamped to; in `[0, 1]`, at most
    /// `alpha_max`, default 0.1.
    pub alpha_min: f64,
    /// `adaptive`: the upper end of the range alpha is clamped to; in `[0, 1]`, default 0.9.
    pub alpha_max: f64,
    /// `schedule`: the robust weight `w_0` of the first epochs after the warm-up; `>= 0`,
    /// default 0.1.
    pub w0: f64,
    /// `schedule`: the factor the robust weight grows by every `every_epochs` epochs; `> 0`,
    /// default 2.5.
    pub growth: f64,
    /// `schedule`: the epochs between two growths of the robust weight; at least 1, default 5.
    pub every_epochs: usize,
    /// `schedule`: the cap on the robust weight; `>= 0`, default 50.
    pub max_weight: f64,
    /// `schedule`: the probability that a batch gets the robust term; in `[0, 1]`, default 0.8.
    pub probability: f64,
}

impl Default for DmtConfig {
    fn default() -> Self {
        Self {
            policy: None,
            alpha: 0.5,
            step: 0.1,
            acc_tolerance: 0.01,
            alpha_min: 0.1,
            alpha_max: 0.9,
            w0: 0.1,
            growth: 2.5,
            every_epochs: 5,
            max_weight: 50.0,
            probability: 0.8,
        }
    }
}

impl DmtConfig {
    /// A description of a bad configuration, if it is one.
    pub fn problem(&self) -> Option<String> {
        let unit = |v: f64| (0.0..=1.0).contains(&v);
        if !unit(self.alpha) || !unit(self.alpha_min) || !unit(self.alpha_max) {
            return Some("alpha, alpha_min and alpha_max must be in [0, 1]".into());
        }
        if self.alpha_min > self.alpha_max {
            return Some(format!(
                "alpha_min {} is above alpha_max {}",
                self.alpha_min, self.alpha_max
            ));
        }
        if !(self.step >= 0.0 && self.acc_tolerance >= 0.0) {
            return Some("step and acc_tolerance must be >= 0".into());
        }
        if !unit(self.probability) {
            return Some(format!(
                "probability {} must be in [0, 1]",
                self.probability
            ));
        }
        if !(self.w0 >= 0.0 && self.growth > 0.0 && self.max_weight >= 0.0) {
            return Some("w0 and max_weight must be >= 0, growth > 0".into());
        }
        if self.every_epochs == 0 {
            return Some("every_epochs must be at least 1".into());
        }
        None
    }
}

/// The weights of the two losses for one batch: `natural L_nat + robust L_rob`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix {
    /// Weight of the natural loss (whole batch).
    pub natural: f64,
    /// Weight of the robust loss (the SRA sample); 0 means the batch skips the bounds.
    pub robust: f64,
}

/// A change of alpha after an epoch, with the figures that caused it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlphaChange {
    /// Alpha before the update.
    pub from: f64,
    /// Alpha after it (equal to `from` when the move was stopped by the clamp).
    pub to: f64,
    /// The validation figures that triggered the move, in words.
    pub reason: String,
}

/// The policy's state across epochs (saved with checkpoints, so a resumed run continues it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dmt {
    /// The policy in force (the config's, or the method's default).
    pub policy: Policy,
    /// The current weight of the robust loss (`fixed` and `adaptive`).
    pub alpha: f64,
    /// The best validation clean accuracy seen so far (a fraction); `None` before the first.
    pub best_acc: Option<f64>,
    /// The best validation VRA seen so far (a fraction); `None` before the first.
    pub best_vra: Option<f64>,
}

impl Dmt {
    /// The state at the start of training: alpha from `config`, no best figures yet.
    pub fn new(policy: Policy, config: &DmtConfig) -> Self {
        Self {
            policy,
            alpha: config.alpha,
            best_acc: None,
            best_vra: None,
        }
    }

    /// `schedule`'s weight `epochs_robust` epochs after the warm-up.
    pub fn schedule_weight(config: &DmtConfig, epochs_robust: usize) -> f64 {
        let growths = (epochs_robust / config.every_epochs) as i32;
        (config.w0 * config.growth.powi(growths)).min(config.max_weight)
    }

    /// The mix for one batch of an epoch that is `epochs_robust` epochs past the warm-up.
    /// `schedule` draws whether this batch gets the robust term (weight 0 when it does not, so
    /// the caller can skip the bound computation).
    pub fn mix(&self, config: &DmtConfig, epochs_robust: usize, rng: &mut impl Rng) -> Mix {
        match self.policy {
            Policy::Fixed | Policy::Adaptive => Mix {
                natural: 1.0 - self.alpha,
                robust: self.alpha,
            },
            Policy::Schedule => Mix {
                natural: 1.0,
                robust: if rng.random_bool(config.probability) {
                    Self::schedule_weight(config, epochs_robust)
                } else {
                    0.0
                },
            },
        }
    }

    /// `adaptive`'s update from one epoch's validation clean accuracy and VRA: if clean accuracy
    /// fell more than `acc_tolerance` below its best so far, lower alpha by `step`; else if VRA
    /// did not improve on its best, raise it; clamp to `[alpha_min, alpha_max]`. The bests are
    /// then updated. Other policies only record the figures.
    pub fn after_epoch(
        &mut self,
        config: &DmtConfig,
        clean_acc: f64,
        vra: f64,
    ) -> Option<AlphaChange> {
        let from = self.alpha;
        let mut reason = None;
        if self.policy == Policy::Adaptive {
            if let Some(best) = self
                .best_acc
                .filter(|b| clean_acc < b - config.acc_tolerance)
            {
                self.alpha = from - config.step;
                reason = Some(format!(
                    "clean accuracy {clean_acc:.4} fell more than {} below its best {best:.4}",
                    config.acc_tolerance
                ));
            } else if let Some(best) = self.best_vra.filter(|b| vra <= *b) {
                self.alpha = from + config.step;
                reason = Some(format!(
                    "VRA {vra:.4} did not improve on its best {best:.4}"
                ));
            }
            // rounded, so that steps of 0.1 give 0.8 and not 0.7999999999999999
            self.alpha =
                ((self.alpha * 1e9).round() / 1e9).clamp(config.alpha_min, config.alpha_max);
        }
        self.best_acc = Some(self.best_acc.map_or(clean_acc, |b| b.max(clean_acc)));
        self.best_vra = Some(self.best_vra.map_or(vra, |b| b.max(vra)));
        match reason {
            Some(reason) if self.alpha != from => Some(AlphaChange {
                from,
                to: self.alpha,
                reason,
            }),
            Some(reason) => Some(AlphaChange {
                from,
                to: from,
                reason: format!("{reason}, but alpha is at its bound"),
            }),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn adaptive() -> (Dmt, DmtConfig) {
        let config = DmtConfig {
            alpha: 0.5,
            step: 0.1,
            acc_tolerance: 0.01,
            alpha_min: 0.3,
            alpha_max: 0.7,
            ..DmtConfig::default()
        };
        (Dmt::new(Policy::Adaptive, &config), config)
    }

    #[test]
    fn adaptive_follows_the_scripted_figures() {
        let (mut dmt, config) = adaptive();
        // (clean, vra) -> alpha after the epoch
        let script = [
            ((0.95, 0.50), 0.5),  // first epoch: nothing to compare with
            ((0.96, 0.60), 0.5),  // both improved
            ((0.96, 0.60), 0.6),  // VRA stalled: more robust weight
            ((0.955, 0.59), 0.7), // accuracy within tolerance, VRA fell
            ((0.94, 0.65), 0.6),  // accuracy 0.02 below its best: less robust weight
        ];
        let mut changes = Vec::new();
        for (i, ((clean, vra), expected)) in script.iter().enumerate() {
            changes.push(dmt.after_epoch(&config, *clean, *vra));
            assert!(
                (dmt.alpha - expected).abs() < 1e-12,
                "epoch {}: alpha {} expected {expected}",
                i + 1,
                dmt.alpha
            );
        }
        assert!(changes[0].is_none() && changes[1].is_none());
        assert!(changes[2].as_ref().unwrap().reason.contains("VRA 0.6000"));
        assert!(changes[4].as_ref().unwrap().reason.contains("best 0.9600"));
        // accuracy still more than the tolerance below its best: alpha keeps falling to its floor
        dmt.after_epoch(&config, 0.94, 0.70);
        assert!((dmt.alpha - 0.5).abs() < 1e-12);
        dmt.after_epoch(&config, 0.94, 0.71);
        dmt.after_epoch(&config, 0.94, 0.72);
        dmt.after_epoch(&config, 0.94, 0.73);
        assert_eq!(dmt.alpha, 0.3, "clamped at alpha_min");
        let at_bound = dmt.after_epoch(&config, 0.94, 0.74).unwrap();
        assert_eq!((at_bound.from, at_bound.to), (0.3, 0.3));
        assert!(at_bound.reason.contains("at its bound"));
    }

    #[test]
    fn fixed_never_moves_and_mixes_one_minus_alpha() {
        let config = DmtConfig {
            alpha: 0.25,
            ..DmtConfig::default()
        };
        let mut dmt = Dmt::new(Policy::Fixed, &config);
        for (clean, vra) in [(0.9, 0.5), (0.5, 0.1), (0.99, 0.9)] {
            assert!(dmt.after_epoch(&config, clean, vra).is_none());
        }
        let mix = dmt.mix(&config, 3, &mut StdRng::seed_from_u64(0));
        assert_eq!((mix.natural, mix.robust), (0.75, 0.25));
    }

    #[test]
    fn schedule_grows_every_five_epochs_up_to_its_cap_with_probability() {
        let config = DmtConfig::default();
        let w = |e| Dmt::schedule_weight(&config, e);
        assert_eq!(w(0), 0.1);
        assert_eq!(w(4), 0.1);
        assert!((w(5) - 0.25).abs() < 1e-12);
        assert!((w(10) - 0.625).abs() < 1e-12);
        assert_eq!(w(100), 50.0);
        let dmt = Dmt::new(Policy::Schedule, &config);
        let mut rng = StdRng::seed_from_u64(1);
        let draws = 10_000;
        let applied = (0..draws)
            .filter(|_| {
                let mix = dmt.mix(&config, 5, &mut rng);
                assert_eq!(mix.natural, 1.0);
                mix.robust > 0.0
            })
            .count();
        // binomial(10000, 0.8): sd 40, so +-200 is five standard deviations
        assert!((applied as i64 - 8000).abs() < 200, "applied {applied}");
    }
}
