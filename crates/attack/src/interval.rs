use burn::tensor::{Bool, Int, Tensor};
use mixtrain_bounds::{BoundsError, InputSet, margin_equations};
use mixtrain_nn::Network;

use crate::target::Target;
use crate::{Adversarial, Attack, Pgd};

/// The interval-gradient attack (Wang et al., MixTrain; "Enhancing gradient-based attacks with
/// symbolic intervals").
///
/// A step bounds the box `[p - s, p + s]` around the current point `p` (intersected with the
/// feasible box) in the symbolic domain. While the box is verified, `s` grows by `growth`, up
/// to eps / 2. Then the worst margin's symbolic equation (the margin `z_y - z_d` with the
/// lowest lower bound) gives the direction: its input coefficients say which way each pixel
/// lowers that margin over the whole box, which sees past the local gradient's flat or
/// misleading spots. Each of the `interval_steps` rounds takes one such step followed by the
/// PGD steps of `pgd`, which also gives the restarts, random start, loss, early stop and domain.
///
/// Where the authors' code is ambiguous: its interval step jumps to the corner of the whole
/// eps-box. Here the step goes to the corner of the *bounded* box, `p - s sign(g)` clipped to
/// the feasible box: the equation is a bound on the network only inside that box, so its
/// maximiser there is what the direction promises; a jump to the eps corner extrapolates a
/// local equation across the ball and, after projection, throws away the position PGD reached.
/// The PGD steps that follow, not the interval step, travel the ball.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntervalAttack {
    /// The PGD attack run after each interval step; also gives eps, restarts, random start,
    /// loss, early stop and input domain.
    pub pgd: Pgd,
    /// Half-width of the first box bounded around the current point (pixel units).
    pub estep: f32,
    /// Factor by which a verified box grows.
    pub growth: f32,
    /// Rounds of one interval step followed by `pgd.steps` PGD steps.
    pub interval_steps: usize,
}

impl IntervalAttack {
    /// The authors' defaults around `pgd`: estep 0.01, growth 3, 3 interval steps.
    pub fn new(pgd: Pgd) -> Self {
        Self {
            pgd,
            estep: 0.01,
            growth: 3.0,
            interval_steps: 3,
        }
    }

    /// One interval step from `points`; `frozen` points stay.
    fn step(
        &self,
        target: &Target,
        points: Tensor<4>,
        frozen: &Tensor<1, Bool>,
    ) -> Result<Tensor<4>, BoundsError> {
        let n = target.len();
        let device = points.device();
        let cap = 0.5 * self.pgd.eps;
        let mut s = Tensor::<1>::full([n], self.estep.min(cap), &device);
        let (lower, upper, eq) = loop {
            let s4 = s.clone().reshape([n, 1, 1, 1]);
            let lower = (points.clone() - s4.clone()).max_pair(target.lower.clone());
            let upper = (points.clone() + s4).min_pair(target.upper.clone());
            let set = InputSet::new(lower.clone(), upper.clone())?;
            let eq = margin_equations(&target.plain, &set, target.labels.clone())?;
            let grow = eq
                .margins
                .verified()
                .bool_and(s.clone().lower_elem(cap))
                .bool_and(frozen.clone().bool_not());
            if self.growth <= 1.0 || !grow.clone().any().into_scalar::<bool>() {
                break (lower, upper, eq);
            }
            s = s.clone().mask_where(grow, (s * self.growth).clamp_max(cap));
        };
        // the worst margin: the lowest lower bound among the other classes
        let [_, classes] = eq.margins.lower.dims();
        let own = target.labels.clone().one_hot::<2>(classes).bool();
        let worst = eq.margins.lower.mask_fill(own, f32::INFINITY).argmin(1); // [n, 1]
        let [_, _, d] = eq.input.dims();
        let g = eq
            .input
            .gather(1, worst.unsqueeze_dim::<3>(2).expand([n, 1, d]))
            .reshape(points.dims());
        // a positive coefficient raises the margin: that pixel goes to the box's lower end
        let next = points
            .clone()
            .mask_where(g.clone().greater_elem(0.0), lower)
            .mask_where(g.lower_elem(0.0), upper);
        Ok(target.keep(frozen, next, points))
    }
}

impl Attack for IntervalAttack {
    fn run(
        &self,
        net: &Network,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
    ) -> Result<Adversarial, BoundsError> {
        let pgd = &self.pgd;
        let target = Target::new(net, x, labels, pgd.eps, pgd.domain)?;
        target.restarts(
            pgd.restarts,
            pgd.random_start,
            pgd.early_stop,
            |mut points, mut frozen| {
                for _ in 0..self.interval_steps {
                    points = self.step(&target, points, &frozen)?;
                    (points, frozen) = pgd.ascend(&target, points, frozen);
                }
                Ok(points)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{image, labels, pixels, sum_classifier};
    use burn::tensor::Device;

    /// One interval step and no PGD, from the clean point.
    fn one_step(eps: f32) -> IntervalAttack {
        let pgd = Pgd {
            random_start: false,
            early_stop: false,
            ..Pgd::new(eps, 0.01, 0)
        };
        IntervalAttack {
            interval_steps: 1,
            ..IntervalAttack::new(pgd)
        }
    }

    #[test]
    fn the_box_grows_by_three_while_verified_and_the_step_takes_its_corner() {
        let device = Device::flex();
        // z1 - z0 = 2 sum - 1; at 0.2 per pixel the box of half-width s is verified while
        // 0.6 - 8 s > 0: s = 0.01, 0.03 are, 0.09 is not
        let net = sum_classifier(1.0, &device);
        let x = image([0.2, 0.2, 0.2, 0.2], &device);
        let found = one_step(0.3).run(&net, x, labels(&[1], &device)).unwrap();
        assert_eq!(pixels(found.points), [0.11, 0.11, 0.11, 0.11]);
    }

    #[test]
    fn the_box_stops_growing_at_half_eps() {
        let device = Device::flex();
        // z1 - z0 = 2 sum: every box is verified, so s stops at eps / 2 = 0.1
        let net = sum_classifier(0.0, &device);
        let x = image([0.3, 0.5, 0.95, 0.05], &device);
        let found = one_step(0.2).run(&net, x, labels(&[1], &device)).unwrap();
        assert_eq!(pixels(found.points), [0.2, 0.4, 0.85, 0.0]);
    }
}
