use burn::tensor::{Bool, Int, Tensor, TensorData};
use mixtrain_bounds::{BoundsError, InputDomain, read_bools};
use mixtrain_nn::Network;

use crate::target::Target;
use crate::{Adversarial, Attack, AttackLoss};

/// Projected gradient descent under L_inf: from `x` (or a uniform random point of the ball),
/// `steps` signed-gradient ascent steps of size `step_size` on `loss`, each projected back onto
/// the eps-ball around `x` intersected with the input domain (the same box the bounds engine
/// verifies, so an attack can never "break" a point outside it). `restarts` independent runs,
/// keeping the first adversarial example found for each point.
///
/// With `early_stop` (evaluation), a point stops moving at the first iterate the network
/// misclassifies, so the example returned is one that breaks it; without (adversarial
/// training), every point takes all its steps towards the loss maximum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pgd {
    /// Radius of the L_inf ball around `x`, in pixel units (`[0, 1]` scale, before the
    /// network's input normalisation).
    pub eps: f32,
    /// Size of each signed-gradient step, in pixel units.
    pub step_size: f32,
    /// Ascent steps per run.
    pub steps: usize,
    /// Start from a uniform random point of the feasible box instead of `x`.
    pub random_start: bool,
    /// Runs per point (at least one).
    pub restarts: usize,
    /// Stop moving a point at its first misclassified iterate, and check the clean point
    /// first (evaluation); off for adversarial training.
    pub early_stop: bool,
    /// The objective ascended.
    pub loss: AttackLoss,
    /// The box every iterate is clipped to, intersected with the eps-ball.
    pub domain: InputDomain,
}

impl Pgd {
    /// The evaluation attack: one random start, cross-entropy, early stop, `[0, 1]` pixels.
    pub fn new(eps: f32, step_size: f32, steps: usize) -> Self {
        Self {
            eps,
            step_size,
            steps,
            random_start: true,
            restarts: 1,
            early_stop: true,
            loss: AttackLoss::CrossEntropy,
            domain: InputDomain::Unit,
        }
    }

    /// FGSM (Goodfellow et al.): one step of size eps from the clean point.
    pub fn fgsm(eps: f32) -> Self {
        Self {
            random_start: false,
            ..Self::new(eps, eps, 1)
        }
    }

    /// `steps` projected ascent steps from `points`; points in `frozen` do not move, and with
    /// early stop every point joins them at its first misclassified iterate. Returns the
    /// points and the final frozen set.
    pub(crate) fn ascend(
        &self,
        target: &Target,
        mut points: Tensor<4>,
        mut frozen: Tensor<1, Bool>,
    ) -> (Tensor<4>, Tensor<1, Bool>) {
        for _ in 0..self.steps {
            let (grad, logits) = target.gradient(points.clone(), self.loss);
            let next = target.project(points.clone() + grad.sign() * self.step_size);
            points = if self.early_stop {
                frozen = frozen.bool_or(target.misclassified(logits));
                target.keep(&frozen, next, points)
            } else {
                next
            };
        }
        (points, frozen)
    }

    /// The inner maximisation of adversarial training: one run of all `steps` steps from a
    /// random start (or `x`) for every point, nothing else. [`Attack::run`] is the evaluation
    /// protocol (restarts, early stop, the clean check and the final one), whose forward passes
    /// a training step does not need.
    pub fn perturb(
        &self,
        net: &Network,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
    ) -> Result<Tensor<4>, BoundsError> {
        let target = Target::new(net, x, labels, self.eps, self.domain)?;
        let start = if self.random_start {
            target.random_point()
        } else {
            target.x.clone()
        };
        let none = Tensor::<1, Int>::zeros([target.len()], &start.device()).bool();
        let all_steps = Pgd {
            early_stop: false,
            ..*self
        };
        Ok(all_steps.ascend(&target, start, none).0)
    }
}

impl Pgd {
    /// The attack on boxes `[lower, upper]` (`[n, c, h, w]`, e.g. a VNN-LIB property's input
    /// region) instead of eps-balls: starts uniform in the box, steps of `self.step_size`,
    /// every iterate projected onto the box. `self.eps` and `self.domain` are not used: the box
    /// is the feasible set.
    ///
    /// The restarts run side by side, as `restarts` copies of the batch in one larger batch:
    /// a box attack has few points (a VNN-COMP property has one), so copies fill the batch
    /// that one point would leave nearly empty. Each point keeps its first broken copy.
    pub fn run_box(
        &self,
        net: &Network,
        lower: Tensor<4>,
        upper: Tensor<4>,
        labels: Tensor<1, Int>,
    ) -> Result<Adversarial, BoundsError> {
        let (n, copies) = (lower.dims()[0], self.restarts);
        if copies == 0 {
            return Err(BoundsError::Input(
                "an attack needs at least 1 restart".into(),
            ));
        }
        let target = Target::in_box(
            net,
            lower.repeat_dim(0, copies),
            upper.repeat_dim(0, copies),
            labels.repeat_dim(0, copies),
        );
        let found = target.restarts(1, self.random_start, self.early_stop, |start, frozen| {
            Ok(self.ascend(&target, start, frozen).0)
        })?;
        let broken = read_bools(found.broken)?;
        let first: Vec<Option<usize>> = (0..n)
            .map(|i| (0..copies).map(|r| r * n + i).find(|&j| broken[j]))
            .collect();
        let device = found.points.device();
        let rows: Vec<i64> = (0..n).map(|i| first[i].unwrap_or(i) as i64).collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &device);
        let broken: Vec<bool> = first.iter().map(Option::is_some).collect();
        Ok(Adversarial {
            points: found.points.select(0, rows),
            broken: Tensor::from_data(TensorData::new(broken, [n]), &device),
        })
    }
}

impl Attack for Pgd {
    fn run(
        &self,
        net: &Network,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
    ) -> Result<Adversarial, BoundsError> {
        let target = Target::new(net, x, labels, self.eps, self.domain)?;
        target.restarts(
            self.restarts,
            self.random_start,
            self.early_stop,
            |start, frozen| Ok(self.ascend(&target, start, frozen).0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{image, labels, pixels, sum_classifier};
    use burn::tensor::Device;

    #[test]
    fn ascends_to_the_corner_of_the_clipped_ball() {
        let device = Device::flex();
        let net = sum_classifier(0.0, &device);
        // the loss of class 1 grows as the pixel sum falls: every pixel goes to x - eps, clipped
        // (the training path: all steps, no checks)
        let x = image([0.3, 0.5, 0.95, 0.0], &device);
        let points = Pgd::new(0.1, 0.04, 5)
            .perturb(&net, x, labels(&[1], &device))
            .unwrap();
        assert_eq!(pixels(points), [0.2, 0.4, 0.85, 0.0]);
    }

    /// A box that is no eps-ball: the attack leaves it by no pixel and finds its corner where
    /// one breaks the label (class 0 wins below a pixel sum of 0.5, `z1 - z0 = 2 sum - 1`).
    #[test]
    fn a_box_attack_stays_in_the_box_and_finds_its_breaking_corner() {
        let device = Device::flex();
        let net = sum_classifier(1.0, &device);
        let lower = image([0.0, 0.1, 0.3, 0.0], &device);
        let upper = image([0.05, 0.4, 0.35, 0.02], &device);
        let pgd = Pgd {
            loss: AttackLoss::Margin,
            ..Pgd::new(0.15, 0.05, 10)
        };
        // class 1 wins at the centre (sum 0.61); the corner of least sum (0.4) breaks it
        let found = pgd
            .run_box(&net, lower.clone(), upper.clone(), labels(&[1], &device))
            .unwrap();
        assert!(found.broken.into_scalar::<bool>());
        let p = pixels(found.points);
        let (l, u) = (pixels(lower), pixels(upper));
        assert!(
            p.iter()
                .zip(l.iter().zip(&u))
                .all(|(v, (l, u))| l <= v && v <= u),
            "{p:?}"
        );
        assert!(p.iter().sum::<f32>() < 0.5, "{p:?}");
        // a box where class 1 wins everywhere (sum at least 0.52) is not broken
        let high = image([0.13, 0.13, 0.13, 0.13], &device);
        let found = pgd
            .run_box(&net, high.clone(), high + 0.1, labels(&[1], &device))
            .unwrap();
        assert!(!found.broken.into_scalar::<bool>());
    }

    /// Restarts as copies in one batch: each point gets back one row, its own box's, broken
    /// only if one of its copies broke; the other point's copies do not leak into it.
    #[test]
    fn box_restarts_run_as_one_batch_and_each_point_keeps_its_own_row() {
        let device = Device::flex();
        let net = sum_classifier(1.0, &device);
        // point 0 breaks at its corner of least sum (0.4); point 1 never (sum at least 0.52)
        let cat = |a, b| Tensor::cat(vec![image(a, &device), image(b, &device)], 0);
        let lower = cat([0.0, 0.1, 0.3, 0.0], [0.13; 4]);
        let upper = cat([0.05, 0.4, 0.35, 0.02], [0.23; 4]);
        let pgd = Pgd {
            loss: AttackLoss::Margin,
            restarts: 7,
            ..Pgd::new(0.15, 0.05, 10)
        };
        let found = pgd
            .run_box(&net, lower.clone(), upper.clone(), labels(&[1, 1], &device))
            .unwrap();
        assert_eq!(read_bools(found.broken).unwrap(), [true, false]);
        assert_eq!(found.points.dims(), [2, 1, 2, 2]);
        let (p, l, u) = (pixels(found.points), pixels(lower), pixels(upper));
        assert!(
            p.iter()
                .zip(l.iter().zip(&u))
                .all(|(v, (l, u))| l <= v && v <= u),
            "{p:?}"
        );
        assert!(p[..4].iter().sum::<f32>() < 0.5, "{p:?}");
        let none = Pgd { restarts: 0, ..pgd };
        let point = image([0.1; 4], &device);
        let err = none.run_box(&net, point.clone(), point, labels(&[1], &device));
        assert!(err.is_err());
    }

    #[test]
    fn fgsm_is_one_step_of_eps_from_the_clean_point() {
        let device = Device::flex();
        let net = sum_classifier(0.0, &device);
        let x = image([0.3, 0.5, 0.95, 0.02], &device);
        let found = Pgd::fgsm(0.05).run(&net, x, labels(&[1], &device)).unwrap();
        assert_eq!(pixels(found.points), [0.25, 0.45, 0.9, 0.0]);
    }

    #[test]
    fn early_stop_keeps_the_first_misclassified_iterate() {
        let device = Device::flex();
        // class 1 wins while the pixel sum exceeds 0.5 (z1 - z0 = 2 sum - 1)
        let net = sum_classifier(1.0, &device);
        let x = image([0.2, 0.2, 0.2, 0.2], &device);
        let pgd = Pgd {
            random_start: false,
            ..Pgd::new(0.2, 0.05, 10)
        };
        // sums 0.8, 0.6, 0.4: broken at the second step, and it stays there
        let found = pgd.run(&net, x.clone(), labels(&[1], &device)).unwrap();
        assert_eq!(pixels(found.points), [0.1, 0.1, 0.1, 0.1]);
        assert!(found.broken.into_scalar::<bool>());
        // without early stop the point goes on to the corner
        let pgd = Pgd {
            early_stop: false,
            ..pgd
        };
        let found = pgd.run(&net, x, labels(&[1], &device)).unwrap();
        assert_eq!(pixels(found.points), [0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn a_misclassified_clean_point_is_its_own_adversarial_example() {
        let device = Device::flex();
        let net = sum_classifier(0.0, &device);
        let x = image([0.3, 0.5, 0.9, 0.1], &device);
        let found = Pgd::new(0.1, 0.01, 3)
            .run(&net, x, labels(&[0], &device))
            .unwrap();
        assert!(found.broken.into_scalar::<bool>());
        assert_eq!(pixels(found.points), [0.3, 0.5, 0.9, 0.1]);
    }

    #[test]
    fn margin_loss_is_the_best_other_logit_minus_the_labels() {
        let device = Device::flex();
        let logits = Tensor::<2>::from_data([[1.0f32, 3.0, 2.0], [0.5, -1.0, 4.0]], &device);
        let y = labels(&[1, 0], &device);
        let margin: Vec<f32> = AttackLoss::Margin
            .value(logits.clone(), y.clone())
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(margin, [-1.0, 3.5]);
        let ce: Vec<f32> = AttackLoss::CrossEntropy
            .value(logits, y)
            .into_data()
            .try_to_vec()
            .unwrap();
        let lse = |z: [f32; 3]| z.iter().map(|v| v.exp()).sum::<f32>().ln();
        assert!((ce[0] - (lse([1.0, 3.0, 2.0]) - 3.0)).abs() < 1e-5);
        assert!((ce[1] - (lse([0.5, -1.0, 4.0]) - 0.5)).abs() < 1e-5);
    }
}
