//! The ONNX export read back by independent implementations: onnx's checker must accept every
//! zoo network's file (and a network with batch norm), and onnxruntime must compute our logits
//! on random inputs within `1e-4 + 1e-3 |ours|` (`tests/onnx_check.py`).
//!
//! Needs Python 3 with `onnx`, `onnxruntime` and `numpy` (`.ci/run` installs them). Where they
//! are missing the test says so and passes, unless `MIXTRAIN_REQUIRE_ONNXRUNTIME` is set (CI
//! sets it), when it fails.

use std::path::Path;
use std::process::Command;

use burn::tensor::{Tensor, TensorData};
use mixtrain_interop::to_onnx;
use mixtrain_nn::{Architecture, Backend, LayerSpec, Network, zoo};
use rand::{Rng, SeedableRng};

const POINTS: usize = 3;

fn f32_file(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

/// `cifar_resnet`'s first block with a batch norm after each convolution of its path, so that
/// the running statistics travel too.
fn with_batch_norm() -> Architecture {
    let mut arch = zoo::architecture("cifar_resnet").unwrap();
    arch.name = "cifar_resnet_bn".into();
    let block = arch
        .layers
        .iter_mut()
        .find_map(|l| match l {
            LayerSpec::Residual { path, .. } => Some(path),
            _ => None,
        })
        .unwrap();
    let channels = match &block[0] {
        LayerSpec::Conv2d { out_channels, .. } => *out_channels,
        other => panic!("a block starts with a convolution, not {other:?}"),
    };
    block.insert(
        1,
        LayerSpec::BatchNorm2d {
            name: "block.bn".into(),
            channels,
            eps: 1e-5,
            momentum: 0.1,
        },
    );
    arch
}

/// Exports `arch` (seeded weights, batch-norm statistics from random images) and checks it;
/// `false` when the Python side is missing.
fn round_trip(arch: &Architecture, dir: &Path) -> bool {
    let device = Backend::Flex.device(None).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let [c, h, w] = arch.input;
    let pixels: Vec<f32> = (0..POINTS * c * h * w).map(|_| rng.random()).collect();
    let x = Tensor::<4>::from_data(TensorData::new(pixels.clone(), [POINTS, c, h, w]), &device);
    let mut net = Network::init(arch, 1, &device).unwrap();
    if net.has_batch_norm() {
        net = net.refresh_statistics(x.clone() * 0.8);
    }
    let logits: Vec<f32> = net.forward(x).into_data().try_to_vec().unwrap();

    let model = dir.join(format!("{}.onnx", arch.name));
    std::fs::write(&model, to_onnx(&net)).unwrap();
    f32_file(&dir.join("input.f32"), &pixels);
    f32_file(&dir.join("expected.f32"), &logits);
    let python = std::env::var("MIXTRAIN_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_check.py");
    let out = match Command::new(&python)
        .arg(&script)
        .arg(&model)
        .arg(dir.join("input.f32"))
        .arg(format!("{POINTS},{c},{h},{w}"))
        .arg(dir.join("expected.f32"))
        .output()
    {
        Ok(out) => out,
        Err(e) => return skip(&format!("cannot run {python}: {e}")),
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => {
            println!("{}", said.trim());
            true
        }
        Some(3) => skip(said.trim()),
        _ => panic!(
            "{}: onnxruntime disagrees or the file is invalid:\n{said}",
            arch.name
        ),
    }
}

fn skip(why: &str) -> bool {
    if std::env::var_os("MIXTRAIN_REQUIRE_ONNXRUNTIME").is_some() {
        panic!("MIXTRAIN_REQUIRE_ONNXRUNTIME is set, but: {why}");
    }
    println!("SKIPPED ONNX round trip: {why} (pip install onnx onnxruntime numpy)");
    false
}

#[test]
fn onnxruntime_computes_our_logits_for_every_zoo_network() {
    let dir = tempfile::tempdir().unwrap();
    let mut archs: Vec<Architecture> = zoo::NAMES
        .iter()
        .map(|name| zoo::architecture(name).unwrap())
        .collect();
    archs.push(with_batch_norm());
    for arch in &archs {
        if !round_trip(arch, dir.path()) {
            return;
        }
    }
}
