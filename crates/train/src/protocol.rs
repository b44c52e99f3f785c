//! The evaluation protocol: the verifier and the attack a network is evaluated with unless a
//! command says otherwise. `mixtrain eval`, `mixtrain attack` and the trainer's final
//! evaluation all read their defaults here, so that the same weights get the same verifier and
//! the same attack whichever command runs them.
//!
//! The attack follows the MixTrain paper's evaluation (`shared/docs/MIXTRAIN.md`): PGD with one
//! random start, 40 steps of 0.01 on MNIST, 20 steps of eps / 4 elsewhere. Verification uses
//! the tightest domain, `best`.

use mixtrain_bounds::{DomainKind, Verifier};

/// The domain verified robust accuracy is reported in.
pub const VERIFY_DOMAIN: DomainKind = DomainKind::Best;

/// Points per bound computation. The symbolic domains pad every point's error symbols to the
/// batch's largest count of unstable neurons, so small batches are fastest for them (figures in
/// `docs/performance.md`); interval and CROWN gain from large ones.
pub fn bound_batch_size(domain: DomainKind) -> usize {
    Verifier::new(domain).batch_size
}

fn is_mnist(dataset: &str) -> bool {
    dataset.starts_with("mnist")
}

/// PGD steps on `dataset`.
pub fn pgd_steps(dataset: &str) -> usize {
    if is_mnist(dataset) { 40 } else { 20 }
}

/// PGD's step size on `dataset` at radius `eps`, pixel units.
pub fn pgd_step_size(dataset: &str, eps: f64) -> f64 {
    if is_mnist(dataset) { 0.01 } else { eps / 4.0 }
}
