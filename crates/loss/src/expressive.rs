//! The expressive losses of De Palma et al. 2024 ("Expressive losses for verified robustness via
//! convex combinations"): an adversarial loss and a verified (bound) loss combined by one weight
//! `alpha`, so that one knob moves the trained network from adversarially robust (`alpha = 0`)
//! to verifiably robust (`alpha = 1`). MTL-IBP's combination is the plain weighted sum of the two
//! losses (the trainer's mix); CC-IBP's and exp-IBP's are here.

use burn::tensor::Tensor;
use mixtrain_bounds::Margins;

use crate::cross_entropy;

/// CC-IBP's loss: the cross-entropy of the convex combination `(1 - alpha) (z_adv - z_adv,y) +
/// alpha wc` of the adversarial logits' differences and the worst-case logits `wc` (the negated
/// margin lower bounds). At `alpha = 0` it is the adversarial cross-entropy (a cross-entropy
/// does not change when every logit moves by the same amount), at `alpha = 1` the robust one.
pub fn convex_combination_loss(adversarial: Tensor<2>, margins: &Margins, alpha: f64) -> Tensor<1> {
    let labels = margins.labels.clone();
    let own = adversarial
        .clone()
        .gather(1, labels.clone().unsqueeze_dim(1));
    let differences = adversarial - own;
    let logits = differences * (1.0 - alpha) + margins.worst_case_logits() * alpha;
    cross_entropy(logits, labels)
}

/// Exp-IBP's loss: `L_adv^(1 - alpha) L_ver^alpha`, the geometric interpolation of the
/// adversarial and the verified cross-entropies (batch means). Each is kept above `1e-12` so
/// that a loss rounded to 0 cannot make the power's gradient infinite.
pub fn exp_combination_loss(adversarial: Tensor<1>, verified: Tensor<1>, alpha: f64) -> Tensor<1> {
    let floor = 1e-12;
    adversarial.clamp_min(floor).powf_scalar(1.0 - alpha)
        * verified.clamp_min(floor).powf_scalar(alpha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robust_cross_entropy;
    use burn::tensor::{Device, Int, TensorData};

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_scalar::<f32>() as f64
    }

    #[test]
    fn cc_ibp_combines_logits_and_its_ends_are_the_pure_losses() {
        let device = Device::flex();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64], [1]), &device);
        let adversarial = Tensor::<2>::from_floats([[1.0, 3.0, 2.0]], &device);
        let lower = Tensor::<2>::from_floats([[2.5, 0.0, -0.5]], &device);
        let margins = Margins { lower, labels };
        // differences (-2, 0, -1), worst case (-2.5, 0, 0.5): at 0.25, (-2.125, 0, -0.625)
        let expected = ((-2.125f64).exp() + 1.0 + (-0.625f64).exp()).ln();
        let loss = scalar(convex_combination_loss(adversarial.clone(), &margins, 0.25));
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
        let adv = scalar(cross_entropy(adversarial.clone(), margins.labels.clone()));
        let at_0 = scalar(convex_combination_loss(adversarial.clone(), &margins, 0.0));
        assert!((at_0 - adv).abs() < 1e-6, "{at_0} vs {adv}");
        let robust = scalar(robust_cross_entropy(&margins));
        let at_1 = scalar(convex_combination_loss(adversarial, &margins, 1.0));
        assert!((at_1 - robust).abs() < 1e-6, "{at_1} vs {robust}");
    }

    #[test]
    fn exp_ibp_interpolates_geometrically() {
        let device = Device::flex();
        let adv = || Tensor::<1>::from_floats([0.5], &device);
        let ver = || Tensor::<1>::from_floats([2.0], &device);
        // 0.5^0.75 * 2^0.25 = 2^-0.5
        let mid = scalar(exp_combination_loss(adv(), ver(), 0.25));
        assert!((mid - 0.5f64.sqrt()).abs() < 1e-6, "{mid}");
        assert!((scalar(exp_combination_loss(adv(), ver(), 0.0)) - 0.5).abs() < 1e-6);
        assert!((scalar(exp_combination_loss(adv(), ver(), 1.0)) - 2.0).abs() < 1e-6);
    }
}
