//! Adversarial training (Madry et al.): cross-entropy on PGD examples only.

use burn::tensor::{Int, Tensor};
use mixtrain_loss::cross_entropy;
use mixtrain_nn::Network;
use rand::RngCore;

use super::{BoundedPoints, Rule, StepContext, Terms};
use crate::{TrainConfig, TrainError};

pub(super) struct Pgd;

impl Rule for Pgd {
    /// With eps 0 (warm-up) the clean batch is the example.
    fn terms(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        ctx: &StepContext,
        _rng: &mut dyn RngCore,
    ) -> Result<Terms, TrainError> {
        let logits = model.forward(ctx.adversarial(model, x, y.clone())?);
        Ok(Terms::new(
            None,
            Some(cross_entropy(logits.clone(), y)),
            logits,
        ))
    }

    fn certified(&self) -> bool {
        false
    }

    fn bounded_points(&self, _config: &TrainConfig) -> Option<BoundedPoints> {
        None
    }

    fn attacks(&self) -> bool {
        true
    }

    fn robust_term(&self) -> &'static str {
        "adversarial cross-entropy"
    }
}
