//! The training methods: one file each, and the registry that names them.
//!
//! A method is a [`Rule`]: the loss terms of one batch, and what the loop around it needs to
//! know (whether it is certified, the domain it bounds with, the bounds a step computes).
//! Adding a method is a file here, a variant of [`Method`] and its line in [`Method::rule`].

mod crown_ibp;
mod ibp;
mod mixtrain;
mod natural;
mod pgd;

use burn::tensor::{Int, Tensor};
use mixtrain_bounds::{DomainKind, InputSet};
use mixtrain_loss::{Mix, Policy, cross_entropy};
use mixtrain_nn::Network;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::{TrainConfig, TrainError};

/// How the network is trained: the name in configs, logs and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Cross-entropy on clean inputs.
    #[default]
    Natural,
    /// Adversarial training (Madry et al.): cross-entropy on PGD examples only.
    Pgd,
    /// Interval bound propagation: the natural loss mixed with the robust cross-entropy of the
    /// interval bounds on the whole batch.
    Ibp,
    /// CROWN-IBP: as `ibp`, with the bound `beta` CROWN-IBP + `(1 - beta)` IBP, `beta` falling
    /// from 1 to 0 along the eps ramp.
    CrownIbp,
    /// MixTrain: natural loss on the batch, symbolic robust loss on `k` points drawn from it
    /// (stochastic robust approximation), mixed by dynamic mixed training.
    Mixtrain,
}

impl Method {
    /// Every method, in the order tests and benches list them.
    pub const ALL: [Method; 5] = [
        Method::Natural,
        Method::Pgd,
        Method::Ibp,
        Method::CrownIbp,
        Method::Mixtrain,
    ];

    /// The registry: each method's rule.
    pub(crate) fn rule(self) -> &'static dyn Rule {
        match self {
            Method::Natural => &natural::Natural,
            Method::Pgd => &pgd::Pgd,
            Method::Ibp => &ibp::Ibp,
            Method::CrownIbp => &crown_ibp::CrownIbp,
            Method::Mixtrain => &mixtrain::Mixtrain,
        }
    }

    /// The name in configs, logs and reports (`natural`, `pgd`, `ibp`, `crown-ibp`,
    /// `mixtrain`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Natural => "natural",
            Method::Pgd => "pgd",
            Method::Ibp => "ibp",
            Method::CrownIbp => "crown-ibp",
            Method::Mixtrain => "mixtrain",
        }
    }

    /// Whether the method trains against a sound bound, mixed with the natural loss by dynamic
    /// mixed training: only then does validation measure VRA (which the adaptive policy reads).
    pub fn certified(self) -> bool {
        self.rule().certified()
    }

    /// The DMT policy when the config names none.
    pub fn default_policy(self) -> Policy {
        self.rule().default_policy()
    }

    /// The domain whose bounds the method trains (and, by default, validates) with.
    pub fn default_domain(self) -> DomainKind {
        self.rule().domain()
    }
}

/// One training method's part of a step. The loop (`run.rs`) owns everything else: the data,
/// the schedules, the mix, the optimiser, validation and logging.
pub(crate) trait Rule: Sync {
    /// The loss terms of one batch (`x`, `y` on an autodiff device); the robust term is skipped
    /// when `ctx.mix` gives it no weight or the eps is 0.
    fn terms(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        ctx: &StepContext,
        rng: &mut dyn RngCore,
    ) -> Result<Terms, TrainError>;

    /// See [`Method::certified`].
    fn certified(&self) -> bool {
        true
    }

    /// See [`Method::default_domain`].
    fn domain(&self) -> DomainKind {
        DomainKind::Symbolic
    }

    /// See [`Method::default_policy`].
    fn default_policy(&self) -> Policy {
        Policy::Fixed
    }

    /// The bounds one training step computes, for the memory check: what they are, how many
    /// points, and what to change when they do not fit. `None` when a step bounds nothing.
    fn bounded_points(&self, config: &TrainConfig) -> Option<BoundedPoints> {
        Some(BoundedPoints {
            what: format!(
                "the robust loss ({}, the whole batch)",
                config.method.name()
            ),
            points: config.batch_size,
            change: "a smaller batch_size",
        })
    }

    /// The name of the robust term in errors.
    fn robust_term(&self) -> &'static str {
        "robust cross-entropy"
    }
}

/// The bounds of one training step, for the memory check.
pub(crate) struct BoundedPoints {
    pub what: String,
    pub points: usize,
    pub change: &'static str,
}

/// What a step needs besides the batch.
pub(crate) struct StepContext<'a> {
    pub config: &'a TrainConfig,
    /// eps of this step (0 in the warm-up and before the ramp's first step).
    pub eps: f64,
    /// Ramp progress in `[0, 1]` (CROWN-IBP's `beta = 1 - progress`).
    pub progress: f64,
    pub mix: Mix,
}

impl StepContext<'_> {
    /// Whether the robust term is wanted this step.
    pub fn robust_wanted(&self) -> bool {
        self.eps > 0.0 && self.mix.robust > 0.0
    }

    /// The step's L_inf balls around `x`, clipped to the configured input domain.
    pub fn ball(&self, x: Tensor<4>) -> Result<InputSet, TrainError> {
        Ok(InputSet::linf(
            x,
            self.eps as f32,
            self.config.input_domain,
        )?)
    }

    /// The shape of a certified method's step: the natural term on the clean batch, and
    /// `robust(x, y)` when the step wants it.
    pub fn natural_and_robust(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        robust: impl FnOnce(Tensor<4>, Tensor<1, Int>) -> Result<Tensor<1>, TrainError>,
    ) -> Result<Terms, TrainError> {
        let logits = model.forward(x.clone());
        let natural = cross_entropy(logits.clone(), y.clone());
        let robust = match self.robust_wanted() {
            true => Some(robust(x, y)?),
            false => None,
        };
        Ok(Terms {
            natural: Some(natural),
            robust,
            logits,
        })
    }
}

/// The loss terms of one batch before they are mixed, and the logits train accuracy is read
/// from (clean, or adversarial for `pgd`).
pub(crate) struct Terms {
    pub natural: Option<Tensor<1>>,
    pub robust: Option<Tensor<1>>,
    pub logits: Tensor<2>,
}

impl Terms {
    /// The name the non-finite check gives the natural term.
    pub const NATURAL: &'static str = "natural cross-entropy";

    /// The natural term weighted `mix.natural` plus the robust one weighted `mix.robust`: the
    /// loss the optimiser differentiates. A term the step skipped adds nothing; a term of
    /// weight 0 is left out rather than multiplied by 0.
    pub fn mixed(&self, mix: Mix) -> Result<Tensor<1>, TrainError> {
        let natural = self
            .natural
            .clone()
            .filter(|_| mix.natural > 0.0)
            .map(|t| t * mix.natural);
        let robust = self.robust.clone().map(|t| t * mix.robust);
        match (natural, robust) {
            (Some(a), Some(b)) => Ok(a + b),
            (Some(t), None) | (None, Some(t)) => Ok(t),
            (None, None) => Err(TrainError::Config {
                origin: "step".into(),
                message: "the step computed no loss term with a positive weight".into(),
            }),
        }
    }
}

/// The mix of a step: the policy's for a certified method once eps is positive; the natural
/// term alone before that; a non-certified method's single term whole.
pub(crate) fn step_mix(method: Method, eps: f64, policy_mix: impl FnOnce() -> Mix) -> Mix {
    if !method.certified() {
        Mix {
            natural: 1.0,
            robust: 1.0,
        }
    } else if eps == 0.0 {
        Mix {
            natural: 1.0,
            robust: 0.0,
        }
    } else {
        policy_mix()
    }
}

/// The training loss of `config`'s method on one batch at radius `eps`, with the robust term
/// weighted `alpha` and the natural one `1 - alpha` (`natural` and `pgd` take their single
/// term whole; CROWN-IBP is taken at the start of its ramp, beta = 1, its costliest point):
/// what the trainer differentiates at each step, before the optimiser. Public for benchmarks
/// and for users who drive their own loop; `model`, `x` and `y` on an autodiff device.
pub fn step_loss(
    model: &Network,
    x: Tensor<4>,
    y: Tensor<1, Int>,
    config: &TrainConfig,
    eps: f64,
    alpha: f64,
    rng: &mut impl RngCore,
) -> Result<Tensor<1>, TrainError> {
    let mix = step_mix(config.method, eps, || Mix {
        natural: 1.0 - alpha,
        robust: alpha,
    });
    let ctx = StepContext {
        config,
        eps,
        progress: 0.0,
        mix,
    };
    config
        .method
        .rule()
        .terms(model, x, y, &ctx, rng)?
        .mixed(mix)
}
