//! One training step's loss, per method.

use burn::tensor::{Int, Tensor, TensorData};
use mixtrain_attack::Pgd;
use mixtrain_bounds::{DomainKind, InputDomain, InputSet, interval_and_crown};
use mixtrain_loss::{Mix, Sra, cross_entropy, interpolate, robust_cross_entropy};
use mixtrain_nn::Network;
use rand::Rng;

use crate::{Method, TrainConfig, TrainError};

/// The loss terms of one batch before they are mixed, and the logits train accuracy is read
/// from (clean, or adversarial for `pgd`).
pub(crate) struct Terms {
    pub natural: Option<Tensor<1>>,
    pub robust: Option<Tensor<1>>,
    pub logits: Tensor<2>,
}

/// What the step needs besides the batch.
pub(crate) struct StepContext<'a> {
    pub config: &'a TrainConfig,
    /// eps of this step (0 in the warm-up and before the ramp's first step).
    pub eps: f64,
    /// Ramp progress in `[0, 1]` (CROWN-IBP's `beta = 1 - progress`).
    pub progress: f64,
    pub mix: Mix,
}

impl Terms {
    /// The names the non-finite check reports.
    pub const NATURAL: &'static str = "natural cross-entropy";
    pub fn robust_name(method: Method) -> &'static str {
        match method {
            Method::Pgd => "adversarial cross-entropy",
            _ => "robust cross-entropy",
        }
    }
}

/// The loss terms of `method` on one batch; the robust term is skipped when its weight is 0.
pub(crate) fn terms(
    model: &Network,
    x: Tensor<4>,
    y: Tensor<1, Int>,
    ctx: &StepContext,
    rng: &mut impl Rng,
) -> Result<Terms, TrainError> {
    let config = ctx.config;
    let eps = ctx.eps as f32;
    let robust_wanted = ctx.eps > 0.0 && ctx.mix.robust > 0.0;
    if config.method == Method::Pgd {
        let x = if ctx.eps > 0.0 {
            let steps = config.pgd.steps;
            let step_size = config.pgd.step_size.unwrap_or(2.5 * ctx.eps / steps as f64);
            let pgd = Pgd {
                random_start: config.pgd.random_start,
                ..Pgd::new(eps, step_size as f32, steps)
            };
            pgd.perturb(model, x, y.clone())?
        } else {
            x
        };
        let logits = model.forward(x);
        return Ok(Terms {
            natural: None,
            robust: Some(cross_entropy(logits.clone(), y)),
            logits,
        });
    }
    let logits = model.forward(x.clone());
    let natural = Some(cross_entropy(logits.clone(), y.clone()));
    let robust = match config.method {
        _ if !robust_wanted => None,
        Method::Natural | Method::Pgd => None,
        Method::Ibp => {
            let set = InputSet::linf(x, eps, InputDomain::Unit)?;
            let margins = DomainKind::Interval.margins(model, &set, y)?;
            Some(robust_cross_entropy(&margins))
        }
        Method::CrownIbp => {
            let set = InputSet::linf(x, eps, InputDomain::Unit)?;
            let beta = 1.0 - ctx.progress;
            let margins = if beta > 0.0 {
                let (ibp, crown) = interval_and_crown(model, &set, y)?;
                interpolate(&ibp, &crown, beta)
            } else {
                DomainKind::Interval.margins(model, &set, y)?
            };
            Some(robust_cross_entropy(&margins))
        }
        Method::Mixtrain => {
            let n = y.dims()[0];
            let sra = Sra {
                k: config.k,
                replacement: config.replacement,
            };
            let picked: Vec<i64> = sra.sample(n, rng).into_iter().map(|i| i as i64).collect();
            let k = picked.len();
            let index = Tensor::<1, Int>::from_data(TensorData::new(picked, [k]), &y.device());
            let set = InputSet::linf(x.select(0, index.clone()), eps, InputDomain::Unit)?;
            let margins = config
                .train_domain()
                .margins(model, &set, y.select(0, index))?;
            Some(robust_cross_entropy(&margins))
        }
    };
    Ok(Terms {
        natural,
        robust,
        logits,
    })
}

/// The training loss of `config`'s method on one batch at radius `eps`, with the robust term
/// weighted `alpha` and the natural one `1 - alpha` (`natural` and `pgd` take their single
/// term whole; CROWN-IBP is taken at the start of its ramp, beta = 1, its costliest point):
/// what the trainer differentiates at each step, before the optimiser. Public for benchmarks
/// and for users who drive their own loop; `model`, `x` and `y` on an autodiff device.
pub fn step_loss(
    model: &Network,
    x: Tensor<4>,
    y: Tensor<1, Int>,
    config: &TrainConfig,
    eps: f64,
    alpha: f64,
    rng: &mut impl Rng,
) -> Result<Tensor<1>, TrainError> {
    let ctx = StepContext {
        config,
        eps,
        progress: 0.0,
        mix: Mix {
            natural: 1.0 - alpha,
            robust: alpha,
        },
    };
    let terms = terms(model, x, y, &ctx, rng)?;
    Ok(match (terms.natural, terms.robust) {
        (Some(natural), Some(robust)) => natural * (1.0 - alpha) + robust * alpha,
        (Some(term), None) | (None, Some(term)) => term,
        (None, None) => unreachable!("every method has a natural or a robust term"),
    })
}
