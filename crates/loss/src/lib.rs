//! Losses and schedules for verifiably robust training.
//!
//! - [`cross_entropy`] (natural) and [`robust_cross_entropy`] (of the worst-case logits of any
//!   domain's [`Margins`](mixtrain_bounds::Margins)), [`interpolate`] for CROWN-IBP's bound;
//! - [`Sra`]: the stochastic robust approximation's choice of `k` points per batch;
//! - [`Dmt`]: dynamic mixed training, the per-epoch balance of the two losses
//!   ([`Policy::Fixed`], [`Policy::Schedule`], [`Policy::Adaptive`]);
//! - [`convex_combination_loss`] (CC-IBP) and [`exp_combination_loss`] (exp-IBP): the
//!   expressive losses, adversarial and verified combined by one weight;
//! - [`Warmup`]: Shi et al.'s warm-up regularisers on the interval bounds (tightness, ReLU
//!   balance);
//! - [`EpsSchedule`] (warm-up and eps ramp) and [`LrSchedule`].
//!
//! MixTrain's loss on one batch: the natural cross-entropy of all points plus the robust
//! cross-entropy of sound bounds on `k` of them, weighted by the mix of the epoch; its gradient
//! flows through the bounds (`examples/mixtrain_step.rs` trains with it on MNIST):
//!
//! ```
//! use burn::tensor::{Int, Tensor, TensorData};
//! use mixtrain_bounds::{DomainKind, InputDomain, InputSet};
//! use mixtrain_loss::{Dmt, DmtConfig, Policy, Sra, cross_entropy, robust_cross_entropy};
//! use mixtrain_nn::{Backend, Network, zoo};
//! use rand::SeedableRng;
//!
//! let device = Backend::Flex.device(None)?.autodiff();
//! let net = Network::init(&zoo::architecture("mnist_small")?, 0, &device)?;
//! let x = Tensor::<4>::full([8, 1, 28, 28], 0.5, &device);
//! let y = Tensor::<1, Int>::from_data(TensorData::new((0..8i64).collect(), [8]), &device);
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//!
//! let sra = Sra { k: 2, replacement: true };
//! let picked: Vec<i64> = sra.sample(8, &mut rng).into_iter().map(|i| i as i64).collect();
//! let picked = Tensor::<1, Int>::from_data(TensorData::new(picked, [2]), &device);
//! let set = InputSet::linf(x.clone().select(0, picked.clone()), 0.1, InputDomain::Unit)?;
//! let margins = DomainKind::Symbolic.margins(&net, &set, y.clone().select(0, picked))?;
//!
//! let config = DmtConfig::default();
//! let mix = Dmt::new(Policy::Fixed, &config).mix(&config, 0, &mut rng);
//! let natural = cross_entropy(net.forward(x), y);
//! let loss = natural * mix.natural + robust_cross_entropy(&margins) * mix.robust;
//! let gradients = loss.backward();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod dmt;
mod eps;
mod expressive;
mod natural;
mod robust;
mod schedule;
mod sra;
mod warmup;

pub use dmt::{AlphaChange, Dmt, DmtConfig, Mix, Policy};
pub use eps::{EpsSchedule, Ramp};
pub use expressive::{convex_combination_loss, exp_combination_loss};
pub use natural::{accuracy_count, cross_entropy};
pub use robust::{interpolate, robust_cross_entropy};
pub use schedule::LrSchedule;
pub use sra::Sra;
pub use warmup::Warmup;
