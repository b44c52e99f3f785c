//! Adversarial training (Madry et al.): cross-entropy on PGD examples only.

use burn::tensor::{Int, Tensor};
use mixtrain_loss::cross_entropy;
use mixtrain_nn::Network;
use rand::RngCore;

use super::{BoundedPoints, Rule, StepContext, Terms};
use crate::{TrainConfig, TrainError};

pub(super) struct Pgd;

impl Rule for Pgd {
    /// The inner attack's step size defaults to `2.5 eps / steps` at the step's (ramped) eps;
    /// with eps 0 (warm-up) the clean batch is the example.
    fn terms(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        ctx: &StepContext,
        _rng: &mut dyn RngCore,
    ) -> Result<Terms, TrainError> {
        let x = if ctx.eps > 0.0 {
            let config = &ctx.config.pgd;
            let step_size = config
                .step_size
                .unwrap_or(2.5 * ctx.eps / config.steps as f64);
            let pgd = mixtrain_attack::Pgd {
                random_start: config.random_start,
                ..mixtrain_attack::Pgd::new(ctx.eps as f32, step_size as f32, config.steps)
            };
            pgd.perturb(model, x, y.clone())?
        } else {
            x
        };
        let logits = model.forward(x);
        Ok(Terms {
            natural: None,
            robust: Some(cross_entropy(logits.clone(), y)),
            logits,
        })
    }

    fn certified(&self) -> bool {
        false
    }

    fn bounded_points(&self, _config: &TrainConfig) -> Option<BoundedPoints> {
        None
    }

    fn robust_term(&self) -> &'static str {
        "adversarial cross-entropy"
    }
}
