//! Natural training: cross-entropy on clean inputs.

use burn::tensor::{Int, Tensor};
use mixtrain_loss::cross_entropy;
use mixtrain_nn::Network;
use rand::RngCore;

use super::{BoundedPoints, Rule, StepContext, Terms};
use crate::{TrainConfig, TrainError};

pub(super) struct Natural;

impl Rule for Natural {
    fn terms(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        _ctx: &StepContext,
        _rng: &mut dyn RngCore,
    ) -> Result<Terms, TrainError> {
        let logits = model.forward(x);
        Ok(Terms::new(
            Some(cross_entropy(logits.clone(), y)),
            None,
            logits,
        ))
    }

    fn certified(&self) -> bool {
        false
    }

    fn bounded_points(&self, _config: &TrainConfig) -> Option<BoundedPoints> {
        None
    }
}
