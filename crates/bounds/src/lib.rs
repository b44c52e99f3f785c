//! Sound bound propagation for neural networks.
//!
//! Given a [`Network`](mixtrain_nn::Network), a batch of input boxes ([`InputSet`]) and the
//! labels, the engine bounds the margins `z_y - z_j` over every input of each box
//! ([`Margins`]): a point is *verified* when every other margin's lower bound is positive.
//! Each abstract [`Domain`] has one transfer rule per layer kind and is written with ordinary
//! burn tensor ops, so on an autodiff device the gradient of any function of the bounds (the
//! robust loss) comes for free, and the same code runs on every backend.
//!
//! Every layer kind of `mixtrain-nn` has a rule in every domain: convolutions and linear
//! layers, ReLU, per-channel affine maps (input normalisation, batch normalisation in
//! evaluation mode, both folded into one `x * scale + shift` rule), average pooling (as the
//! equivalent convolution) and residual blocks (both branches from the block input, summed;
//! CROWN carries its linear function back through both and adds).
//!
//! Domains:
//! - [`Interval`] (IBP): centre/radius, the specification folded into the last layer.
//! - [`Symbolic`]: MixTrain's symbolic interval with symbolic linear relaxation;
//!   [`margin_equations`] also returns its margins' input coefficients (the interval attack's
//!   step direction).
//!
//! ```no_run
//! use mixtrain_bounds::{InputDomain, InputSet, Symbolic, margins};
//! # fn f(net: &mixtrain_nn::Network, x: burn::tensor::Tensor<4>, y: burn::tensor::Tensor<1, burn::tensor::Int>) -> Result<(), mixtrain_bounds::BoundsError> {
//! let set = InputSet::linf(x, 0.1, InputDomain::Unit)?;
//! let bounds = margins::<Symbolic>(net, &set, y)?;
//! let verified = bounds.verified(); // [n] booleans
//! # Ok(()) }
//! ```

mod crown;
mod domain;
mod error;
mod footprint;
mod input;
mod interval;
mod spec;
mod symbolic;

pub use crown::{best_margins, interval_and_crown};
pub use domain::{Domain, DomainKind, Layout, margins};
pub use error::BoundsError;
pub use footprint::{Footprint, Probe, footprint};
pub use input::{InputDomain, InputSet};
pub use interval::Interval;
pub use spec::Margins;
pub use symbolic::{MarginEquations, Symbolic, margin_equations};
