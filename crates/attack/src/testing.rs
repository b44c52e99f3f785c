//! Tiny networks whose attacks have closed forms.

use burn::tensor::{Device, Int, Tensor, TensorData};
use mixtrain_nn::{Architecture, Layer, LayerSpec, Network};

/// A linear classifier on a `1x2x2` image: class 1 scores the pixel sum, class 0 the negated
/// sum plus `bias`, so `z1 - z0 = 2 sum - bias`.
pub fn sum_classifier(bias: f32, device: &Device) -> Network {
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
    let mut net = Network::init(&arch, 0, device).unwrap();
    let Layer::Linear(mut out) = net.layers[1].clone() else {
        unreachable!()
    };
    let w: Vec<f32> = (0..4).flat_map(|_| [-1.0f32, 1.0]).collect();
    out.weight = out
        .weight
        .map(|_| Tensor::from_data(TensorData::new(w.clone(), [4, 2]), device));
    out.bias = out
        .bias
        .map(|_| Tensor::from_data(TensorData::new(vec![bias, 0.0], [2]), device));
    net.layers[1] = Layer::Linear(out);
    net
}

pub fn image(pixels: [f32; 4], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(pixels.to_vec(), [1, 1, 2, 2]), device)
}

pub fn labels(y: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(y.to_vec(), [y.len()]), device)
}

/// The pixels, rounded to 1e-5 (the attacks' float32 steps are exact only up to round-off).
pub fn pixels(t: Tensor<4>) -> Vec<f32> {
    t.into_data()
        .try_to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(|v| (v * 1e5).round() / 1e5)
        .collect()
}
