//! MTL-IBP (De Palma et al. 2024, "Expressive losses for verified robustness via convex
//! combinations"): the PGD-adversarial cross-entropy weighted `1 - alpha` plus IBP's robust
//! cross-entropy on the eps-ball weighted `alpha`: the trainer's mix with the adversarial loss
//! in the natural term's place, so `alpha` comes from `dmt` (any policy).

use burn::tensor::{Int, Tensor};
use mixtrain_bounds::DomainKind;
use mixtrain_nn::Network;
use rand::RngCore;

use super::{Rule, StepContext, Terms};
use crate::TrainError;

pub(super) struct MtlIbp;

impl Rule for MtlIbp {
    fn terms(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        ctx: &StepContext,
        _rng: &mut dyn RngCore,
    ) -> Result<Terms, TrainError> {
        ctx.adversarial_and_interval(model, x, y, |_, _, _, _| None)
    }

    fn domain(&self) -> DomainKind {
        DomainKind::Interval
    }

    fn attacks(&self) -> bool {
        true
    }
}
