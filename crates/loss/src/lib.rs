//! Losses and schedules for training.
//!
//! This crate grows with the training methods: for now it holds the natural loss
//! ([`cross_entropy`]) and the learning-rate schedules ([`LrSchedule`]); the robust losses built
//! on `mixtrain-bounds`, the sampling of the stochastic robust approximation and the DMT
//! policies of MixTrain come next to them.

mod natural;
mod schedule;

pub use natural::{accuracy_count, cross_entropy};
pub use schedule::LrSchedule;
