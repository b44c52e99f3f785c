use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use mixtrain_attack::Pgd;
use mixtrain_bounds::{BoundsError, DomainKind, InputDomain, InputSet};
use mixtrain_data::{Batch, ImageSet};
use mixtrain_nn::Network;
use serde::Serialize;

/// Figures of one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalResult {
    /// Points evaluated.
    pub n: usize,
    /// Fraction classified correctly.
    pub clean_acc: f64,
    /// Wall-clock seconds, including moving the data to the device.
    pub seconds: f64,
}

/// Moves a batch to `device` as `([n, c, h, w]` pixels, `[n]` labels).
pub(crate) fn to_device(batch: Batch, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let dims = batch.dims();
    let n = batch.len();
    let x = Tensor::from_data(TensorData::new(batch.pixels, dims), device);
    let y = Tensor::from_data(TensorData::new(batch.labels, [n]), device);
    (x, y)
}

/// Clean accuracy of `net` on `set`. The count of correct points stays on the device until
/// the end, so the whole evaluation costs one read back.
pub fn evaluate(net: &Network, set: &ImageSet, batch_size: usize, device: &Device) -> EvalResult {
    let start = Instant::now();
    let mut correct: Option<Tensor<1, Int>> = None;
    for batch in set.batches(batch_size, None) {
        let (x, y) = to_device(batch, device);
        let hits = mixtrain_loss::accuracy_count(net.forward(x), y);
        correct = Some(match correct {
            Some(c) => c + hits,
            None => hits,
        });
    }
    let correct: i64 = correct.map(|c| c.into_scalar()).unwrap_or(0);
    EvalResult {
        n: set.len(),
        clean_acc: if set.is_empty() {
            0.0
        } else {
            correct as f64 / set.len() as f64
        },
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Figures of one verification run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerifyResult {
    pub n: usize,
    pub eps: f64,
    pub domain: &'static str,
    pub input_domain: &'static str,
    /// Fraction of points both classified correctly and verified.
    pub verified_acc: f64,
    pub seconds: f64,
}

/// Verified robust accuracy of `net` on `set` at radius `eps` (pixel units) in `domain`.
/// Counts stay on the device until the end.
pub fn verify(
    net: &Network,
    set: &ImageSet,
    eps: f64,
    domain: DomainKind,
    input_domain: InputDomain,
    batch_size: usize,
    device: &Device,
) -> Result<VerifyResult, BoundsError> {
    let start = Instant::now();
    let mut count: Option<Tensor<1, Int>> = None;
    for batch in set.batches(batch_size, None) {
        let (x, y) = to_device(batch, device);
        let correct = net
            .forward(x.clone())
            .argmax(1)
            .squeeze_dim::<1>(1)
            .equal(y.clone());
        let bounds = domain.margins(net, &InputSet::linf(x, eps as f32, input_domain)?, y)?;
        let hits = bounds.verified().bool_and(correct).int().sum();
        count = Some(match count {
            Some(c) => c + hits,
            None => hits,
        });
    }
    let count: i64 = count.map(|c| c.into_scalar()).unwrap_or(0);
    Ok(VerifyResult {
        n: set.len(),
        eps,
        domain: domain.name(),
        input_domain: match input_domain {
            InputDomain::Unit => "unit",
            InputDomain::Image => "image",
        },
        verified_acc: if set.is_empty() {
            0.0
        } else {
            count as f64 / set.len() as f64
        },
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Accuracy of `net` on `set` under the attack `pgd` (points it fails to break and that were
/// classified correctly to begin with count: the attack starts from each clean point, and a
/// misclassified point stays broken). Counts stay on the device until the end.
pub fn attack_accuracy(
    net: &Network,
    set: &ImageSet,
    pgd: &Pgd,
    batch_size: usize,
    device: &Device,
) -> Result<EvalResult, BoundsError> {
    let start = Instant::now();
    let mut correct: Option<Tensor<1, Int>> = None;
    for batch in set.batches(batch_size, None) {
        let (x, y) = to_device(batch, device);
        let adv = pgd.attack(net, x.clone(), y.clone())?;
        let clean = net
            .forward(x)
            .argmax(1)
            .squeeze_dim::<1>(1)
            .equal(y.clone());
        let robust = net.forward(adv).argmax(1).squeeze_dim::<1>(1).equal(y);
        let hits = clean.bool_and(robust).int().sum();
        correct = Some(match correct {
            Some(c) => c + hits,
            None => hits,
        });
    }
    let correct: i64 = correct.map(|c| c.into_scalar()).unwrap_or(0);
    Ok(EvalResult {
        n: set.len(),
        clean_acc: if set.is_empty() {
            0.0
        } else {
            correct as f64 / set.len() as f64
        },
        seconds: start.elapsed().as_secs_f64(),
    })
}
