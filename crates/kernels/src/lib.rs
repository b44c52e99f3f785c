//! CPU kernels for the operations that dominate certified training at the paper's model sizes,
//! behind burn's tensor API: callers use [`conv2d`] where they would use
//! `burn::tensor::module::conv2d`, and it runs our kernel on the flex backend (forward and both
//! gradients, as one autodiff operation) and burn's everywhere else.
//!
//! Why, and what it buys, measured: docs/performance.md ("Per operation").

#![warn(missing_docs)]

mod conv;
pub mod im2col;

pub use conv::conv2d;
