//! The paper's models by name (shapes from `MIXTRAIN.md`, "Models").

use crate::{Architecture, LayerSpec, NnError};

/// The names [`architecture`] knows.
pub const NAMES: &[&str] = &["mnist_small", "mnist_large", "cifar_small", "cifar_large"];

/// CIFAR-10 normalisation used by the paper's CIFAR models (ImageNet channel means, one std).
pub const CIFAR_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const CIFAR_STD: [f32; 3] = [0.225, 0.225, 0.225];

fn conv(name: &str, cin: usize, cout: usize, kernel: usize, stride: usize) -> LayerSpec {
    LayerSpec::Conv2d {
        name: name.into(),
        in_channels: cin,
        out_channels: cout,
        kernel,
        stride,
        padding: 1,
    }
}

fn linear(name: &str, cin: usize, cout: usize) -> LayerSpec {
    LayerSpec::Linear {
        name: name.into(),
        in_features: cin,
        out_features: cout,
    }
}

/// `Conv(c->16, 4, s2) - Conv(16->32, 4, s2) - Linear 100 - Linear 10`, ReLU between.
fn small(name: &str, channels: usize, side: usize, normalize: Option<LayerSpec>) -> Architecture {
    let after = side / 4; // two stride-2, kernel-4, padding-1 convolutions halve twice
    let mut layers: Vec<LayerSpec> = normalize.into_iter().collect();
    layers.extend([
        conv("conv1", channels, 16, 4, 2),
        LayerSpec::Relu,
        conv("conv2", 16, 32, 4, 2),
        LayerSpec::Relu,
        LayerSpec::Flatten,
        linear("fc1", 32 * after * after, 100),
        LayerSpec::Relu,
        linear("fc2", 100, 10),
    ]);
    Architecture {
        name: name.into(),
        input: [channels, side, side],
        classes: 10,
        layers,
    }
}

/// `Conv(c->32, 3) - Conv(32->32, 4, s2) - Conv(32->64, 3) - Conv(64->64, 4, s2) - Linear 512 -
/// Linear 512 - Linear 10`, ReLU after each but the last.
fn large(name: &str, channels: usize, side: usize, normalize: Option<LayerSpec>) -> Architecture {
    let after = side / 4;
    let mut layers: Vec<LayerSpec> = normalize.into_iter().collect();
    layers.extend([
        conv("conv1", channels, 32, 3, 1),
        LayerSpec::Relu,
        conv("conv2", 32, 32, 4, 2),
        LayerSpec::Relu,
        conv("conv3", 32, 64, 3, 1),
        LayerSpec::Relu,
        conv("conv4", 64, 64, 4, 2),
        LayerSpec::Relu,
        LayerSpec::Flatten,
        linear("fc1", 64 * after * after, 512),
        LayerSpec::Relu,
        linear("fc2", 512, 512),
        LayerSpec::Relu,
        linear("fc3", 512, 10),
    ]);
    Architecture {
        name: name.into(),
        input: [channels, side, side],
        classes: 10,
        layers,
    }
}

fn cifar_normalize() -> Option<LayerSpec> {
    Some(LayerSpec::Normalize {
        mean: CIFAR_MEAN.to_vec(),
        std: CIFAR_STD.to_vec(),
    })
}

/// A model of the zoo by name.
pub fn architecture(name: &str) -> Result<Architecture, NnError> {
    match name {
        "mnist_small" => Ok(small(name, 1, 28, None)),
        "mnist_large" => Ok(large(name, 1, 28, None)),
        "cifar_small" => Ok(small(name, 3, 32, cifar_normalize())),
        "cifar_large" => Ok(large(name, 3, 32, cifar_normalize())),
        _ => Err(NnError::UnknownModel {
            name: name.into(),
            known: NAMES.join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ActShape;

    #[test]
    fn flatten_sizes_match_the_paper() {
        for (name, flat) in [
            ("mnist_small", 1568),
            ("cifar_small", 2048),
            ("mnist_large", 3136),
            ("cifar_large", 4096),
        ] {
            let a = architecture(name).unwrap();
            let shapes = a.check().unwrap();
            let at = a
                .layers
                .iter()
                .position(|l| *l == LayerSpec::Flatten)
                .unwrap();
            assert_eq!(shapes[at], ActShape::Flat(flat), "{name}");
        }
        let names: Vec<_> = architecture("mnist_small")
            .unwrap()
            .parameters()
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(names, ["conv1", "conv2", "fc1", "fc2"]);
        assert!(
            architecture("resnet")
                .unwrap_err()
                .to_string()
                .contains("mnist_small")
        );
    }

    #[test]
    fn mnist_small_forward_is_its_layers_multiply_accumulates() {
        // conv1 16x14x14 outputs of 1x4x4, conv2 32x7x7 of 16x4x4, fc1 1568x100, fc2 100x10
        let expected = 16 * 14 * 14 * 16 + 32 * 7 * 7 * 16 * 16 + 1568 * 100 + 100 * 10;
        assert_eq!(
            architecture("mnist_small").unwrap().macs().unwrap(),
            expected
        );
    }
}
