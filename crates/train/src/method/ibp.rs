//! Interval bound propagation (Gowal et al.): the natural loss mixed with the robust
//! cross-entropy of the interval bounds on the whole batch.

use burn::tensor::{Int, Tensor};
use mixtrain_bounds::{DomainKind, InputSet};
use mixtrain_loss::{cross_entropy, robust_cross_entropy};
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
        let logits = model.forward(x.clone());
        let natural = cross_entropy(logits.clone(), y.clone());
        let robust = if ctx.robust_wanted() {
            let set = InputSet::linf(x, ctx.eps as f32, ctx.config.input_domain)?;
            Some(robust_cross_entropy(
                &DomainKind::Interval.margins(model, &set, y)?,
            ))
        } else {
            None
        };
        Ok(Terms {
            natural: Some(natural),
            robust,
            logits,
        })
    }

    fn domain(&self) -> DomainKind {
        DomainKind::Interval
    }
}
