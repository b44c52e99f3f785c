//! The training methods: one file each, and the registry that names them.
//!
//! A method is a [`Rule`]: the loss terms of one batch, and what the loop around it needs to
//! know (whether it is certified, the domain it bounds with, the bounds a step computes).
//! Adding a method is a file here, a variant of [`Method`] and its line in [`Method::rule`].

mod cc_ibp;
mod crown_ibp;
mod exp_ibp;
mod ibp;
mod mixtrain;
mod mtl_ibp;
mod natural;
mod pgd;
mod sabr;

use burn::tensor::{Int, Tensor};
use mixtrain_bounds::{DomainKind, InputSet, Interval, Margins, PreRelu, margins_recording};
use mixtrain_loss::{Mix, Policy, Warmup, cross_entropy, robust_cross_entropy};
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
    /// SABR (Mueller et al. 2023): as `ibp`, the bound taken on a small box of radius `lambda
    /// eps` around a PGD point of the eps-ball instead of on the whole ball.
    Sabr,
    /// MTL-IBP (De Palma et al. 2024): the PGD-adversarial loss weighted `1 - alpha` plus the
    /// IBP robust loss weighted `alpha`.
    MtlIbp,
    /// CC-IBP (De Palma et al. 2024): the cross-entropy of the convex combination of the
    /// adversarial logits and IBP's worst-case logits, weight `alpha` on the latter.
    CcIbp,
    /// Exp-IBP (De Palma et al. 2024): `L_adv^(1 - alpha) L_IBP^alpha`.
    ExpIbp,
}

impl Method {
    /// Every method, in the order tests and benches list them.
    pub const ALL: [Method; 9] = [
        Method::Natural,
        Method::Pgd,
        Method::Ibp,
        Method::CrownIbp,
        Method::Mixtrain,
        Method::Sabr,
        Method::MtlIbp,
        Method::CcIbp,
        Method::ExpIbp,
    ];

    /// The registry: each method's rule.
    pub(crate) fn rule(self) -> &'static dyn Rule {
        match self {
            Method::Natural => &natural::Natural,
            Method::Pgd => &pgd::Pgd,
            Method::Ibp => &ibp::Ibp,
            Method::CrownIbp => &crown_ibp::CrownIbp,
            Method::Mixtrain => &mixtrain::Mixtrain,
            Method::Sabr => &sabr::Sabr,
            Method::MtlIbp => &mtl_ibp::MtlIbp,
            Method::CcIbp => &cc_ibp::CcIbp,
            Method::ExpIbp => &exp_ibp::ExpIbp,
        }
    }

    /// The name in configs, logs and reports (`natural`, `pgd`, `ibp`, `crown-ibp`,
    /// `mixtrain`, `sabr`, `mtl-ibp`, `cc-ibp`, `exp-ibp`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Natural => "natural",
            Method::Pgd => "pgd",
            Method::Ibp => "ibp",
            Method::CrownIbp => "crown-ibp",
            Method::Mixtrain => "mixtrain",
            Method::Sabr => "sabr",
            Method::MtlIbp => "mtl-ibp",
            Method::CcIbp => "cc-ibp",
            Method::ExpIbp => "exp-ibp",
        }
    }

    /// Whether a step runs PGD (and so needs `pgd.steps >= 1`).
    pub fn attacks(self) -> bool {
        self.rule().attacks()
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

    /// See [`Method::attacks`].
    fn attacks(&self) -> bool {
        false
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

    /// SABR's small boxes for `x`: radius `sabr.lambda` eps around PGD points of the step's
    /// eps-ball, moved inside the ball clipped to the input domain.
    pub fn small_box(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
    ) -> Result<InputSet, TrainError> {
        let centre = self.adversarial(model, x.clone(), y)?;
        let eps = self.eps as f32;
        let radius = (self.config.sabr.lambda * self.eps) as f32;
        Ok(InputSet::small_box(
            x,
            centre,
            eps,
            radius,
            self.config.input_domain,
        )?)
    }

    /// The step's PGD points for `x` (`pgd`'s settings; the step size defaults to `2.5 eps /
    /// steps` at the step's eps); the clean batch at eps 0.
    pub fn adversarial(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
    ) -> Result<Tensor<4>, TrainError> {
        if self.eps == 0.0 {
            return Ok(x);
        }
        let config = &self.config.pgd;
        let step_size = config
            .step_size
            .unwrap_or(2.5 * self.eps / config.steps as f64);
        let pgd = mixtrain_attack::Pgd {
            random_start: config.random_start,
            domain: self.config.input_domain,
            ..mixtrain_attack::Pgd::new(self.eps as f32, step_size as f32, config.steps)
        };
        Ok(pgd.perturb(model, x, y)?)
    }

    /// IBP's margins on `set`, and the warm-up regularisers of its bounds when they are on.
    pub fn interval_margins(
        &self,
        model: &Network,
        set: &InputSet,
        y: Tensor<1, Int>,
    ) -> Result<(Margins, Option<Tensor<1>>), TrainError> {
        let (margins, pre_relu) = margins_recording::<Interval>(model, set, y)?;
        Ok((margins, self.warmup(set, &pre_relu)))
    }

    /// IBP's robust cross-entropy on `set`, with the warm-up regularisers when they are on.
    pub fn interval_loss(
        &self,
        model: &Network,
        set: &InputSet,
        y: Tensor<1, Int>,
    ) -> Result<Robust, TrainError> {
        let (margins, regularizer) = self.interval_margins(model, set, y)?;
        Ok(Robust {
            loss: robust_cross_entropy(&margins),
            regularizer,
        })
    }

    /// Shi et al.'s warm-up regularisers of the interval bounds `pre_relu` met on `set`,
    /// weighted `warmup_reg.lambda (1 - eps_t / eps)`; `None` when that weight is 0 (off, or
    /// the ramp is over).
    pub fn warmup(&self, set: &InputSet, pre_relu: &PreRelu) -> Option<Tensor<1>> {
        let config = &self.config.warmup_reg;
        let weight = config.lambda * (1.0 - self.eps / self.config.train_eps());
        (weight > 0.0)
            .then(|| Warmup::new(set, pre_relu, config.tol))
            .flatten()
            .map(|w| w.total() * weight)
    }

    /// The robust share of the step's mix, `robust / (natural + robust)`: the `alpha` of the
    /// methods that combine an adversarial and a verified loss themselves (`alpha` itself
    /// under the `fixed` and `adaptive` policies).
    pub fn alpha(&self) -> f64 {
        self.mix.robust / (self.mix.natural + self.mix.robust)
    }

    /// The shape of a certified method's step: the natural term on the clean batch, and
    /// `robust(x, y)` when the step wants it.
    pub fn natural_and_robust(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        robust: impl FnOnce(Tensor<4>, Tensor<1, Int>) -> Result<Robust, TrainError>,
    ) -> Result<Terms, TrainError> {
        let logits = model.forward(x.clone());
        let natural = cross_entropy(logits.clone(), y.clone());
        let robust = match self.robust_wanted() {
            true => Some(robust(x, y)?),
            false => None,
        };
        let (robust, regularizer) = match robust {
            Some(r) => (Some(r.loss), r.regularizer),
            None => (None, None),
        };
        Ok(Terms {
            regularizer,
            ..Terms::new(Some(natural), robust, logits)
        })
    }

    /// The shape of the expressive losses' step (MTL-IBP, CC-IBP, exp-IBP): the adversarial
    /// cross-entropy at the step's eps as the natural term; when the step wants the robust
    /// term, IBP's robust cross-entropy on the eps-ball, and `combine(adversarial logits,
    /// margins, natural, robust)` the loss to take whole instead of the mix (`None`: the mix).
    pub fn adversarial_and_interval(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        combine: impl FnOnce(Tensor<2>, &Margins, Tensor<1>, Tensor<1>) -> Option<Tensor<1>>,
    ) -> Result<Terms, TrainError> {
        let adversarial = self.adversarial(model, x.clone(), y.clone())?;
        let logits = model.forward(adversarial);
        let natural = cross_entropy(logits.clone(), y.clone());
        if !self.robust_wanted() {
            return Ok(Terms::new(Some(natural), None, logits));
        }
        let (margins, regularizer) = self.interval_margins(model, &self.ball(x)?, y)?;
        let robust = robust_cross_entropy(&margins);
        let combined = combine(logits.clone(), &margins, natural.clone(), robust.clone());
        Ok(Terms {
            combined,
            regularizer,
            ..Terms::new(Some(natural), Some(robust), logits)
        })
    }
}

/// A robust term and the regulariser computed with it.
pub(crate) struct Robust {
    pub loss: Tensor<1>,
    pub regularizer: Option<Tensor<1>>,
}

impl Robust {
    /// A robust term without a regulariser.
    pub fn plain(loss: Tensor<1>) -> Self {
        Self {
            loss,
            regularizer: None,
        }
    }
}

/// The loss terms of one batch before they are mixed, and the logits train accuracy is read
/// from (clean, or adversarial for `pgd` and the expressive losses).
pub(crate) struct Terms {
    /// The natural cross-entropy (the adversarial one for the expressive losses).
    pub natural: Option<Tensor<1>>,
    pub robust: Option<Tensor<1>>,
    /// The loss when a method combines the two terms itself (CC-IBP's logits, exp-IBP's
    /// product): taken whole instead of the mix, the terms then only reported.
    pub combined: Option<Tensor<1>>,
    /// Added whole to the loss: the warm-up regularisers.
    pub regularizer: Option<Tensor<1>>,
    pub logits: Tensor<2>,
}

impl Terms {
    /// The name the non-finite check gives the natural term.
    pub const NATURAL: &'static str = "natural cross-entropy";
    /// The name the non-finite check gives the combined loss.
    pub const COMBINED: &'static str = "combined adversarial and verified loss";
    /// The name the non-finite check gives the regulariser.
    pub const REGULARIZER: &'static str = "warm-up regulariser";

    /// The two terms and the logits, to be mixed; no combined loss, no regulariser.
    pub fn new(natural: Option<Tensor<1>>, robust: Option<Tensor<1>>, logits: Tensor<2>) -> Self {
        Self {
            natural,
            robust,
            combined: None,
            regularizer: None,
            logits,
        }
    }

    /// The loss the optimiser differentiates: the combined loss, or else the natural term
    /// weighted `mix.natural` plus the robust one weighted `mix.robust`; plus the regulariser.
    pub fn loss(&self, mix: Mix) -> Result<Tensor<1>, TrainError> {
        let loss = match &self.combined {
            Some(combined) => combined.clone(),
            None => self.mixed(mix)?,
        };
        Ok(match &self.regularizer {
            Some(r) => loss + r.clone(),
            None => loss,
        })
    }

    /// The natural term weighted `mix.natural` plus the robust one weighted `mix.robust`. A
    /// term the step skipped adds nothing; a term of weight 0 is left out rather than
    /// multiplied by 0.
    fn mixed(&self, mix: Mix) -> Result<Tensor<1>, TrainError> {
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
        .loss(mix)
}
