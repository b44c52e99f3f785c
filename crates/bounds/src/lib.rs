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
//! - [`DomainKind::Crown`]: CROWN's backward linear relaxation of the margin specification
//!   with intermediate bounds from `Interval` (CROWN-IBP's bound), and
//!   [`DomainKind::CrownSymbolic`], the same with intermediate bounds from `Symbolic`.
//! - [`AlphaCrown`]: CROWN with the ReLUs' lower slopes optimised by projected gradient ascent
//!   on the margin bounds, on the points CROWN leaves undecided.
//! - [`DomainKind::Best`]: the intersection of all of them, neuron by neuron, never looser than
//!   any one.
//!
//! Complete verification: [`BranchAndBound`] decides a point alpha-CROWN leaves undecided by
//! splitting unstable ReLUs (beta-CROWN), as `verified`, `falsified` with an input the network
//! misclassifies, or `unknown` past its time limit.
//!
//! [`DomainKind`] names them at run time (`"interval"`, `"symbolic"`, `"crown"`,
//! `"crown-symbolic"`, `"alpha-crown"`, `"best"`); [`footprint`] estimates the memory one bounded point needs, so
//! that a trainer can refuse a configuration before it runs out of memory.
//!
//! [`Verifier`] is what a user calls: a domain with alpha-CROWN's settings and a batch size,
//! giving per point a [`Verdict`], the margins' lower bounds and the seconds spent. By default
//! its bounds are sound in floating point: on a set made by [`InputSet::into_float_sound`]
//! every domain widens each bound by a rigorous bound of its own float32 rounding, so a
//! verified point is verified for the network's exact arithmetic (`rounding.rs`; the
//! argument and its cost in `docs/bounds.md`).
//!
//! The modules depend one way: `numeric` (the ReLU relaxation, the adjoint of a convolution,
//! the specification folded into the last layer) and `rounding` (the float32 rounding bounds)
//! <- `domain` (the [`Domain`] trait and the
//! forward pass) <- `interval`, `symbolic/` (the domain, then its coefficient storage and
//! patches) and `crown` (the backward pass) <- `alpha` (alpha-CROWN) <- `bab` (branch and
//! bound), `best` <- `registry` ([`DomainKind`]) <- `footprint`, `verifier`. Shapes come from `mixtrain-nn` ([`Layer::output_shape`]).
//!
//! Adding a layer kind touches: its variant in `mixtrain-nn` (`LayerSpec`, `Layer`, and its
//! shape in `Layer::output_shape`); one method of [`Domain`] with its rule in [`Interval`] and
//! [`Symbolic`] (a domain without it returns [`BoundsError::Unsupported`]); one arm of the
//! forward pass (`domain.rs`, the only `match` on layers forwards) and one method of CROWN's
//! `Backward` with its arm (`crown.rs`); and the soundness property test's random
//! architectures (`tests/soundness.rs`), which check every domain on it.
//!
//! [`Layer::output_shape`]: mixtrain_nn::Layer::output_shape
//!
//! The whole API in use, on a network of your own (here a seeded `mnist_small`; a trained one
//! comes from [`Network::load_safetensors`](mixtrain_nn::Network::load_safetensors)):
//!
//! ```
//! use burn::tensor::Tensor;
//! use mixtrain_bounds::{DomainKind, InputDomain, InputSet};
//! use mixtrain_nn::{Backend, Network, zoo};
//!
//! let device = Backend::Flex.device(None)?;
//! let net = Network::init(&zoo::architecture("mnist_small")?, 0, &device)?;
//! let x = Tensor::<4>::full([2, 1, 28, 28], 0.5, &device); // two images, pixels in [0, 1]
//! let labels = net.forward(x.clone()).argmax(1).squeeze_dim::<1>(1);
//!
//! let set = InputSet::linf(x, 0.001, InputDomain::Unit)?; // the eps-ball, clipped to [0, 1]
//! let margins = DomainKind::Crown.margins(&net, &set, labels)?;
//! let verified = margins.verified(); // [2] booleans: every other class provably below the label
//! assert_eq!(margins.lower.dims(), [2, 10]); // lower bounds of z_y - z_j
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod alpha;
mod bab;
mod best;
mod crown;
mod domain;
mod error;
mod footprint;
mod input;
mod interval;
mod numeric;
mod registry;
mod rounding;
mod spec;
mod symbolic;
mod verifier;

pub use alpha::{AlphaCrown, Intermediate};
pub use bab::{BranchAndBound, Decision, Split};
pub use best::best_margins;
pub use crown::interval_and_crown;
pub use domain::{Domain, PreRelu, margins, margins_recording};
pub use error::BoundsError;
pub use footprint::{Footprint, Probe, footprint};
pub use input::{InputDomain, InputSet};
pub use interval::Interval;
pub use numeric::{read_bools, read_floats};
pub use registry::DomainKind;
pub use spec::Margins;
pub use symbolic::{MarginEquations, Symbolic, margin_equations};
pub use verifier::{PointVerdict, Verdict, Verifier};
