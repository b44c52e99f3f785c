//! The robust loss is differentiable through every domain: the autodiff gradient matches
//! central finite differences along random directions of all parameters, on a tiny net.

use burn::module::Param;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use mixtrain_bounds::{DomainKind, InputDomain, InputSet};
use mixtrain_nn::{Architecture, Backend, Layer, LayerSpec, Network};

/// A tiny net with one convolution, or two (the symbolic domain's patches, and the columns of
/// the second convolution's adjoint at the first's unstable neurons).
fn arch(convs: usize) -> Architecture {
    let mut layers = vec![LayerSpec::conv2d("conv1", 1, 3, 3, 2, 1), LayerSpec::Relu];
    if convs == 2 {
        layers.extend([LayerSpec::conv2d("conv2", 3, 4, 2, 2, 0), LayerSpec::Relu]);
    }
    let (side, features) = if convs == 2 { (7, 16) } else { (5, 27) };
    layers.extend([
        LayerSpec::Flatten,
        LayerSpec::Linear {
            name: "fc".into(),
            in_features: features,
            out_features: 6,
        },
        LayerSpec::Relu,
        LayerSpec::Linear {
            name: "out".into(),
            in_features: 6,
            out_features: 3,
        },
    ]);
    Architecture {
        name: "tiny".into(),
        input: [1, side, side],
        classes: 3,
        layers,
    }
}

/// Parameters as flat vectors, layer by layer (weight then bias).
fn params(net: &Network) -> Vec<Vec<f32>> {
    net.layers
        .iter()
        .flat_map(|l| match l {
            Layer::Conv2d(c) => vec![c.weight.val().into_data(), c.bias.val().into_data()],
            Layer::Linear(f) => vec![f.weight.val().into_data(), f.bias.val().into_data()],
            _ => vec![],
        })
        .map(|d| d.try_to_vec::<f32>().unwrap())
        .collect()
}

/// `net` with every parameter moved by `h * direction`.
fn moved(net: &Network, direction: &[Vec<f32>], h: f32, device: &Device) -> Network {
    /// `p + h * d` as a new parameter.
    fn shift<const D: usize>(
        p: &Param<Tensor<D>>,
        d: &[f32],
        h: f32,
        device: &Device,
    ) -> Param<Tensor<D>> {
        let t = p.val();
        let step = Tensor::<1>::from_data(TensorData::new(d.to_vec(), [d.len()]), device)
            .reshape(t.dims());
        Param::from_tensor(t + step * h)
    }
    let mut net = net.clone();
    let mut k = 0;
    for layer in &mut net.layers {
        match layer {
            Layer::Conv2d(c) => {
                c.weight = shift(&c.weight, &direction[k], h, device);
                c.bias = shift(&c.bias, &direction[k + 1], h, device);
                k += 2;
            }
            Layer::Linear(f) => {
                f.weight = shift(&f.weight, &direction[k], h, device);
                f.bias = shift(&f.bias, &direction[k + 1], h, device);
                k += 2;
            }
            _ => {}
        }
    }
    net
}

fn robust_loss(net: &Network, domain: DomainKind, device: &Device) -> Tensor<1> {
    let [_, side, _] = net.architecture().input;
    let x: Vec<f32> = (0..2 * side * side)
        .map(|i| (i * 7 % 11) as f32 / 11.0)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(x, [2, 1, side, side]), device);
    let y = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 2], [2]), device);
    let set = InputSet::linf(x, 0.05, InputDomain::Unit).unwrap();
    let wc = domain
        .margins(net, &set, y.clone())
        .unwrap()
        .worst_case_logits();
    log_softmax(wc, 1)
        .gather(1, y.unsqueeze_dim(1))
        .mean()
        .neg()
}

#[test]
fn robust_loss_gradient_matches_finite_differences() {
    let plain = Backend::Flex.device(None).unwrap();
    let ad = plain.clone().autodiff();
    for (domain, convs) in DomainKind::ALL.into_iter().flat_map(|d| [(d, 1), (d, 2)]) {
        let net = Network::init(&arch(convs), 11, &ad).unwrap();
        let loss = robust_loss(&net, domain, &ad);
        let grads = loss.backward();
        let gradient: Vec<Vec<f32>> = net
            .layers
            .iter()
            .flat_map(|l| match l {
                Layer::Conv2d(c) => vec![
                    c.weight.val().grad(&grads).unwrap().into_data(),
                    c.bias.val().grad(&grads).unwrap().into_data(),
                ],
                Layer::Linear(f) => vec![
                    f.weight.val().grad(&grads).unwrap().into_data(),
                    f.bias.val().grad(&grads).unwrap().into_data(),
                ],
                _ => vec![],
            })
            .map(|d| d.try_to_vec::<f32>().unwrap())
            .collect();
        let base = Network::init(&arch(convs), 11, &plain).unwrap();
        assert_eq!(params(&base).len(), gradient.len());
        for seed in 0..3u64 {
            let direction: Vec<Vec<f32>> = params(&base)
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    (0..p.len())
                        .map(|j| {
                            (((j as u64 + 31 * i as u64 + 97 * seed) * 2654435761 % 1000) as f32
                                / 500.0)
                                - 1.0
                        })
                        .collect()
                })
                .collect();
            let analytic: f32 = gradient
                .iter()
                .flatten()
                .zip(direction.iter().flatten())
                .map(|(g, d)| g * d)
                .sum();
            let h = 1e-3;
            let plus: f32 =
                robust_loss(&moved(&base, &direction, h, &plain), domain, &plain).into_scalar();
            let minus: f32 =
                robust_loss(&moved(&base, &direction, -h, &plain), domain, &plain).into_scalar();
            let numeric = (plus - minus) / (2.0 * h);
            assert!(
                (analytic - numeric).abs() <= 2e-2 * analytic.abs().max(numeric.abs()) + 1e-3,
                "{} ({convs} convolutions): directional derivative {analytic} (autodiff) vs \
                 {numeric} (finite differences)",
                domain.name()
            );
        }
    }
}
