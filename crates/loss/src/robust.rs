use burn::tensor::Tensor;
use mixtrain_bounds::Margins;

use crate::cross_entropy;

/// The robust loss: cross-entropy of the worst-case logits (`wc_j` = upper bound of
/// `z_j - z_y`, `wc_y = 0`). It upper-bounds the cross-entropy of every input in the boxes the
/// margins were bounded on.
pub fn robust_cross_entropy(margins: &Margins) -> Tensor<1> {
    cross_entropy(margins.worst_case_logits(), margins.labels.clone())
}

/// CROWN-IBP's bound: `beta` CROWN + `(1 - beta)` IBP, margin by margin. Sound for any `beta`
/// in `[0, 1]` (a convex combination of lower bounds); `beta` falls from 1 to 0 as eps ramps up.
pub fn interpolate(ibp: &Margins, crown: &Margins, beta: f64) -> Margins {
    Margins {
        lower: crown.lower.clone() * beta + ibp.lower.clone() * (1.0 - beta),
        labels: ibp.labels.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Int, TensorData};

    #[test]
    fn robust_loss_is_the_cross_entropy_of_negated_margins() {
        let device = Device::flex();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64], [1]), &device);
        let lower =
            Tensor::<2>::from_data(TensorData::new(vec![2.0f32, 0.0, -1.0], [1, 3]), &device);
        let m = Margins { lower, labels };
        let loss: f32 = robust_cross_entropy(&m).into_scalar();
        // logits (-2, 0, 1), label 1
        let expected = -(0.0f32 - ((-2.0f32).exp() + 1.0 + 1.0f32.exp()).ln());
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
        let other = Margins {
            lower: m.lower.clone() * 3.0,
            labels: m.labels.clone(),
        };
        let mid: Vec<f32> = interpolate(&m, &other, 0.25)
            .lower
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(mid, vec![3.0, 0.0, -1.5]);
    }
}
