//! CROWN-IBP (Zhang et al.): the natural loss mixed with the robust cross-entropy of
//! `beta` CROWN-IBP + `(1 - beta)` IBP on the whole batch, `beta` falling from 1 to 0 along the
//! eps ramp; one interval pass serves both bounds (and the warm-up regularisers).

use burn::tensor::{Int, Tensor};
use mixtrain_bounds::{DomainKind, interval_and_crown};
use mixtrain_loss::{interpolate, robust_cross_entropy};
use mixtrain_nn::Network;
use rand::RngCore;

use super::{Robust, Rule, StepContext, Terms};
use crate::TrainError;

pub(super) struct CrownIbp;

impl Rule for CrownIbp {
    fn terms(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        ctx: &StepContext,
        _rng: &mut dyn RngCore,
    ) -> Result<Terms, TrainError> {
        ctx.natural_and_robust(model, x, y, |x, y| {
            let set = ctx.ball(x)?;
            let beta = 1.0 - ctx.progress;
            if beta == 0.0 {
                return ctx.interval_loss(model, &set, y);
            }
            let (ibp, crown, pre_relu) = interval_and_crown(model, &set, y)?;
            Ok(Robust {
                loss: robust_cross_entropy(&interpolate(&ibp, &crown, beta)),
                regularizer: ctx.warmup(&set, &pre_relu),
            })
        })
    }

    fn domain(&self) -> DomainKind {
        DomainKind::Crown
    }
}
