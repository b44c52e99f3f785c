use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};
use mixtrain_bounds::BoundsError;

/// The objective an attack ascends, per point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttackLoss {
    /// `-log softmax(z)_y`: Madry et al.'s choice, and that of adversarial training.
    #[default]
    CrossEntropy,
    /// `max_{j != y} z_j - z_y` (Carlini-Wagner's margin): positive exactly when the point is
    /// misclassified, and its gradient does not vanish when softmax saturates.
    Margin,
}

impl AttackLoss {
    /// The short name, `ce` or `margin`, that [`str::parse`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            AttackLoss::CrossEntropy => "ce",
            AttackLoss::Margin => "margin",
        }
    }

    /// `[n]` values of the loss of `logits` (`[n, classes]`) against `labels`.
    pub(crate) fn value(self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        let own = labels.unsqueeze_dim::<2>(1);
        match self {
            AttackLoss::CrossEntropy => log_softmax(logits, 1)
                .gather(1, own)
                .squeeze_dim::<1>(1)
                .neg(),
            AttackLoss::Margin => {
                let [_, classes] = logits.dims();
                let z_y = logits.clone().gather(1, own.clone());
                let mask = own.squeeze_dim::<1>(1).one_hot::<2>(classes).bool();
                let others = logits.mask_fill(mask, f32::NEG_INFINITY).max_dim(1);
                (others - z_y).squeeze_dim::<1>(1)
            }
        }
    }
}

impl std::str::FromStr for AttackLoss {
    type Err = BoundsError;

    fn from_str(s: &str) -> Result<Self, BoundsError> {
        match s {
            "ce" | "cross-entropy" => Ok(AttackLoss::CrossEntropy),
            "margin" => Ok(AttackLoss::Margin),
            _ => Err(BoundsError::Input(format!(
                "unknown attack loss {s:?}: expected ce or margin"
            ))),
        }
    }
}
