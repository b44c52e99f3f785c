//! MixTrain (Wang et al., 2018): the natural loss on the whole batch, the robust loss of a
//! sound bound (the symbolic domain by default) on `k` points drawn from it (stochastic
//! robust approximation), mixed by dynamic mixed training (adaptive by default).

use burn::tensor::{Int, Tensor, TensorData};
use mixtrain_loss::{Policy, Sra, robust_cross_entropy};
use mixtrain_nn::Network;
use rand::RngCore;

use super::{BoundedPoints, Rule, StepContext, Terms};
use crate::{TrainConfig, TrainError};

pub(super) struct Mixtrain;

impl Rule for Mixtrain {
    fn terms(
        &self,
        model: &Network,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        ctx: &StepContext,
        mut rng: &mut dyn RngCore,
    ) -> Result<Terms, TrainError> {
        let config = ctx.config;
        ctx.natural_and_robust(model, x, y, |x, y| {
            let sra = Sra {
                k: config.k,
                replacement: config.replacement,
            };
            let picked: Vec<i64> = sra
                .sample(y.dims()[0], &mut rng)
                .into_iter()
                .map(|i| i as i64)
                .collect();
            let k = picked.len();
            let index = Tensor::<1, Int>::from_data(TensorData::new(picked, [k]), &y.device());
            let set = ctx.ball(x.select(0, index.clone()))?;
            let margins = config
                .train_domain()
                .margins(model, &set, y.select(0, index))?;
            Ok(robust_cross_entropy(&margins))
        })
    }

    fn default_policy(&self) -> Policy {
        Policy::Adaptive
    }

    fn bounded_points(&self, config: &TrainConfig) -> Option<BoundedPoints> {
        Some(BoundedPoints {
            what: format!("the robust loss (mixtrain, k = {})", config.k),
            points: config.k,
            change: "a smaller k, domain = \"crown\" or \"interval\"",
        })
    }
}
