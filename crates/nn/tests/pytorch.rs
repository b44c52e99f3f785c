//! PyTorch's legacy `.pth` state dicts (the MixTrain authors' format) load like safetensors:
//! on a fixture written byte for byte as `torch.save` writes it (`tests/data/make_legacy_pth.py`),
//! and damaged or unsupported files are errors that say what is wrong, never panics.

use std::path::{Path, PathBuf};

use mixtrain_nn::{Architecture, Backend, LayerSpec, Network};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_legacy.pth")
}

/// conv `[2, 1, 2, 2]`, ReLU, flatten, linear `[3, 8]`: the fixture's tensors sit under the
/// `nn.Sequential` indices 0 and 3.
fn tiny() -> Architecture {
    Architecture {
        name: "tiny".into(),
        input: [1, 3, 3],
        classes: 3,
        layers: vec![
            LayerSpec::conv2d("conv", 1, 2, 2, 1, 0),
            LayerSpec::Relu,
            LayerSpec::Flatten,
            LayerSpec::linear("fc", 8, 3),
        ],
    }
}

#[test]
fn a_legacy_state_dict_loads_with_its_values_in_place() {
    let device = Backend::Flex.device(None).unwrap();
    for net in [
        Network::load_pytorch(&tiny(), &fixture(), &device).unwrap(),
        Network::load_weights(&tiny(), &fixture(), &device).unwrap(),
    ] {
        let tensors = net.pytorch_tensors();
        let names: Vec<&str> = tensors.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]);
        for (i, (name, _, values)) in tensors.iter().enumerate() {
            let expected: Vec<f32> = (0..values.len())
                .map(|j| (j + 10 * i) as f32 / 8.0 - 1.0)
                .collect();
            assert_eq!(values, &expected, "{name}");
        }
    }
}

#[test]
fn load_weights_tells_safetensors_from_pth() {
    let device = Backend::Flex.device(None).unwrap();
    let net = Network::load_pytorch(&tiny(), &fixture(), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.safetensors");
    net.save_safetensors(&path).unwrap();
    let back = Network::load_weights(&tiny(), &path, &device).unwrap();
    assert_eq!(back.pytorch_tensors(), net.pytorch_tensors());
}

#[test]
fn damaged_and_unsupported_files_are_clear_errors() {
    let device = Backend::Flex.device(None).unwrap();
    let bytes = std::fs::read(fixture()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("cut.pth", bytes[..bytes.len() - 10].to_vec(), "truncated"),
        ("cut-pickle.pth", bytes[..300].to_vec(), "truncated"),
        ("zip.pth", b"PK\x03\x04rest".to_vec(), "zip format"),
        ("opcode.pth", [&bytes[..2], b"\xff"].concat(), "opcode 0xff"),
    ];
    for (name, content, needle) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let e = Network::load_weights(&tiny(), &path, &device)
            .unwrap_err()
            .to_string();
        assert!(e.contains(name) && e.contains(needle), "{name}: {e}");
    }
    // a state dict that does not fit the architecture lists both namings
    let mut other = tiny();
    other.layers[3] = LayerSpec::linear("fc", 8, 4);
    other.classes = 4;
    let e = Network::load_pytorch(&other, &fixture(), &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("3.weight") && e.contains("[3, 8]"), "{e}");
}
