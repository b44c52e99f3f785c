//! SABR (Mueller et al. 2023, "Certified training: small boxes are all you need"): the natural
//! loss mixed with IBP's robust cross-entropy on a small box, of radius `sabr.lambda * eps`,
//! around a PGD point of the eps-ball, moved to lie inside the ball and the input domain. A
//! small box's IBP bound is far tighter than the ball's, and the box still sits where the
//! network is weakest, so the network is not over-regularised into IBP's precision. The paper
//! trains on the robust term alone: `dmt.alpha = 1`.

use burn::tensor::{Int, Tensor};
use mixtrain_bounds::DomainKind;
use mixtrain_nn::Network;
use rand::RngCore;

use super::{Rule, StepContext, Terms};
use crate::TrainError;

pub(super) struct Sabr;

impl Rule for Sabr {
    fn terms(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        ctx: &StepContext,
        _rng: &mut dyn RngCore,
    ) -> Result<Terms, TrainError> {
        ctx.natural_and_robust(model, x, y, |x, y| {
            let set = ctx.small_box(model, x, y.clone())?;
            ctx.interval_loss(model, &set, y)
        })
    }

    fn domain(&self) -> DomainKind {
        DomainKind::Interval
    }

    fn attacks(&self) -> bool {
        true
    }
}
