//! Bounds on the engine's own float32 rounding, so that a verified verdict holds for the
//! network's exact (real-number) semantics: the layers with their float32 parameters, computed
//! without rounding. Used when the input set asks for it ([`InputSet::float_sound`]).
//!
//! The model (Higham, "Accuracy and stability of numerical algorithms", 2nd ed., ch. 2-3): an
//! IEEE float32 operation returns the exact result times `1 + d` with `|d| <= u = 2^-24`
//! (barring underflow, see [`UNDERFLOW`]); a sum of `n` products, in any order, blocked or not,
//! with or without fused multiply-adds, is within `gamma_n |w| . |x|` of the exact one, where
//! `gamma_n = n u / (1 - n u)`. Each widening below is [`slack`]`(n) = 3 gamma_(n+2)` times the
//! magnitudes involved, where the first-order error is at most `gamma_n` of them: the factor
//! three covers the second-order terms, the rounding of the widening's own computation (a
//! nonnegative sum of at most `n + 2` rounded terms, off by at most `gamma_(n+2)` relative) and
//! of the one addition or subtraction that applies it, as long as `gamma_(n+2) <= 1/10`
//! (`n` below 1.6 million terms; a longer sum gets an infinite slack, which verifies nothing).
//!
//! [`InputSet::float_sound`]: crate::InputSet::float_sound

use burn::tensor::Tensor;

/// The unit roundoff of float32, `2^-24`.
const UNIT: f64 = 1.0 / 16_777_216.0;

/// An absolute amount subtracted from every concretised bound for underflow: an operation whose
/// result is subnormal errs by at most `2^-150` absolutely (2^-126 where subnormals are flushed
/// to zero), which relative bounds miss; `1e-20` covers 10^12 such errors (a bound of
/// `mnist_small` takes under 10^9 operations), each amplified by a later coefficient up to
/// 10^-20 / (10^12 * 2^-126) = 8.5e5 even with flushing.
pub(crate) const UNDERFLOW: f32 = 1e-20;

/// `gamma_n = n u / (1 - n u)`, the relative error of a sum of `n` rounded terms.
fn gamma(n: usize) -> f64 {
    let nu = n as f64 * UNIT;
    nu / (1.0 - nu)
}

/// The factor on the magnitudes that bounds the rounding of a sum of `n` products, with the
/// rounding of its own computation: `3 gamma_(n+2)`, or infinity past 1.6 million terms.
pub(crate) fn slack(n: usize) -> f32 {
    let g = gamma(n + 2);
    if g <= 0.1 {
        (3.0 * g) as f32
    } else {
        f32::INFINITY
    }
}

/// [`slack`] per entry of `terms`, the number of nonzero terms of each sum (a product with a
/// zero factor and the addition of a zero are exact, so only those round), capped at `n`, the
/// sum's length.
pub(crate) fn slack_of<const D: usize>(terms: Tensor<D>, n: usize) -> Tensor<D> {
    let nu = (terms.clamp_max(n as f32) + 2.0) * UNIT as f32;
    let g = nu.clone() / (nu.neg() + 1.0);
    let far = g.clone().greater_elem(0.1);
    (g * 3.0).mask_fill(far, f32::INFINITY)
}

/// The number of nonzero entries along the last dimension of `t`, kept as a size-1 dimension:
/// the terms that round in a sum over it.
pub(crate) fn nonzero<const D: usize>(t: &Tensor<D>) -> Tensor<D> {
    t.clone().not_equal_elem(0.0).float().sum_dim(D - 1)
}

/// A nonnegative error term computed as a sum of `n` rounded terms, rounded up: times
/// `1 + slack(n)`.
pub(crate) fn up<const D: usize>(error: Tensor<D>, n: usize) -> Tensor<D> {
    error * (1.0 + slack(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_grows_with_the_length_and_refuses_huge_sums() {
        // gamma_3 for a single rounding, three times
        assert!((slack(1) as f64 - 9.0 * UNIT).abs() < 1e-3 * 9.0 * UNIT);
        assert!(slack(1_000) > slack(10));
        assert!(slack(784) < 2e-4);
        assert_eq!(slack(2_000_000), f32::INFINITY);
    }

    #[test]
    fn slack_of_counts_the_nonzero_terms_up_to_the_length() {
        let device = mixtrain_nn::Backend::Flex.device(None).unwrap();
        let t = Tensor::<2>::from_floats([[0.0, 2.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0]], &device);
        let counts: Vec<f32> = nonzero(&t).into_data().try_to_vec().unwrap();
        assert_eq!(counts, vec![2.0, 0.0]);
        let slacks: Vec<f32> = slack_of(nonzero(&t), 1).into_data().try_to_vec().unwrap();
        assert!(
            (slacks[0] - slack(1)).abs() <= 1e-3 * slack(1),
            "capped at the length"
        );
        assert!((slacks[1] - slack(0)).abs() <= 1e-3 * slack(0));
        let huge = Tensor::<1>::from_floats([3.0e6], &device);
        let huge: Vec<f32> = slack_of(huge, 4_000_000).into_data().try_to_vec().unwrap();
        assert_eq!(huge, vec![f32::INFINITY]);
    }
}
