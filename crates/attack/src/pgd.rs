use burn::module::Module;
use burn::tensor::{Distribution, Int, Tensor};
use mixtrain_bounds::{BoundsError, InputDomain, InputSet};
use mixtrain_nn::Network;

/// Projected gradient descent under L_inf: from `x` (or a uniform random point of the ball),
/// `steps` signed-gradient ascent steps of size `step_size` on the summed cross-entropy, each
/// projected back onto the eps-ball around `x` intersected with the input domain (the same box
/// the bounds engine verifies, so an attack can never "break" a point outside it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pgd {
    pub eps: f32,
    pub step_size: f32,
    pub steps: usize,
    pub random_start: bool,
    pub domain: InputDomain,
}

impl Pgd {
    /// Adversarial examples for `net` at `x` (`[n, c, h, w]` pixels) with `labels`, on `x`'s
    /// device without autodiff. The gradients are taken on an autodiff copy of the network
    /// whose parameters are frozen, so only the input is differentiated (no wasted weight
    /// gradients during adversarial training).
    pub fn attack(
        &self,
        net: &Network,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
    ) -> Result<Tensor<4>, BoundsError> {
        let x = x.inner();
        let ad = x.device().autodiff();
        let frozen = net.clone().fork(&ad).no_grad();
        let labels = labels.inner().autodiff();
        let ball = InputSet::linf(x.clone(), self.eps, self.domain)?;
        let (lower, upper) = (ball.lower.inner(), ball.upper.inner());
        let mut adv = if self.random_start && self.eps > 0.0 {
            let noise = Tensor::random(
                x.dims(),
                Distribution::Uniform(-f64::from(self.eps), f64::from(self.eps)),
                &x.device(),
            );
            (x + noise).max_pair(lower.clone()).min_pair(upper.clone())
        } else {
            x
        };
        for _ in 0..self.steps {
            let tracked = adv.clone().autodiff().require_grad();
            let logits = frozen.forward(tracked.clone());
            let loss = burn::tensor::activation::log_softmax(logits, 1)
                .gather(1, labels.clone().unsqueeze_dim(1))
                .sum()
                .neg();
            let grads = loss.backward();
            let grad = tracked
                .grad(&grads)
                .expect("the input requires a gradient")
                .inner();
            adv = (adv + grad.sign() * self.step_size)
                .max_pair(lower.clone())
                .min_pair(upper.clone());
        }
        Ok(adv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use mixtrain_nn::{Architecture, LayerSpec};

    /// A linear classifier on a 1x2x2 image: class 1 scores the pixel sum, class 0 its negation.
    fn sum_classifier(device: &Device) -> Network {
        let arch = Architecture {
            name: "sum".into(),
            input: [1, 2, 2],
            classes: 2,
            layers: vec![
                LayerSpec::Flatten,
                LayerSpec::Linear {
                    name: "out".into(),
                    in_features: 4,
                    out_features: 2,
                },
            ],
        };
        let net = Network::init(&arch, 0, device).unwrap();
        let mixtrain_nn::Layer::Linear(mut out) = net.layers[1].clone() else {
            unreachable!()
        };
        let w: Vec<f32> = (0..4).flat_map(|_| [-1.0f32, 1.0]).collect();
        out.weight = out
            .weight
            .map(|_| Tensor::from_data(TensorData::new(w.clone(), [4, 2]), device));
        out.bias = out.bias.map(|b| b.zeros_like());
        let mut net = net;
        net.layers[1] = mixtrain_nn::Layer::Linear(out);
        net
    }

    #[test]
    fn ascends_to_the_corner_of_the_clipped_ball() {
        let device = Device::flex();
        let net = sum_classifier(&device);
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0.3f32, 0.5, 0.95, 0.0], [1, 1, 2, 2]),
            &device,
        );
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64], [1]), &device);
        let pgd = Pgd {
            eps: 0.1,
            step_size: 0.04,
            steps: 5,
            random_start: true,
            domain: InputDomain::Unit,
        };
        // the loss of class 1 grows as the pixel sum falls: every pixel goes to x - eps, clipped
        let adv: Vec<f32> = pgd
            .attack(&net, x, y)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let expected = [0.2f32, 0.4, 0.85, 0.0];
        for (a, e) in adv.iter().zip(expected) {
            assert!((a - e).abs() < 1e-6, "{adv:?}");
        }
    }
}
