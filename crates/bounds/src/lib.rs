//! Sound bound propagation for neural networks (interval, symbolic interval, CROWN).
//!
//! This crate holds the bounds engine's place in the dependency order
//! (`nn <- bounds <- {loss, attack} <- train`); its domains, input sets and margin
//! specifications are the next capability to land. It deliberately exports nothing yet rather
//! than a stub that could be mistaken for a sound domain.
