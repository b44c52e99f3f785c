//! Adversarial attacks (FGSM, PGD, the interval-gradient attack) for robustness evaluation.
//!
//! This crate holds its place in the dependency order (it builds on `mixtrain-bounds` for the
//! interval-gradient attack); the attacks land after the bounds engine. It deliberately exports
//! nothing yet.
