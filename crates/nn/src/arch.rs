use serde::{Deserialize, Serialize};

use crate::NnError;

/// One layer of an [`Architecture`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LayerSpec {
    /// Per-channel input normalisation `(x - mean) / std`, part of the network so that input
    /// sets and `eps` stay in pixel units.
    Normalize {
        mean: Vec<f32>,
        std: Vec<f32>,
    },
    /// Square kernel, symmetric zero padding.
    Conv2d {
        name: String,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    Linear {
        name: String,
        in_features: usize,
        out_features: usize,
    },
    Relu,
    /// NCHW to `[n, c*h*w]`, channel-major (PyTorch's `flatten`).
    Flatten,
}

impl LayerSpec {
    /// The parameter-name prefix of an affine layer.
    pub fn name(&self) -> Option<&str> {
        match self {
            LayerSpec::Conv2d { name, .. } | LayerSpec::Linear { name, .. } => Some(name),
            _ => None,
        }
    }

    fn describe(&self, index: usize) -> String {
        match self {
            LayerSpec::Conv2d { name, .. } | LayerSpec::Linear { name, .. } => name.clone(),
            LayerSpec::Normalize { .. } => format!("#{index} (normalize)"),
            LayerSpec::Relu => format!("#{index} (relu)"),
            LayerSpec::Flatten => format!("#{index} (flatten)"),
        }
    }
}

/// The shape of a network: its input, its classes and its layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    pub name: String,
    /// `[channels, height, width]` of one input.
    pub input: [usize; 3],
    pub classes: usize,
    pub layers: Vec<LayerSpec>,
}

/// The shape of the activations between two layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActShape {
    Image([usize; 3]),
    Flat(usize),
}

impl Architecture {
    /// Checks that every layer fits the shape it receives and that the output has `classes`
    /// values; returns the shape after each layer.
    pub fn check(&self) -> Result<Vec<ActShape>, NnError> {
        let err = |i: usize, l: &LayerSpec, message: String| NnError::Architecture {
            model: self.name.clone(),
            layer: l.describe(i),
            message,
        };
        let mut shape = ActShape::Image(self.input);
        let mut shapes = Vec::with_capacity(self.layers.len());
        let mut names = std::collections::HashSet::new();
        for (i, layer) in self.layers.iter().enumerate() {
            if let Some(name) = layer.name()
                && (name.is_empty() || !names.insert(name.to_string()))
            {
                return Err(err(
                    i,
                    layer,
                    "affine layer names must be unique and non-empty".into(),
                ));
            }
            shape = match (layer, shape) {
                (LayerSpec::Normalize { mean, std }, ActShape::Image([c, h, w])) => {
                    if mean.len() != c || std.len() != c {
                        return Err(err(
                            i,
                            layer,
                            format!(
                                "needs {c} means and stds, has {} and {}",
                                mean.len(),
                                std.len()
                            ),
                        ));
                    }
                    if std.iter().any(|s| !(s.is_finite() && *s > 0.0))
                        || mean.iter().any(|m| !m.is_finite())
                    {
                        return Err(err(
                            i,
                            layer,
                            "stds must be finite and positive, means finite".into(),
                        ));
                    }
                    ActShape::Image([c, h, w])
                }
                (
                    LayerSpec::Conv2d {
                        in_channels,
                        out_channels,
                        kernel,
                        stride,
                        padding,
                        ..
                    },
                    ActShape::Image([c, h, w]),
                ) => {
                    if *in_channels != c {
                        return Err(err(
                            i,
                            layer,
                            format!("expects {in_channels} input channels, receives {c}"),
                        ));
                    }
                    if *kernel == 0 || *stride == 0 || *out_channels == 0 {
                        return Err(err(
                            i,
                            layer,
                            "kernel, stride and channels must be positive".into(),
                        ));
                    }
                    if h + 2 * padding < *kernel || w + 2 * padding < *kernel {
                        return Err(err(
                            i,
                            layer,
                            format!("kernel {kernel} larger than the padded {h}x{w} input"),
                        ));
                    }
                    let out = |s: usize| (s + 2 * padding - kernel) / stride + 1;
                    ActShape::Image([*out_channels, out(h), out(w)])
                }
                (
                    LayerSpec::Linear {
                        in_features,
                        out_features,
                        ..
                    },
                    ActShape::Flat(n),
                ) => {
                    if *in_features != n {
                        return Err(err(
                            i,
                            layer,
                            format!("expects {in_features} inputs, receives {n}"),
                        ));
                    }
                    if *out_features == 0 {
                        return Err(err(i, layer, "needs at least one output".into()));
                    }
                    ActShape::Flat(*out_features)
                }
                (LayerSpec::Relu, s) => s,
                (LayerSpec::Flatten, ActShape::Image([c, h, w])) => ActShape::Flat(c * h * w),
                (LayerSpec::Linear { .. }, ActShape::Image(s)) => {
                    return Err(err(
                        i,
                        layer,
                        format!("receives an image {s:?}: add a flatten before it"),
                    ));
                }
                (_, s) => {
                    return Err(err(
                        i,
                        layer,
                        format!("cannot take activations of shape {s:?}"),
                    ));
                }
            };
            shapes.push(shape);
        }
        if shape != ActShape::Flat(self.classes) {
            return Err(NnError::Architecture {
                model: self.name.clone(),
                layer: "output".into(),
                message: format!("produces {shape:?}, expected {} logits", self.classes),
            });
        }
        Ok(shapes)
    }

    /// Multiply-accumulates of one forward pass of one input through the affine layers (the
    /// elementwise layers are a rounding error): the unit the benchmarks count FLOPs in
    /// (`2 x MAC`).
    pub fn macs(&self) -> Result<u64, NnError> {
        let shapes = self.check()?;
        Ok(self
            .layers
            .iter()
            .zip(&shapes)
            .map(|(layer, out)| match (layer, out) {
                (
                    LayerSpec::Conv2d {
                        in_channels,
                        kernel,
                        ..
                    },
                    ActShape::Image([c, h, w]),
                ) => (c * h * w * in_channels * kernel * kernel) as u64,
                (
                    LayerSpec::Linear {
                        in_features,
                        out_features,
                        ..
                    },
                    _,
                ) => (in_features * out_features) as u64,
                _ => 0,
            })
            .sum())
    }

    /// The affine layers in order: `(name, PyTorch-layout weight shape, bias length)`.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>, usize)> {
        self.layers
            .iter()
            .filter_map(|l| match l {
                LayerSpec::Conv2d {
                    name,
                    in_channels,
                    out_channels,
                    kernel,
                    ..
                } => Some((
                    name.clone(),
                    vec![*out_channels, *in_channels, *kernel, *kernel],
                    *out_channels,
                )),
                LayerSpec::Linear {
                    name,
                    in_features,
                    out_features,
                } => Some((
                    name.clone(),
                    vec![*out_features, *in_features],
                    *out_features,
                )),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo;

    #[test]
    fn zoo_architectures_check() {
        for name in zoo::NAMES {
            zoo::architecture(name).unwrap().check().unwrap();
        }
    }

    #[test]
    fn shape_errors_name_the_layer() {
        let mut a = zoo::architecture("mnist_small").unwrap();
        if let LayerSpec::Linear { in_features, .. } = &mut a.layers[5] {
            *in_features = 1000;
        }
        let e = a.check().unwrap_err().to_string();
        assert!(e.contains("fc1") && e.contains("1568"), "{e}");

        let mut a = zoo::architecture("mnist_small").unwrap();
        a.layers.remove(4); // the flatten
        let e = a.check().unwrap_err().to_string();
        assert!(e.contains("fc1") && e.contains("flatten"), "{e}");

        let mut a = zoo::architecture("mnist_small").unwrap();
        a.classes = 9;
        assert!(a.check().unwrap_err().to_string().contains("9 logits"));
    }
}
