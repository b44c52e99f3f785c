//! Interval bound propagation (Gowal et al.): the natural loss mixed with the robust
//! cross-entropy of the interval bounds on the whole batch (and Shi et al.'s warm-up
//! regularisers when `warmup_reg.lambda > 0`).

use burn::tensor::{Int, Tensor};
use mixtrain_bounds::DomainKind;
use mixtrain_nn::Network;
use rand::RngCore;

use super::{Rule, StepContext, Terms};
use crate::TrainError;

pub(super) struct Ibp;

impl Rule for Ibp {
    fn terms(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        ctx: &StepContext,
        _rng: &mut dyn RngCore,
    ) -> Result<Terms, TrainError> {
        ctx.natural_and_robust(model, x, y, |x, y| {
            ctx.interval_loss(model, &ctx.ball(x)?, y)
        })
    }

    fn domain(&self) -> DomainKind {
        DomainKind::Interval
    }
}
