//! Adversarial attacks for robustness evaluation: upper bounds on robust accuracy, to hold
//! against the verified lower bounds of `mixtrain-bounds`.
//!
//! - [`Pgd`]: projected gradient descent under L_inf (Madry et al.), with random starts,
//!   restarts, a cross-entropy or margin [`AttackLoss`] and early stop per point; one step of
//!   size eps from the clean point is FGSM ([`Pgd::fgsm`]). Also the inner maximisation of
//!   adversarial training.
//! - [`IntervalAttack`]: the MixTrain authors' interval-gradient attack, which steps along the
//!   input coefficients of the worst margin's symbolic equation over a small box (a direction
//!   that sees a whole neighbourhood, not one point's gradient) and alternates with PGD.
//!
//! Every attack searches the eps-ball around each point intersected with the input domain,
//! the box the bounds engine verifies, and reports what it found as an [`Adversarial`]: a point
//! per input and whether the network misclassifies it, so no attack can claim to break a point
//! the engine verified.
//!
//! ```
//! use burn::tensor::{Int, Tensor, TensorData};
//! use mixtrain_attack::{Attack, Pgd};
//! use mixtrain_nn::{Backend, Network, zoo};
//!
//! let device = Backend::Flex.device(None)?;
//! let net = Network::init(&zoo::architecture("mnist_small")?, 0, &device)?;
//! let x = Tensor::<4>::full([3, 1, 28, 28], 0.5, &device);
//! let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2], [3]), &device);
//!
//! let found = Pgd::new(0.3, 0.05, 10).run(&net, x, y)?; // PGD-10 at eps 0.3
//! let broken: i64 = found.broken.int().sum().into_scalar(); // points it misclassifies
//! assert!((0..=3).contains(&broken));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod interval;
mod loss;
mod pgd;
mod target;
#[cfg(test)]
mod testing;

use burn::tensor::{Bool, Int, Tensor};
use mixtrain_bounds::BoundsError;
use mixtrain_nn::Network;

pub use interval::IntervalAttack;
pub use loss::AttackLoss;
pub use pgd::Pgd;

/// What an attack found, per input point.
#[derive(Clone, Debug)]
pub struct Adversarial {
    /// `[n, c, h, w]`, every one inside its point's eps-ball and the input domain: where
    /// `broken`, an input the network misclassifies (the clean point itself when that is
    /// misclassified); elsewhere the attack's last iterate.
    pub points: Tensor<4>,
    /// `[n]`: the network misclassifies `points[i]` (checked by a forward pass on `points`).
    pub broken: Tensor<1, Bool>,
}

/// An attack on a batch: `x` (`[n, c, h, w]` pixels) with `labels`, on `x`'s device. The result
/// is on that device, without autodiff.
pub trait Attack {
    /// Searches the eps-ball of each point of `x` (intersected with the input domain) for an
    /// input the network misclassifies. Errors only on a network the attack cannot run.
    fn run(
        &self,
        net: &Network,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
    ) -> Result<Adversarial, BoundsError>;
}
