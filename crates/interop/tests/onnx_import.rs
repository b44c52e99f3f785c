//! ONNX networks read as ours: VNN-COMP 2022's `mnist_fc` networks compute onnxruntime's
//! logits, and every zoo network without residual blocks survives our own export and import
//! with the same logits and layers.

use burn::tensor::{Tensor, TensorData};
use mixtrain_interop::{read_onnx, to_onnx};
use mixtrain_nn::{Backend, LayerSpec, Network, zoo};
use rand::{Rng, SeedableRng};

mod common;
use common::benchmark;

fn logits(net: &Network, x: Vec<f32>, n: usize) -> Vec<f32> {
    let device = Backend::Flex.device(None).unwrap();
    let [c, h, w] = net.architecture().input;
    net.forward(Tensor::from_data(TensorData::new(x, [n, c, h, w]), &device))
        .into_data()
        .try_to_vec()
        .unwrap()
}

/// Written by onnxruntime 1.32.0 on the gzipped files as shipped, for the input
/// `x_i = (i mod 17) / 16` of shape `[1, 784, 1]`:
/// `ort.InferenceSession(gzip.open(f).read()).run(None, {"0": x})`.
const ONNXRUNTIME: [(&str, [f32; 10]); 2] = [
    (
        "mnist-net_256x2.onnx.gz",
        [
            -0.02075744,
            -0.013966866,
            0.025338382,
            -0.012913048,
            -0.006130513,
            -0.0022300407,
            0.0032660551,
            -0.006450638,
            0.9946978,
            -0.005335517,
        ],
    ),
    (
        "mnist-net_256x4.onnx.gz",
        [
            -0.00035314262,
            -0.0003329292,
            0.016838573,
            0.0020350069,
            -0.0025025457,
            0.009969465,
            0.009170696,
            -0.020042032,
            0.9663681,
            0.007537581,
        ],
    ),
];

#[test]
fn vnncomp_mnist_fc_networks_compute_onnxruntimes_logits() {
    let device = Backend::Flex.device(None).unwrap();
    for (file, want) in ONNXRUNTIME {
        let net = read_onnx(&benchmark().join("onnx").join(file), &device).unwrap();
        let arch = net.architecture();
        assert_eq!(arch.input, [1, 784, 1], "{file}");
        assert_eq!(arch.classes, 10, "{file}");
        let x: Vec<f32> = (0..784).map(|i| (i % 17) as f32 / 16.0).collect();
        let got = logits(&net, x, 1);
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-5 + 1e-4 * w.abs(),
                "{file}: {got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn our_export_reads_back_with_the_same_logits_and_layers() {
    let device = Backend::Flex.device(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for name in ["mnist_small", "mnist_large", "cifar_small", "cifar_large"] {
        let arch = zoo::architecture(name).unwrap();
        let net = Network::init(&arch, 2, &device).unwrap();
        let path = dir.path().join(format!("{name}.onnx"));
        std::fs::write(&path, to_onnx(&net)).unwrap();
        let back = read_onnx(&path, &device).unwrap();
        let [c, h, w] = arch.input;
        let x: Vec<f32> = (0..2 * c * h * w).map(|_| rng.random()).collect();
        let (a, b) = (logits(&net, x.clone(), 2), logits(&back, x, 2));
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() <= 1e-5 + 1e-5 * a.abs(), "{name}: {a} vs {b}");
        }
        let shape = |l: &LayerSpec| match l {
            LayerSpec::Conv2d { name, .. } | LayerSpec::Linear { name, .. } => {
                format!("{l:?}").replace(name.as_str(), "")
            }
            other => format!("{other:?}"),
        };
        let want: Vec<String> = arch.layers.iter().map(shape).collect();
        let got: Vec<String> = back.architecture().layers.iter().map(shape).collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn a_residual_network_is_refused_at_its_join() {
    let device = Backend::Flex.device(None).unwrap();
    let net = Network::init(&zoo::architecture("cifar_resnet").unwrap(), 0, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resnet.onnx");
    std::fs::write(&path, to_onnx(&net)).unwrap();
    let e = read_onnx(&path, &device).unwrap_err().to_string();
    assert!(e.contains("resnet.onnx: node add1 (Add)"), "{e}");
    assert!(e.contains("not branches"), "{e}");
}
