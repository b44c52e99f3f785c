use burn::module::Module;
use burn::tensor::{Bool, Distribution, Int, Tensor};
use mixtrain_bounds::{BoundsError, InputDomain, InputSet};
use mixtrain_nn::Network;

use crate::{Adversarial, AttackLoss};

/// One batch under attack: the network (plain, for checks and bounds; and an autodiff copy with
/// frozen parameters, so that only the input is differentiated), the labels and the feasible box
/// (the eps-ball intersected with the input domain).
pub(crate) struct Target {
    pub plain: Network,
    frozen: Network,
    pub x: Tensor<4>,
    pub labels: Tensor<1, Int>,
    labels_ad: Tensor<1, Int>,
    pub lower: Tensor<4>,
    pub upper: Tensor<4>,
    start: Start,
}

/// Where random starts are drawn.
#[derive(Clone, Copy)]
enum Start {
    /// Uniform noise in `[-eps, eps]` around `x`, projected (Madry et al.'s random start).
    Ball { eps: f32 },
    /// Uniform in the box: a box's sides can differ (a VNN-LIB pixel at 0 has half the room of
    /// one at 0.5), and noise of its largest half-width around the centre would put most
    /// such pixels on a face, where PGD from a projected start breaks far fewer labels.
    Box,
}

impl Target {
    pub fn new(
        net: &Network,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
        eps: f32,
        domain: InputDomain,
    ) -> Result<Self, BoundsError> {
        let x = x.inner();
        let plain = net.valid();
        let frozen = plain.clone().fork(&x.device().autodiff()).no_grad();
        let labels = labels.inner();
        let ball = InputSet::linf(x.clone(), eps, domain)?;
        Ok(Self {
            plain,
            frozen,
            labels_ad: labels.clone().autodiff(),
            labels,
            lower: ball.lower,
            upper: ball.upper,
            x,
            start: Start::Ball { eps },
        })
    }

    /// A batch whose feasible set is the box `[lower, upper]` itself (a VNN-LIB property's),
    /// with its centre as the clean point and random starts uniform in the box.
    pub fn in_box(
        net: &Network,
        lower: Tensor<4>,
        upper: Tensor<4>,
        labels: Tensor<1, Int>,
    ) -> Self {
        let (lower, upper) = (lower.inner(), upper.inner());
        let x = (lower.clone() + upper.clone()) / 2.0;
        let plain = net.valid();
        let frozen = plain.clone().fork(&x.device().autodiff()).no_grad();
        let labels = labels.inner();
        Self {
            plain,
            frozen,
            labels_ad: labels.clone().autodiff(),
            labels,
            lower,
            upper,
            x,
            start: Start::Box,
        }
    }

    pub fn len(&self) -> usize {
        self.x.dims()[0]
    }

    /// The nearest point of the feasible box.
    pub fn project(&self, points: Tensor<4>) -> Tensor<4> {
        points
            .max_pair(self.lower.clone())
            .min_pair(self.upper.clone())
    }

    /// A random start (see [`Start`]).
    pub fn random_point(&self) -> Tensor<4> {
        let device = self.x.device();
        match self.start {
            Start::Ball { eps: 0.0 } => self.x.clone(),
            Start::Ball { eps } => {
                let eps = f64::from(eps);
                let noise =
                    Tensor::random(self.x.dims(), Distribution::Uniform(-eps, eps), &device);
                self.project(self.x.clone() + noise)
            }
            Start::Box => {
                let unit = Tensor::random(self.x.dims(), Distribution::Uniform(0.0, 1.0), &device);
                self.project(self.lower.clone() + (self.upper.clone() - self.lower.clone()) * unit)
            }
        }
    }

    /// `[n]`: the network misclassifies each point.
    pub fn wrong(&self, points: Tensor<4>) -> Tensor<1, Bool> {
        misclassified(self.plain.forward(points), &self.labels)
    }

    /// The gradient of `loss` (summed over the batch) with respect to `points`, and the logits
    /// of that forward pass (without autodiff) for whoever needs to know what is misclassified.
    pub fn gradient(&self, points: Tensor<4>, loss: AttackLoss) -> (Tensor<4>, Tensor<2>) {
        let tracked = points.autodiff().require_grad();
        let logits = self.frozen.forward(tracked.clone());
        let plain = logits.clone().inner();
        let grads = loss.value(logits, self.labels_ad.clone()).sum().backward();
        let grad = tracked
            .grad(&grads)
            .expect("the input requires a gradient")
            .inner();
        (grad, plain)
    }

    /// `[n]`: which rows of `logits` are not the label.
    pub fn misclassified(&self, logits: Tensor<2>) -> Tensor<1, Bool> {
        misclassified(logits, &self.labels)
    }

    /// `next`, except `current` where `keep` holds.
    pub fn keep(&self, keep: &Tensor<1, Bool>, next: Tensor<4>, current: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = next.dims();
        next.mask_where(
            keep.clone().reshape([n, 1, 1, 1]).expand([n, c, h, w]),
            current,
        )
    }

    /// Up to `restarts` runs of `search`, each from a random point of the box (or the clean
    /// point), keeping for every input the first adversarial example found. With `early_stop`
    /// the clean point is checked first, and a broken point is handed to `search` as frozen
    /// (and restarts end once every point is broken: one read back per restart).
    pub fn restarts(
        &self,
        restarts: usize,
        random_start: bool,
        early_stop: bool,
        mut search: impl FnMut(Tensor<4>, Tensor<1, Bool>) -> Result<Tensor<4>, BoundsError>,
    ) -> Result<Adversarial, BoundsError> {
        if restarts == 0 {
            return Err(BoundsError::Input(
                "an attack needs at least 1 restart".into(),
            ));
        }
        let n = self.len();
        let mut best = self.x.clone();
        let mut broken = if early_stop {
            self.wrong(self.x.clone())
        } else {
            Tensor::<1, Int>::zeros([n], &self.x.device()).bool()
        };
        for restart in 0..restarts {
            let start = if random_start {
                self.random_point()
            } else {
                self.x.clone()
            };
            let (start, frozen) = if early_stop {
                (self.keep(&broken, start, best.clone()), broken.clone())
            } else {
                (start, broken.zeros_like())
            };
            let points = search(start, frozen)?;
            let now = self.wrong(points.clone());
            let earlier = broken.clone().bool_and(now.clone().bool_not());
            best = self.keep(&earlier, points, best);
            broken = broken.bool_or(now);
            if early_stop && restart + 1 < restarts && broken.clone().all().into_scalar::<bool>() {
                break;
            }
        }
        Ok(Adversarial {
            points: best,
            broken,
        })
    }
}

fn misclassified(logits: Tensor<2>, labels: &Tensor<1, Int>) -> Tensor<1, Bool> {
    logits
        .argmax(1)
        .squeeze_dim::<1>(1)
        .not_equal(labels.clone())
}
