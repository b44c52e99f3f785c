//! CPU kernels for the operations that dominate certified training at the paper's model sizes,
//! behind burn's tensor API: callers use [`conv2d`] and [`conv_transpose2d`] where they would
//! use `burn::tensor::module`'s, and they run our kernels on the flex backend (forward and both
//! gradients, as one autodiff operation each) and burn's everywhere else.
//!
//! Why, and what it buys, measured: docs/performance.md ("Per operation").

#![warn(missing_docs)]

mod conv;
mod conv_transpose;
mod flex;
pub mod im2col;

pub use conv::conv2d;
pub use conv_transpose::conv_transpose2d;
