//! MixTrain (Wang et al., 2018): the natural loss on the whole batch, the robust loss of a
//! sound bound (the symbolic domain by default) on `k` points drawn from it (stochastic
//! robust approximation), mixed by dynamic mixed training (adaptive by default). The bound is
//! taken on each point's eps-ball, or with `robust_set = "small-box"` on SABR's small box
//! around a PGD point of it; with `domain = "interval"` the warm-up regularisers apply.

use burn::tensor::{Int, Tensor, TensorData};
use mixtrain_bounds::DomainKind;
use mixtrain_loss::{Policy, Sra, robust_cross_entropy};
use mixtrain_nn::Network;
use rand::RngCore;

use super::{BoundedPoints, Robust, Rule, StepContext, Terms};
use crate::{RobustSet, TrainConfig, TrainError};

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
            let (x, y) = (x.select(0, index.clone()), y.select(0, index));
            let set = match config.robust_set {
                RobustSet::Ball => ctx.ball(x)?,
                RobustSet::SmallBox => ctx.small_box(model, x, y.clone())?,
            };
            match config.train_domain() {
                DomainKind::Interval => ctx.interval_loss(model, &set, y),
                domain => Ok(Robust::plain(robust_cross_entropy(
                    &domain.margins(model, &set, y)?,
                ))),
            }
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
