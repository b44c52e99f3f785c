//! Exp-IBP (De Palma et al. 2024, "Expressive losses for verified robustness via convex
//! combinations"): `L_adv^(1 - alpha) L_IBP^alpha`, the PGD-adversarial and IBP's robust
//! cross-entropies interpolated geometrically, `alpha` the robust share of the step's mix (see
//! `StepContext::alpha`).

use burn::tensor::{Int, Tensor};
use mixtrain_bounds::DomainKind;
use mixtrain_loss::exp_combination_loss;
use mixtrain_nn::Network;
use rand::RngCore;

use super::{Rule, StepContext, Terms};
use crate::TrainError;

pub(super) struct ExpIbp;

impl Rule for ExpIbp {
    fn terms(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        ctx: &StepContext,
        _rng: &mut dyn RngCore,
    ) -> Result<Terms, TrainError> {
        ctx.adversarial_and_interval(model, x, y, |_, _, adversarial, verified| {
            Some(exp_combination_loss(adversarial, verified, ctx.alpha()))
        })
    }

    fn domain(&self) -> DomainKind {
        DomainKind::Interval
    }

    fn attacks(&self) -> bool {
        true
    }
}
