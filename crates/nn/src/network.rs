use burn::module::{Module, Param};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData, activation::relu};
use rand::{Rng, SeedableRng};

use crate::{Architecture, LayerSpec, NnError};

/// `y = x W + b` with `W` stored `[in, out]` (burn's layout; PyTorch's transposed).
#[derive(Module, Debug)]
pub struct Linear {
    pub weight: Param<Tensor<2>>,
    pub bias: Param<Tensor<1>>,
}

/// 2-D convolution, weight `[out, in, k, k]`, symmetric zero padding.
#[derive(Module, Debug)]
pub struct Conv2d {
    pub weight: Param<Tensor<4>>,
    pub bias: Param<Tensor<1>>,
    pub stride: usize,
    pub padding: usize,
}

/// Per-channel `(x - mean) / std`; constants, not trained.
#[derive(Module, Debug)]
pub struct Normalize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

#[derive(Module, Debug, Default)]
pub struct Relu;

#[derive(Module, Debug, Default)]
pub struct Flatten;

/// One layer of a [`Network`].
#[derive(Module, Debug)]
pub enum Layer {
    Normalize(Normalize),
    Conv2d(Conv2d),
    Linear(Linear),
    Relu(Relu),
    Flatten(Flatten),
}

impl Conv2d {
    pub fn options(&self) -> ConvOptions<2> {
        ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], 1)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(x, self.weight.val(), Some(self.bias.val()), self.options())
    }
}

impl Linear {
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val()) + self.bias.val().unsqueeze_dim(0)
    }
}

impl Normalize {
    /// `[1, c, 1, 1]` tensors of the means and of the reciprocal stds.
    pub fn scale_shift(&self, device: &Device) -> (Tensor<4>, Tensor<4>) {
        let c = self.mean.len();
        let inv: Vec<f32> = self.std.iter().map(|s| 1.0 / s).collect();
        let mean = Tensor::from_data(TensorData::new(self.mean.clone(), [1, c, 1, 1]), device);
        let inv = Tensor::from_data(TensorData::new(inv, [1, c, 1, 1]), device);
        (mean, inv)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (mean, inv) = self.scale_shift(&x.device());
        (x - mean) * inv
    }
}

/// The activations between layers: images before `Flatten`, vectors after.
enum Act {
    Image(Tensor<4>),
    Flat(Tensor<2>),
}

/// A feed-forward network: the layers of an [`Architecture`] with their parameters.
#[derive(Module, Debug)]
pub struct Network {
    pub layers: Vec<Layer>,
    #[module(skip)]
    arch: Architecture,
}

impl Network {
    /// A network with PyTorch's default initialisation (`U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for
    /// weights and biases), drawn on the host from a seeded generator so that a seed gives the
    /// same network on every backend.
    pub fn init(arch: &Architecture, seed: u64, device: &Device) -> Result<Self, NnError> {
        arch.check()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut uniform = |n: usize, fan_in: usize| -> Vec<f32> {
            let bound = 1.0 / (fan_in as f32).sqrt();
            (0..n).map(|_| rng.random_range(-bound..bound)).collect()
        };
        let layers = arch
            .layers
            .iter()
            .map(|spec| match spec {
                LayerSpec::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    ..
                } => {
                    let fan_in = in_channels * kernel * kernel;
                    let shape = [*out_channels, *in_channels, *kernel, *kernel];
                    Layer::Conv2d(Conv2d {
                        weight: param(uniform(shape.iter().product(), fan_in), shape, device),
                        bias: param(uniform(*out_channels, fan_in), [*out_channels], device),
                        stride: *stride,
                        padding: *padding,
                    })
                }
                LayerSpec::Linear {
                    in_features,
                    out_features,
                    ..
                } => Layer::Linear(Linear {
                    weight: param(
                        uniform(in_features * out_features, *in_features),
                        [*in_features, *out_features],
                        device,
                    ),
                    bias: param(
                        uniform(*out_features, *in_features),
                        [*out_features],
                        device,
                    ),
                }),
                other => Self::constant_layer(other),
            })
            .collect();
        Ok(Self {
            layers,
            arch: arch.clone(),
        })
    }

    /// Layers without parameters.
    fn constant_layer(spec: &LayerSpec) -> Layer {
        match spec {
            LayerSpec::Normalize { mean, std } => Layer::Normalize(Normalize {
                mean: mean.clone(),
                std: std.clone(),
            }),
            LayerSpec::Relu => Layer::Relu(Relu),
            LayerSpec::Flatten => Layer::Flatten(Flatten),
            LayerSpec::Conv2d { .. } | LayerSpec::Linear { .. } => {
                unreachable!("affine layers have parameters")
            }
        }
    }

    /// Assembles a network from PyTorch-layout tensors given per affine layer, in order:
    /// `(weight, weight shape, bias)`; the caller has checked the shapes.
    pub(crate) fn from_pytorch(
        arch: &Architecture,
        mut tensors: impl Iterator<Item = (Vec<f32>, Vec<usize>, Vec<f32>)>,
        device: &Device,
    ) -> Result<Self, NnError> {
        arch.check()?;
        let layers = arch
            .layers
            .iter()
            .map(|spec| match spec {
                LayerSpec::Conv2d {
                    stride, padding, ..
                } => {
                    let (w, shape, b) = tensors.next().expect("one tensor triple per affine layer");
                    let n = b.len();
                    Layer::Conv2d(Conv2d {
                        weight: param(w, [shape[0], shape[1], shape[2], shape[3]], device),
                        bias: param(b, [n], device),
                        stride: *stride,
                        padding: *padding,
                    })
                }
                LayerSpec::Linear { .. } => {
                    let (w, shape, b) = tensors.next().expect("one tensor triple per affine layer");
                    let (out, inp) = (shape[0], shape[1]);
                    // PyTorch's [out, in] to burn's [in, out], transposed on the host so that
                    // the parameter is contiguous (a transposed view would make every matmul
                    // strided, and its results differ in the last bits from a contiguous one).
                    let mut t = vec![0.0f32; w.len()];
                    for (o, row) in w.chunks_exact(inp).enumerate() {
                        for (i, v) in row.iter().enumerate() {
                            t[i * out + o] = *v;
                        }
                    }
                    let n = b.len();
                    Layer::Linear(Linear {
                        weight: param(t, [inp, out], device),
                        bias: param(b, [n], device),
                    })
                }
                other => Self::constant_layer(other),
            })
            .collect();
        Ok(Self {
            layers,
            arch: arch.clone(),
        })
    }

    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// Logits `[n, classes]` of a batch of images `[n, c, h, w]` (pixels in `[0, 1]`).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut act = Act::Image(x);
        for layer in &self.layers {
            act = match (layer, act) {
                (Layer::Normalize(n), Act::Image(x)) => Act::Image(n.forward(x)),
                (Layer::Conv2d(c), Act::Image(x)) => Act::Image(c.forward(x)),
                (Layer::Linear(l), Act::Flat(x)) => Act::Flat(l.forward(x)),
                (Layer::Relu(_), Act::Image(x)) => Act::Image(relu(x)),
                (Layer::Relu(_), Act::Flat(x)) => Act::Flat(relu(x)),
                (Layer::Flatten(_), Act::Image(x)) => Act::Flat(x.flatten(1, 3)),
                _ => unreachable!("Architecture::check rules out mismatched layers"),
            };
        }
        match act {
            Act::Flat(logits) => logits,
            Act::Image(_) => unreachable!("Architecture::check requires flat logits"),
        }
    }
}

fn param<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, zoo};

    #[test]
    fn zoo_networks_run_and_init_is_seeded() {
        let device = Backend::Flex.device(None).unwrap();
        for name in zoo::NAMES {
            let arch = zoo::architecture(name).unwrap();
            let net = Network::init(&arch, 1, &device).unwrap();
            let [c, h, w] = arch.input;
            let out = net.forward(Tensor::ones([2, c, h, w], &device));
            assert_eq!(out.dims(), [2, 10], "{name}");
        }
        let arch = zoo::architecture("mnist_small").unwrap();
        let x = || Tensor::<4>::ones([1, 1, 28, 28], &device);
        let a = Network::init(&arch, 7, &device)
            .unwrap()
            .forward(x())
            .into_data();
        let b = Network::init(&arch, 7, &device)
            .unwrap()
            .forward(x())
            .into_data();
        let c = Network::init(&arch, 8, &device)
            .unwrap()
            .forward(x())
            .into_data();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn normalize_maps_each_channel() {
        let device = Backend::Flex.device(None).unwrap();
        let n = Normalize {
            mean: vec![0.5, 0.25],
            std: vec![0.5, 0.25],
        };
        let x = Tensor::<4>::ones([1, 2, 1, 1], &device);
        let y: Vec<f32> = n.forward(x).into_data().try_to_vec().unwrap();
        assert_eq!(y, vec![1.0, 3.0]);
    }
}
