use serde::{Deserialize, Serialize};

use crate::NnError;

/// One layer of an [`Architecture`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LayerSpec {
    /// Per-channel input normalisation `(x - mean) / std`, part of the network so that input
    /// sets and `eps` stay in pixel units.
    Normalize {
        /// One mean per input channel, in pixel units.
        mean: Vec<f32>,
        /// One standard deviation per input channel (finite, positive), in pixel units.
        std: Vec<f32>,
    },
    /// Square kernel, symmetric zero padding.
    Conv2d {
        /// Layer name, the prefix of its tensors in the PyTorch state dict (`<name>.weight`
        /// `[out, in, k, k]`, `<name>.bias`).
        name: String,
        /// Channels of the input.
        in_channels: usize,
        /// Channels of the output (filters).
        out_channels: usize,
        /// Side of the square kernel.
        kernel: usize,
        /// Step in both directions.
        stride: usize,
        /// Zeros added on every side.
        padding: usize,
    },
    /// Fully connected layer on flat activations (an image needs a [`LayerSpec::Flatten`]
    /// first).
    Linear {
        /// Layer name, the prefix of its tensors in the PyTorch state dict (`<name>.weight`
        /// `[out, in]`, `<name>.bias`).
        name: String,
        /// Length of the input vector.
        in_features: usize,
        /// Length of the output vector; the last layer's is the number of classes.
        out_features: usize,
    },
    /// Elementwise `max(x, 0)`, on images or vectors.
    Relu,
    /// NCHW to `[n, c*h*w]`, channel-major (PyTorch's `flatten`).
    Flatten,
    /// Square average pooling without padding (`kernel`, `stride`): a fixed linear map.
    AvgPool2d {
        /// Side of the square window.
        kernel: usize,
        /// Step in both directions.
        stride: usize,
    },
    /// Batch normalisation over channels, always applied as its evaluation-mode affine map
    /// `(x - running_mean) / sqrt(running_var + eps) * weight + bias`. Training refreshes the
    /// running statistics from the clean inputs before each step (`momentum`) and uses them as
    /// constants, so the map every bound sees is the map the network computes.
    BatchNorm2d {
        /// Layer name, the prefix of its tensors in the PyTorch state dict (`<name>.weight`,
        /// `.bias`, `.running_mean`, `.running_var`).
        name: String,
        /// Channels of the input (and output).
        channels: usize,
        /// Added to the running variance before the square root (PyTorch's default `1e-5`);
        /// not the perturbation radius.
        #[serde(default = "default_bn_eps")]
        eps: f32,
        /// Weight of the batch statistics in each refresh of the running ones, in `[0, 1]`
        /// (PyTorch's default `0.1`).
        #[serde(default = "default_bn_momentum")]
        momentum: f32,
    },
    /// `path(x) + skip(x)`: a residual block. `skip` is the identity, or a projection
    /// convolution where the path changes the shape. The ReLU after the sum is the next layer.
    Residual {
        /// The layers of the main branch, on images; their names are global, not per block.
        path: Vec<LayerSpec>,
        /// `None` for the identity, else a [`LayerSpec::Conv2d`] projection (the only kind
        /// allowed) matching the path's output shape.
        #[serde(default)]
        skip: Option<Box<LayerSpec>>,
    },
}

fn default_bn_eps() -> f32 {
    1e-5
}

fn default_bn_momentum() -> f32 {
    0.1
}

impl LayerSpec {
    /// A convolution with a square `kernel`, `stride` and symmetric zero `padding`.
    pub fn conv2d(
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        LayerSpec::Conv2d {
            name: name.into(),
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
        }
    }

    /// A linear layer `in_features -> out_features`.
    pub fn linear(name: &str, in_features: usize, out_features: usize) -> Self {
        LayerSpec::Linear {
            name: name.into(),
            in_features,
            out_features,
        }
    }

    /// The parameter-name prefix of a layer with parameters.
    pub fn name(&self) -> Option<&str> {
        match self {
            LayerSpec::Conv2d { name, .. }
            | LayerSpec::Linear { name, .. }
            | LayerSpec::BatchNorm2d { name, .. } => Some(name),
            _ => None,
        }
    }

    fn describe(&self, index: usize) -> String {
        match self {
            LayerSpec::Conv2d { name, .. }
            | LayerSpec::Linear { name, .. }
            | LayerSpec::BatchNorm2d { name, .. } => name.clone(),
            LayerSpec::Normalize { .. } => format!("#{index} (normalize)"),
            LayerSpec::Relu => format!("#{index} (relu)"),
            LayerSpec::Flatten => format!("#{index} (flatten)"),
            LayerSpec::AvgPool2d { .. } => format!("#{index} (avg_pool2d)"),
            LayerSpec::Residual { .. } => format!("#{index} (residual)"),
        }
    }

    /// This layer's named tensors in PyTorch's layout, `(name, shape)`, in a fixed order;
    /// a block's come in path order, then its skip's.
    fn tensors(&self, out: &mut Vec<(String, Vec<usize>)>) {
        match self {
            LayerSpec::Conv2d {
                name,
                in_channels,
                out_channels,
                kernel,
                ..
            } => {
                out.push((
                    format!("{name}.weight"),
                    vec![*out_channels, *in_channels, *kernel, *kernel],
                ));
                out.push((format!("{name}.bias"), vec![*out_channels]));
            }
            LayerSpec::Linear {
                name,
                in_features,
                out_features,
            } => {
                out.push((format!("{name}.weight"), vec![*out_features, *in_features]));
                out.push((format!("{name}.bias"), vec![*out_features]));
            }
            LayerSpec::BatchNorm2d { name, channels, .. } => {
                for t in ["weight", "bias", "running_mean", "running_var"] {
                    out.push((format!("{name}.{t}"), vec![*channels]));
                }
            }
            LayerSpec::Residual { path, skip } => {
                for l in path.iter().chain(skip.as_deref()) {
                    l.tensors(out);
                }
            }
            LayerSpec::Normalize { .. }
            | LayerSpec::Relu
            | LayerSpec::Flatten
            | LayerSpec::AvgPool2d { .. } => {}
        }
    }

    /// Multiply-accumulates of one input through this layer, given its output shape.
    fn macs(&self, input: ActShape, output: ActShape, arch: &Architecture) -> u64 {
        match (self, output) {
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
            (LayerSpec::Residual { path, skip }, _) => {
                let mut shape = input;
                let mut total = 0;
                for l in path {
                    let next = arch
                        .layer_shape(l, shape)
                        .expect("checked by Architecture::check");
                    total += l.macs(shape, next, arch);
                    shape = next;
                }
                total + skip.as_deref().map_or(0, |s| s.macs(input, output, arch))
            }
            _ => 0,
        }
    }
}

/// The shape of a network: its input, its classes and its layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// Model name (a zoo name such as `mnist_small`); errors name it, and safetensors files
    /// store it in their metadata (`mixtrain.model`).
    pub name: String,
    /// `[channels, height, width]` of one input.
    pub input: [usize; 3],
    /// Number of classes: the length of the logits the last layer produces.
    pub classes: usize,
    /// The top-level layers in forward order; the bounds engine needs the last to be a
    /// [`LayerSpec::Linear`], into which it folds the margin specification.
    pub layers: Vec<LayerSpec>,
}

/// The shape of the activations between two layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActShape {
    /// `[channels, height, width]` per input, before a [`LayerSpec::Flatten`].
    Image([usize; 3]),
    /// Features per input, after a [`LayerSpec::Flatten`].
    Flat(usize),
}

impl ActShape {
    /// Values per input: `c*h*w` for an image.
    pub fn features(self) -> usize {
        match self {
            ActShape::Image([c, h, w]) => c * h * w,
            ActShape::Flat(d) => d,
        }
    }

    /// `[c, h, w]` of an image, `None` after the flatten.
    pub fn image(self) -> Option<[usize; 3]> {
        match self {
            ActShape::Image(shape) => Some(shape),
            ActShape::Flat(_) => None,
        }
    }

    /// The image after a square window (a convolution or a pooling) of side `kernel` moved by
    /// `stride` over the input zero-padded by `padding`, with `channels` outputs; `None` for a
    /// flat input or a kernel larger than the padded input. The one place the output-size
    /// formula is written.
    pub fn after_window(
        self,
        channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Option<ActShape> {
        let [_, h, w] = self.image()?;
        if stride == 0 || h + 2 * padding < kernel || w + 2 * padding < kernel {
            return None;
        }
        let side = |s: usize| (s + 2 * padding - kernel) / stride + 1;
        Some(ActShape::Image([channels, side(h), side(w)]))
    }
}

/// A shape error: the layer it is about (named if it has a name) and what is wrong.
type ShapeError = (String, String);

/// Every layer with a name, depth first.
fn named(layers: &[LayerSpec], out: &mut Vec<(usize, LayerSpec)>) {
    for (i, l) in layers.iter().enumerate() {
        if l.name().is_some() {
            out.push((i, l.clone()));
        }
        if let LayerSpec::Residual { path, skip } = l {
            named(path, out);
            if let Some(s) = skip.as_deref().filter(|s| s.name().is_some()) {
                out.push((i, s.clone()));
            }
        }
    }
}

impl Architecture {
    /// Checks that every layer fits the shape it receives, that layer names are unique, and
    /// that the output has `classes` values; returns the shape after each top-level layer.
    pub fn check(&self) -> Result<Vec<ActShape>, NnError> {
        let err = |(layer, message): ShapeError| NnError::Architecture {
            model: self.name.clone(),
            layer,
            message,
        };
        let mut all = Vec::new();
        named(&self.layers, &mut all);
        let mut names = std::collections::HashSet::new();
        for (i, layer) in &all {
            let name = layer.name().unwrap_or_default();
            if name.is_empty() || !names.insert(name.to_string()) {
                return Err(err((
                    layer.describe(*i),
                    "layer names must be unique and non-empty".into(),
                )));
            }
        }
        let mut shape = ActShape::Image(self.input);
        let mut shapes = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            shape = self
                .layer_shape(layer, shape)
                .map_err(|(inner, message)| err((nest(layer.describe(i), inner), message)))?;
            shapes.push(shape);
        }
        if shape != ActShape::Flat(self.classes) {
            return Err(err((
                "output".into(),
                format!("produces {shape:?}, expected {} logits", self.classes),
            )));
        }
        Ok(shapes)
    }

    /// The shape after `layer` given its input; an error names the innermost failing layer
    /// (empty when it is `layer` itself).
    fn layer_shape(&self, layer: &LayerSpec, shape: ActShape) -> Result<ActShape, ShapeError> {
        let fail = |message: String| Err((String::new(), message));
        Ok(match (layer, shape) {
            (LayerSpec::Normalize { mean, std }, ActShape::Image([c, h, w])) => {
                if mean.len() != c || std.len() != c {
                    return fail(format!(
                        "needs {c} means and stds, has {} and {}",
                        mean.len(),
                        std.len()
                    ));
                }
                if std.iter().any(|s| !(s.is_finite() && *s > 0.0))
                    || mean.iter().any(|m| !m.is_finite())
                {
                    return fail("stds must be finite and positive, means finite".into());
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
                    return fail(format!(
                        "expects {in_channels} input channels, receives {c}"
                    ));
                }
                if *kernel == 0 || *stride == 0 || *out_channels == 0 {
                    return fail("kernel, stride and channels must be positive".into());
                }
                match shape.after_window(*out_channels, *kernel, *stride, *padding) {
                    Some(out) => out,
                    None => {
                        return fail(format!(
                            "kernel {kernel} larger than the padded {h}x{w} input"
                        ));
                    }
                }
            }
            (LayerSpec::AvgPool2d { kernel, stride }, ActShape::Image([c, h, w])) => {
                if *kernel == 0 || *stride == 0 {
                    return fail("kernel and stride must be positive".into());
                }
                match shape.after_window(c, *kernel, *stride, 0) {
                    Some(out) => out,
                    None => return fail(format!("kernel {kernel} larger than the {h}x{w} input")),
                }
            }
            (
                LayerSpec::BatchNorm2d {
                    channels,
                    eps,
                    momentum,
                    ..
                },
                ActShape::Image([c, h, w]),
            ) => {
                if *channels != c {
                    return fail(format!("expects {channels} channels, receives {c}"));
                }
                if !(eps.is_finite() && *eps > 0.0 && (0.0..=1.0).contains(momentum)) {
                    return fail("eps must be finite and positive, momentum in [0, 1]".into());
                }
                ActShape::Image([c, h, w])
            }
            (LayerSpec::Residual { path, skip }, input) => {
                let mut s = input;
                for (i, l) in path.iter().enumerate() {
                    s = self
                        .layer_shape(l, s)
                        .map_err(|(inner, m)| (nest(l.describe(i), inner), m))?;
                }
                let skipped = match skip.as_deref() {
                    None => input,
                    Some(conv @ LayerSpec::Conv2d { .. }) => self
                        .layer_shape(conv, input)
                        .map_err(|(inner, m)| (nest(conv.describe(0), inner), m))?,
                    Some(other) => {
                        return fail(format!(
                            "the skip must be a convolution, not {}",
                            other.describe(0)
                        ));
                    }
                };
                if s != skipped {
                    return fail(format!(
                        "path gives {s:?} but skip gives {skipped:?}: add a projection \
                         convolution to the skip"
                    ));
                }
                s
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
                    return fail(format!("expects {in_features} inputs, receives {n}"));
                }
                if *out_features == 0 {
                    return fail("needs at least one output".into());
                }
                ActShape::Flat(*out_features)
            }
            (LayerSpec::Relu, s) => s,
            (LayerSpec::Flatten, ActShape::Image([c, h, w])) => ActShape::Flat(c * h * w),
            (LayerSpec::Linear { .. }, ActShape::Image(s)) => {
                return fail(format!("receives an image {s:?}: add a flatten before it"));
            }
            (_, s) => return fail(format!("cannot take activations of shape {s:?}")),
        })
    }

    /// Multiply-accumulates of one forward pass of one input through the affine layers (the
    /// elementwise layers are a rounding error): the unit the benchmarks count FLOPs in
    /// (`2 x MAC`).
    pub fn macs(&self) -> Result<u64, NnError> {
        let shapes = self.check()?;
        let inputs = std::iter::once(ActShape::Image(self.input)).chain(shapes.iter().copied());
        Ok(self
            .layers
            .iter()
            .zip(inputs.zip(&shapes))
            .map(|(layer, (input, out))| layer.macs(input, *out, self))
            .sum())
    }

    /// Every named tensor in PyTorch's layout, `(name, shape)`: `<layer>.weight` and
    /// `<layer>.bias` of convolutions and linear layers (`[out, in]`), and of batch norms also
    /// `<layer>.running_mean` and `<layer>.running_var`.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for l in &self.layers {
            l.tensors(&mut out);
        }
        out
    }

    /// The names `torch.nn.Sequential` gives [`Architecture::tensors`] (same order):
    /// `<index>.weight`, the index a layer's position among the top-level layers, the
    /// normalisation counted or not (PyTorch code often normalises outside the model). `None`
    /// with residual blocks, which no plain `nn.Sequential` holds.
    pub(crate) fn sequential_names(&self, count_normalize: bool) -> Option<Vec<String>> {
        let mut names = Vec::new();
        let mut index = 0;
        for layer in &self.layers {
            match layer {
                LayerSpec::Residual { .. } => return None,
                LayerSpec::Normalize { .. } if !count_normalize => continue,
                _ => {}
            }
            let mut tensors = Vec::new();
            layer.tensors(&mut tensors);
            for (name, _) in tensors {
                let field = name.rsplit('.').next().unwrap_or(&name);
                names.push(format!("{index}.{field}"));
            }
            index += 1;
        }
        Some(names)
    }
}

fn nest(outer: String, inner: String) -> String {
    if inner.is_empty() {
        outer
    } else {
        format!("{outer} > {inner}")
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

    #[test]
    fn residual_blocks_check_both_branches() {
        let conv = LayerSpec::conv2d;
        let arch = |skip: Option<LayerSpec>, inner: usize| Architecture {
            name: "block".into(),
            input: [2, 6, 6],
            classes: 2,
            layers: vec![
                LayerSpec::Residual {
                    path: vec![
                        conv("a", 2, inner, 3, 2, 1),
                        LayerSpec::BatchNorm2d {
                            name: "bn".into(),
                            channels: 3,
                            eps: 1e-5,
                            momentum: 0.1,
                        },
                        LayerSpec::Relu,
                        conv("b", inner, 4, 3, 1, 1),
                    ],
                    skip: skip.map(Box::new),
                },
                LayerSpec::AvgPool2d {
                    kernel: 3,
                    stride: 3,
                },
                LayerSpec::Flatten,
                LayerSpec::Linear {
                    name: "out".into(),
                    in_features: 4,
                    out_features: 2,
                },
            ],
        };
        let good = arch(Some(conv("skip", 2, 4, 2, 2, 0)), 3);
        assert_eq!(
            good.check().unwrap()[..2],
            [ActShape::Image([4, 3, 3]), ActShape::Image([4, 1, 1])]
        );
        // path 3*2*3*3*3*3 + 4*3*3*3*3*3, skip 4*3*3*2*2*2
        assert_eq!(good.macs().unwrap(), 486 + 972 + 288 + 8);
        assert_eq!(good.tensors().len(), 2 + 4 + 2 + 2 + 2);

        let e = arch(None, 3).check().unwrap_err().to_string();
        assert!(e.contains("residual") && e.contains("projection"), "{e}");
        let e = arch(Some(conv("skip", 2, 4, 2, 2, 0)), 5)
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("#0 (residual) > bn") && e.contains("expects 3 channels, receives 5"),
            "{e}"
        );
        let e = arch(Some(LayerSpec::Relu), 3)
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("skip must be a convolution"), "{e}");
        let e = arch(Some(conv("a", 2, 4, 2, 2, 0)), 3)
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("unique"), "{e}");
    }
}
