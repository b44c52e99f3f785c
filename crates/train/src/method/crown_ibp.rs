//! CROWN-IBP (Zhang et al.): the natural loss mixed with the robust cross-entropy of
//! `beta` CROWN-IBP + `(1 - beta)` IBP on the whole batch, `beta` falling from 1 to 0 along the
//! eps ramp; one interval pass serves both bounds.

use burn::tensor::{Int, Tensor};
use mixtrain_bounds::{DomainKind, interval_and_crown};
use mixtrain_loss::{interpolate, robust_cross_entropy};
use mixtrain_nn::Network;
use rand::RngCore;

use super::{Rule, StepContext, Terms};
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
            let margins = if beta > 0.0 {
                let (ibp, crown) = interval_and_crown(model, &set, y)?;
                interpolate(&ibp, &crown, beta)
            } else {
                DomainKind::Interval.margins(model, &set, y)?
            };
            Ok(robust_cross_entropy(&margins))
        })
    }

    fn domain(&self) -> DomainKind {
        DomainKind::Crown
    }
}
