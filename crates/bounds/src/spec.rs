use burn::tensor::{Bool, Int, Tensor};

/// Bounds on the margins of a robustness specification, for a batch.
///
/// For label `y` the margins are `z_y - z_j` for every class `j`; `lower[:, j]` is a certified
/// lower bound (row `y` is exactly 0). The point is verified when every other margin is
/// positive.
#[derive(Clone, Debug)]
pub struct Margins {
    /// `[n, classes]` lower bounds of `z_y - z_j`.
    pub lower: Tensor<2>,
    /// `[n]` class index `y` of each point, the row of `lower` that is 0.
    pub labels: Tensor<1, Int>,
}

impl Margins {
    /// Worst-case logits: `wc_j` = upper bound of `z_j - z_y`, `wc_y = 0`. The robust loss is the
    /// cross-entropy of these against the labels.
    pub fn worst_case_logits(&self) -> Tensor<2> {
        self.lower.clone().neg()
    }

    /// `[n]`: every `j != y` has a positive margin lower bound.
    pub fn verified(&self) -> Tensor<1, Bool> {
        let [_, classes] = self.lower.dims();
        let own: Tensor<2, Bool> = self.labels.clone().one_hot::<2>(classes).bool();
        self.lower
            .clone()
            .mask_fill(own, f32::INFINITY)
            .min_dim(1)
            .squeeze_dim::<1>(1)
            .greater_elem(0.0)
    }
}
