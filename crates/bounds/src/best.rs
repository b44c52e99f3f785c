//! The intersection of the domains, never looser than any one of them.

use burn::tensor::{Int, Tensor};
use mixtrain_nn::Network;

use crate::crown::bound;
use crate::domain::{body_and_last, forward_recording};
use crate::{AlphaCrown, BoundsError, Domain, InputSet, Interval, Margins, Symbolic};

/// The intersection of the domains: interval and symbolic run forwards, and their bounds in
/// front of every ReLU drive three CROWN backward passes (interval's, symbolic's, and their
/// intersection neuron by neuron) and alpha-CROWN with the settings `alpha` (exactly as
/// [`AlphaCrown::margins`] computes it); the margin bounds of all of them are intersected.
/// Sound because each is, and never looser than any single domain. All the backward passes
/// are needed: CROWN's adaptive lower line (`alpha = [u >= -l]`) makes it non-monotone in the
/// intermediate bounds, so tighter intermediates can give a looser margin. The forward domains
/// do not yet tighten each other inside the pass (symbolic does not use interval's bounds at
/// its ReLUs).
pub fn best_margins(
    alpha: &AlphaCrown,
    net: &Network,
    set: &InputSet,
    labels: Tensor<1, Int>,
) -> Result<Margins, BoundsError> {
    let (_, last) = body_and_last(net, set, &labels)?;
    let (interval, from_interval) = forward_recording::<Interval>(net, set, &labels)?;
    let (symbolic, from_symbolic) = forward_recording::<Symbolic>(net, set, &labels)?;
    let lower = interval
        .margins(last, &labels)?
        .max_pair(symbolic.margins(last, &labels)?)
        .max_pair(bound(net, set, &labels, from_symbolic.clone())?)
        .max_pair(alpha.after_forward(net, set, &labels, from_interval, &from_symbolic)?);
    Ok(Margins { lower, labels })
}
