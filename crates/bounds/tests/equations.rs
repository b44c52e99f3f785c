//! The symbolic domain's margin equations: on a box so small that no ReLU is unstable the
//! domain is exact, so each margin's input coefficients are the margin's gradient scaled by
//! the pixel's radius, whichever way the domain stores them (convolution patches, dense rows,
//! compacted rows when some pixels cannot move).

use burn::module::Module;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use mixtrain_bounds::{InputSet, margin_equations};
use mixtrain_nn::{Architecture, Backend, Layer, LayerSpec, Network};

/// Normalisation, then two convolutions (patch chains) or three (made dense), then two linear
/// layers; `[2, 8, 8]` inputs, 4 classes.
fn arch(convs: usize) -> Architecture {
    let mut layers = vec![LayerSpec::Normalize {
        mean: vec![0.4, 0.5],
        std: vec![0.3, 0.2],
    }];
    layers.extend([LayerSpec::conv2d("c1", 2, 3, 4, 2, 1), LayerSpec::Relu]); // 4x4
    layers.extend([LayerSpec::conv2d("c2", 3, 4, 3, 1, 1), LayerSpec::Relu]); // 4x4
    if convs == 3 {
        layers.extend([LayerSpec::conv2d("c3", 4, 4, 2, 2, 0), LayerSpec::Relu]); // 2x2
    }
    let flat = if convs == 3 { 16 } else { 64 };
    layers.extend([
        LayerSpec::Flatten,
        LayerSpec::linear("fc", flat, 10),
        LayerSpec::Relu,
        LayerSpec::linear("out", 10, 4),
    ]);
    Architecture {
        name: format!("eq{convs}"),
        input: [2, 8, 8],
        classes: 4,
        layers,
    }
}

/// `d (z_y - z_j) / dx` at `x`: `[n, classes, d_in]`.
fn margin_gradients(net: &Network, x: &Tensor<4>, labels: &[i64], device: &Device) -> Vec<f32> {
    let [n, c, h, w] = x.dims();
    let ad = device.clone().autodiff();
    let net = net.clone().fork(&ad);
    let classes = net.architecture().classes;
    let mut out = vec![0.0f32; n * classes * c * h * w];
    for j in 0..classes {
        let x = x.clone().autodiff().require_grad();
        let logits = net.forward(x.clone());
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels.to_vec(), [n]), &ad);
        let zy = logits.clone().gather(1, y.unsqueeze_dim(1));
        let zj = logits.narrow(1, j, 1);
        let grads = (zy - zj).sum().backward();
        let g: Vec<f32> = x.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
        let d = c * h * w;
        for p in 0..n {
            out[(p * classes + j) * d..(p * classes + j + 1) * d]
                .copy_from_slice(&g[p * d..(p + 1) * d]);
        }
    }
    out
}

/// Every bias pushed to +-2 by its sign: the pre-activations stay far from the ReLUs' kinks,
/// so a tiny box leaves every ReLU stable (half of them active) and the domain is exact.
fn far_from_kinks(mut net: Network) -> Network {
    for layer in &mut net.layers {
        match layer {
            Layer::Conv2d(c) => c.bias = c.bias.clone().map(|b| b.clone().sign() * 2.0 + b),
            Layer::Linear(l) => l.bias = l.bias.clone().map(|b| b.clone().sign() * 2.0 + b),
            _ => {}
        }
    }
    net
}

fn check(convs: usize, frozen_pixels: bool) {
    let device = Backend::Flex.device(None).unwrap();
    // seeded: the biases keep most pre-activations far from the kinks, but an unlucky draw of
    // `x` can still put one within the box's reach of zero, and the domain is then (soundly)
    // inexact; measured errors on seeded draws are ~3e-7 of the largest coefficient
    device.seed(5 + convs as u64);
    let net = far_from_kinks(Network::init(&arch(convs), 11 + convs as u64, &device).unwrap());
    let x = Tensor::<4>::random([3, 2, 8, 8], Distribution::Uniform(0.1, 0.9), &device);
    let labels = [0i64, 2, 3];
    let eps = 1e-3f32;
    // some pixels cannot move (zero radius in every box): the domain compacts them away
    let radius: Vec<f32> = (0..3 * 128)
        .map(|i| {
            if frozen_pixels && i % 128 % 3 == 0 {
                0.0
            } else {
                eps
            }
        })
        .collect();
    let radius_t = Tensor::<4>::from_data(TensorData::new(radius.clone(), [3, 2, 8, 8]), &device);
    let set = InputSet::new(x.clone() - radius_t.clone(), x.clone() + radius_t).unwrap();
    // the radius the domain sees, after float32 rounding of the box's ends
    let radius: Vec<f32> = ((set.upper.clone() - set.lower.clone()) * 0.5)
        .into_data()
        .try_to_vec()
        .unwrap();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels.to_vec(), [3]), &device);
    let eq = margin_equations(&net, &set, y.clone()).unwrap();

    let got: Vec<f32> = eq.input.into_data().try_to_vec().unwrap();
    let want = margin_gradients(&net, &x, &labels, &device);
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())) * eps;
    assert!(scale > 0.0);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let expected = w * radius[(i / (4 * 128)) * 128 + i % 128];
        assert!(
            (g - expected).abs() <= 1e-4 * scale,
            "coefficient {i}: {g} vs gradient x radius {expected} ({convs} convolutions)"
        );
    }

    // the bounds, checked independently of the domain: with every ReLU stable the network is
    // affine on the box, so each margin's lower bound is its value at the centre (a forward
    // pass) less |gradient| . radius
    let logits: Vec<f32> = net.forward(x).into_data().try_to_vec().unwrap();
    let lower: Vec<f32> = eq.margins.lower.into_data().try_to_vec().unwrap();
    for p in 0..3 {
        for j in 0..4 {
            let at = |c: usize| logits[p * 4 + c];
            let slack: f32 = (0..128)
                .map(|i| want[(p * 4 + j) * 128 + i].abs() * radius[p * 128 + i])
                .sum();
            let expected = at(labels[p] as usize) - at(j) - slack;
            let got = lower[p * 4 + j];
            assert!(
                (got - expected).abs() <= 1e-4 * (1.0 + expected.abs()),
                "margin {j} of point {p}: bound {got}, centre value less slack {expected}"
            );
        }
    }
}

#[test]
fn input_coefficients_are_the_scaled_gradient_through_patch_chains() {
    check(2, false);
}

#[test]
fn input_coefficients_are_the_scaled_gradient_through_dense_rows() {
    check(3, false);
}

#[test]
fn compacted_input_coefficients_return_to_their_pixels() {
    check(2, true);
    check(3, true);
}
