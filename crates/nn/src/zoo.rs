//! The paper's models by name (shapes from `MIXTRAIN.md`, "Models").
//!
//! The ResNets take their depth and width in the name: `cifar_resnet` is `N = 1` block per
//! group at width factor `f = 1`; `cifar_resnet_n2_f4` (either part optional) sets them, and the
//! same goes for `imagenet200_resnet`.

use crate::{Architecture, LayerSpec, NnError};

/// The names [`architecture`] knows.
pub const NAMES: &[&str] = &[
    "mnist_small",
    "mnist_large",
    "cifar_small",
    "cifar_large",
    "cifar_resnet",
    "imagenet200_resnet",
];

/// CIFAR-10 normalisation used by the paper's CIFAR models (ImageNet channel means, one std).
pub const CIFAR_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// The per-channel std paired with [`CIFAR_MEAN`]: one value, 0.225, for all three channels.
pub const CIFAR_STD: [f32; 3] = [0.225, 0.225, 0.225];

fn conv(name: &str, cin: usize, cout: usize, kernel: usize, stride: usize) -> LayerSpec {
    LayerSpec::conv2d(name, cin, cout, kernel, stride, 1)
}

fn linear(name: &str, cin: usize, cout: usize) -> LayerSpec {
    LayerSpec::linear(name, cin, cout)
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

/// A residual block (Wong et al.'s, which the MixTrain authors train): `Conv - ReLU - Conv` on
/// the path, plus the skip: the identity, a `1 x 1` projection when only the width changes,
/// or a `2 x 2` stride-2 one when the block halves the side (its first conv then takes a
/// `4 x 4` kernel at stride 2). The ReLU after the sum follows the block.
fn block(name: &str, cin: usize, cout: usize, downsample: bool) -> [LayerSpec; 2] {
    let (k, stride) = if downsample { (4, 2) } else { (3, 1) };
    let skip = match (downsample, cin == cout) {
        (true, _) => Some(LayerSpec::conv2d(
            &format!("{name}.skip"),
            cin,
            cout,
            2,
            2,
            0,
        )),
        (false, false) => Some(LayerSpec::conv2d(
            &format!("{name}.skip"),
            cin,
            cout,
            1,
            1,
            0,
        )),
        (false, true) => None,
    };
    [
        LayerSpec::Residual {
            path: vec![
                conv(&format!("{name}.conv1"), cin, cout, k, stride),
                LayerSpec::Relu,
                conv(&format!("{name}.conv2"), cout, cout, 3, 1),
            ],
            skip: skip.map(Box::new),
        },
        LayerSpec::Relu,
    ]
}

/// The ResNet geometry shared by both datasets: a stem with `stem_width` channels at side
/// `side`, three groups of `n` blocks at widths `16f, 32f, 64f` (the second and third halve the
/// side), then `Linear(-> hidden) - ReLU - Linear(-> classes)`.
struct ResNet {
    input: [usize; 3],
    stem: LayerSpec,
    stem_width: usize,
    side: usize,
    n: usize,
    f: usize,
    hidden: usize,
    classes: usize,
}

impl ResNet {
    fn architecture(self, name: &str) -> Architecture {
        let mut layers: Vec<LayerSpec> = cifar_normalize().into_iter().collect();
        layers.extend([self.stem, LayerSpec::Relu]);
        let (mut width, mut side) = (self.stem_width, self.side);
        for (g, w) in [16, 32, 64].into_iter().enumerate() {
            for b in 0..self.n {
                let down = g > 0 && b == 0;
                layers.extend(block(
                    &format!("g{}b{}", g + 1, b + 1),
                    width,
                    w * self.f,
                    down,
                ));
                width = w * self.f;
                if down {
                    side /= 2;
                }
            }
        }
        layers.extend([
            LayerSpec::Flatten,
            linear("fc1", width * side * side, self.hidden),
            LayerSpec::Relu,
            linear("fc2", self.hidden, self.classes),
        ]);
        Architecture {
            name: name.into(),
            input: self.input,
            classes: self.classes,
            layers,
        }
    }
}

/// `N` and `f` from a ResNet name's suffix (`""`, `"_n2"`, `"_f4"`, `"_n2_f4"`).
fn depth_width(suffix: &str) -> Option<(usize, usize)> {
    let (mut n, mut f) = (1, 1);
    let mut parts = suffix.split('_').skip(1).peekable();
    if suffix.is_empty() {
        return Some((n, f));
    }
    if !suffix.starts_with('_') {
        return None;
    }
    if let Some(p) = parts.peek()
        && let Some(v) = p.strip_prefix('n')
    {
        n = v.parse().ok().filter(|v| *v > 0)?;
        parts.next();
    }
    if let Some(p) = parts.next() {
        f = p.strip_prefix('f')?.parse().ok().filter(|v| *v > 0)?;
    }
    parts.next().is_none().then_some((n, f))
}

/// A model of the zoo by name.
pub fn architecture(name: &str) -> Result<Architecture, NnError> {
    let unknown = || NnError::UnknownModel {
        name: name.into(),
        known: format!(
            "{} (ResNets also as <name>_n<N>_f<f>, e.g. cifar_resnet_n2_f2)",
            NAMES.join(", ")
        ),
    };
    match name {
        "mnist_small" => Ok(small(name, 1, 28, None)),
        "mnist_large" => Ok(large(name, 1, 28, None)),
        "cifar_small" => Ok(small(name, 3, 32, cifar_normalize())),
        "cifar_large" => Ok(large(name, 3, 32, cifar_normalize())),
        _ => {
            if let Some(rest) = name.strip_prefix("cifar_resnet") {
                let (n, f) = depth_width(rest).ok_or_else(unknown)?;
                Ok(ResNet {
                    input: [3, 32, 32],
                    stem: conv("stem", 3, 16, 3, 1),
                    stem_width: 16,
                    side: 32,
                    n,
                    f,
                    hidden: 1000,
                    classes: 10,
                }
                .architecture(name))
            } else if let Some(rest) = name.strip_prefix("imagenet200_resnet") {
                let (n, f) = depth_width(rest).ok_or_else(unknown)?;
                Ok(ResNet {
                    input: [3, 64, 64],
                    stem: LayerSpec::conv2d("stem", 3, 16 * f, 7, 2, 3),
                    stem_width: 16 * f,
                    side: 32,
                    n,
                    f,
                    hidden: 512,
                    classes: 200,
                }
                .architecture(name))
            } else {
                Err(unknown())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ActShape;

    /// The shape after the flatten.
    fn flattened(a: &Architecture) -> ActShape {
        let at = a
            .layers
            .iter()
            .position(|l| *l == LayerSpec::Flatten)
            .unwrap();
        a.check().unwrap()[at]
    }

    #[test]
    fn flatten_sizes_match_the_paper() {
        for (name, flat) in [
            ("mnist_small", 1568),
            ("cifar_small", 2048),
            ("mnist_large", 3136),
            ("cifar_large", 4096),
        ] {
            let a = architecture(name).unwrap();
            assert_eq!(flattened(&a), ActShape::Flat(flat), "{name}");
        }
        let names: Vec<_> = architecture("mnist_small")
            .unwrap()
            .tensors()
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(
            names,
            [
                "conv1.weight",
                "conv1.bias",
                "conv2.weight",
                "conv2.bias",
                "fc1.weight",
                "fc1.bias",
                "fc2.weight",
                "fc2.bias"
            ]
        );
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

    #[test]
    fn resnets_have_the_papers_shapes() {
        for (name, flat, classes, blocks) in [
            ("cifar_resnet", 4096, 10, 3),
            ("cifar_resnet_n2_f2", 8192, 10, 6),
            ("imagenet200_resnet", 4096, 200, 3),
            ("imagenet200_resnet_f2", 8192, 200, 3),
        ] {
            let a = architecture(name).unwrap();
            assert_eq!(flattened(&a), ActShape::Flat(flat), "{name}");
            assert_eq!(a.classes, classes);
            let residual = a
                .layers
                .iter()
                .filter(|l| matches!(l, LayerSpec::Residual { .. }))
                .count();
            assert_eq!(residual, blocks, "{name}");
        }
        let tensors = architecture("cifar_resnet").unwrap().tensors();
        let shape = |n: &str| tensors.iter().find(|t| t.0 == n).map(|t| t.1.clone());
        // the first block keeps 16 channels (identity skip), the second halves the side
        assert_eq!(shape("g1b1.skip.weight"), None);
        assert_eq!(shape("g2b1.conv1.weight"), Some(vec![32, 16, 4, 4]));
        assert_eq!(shape("g2b1.skip.weight"), Some(vec![32, 16, 2, 2]));
        assert_eq!(shape("fc1.weight"), Some(vec![1000, 4096]));
        let wide = architecture("cifar_resnet_f2").unwrap().tensors();
        assert!(
            wide.iter()
                .any(|t| t.0 == "g1b1.skip.weight" && t.1 == [32, 16, 1, 1])
        );
        for bad in [
            "cifar_resnet_x",
            "cifar_resnet_n0",
            "cifar_resnetn2",
            "cifar_resnet_f2_n2",
        ] {
            let e = architecture(bad).unwrap_err().to_string();
            assert!(e.contains("cifar_resnet_n2_f2"), "{bad}: {e}");
        }
    }
}
