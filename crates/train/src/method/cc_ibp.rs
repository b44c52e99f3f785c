//! CC-IBP (De Palma et al. 2024, "Expressive losses for verified robustness via convex
//! combinations"): the cross-entropy of `(1 - alpha)` times the PGD point's logit differences
//! plus `alpha` times IBP's worst-case logits on the eps-ball, `alpha` the robust share of the
//! step's mix (see `StepContext::alpha`).

use burn::tensor::{Int, Tensor};
use mixtrain_bounds::DomainKind;
use mixtrain_loss::convex_combination_loss;
use mixtrain_nn::Network;
use rand::RngCore;

use super::{Rule, StepContext, Terms};
use crate::TrainError;

pub(super) struct CcIbp;

impl Rule for CcIbp {
    fn terms(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        ctx: &StepContext,
        _rng: &mut dyn RngCore,
    ) -> Result<Terms, TrainError> {
        ctx.adversarial_and_interval(model, x, y, |logits, margins, _, _| {
            Some(convex_combination_loss(logits, margins, ctx.alpha()))
        })
    }

    fn domain(&self) -> DomainKind {
        DomainKind::Interval
    }

    fn attacks(&self) -> bool {
        true
    }
}
