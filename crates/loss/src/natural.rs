use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// Mean cross-entropy of `logits` `[n, classes]` against `labels` `[n]`.
///
/// Computed as `-mean(log_softmax(logits)[label])`, which is stable for large logits (the
/// log-sum-exp inside `log_softmax` subtracts the row maximum).
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    log_softmax(logits, 1)
        .gather(1, labels.unsqueeze_dim(1))
        .mean()
        .neg()
}

/// How many rows of `logits` have their largest value at the label (on the device; read it
/// once per epoch rather than once per batch).
pub fn accuracy_count(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1, Int> {
    logits
        .argmax(1)
        .squeeze_dim::<1>(1)
        .equal(labels)
        .int()
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn matches_the_closed_form() {
        let device = Device::flex();
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 1.0, 2.0, 1000.0, 0.0, 0.0], [2, 3]),
            &device,
        );
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &device);
        let ce: f32 = cross_entropy(logits.clone(), labels.clone()).into_scalar();
        let first = -(2.0f32 - (1.0f32 + 1.0f32.exp() + 2.0f32.exp()).ln());
        let expected = (first + 0.0) / 2.0; // the second row is certain: loss 0
        assert!((ce - expected).abs() < 1e-5, "{ce} vs {expected}");
        let hits: i64 = accuracy_count(logits, labels).into_scalar();
        assert_eq!(hits, 2);
    }
}
