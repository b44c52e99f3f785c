//! The intersection of the domains, never looser than any one of them.

use burn::tensor::{Int, Tensor};
use mixtrain_nn::Network;

use crate::crown::bound;
use crate::domain::{body_and_last, forward_recording};
use crate::{BoundsError, Domain, InputSet, Interval, Margins, Symbolic};

/// The intersection of the domains: interval and symbolic run forwards, and their bounds in
/// front of every ReLU drive three CROWN backward passes (interval's, symbolic's, and their
/// intersection neuron by neuron); the margin bounds of all five are intersected. Sound because
/// each is, and never looser than any single domain. All three backward passes are needed:
/// CROWN's adaptive lower line (`alpha = [u >= -l]`) makes it non-monotone in the intermediate
/// bounds, so tighter intermediates can give a looser margin. The forward domains do not yet
/// tighten each other inside the pass (symbolic does not use interval's bounds at its ReLUs).
pub fn best_margins(
    net: &Network,
    set: &InputSet,
    labels: Tensor<1, Int>,
) -> Result<Margins, BoundsError> {
    let (_, last) = body_and_last(net, set, &labels)?;
    let (interval, from_interval) = forward_recording::<Interval>(net, set, &labels)?;
    let (symbolic, from_symbolic) = forward_recording::<Symbolic>(net, set, &labels)?;
    let intersected = from_interval
        .iter()
        .zip(&from_symbolic)
        .map(|((li, ui), (ls, us))| {
            (
                li.clone().max_pair(ls.clone()),
                ui.clone().min_pair(us.clone()),
            )
        })
        .collect();
    let lower = interval
        .margins(last, &labels)?
        .max_pair(symbolic.margins(last, &labels)?)
        .max_pair(bound(net, set, &labels, from_interval)?)
        .max_pair(bound(net, set, &labels, from_symbolic)?)
        .max_pair(bound(net, set, &labels, intersected)?);
    Ok(Margins { lower, labels })
}
