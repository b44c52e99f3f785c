//! Losses and schedules for verifiably robust training.
//!
//! - [`cross_entropy`] (natural) and [`robust_cross_entropy`] (of the worst-case logits of any
//!   domain's [`Margins`](mixtrain_bounds::Margins)), [`interpolate`] for CROWN-IBP's bound;
//! - [`Sra`]: the stochastic robust approximation's choice of `k` points per batch;
//! - [`Dmt`]: dynamic mixed training, the per-epoch balance of the two losses
//!   ([`Policy::Fixed`], [`Policy::Schedule`], [`Policy::Adaptive`]);
//! - [`EpsSchedule`] (warm-up and eps ramp) and [`LrSchedule`].

mod dmt;
mod eps;
mod natural;
mod robust;
mod schedule;
mod sra;

pub use dmt::{AlphaChange, Dmt, DmtConfig, Mix, Policy};
pub use eps::{EpsSchedule, Ramp};
pub use natural::{accuracy_count, cross_entropy};
pub use robust::{interpolate, robust_cross_entropy};
pub use schedule::LrSchedule;
pub use sra::Sra;
