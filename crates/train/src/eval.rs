use std::time::Instant;

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
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

/// Runs `hits` (a count of points, on the device) on every batch of `set`: the fraction of
/// points counted and the seconds taken. The count stays on the device until the end, so a
/// whole evaluation costs one read back.
fn fraction<E>(
    set: &ImageSet,
    batch_size: usize,
    device: &Device,
    mut hits: impl FnMut(Tensor<4>, Tensor<1, Int>) -> Result<Tensor<1, Int>, E>,
) -> Result<(f64, f64), E> {
    let start = Instant::now();
    let mut count: Option<Tensor<1, Int>> = None;
    for batch in set.batches(batch_size, None) {
        let (x, y) = to_device(batch, device);
        let h = hits(x, y)?;
        count = Some(match count {
            Some(c) => c + h,
            None => h,
        });
    }
    let count: i64 = count.map(|c| c.into_scalar()).unwrap_or(0);
    let fraction = if set.is_empty() {
        0.0
    } else {
        count as f64 / set.len() as f64
    };
    Ok((fraction, start.elapsed().as_secs_f64()))
}

/// `[n]`: whether `net` classifies each point of `x` as its label.
fn correct(net: &Network, x: Tensor<4>, y: Tensor<1, Int>) -> Tensor<1, Bool> {
    net.forward(x).argmax(1).squeeze_dim::<1>(1).equal(y)
}

/// Clean accuracy of `net` on `set`.
pub fn evaluate(net: &Network, set: &ImageSet, batch_size: usize, device: &Device) -> EvalResult {
    let Ok((clean_acc, seconds)) =
        fraction::<std::convert::Infallible>(set, batch_size, device, |x, y| {
            Ok(correct(net, x, y).int().sum())
        });
    EvalResult {
        n: set.len(),
        clean_acc,
        seconds,
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
    let (verified_acc, seconds) = fraction(set, batch_size, device, |x, y| {
        let set = InputSet::linf(x.clone(), eps as f32, input_domain)?;
        let ok = correct(net, x, y.clone());
        Ok(domain
            .margins(net, &set, y)?
            .verified()
            .bool_and(ok)
            .int()
            .sum())
    })?;
    Ok(VerifyResult {
        n: set.len(),
        eps,
        domain: domain.name(),
        input_domain: match input_domain {
            InputDomain::Unit => "unit",
            InputDomain::Image => "image",
        },
        verified_acc,
        seconds,
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
    let (clean_acc, seconds) = fraction(set, batch_size, device, |x, y| {
        let adv = pgd.attack(net, x.clone(), y.clone())?;
        let robust = correct(net, adv, y.clone());
        Ok(correct(net, x, y).bool_and(robust).int().sum())
    })?;
    Ok(EvalResult {
        n: set.len(),
        clean_acc,
        seconds,
    })
}
