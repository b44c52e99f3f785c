use std::collections::HashMap;

use burn::module::{Module, Param};
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::{AvgPoolOptions, ConvOptions};
use burn::tensor::{Device, Tensor, TensorData, activation::relu};
use mixtrain_kernels::conv2d;
use rand::{Rng, SeedableRng};

use crate::{ActShape, Architecture, LayerSpec, NnError};

/// `y = x W + b` with `W` stored `[in, out]` (burn's layout; PyTorch's transposed).
#[derive(Module, Debug)]
pub struct Linear {
    /// `[in, out]`, the transpose of PyTorch's `<name>.weight`.
    pub weight: Param<Tensor<2>>,
    /// `[out]`.
    pub bias: Param<Tensor<1>>,
}

/// 2-D convolution, weight `[out, in, k, k]`, symmetric zero padding.
#[derive(Module, Debug)]
pub struct Conv2d {
    /// `[out_channels, in_channels, k, k]`, PyTorch's layout.
    pub weight: Param<Tensor<4>>,
    /// `[out_channels]`.
    pub bias: Param<Tensor<1>>,
    /// Step in both directions.
    pub stride: usize,
    /// Zeros added on every side.
    pub padding: usize,
}

/// Per-channel `(x - mean) / std`; constants, not trained.
#[derive(Module, Debug)]
pub struct Normalize {
    /// One mean per channel, in pixel units.
    pub mean: Vec<f32>,
    /// One standard deviation per channel, in pixel units.
    pub std: Vec<f32>,
}

/// Elementwise `max(x, 0)`; no parameters.
#[derive(Module, Debug, Default)]
pub struct Relu;

/// `[n, c, h, w]` to `[n, c*h*w]`, channel-major like PyTorch's `flatten`; no parameters.
#[derive(Module, Debug, Default)]
pub struct Flatten;

/// Square average pooling, no padding.
#[derive(Module, Debug)]
pub struct AvgPool2d {
    /// Side of the square window.
    pub kernel: usize,
    /// Step in both directions.
    pub stride: usize,
}

/// Batch normalisation as its evaluation-mode affine map (see [`LayerSpec::BatchNorm2d`]).
/// `weight` and `bias` train; the running statistics do not (no gradient), and are refreshed
/// from clean inputs by [`Network::refresh_statistics`].
#[derive(Module, Debug)]
pub struct BatchNorm2d {
    /// `[c]` scale (PyTorch's gamma), trained.
    pub weight: Param<Tensor<1>>,
    /// `[c]` shift (PyTorch's beta), trained.
    pub bias: Param<Tensor<1>>,
    /// `[c]` running mean; no gradient.
    pub running_mean: Param<Tensor<1>>,
    /// `[c]` running (unbiased) variance; no gradient.
    pub running_var: Param<Tensor<1>>,
    /// Added to the running variance before the square root; not the perturbation radius.
    pub eps: f32,
    /// Weight of the batch statistics in each refresh of the running ones.
    pub momentum: f32,
}

/// `path(x) + skip(x)`, `skip` the identity when `None`.
#[derive(Module, Debug)]
pub struct Residual {
    /// The main branch, on images.
    pub path: Vec<Layer>,
    /// The projection convolution of the skip branch; `None` for the identity.
    pub skip: Option<Conv2d>,
}

/// One layer of a [`Network`].
#[derive(Module, Debug)]
pub enum Layer {
    /// See [`LayerSpec::Normalize`].
    Normalize(Normalize),
    /// See [`LayerSpec::Conv2d`].
    Conv2d(Conv2d),
    /// See [`LayerSpec::Linear`].
    Linear(Linear),
    /// See [`LayerSpec::Relu`].
    Relu(Relu),
    /// See [`LayerSpec::Flatten`].
    Flatten(Flatten),
    /// See [`LayerSpec::AvgPool2d`].
    AvgPool2d(AvgPool2d),
    /// See [`LayerSpec::BatchNorm2d`].
    BatchNorm2d(BatchNorm2d),
    /// See [`LayerSpec::Residual`].
    Residual(Residual),
}

impl Layer {
    /// The layer kind's name in errors (`conv2d`, `linear`, `relu`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Normalize(_) => "normalize",
            Layer::Conv2d(_) => "conv2d",
            Layer::Linear(_) => "linear",
            Layer::Relu(_) => "relu",
            Layer::Flatten(_) => "flatten",
            Layer::AvgPool2d(_) => "avg_pool2d",
            Layer::BatchNorm2d(_) => "batch_norm",
            Layer::Residual(_) => "residual",
        }
    }

    /// The shape of the output given the input's, from the parameters' shapes; `None` where the
    /// layer cannot take that input (possible only in a network assembled by hand:
    /// [`Architecture::check`] rules it out for every network built from one).
    pub fn output_shape(&self, input: ActShape) -> Option<ActShape> {
        let [c, _, _] = match (self, input) {
            (Layer::Relu(_), _) => return Some(input),
            (Layer::Linear(l), ActShape::Flat(d)) => {
                let [d_in, d_out] = l.weight.val().dims();
                return (d == d_in).then_some(ActShape::Flat(d_out));
            }
            (_, ActShape::Flat(_)) => return None,
            (_, ActShape::Image(shape)) => shape,
        };
        match self {
            Layer::Conv2d(conv) => conv.output_shape(input),
            Layer::AvgPool2d(p) => input.after_window(c, p.kernel, p.stride, 0),
            Layer::Normalize(n) => (n.mean.len() == c).then_some(input),
            Layer::BatchNorm2d(b) => (b.weight.val().dims()[0] == c).then_some(input),
            Layer::Flatten(_) => Some(ActShape::Flat(input.features())),
            Layer::Residual(r) => {
                let path = r
                    .path
                    .iter()
                    .try_fold(input, |shape, layer| layer.output_shape(shape))?;
                let skip = match &r.skip {
                    Some(conv) => conv.output_shape(input)?,
                    None => input,
                };
                (path == skip).then_some(path)
            }
            Layer::Relu(_) | Layer::Linear(_) => None,
        }
    }

    /// A per-channel affine layer's map as `x * scale + shift` (`[c]` each): input
    /// normalisation and batch normalisation (evaluation mode) are both this map, which is how
    /// the bounds engine folds them. `None` for other layers.
    pub fn channel_affine(&self, device: &Device) -> Option<(Tensor<1>, Tensor<1>)> {
        match self {
            Layer::Normalize(n) => Some(n.affine(device)),
            Layer::BatchNorm2d(b) => Some(b.affine()),
            _ => None,
        }
    }
}

/// Walks `layers` from an input of shape `input`, calling `visit(layer, input, output)` for every
/// layer in forward order: the layers of a residual block's path, then its skip projection,
/// before the block itself. Returns the output shape, or an error naming the first layer that
/// cannot take its input (see [`Layer::output_shape`]).
pub fn visit_layers(
    layers: &[Layer],
    input: ActShape,
    visit: &mut impl FnMut(&Layer, ActShape, ActShape),
) -> Result<ActShape, String> {
    layers.iter().try_fold(input, |shape, layer| {
        if let Layer::Residual(block) = layer {
            visit_layers(&block.path, shape, visit)?;
            if let Some(conv) = &block.skip {
                let skip = Layer::Conv2d(conv.clone());
                visit_layers(std::slice::from_ref(&skip), shape, visit)?;
            }
        }
        let out = layer
            .output_shape(shape)
            .ok_or_else(|| format!("layer {} cannot take input {shape:?}", layer.kind()))?;
        visit(layer, shape, out);
        Ok(out)
    })
}

impl Conv2d {
    /// The output shape for an input of shape `input`; `None` where the channels do not match
    /// or the input is flat or smaller than the kernel.
    pub fn output_shape(&self, input: ActShape) -> Option<ActShape> {
        let [out, c_in, kernel, _] = self.weight.val().dims();
        let [c, _, _] = input.image()?;
        (c == c_in)
            .then(|| input.after_window(out, kernel, self.stride, self.padding))
            .flatten()
    }

    /// burn's options for this layer (stride, padding, no dilation, one group), for callers
    /// that run the convolution on other tensors (the bounds engine's radius, with `|W|`).
    pub fn options(&self) -> ConvOptions<2> {
        ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], 1)
    }

    /// `[n, in_channels, h, w]` to `[n, out_channels, h', w']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(x, self.weight.val(), Some(self.bias.val()), self.options())
    }
}

impl Linear {
    /// `[n, in]` to `[n, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val()) + self.bias.val().unsqueeze_dim(0)
    }
}

impl Normalize {
    /// `[1, c, 1, 1]` tensors of the means and of the reciprocal stds.
    fn scale_shift(&self, device: &Device) -> (Tensor<4>, Tensor<4>) {
        let c = self.mean.len();
        let inv: Vec<f32> = self.std.iter().map(|s| 1.0 / s).collect();
        let mean = Tensor::from_data(TensorData::new(self.mean.clone(), [1, c, 1, 1]), device);
        let inv = Tensor::from_data(TensorData::new(inv, [1, c, 1, 1]), device);
        (mean, inv)
    }

    /// The same map as `x * scale + shift`, per channel: `[c]` each.
    pub fn affine(&self, device: &Device) -> (Tensor<1>, Tensor<1>) {
        let scale: Vec<f32> = self.std.iter().map(|s| 1.0 / s).collect();
        let shift: Vec<f32> = self.mean.iter().zip(&scale).map(|(m, s)| -m * s).collect();
        let c = scale.len();
        (
            Tensor::from_data(TensorData::new(scale, [c]), device),
            Tensor::from_data(TensorData::new(shift, [c]), device),
        )
    }

    /// `(x - mean) / std` per channel, `[n, c, h, w]` in and out.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (mean, inv) = self.scale_shift(&x.device());
        (x - mean) * inv
    }
}

impl AvgPool2d {
    /// `[n, c, h, w]` to `[n, c, h', w']`, each output the mean of its window.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        avg_pool2d(
            x,
            AvgPoolOptions::new([self.kernel; 2]).with_stride([self.stride; 2]),
        )
    }

    /// The pooling as a bias-free convolution over `channels` channels (weight `1 / k^2` from a
    /// channel to itself, zero across channels): the form the bounds engine's convolution
    /// rules take. `channels` times the work of the pooling, which is cheap next to the
    /// convolutions around it.
    pub fn as_conv(&self, channels: usize, device: &Device) -> Conv2d {
        let k = self.kernel;
        let mut w = vec![0.0f32; channels * channels * k * k];
        for c in 0..channels {
            let at = (c * channels + c) * k * k;
            w[at..at + k * k].fill(1.0 / (k * k) as f32);
        }
        Conv2d {
            weight: param(w, [channels, channels, k, k], device),
            bias: param(vec![0.0; channels], [channels], device),
            stride: self.stride,
            padding: 0,
        }
    }
}

impl BatchNorm2d {
    /// The map as `x * scale + shift` per channel, `[c]` each; differentiable in `weight` and
    /// `bias`.
    pub fn affine(&self) -> (Tensor<1>, Tensor<1>) {
        let scale = self.weight.val() / (self.running_var.val() + self.eps).sqrt();
        let shift = self.bias.val() - self.running_mean.val() * scale.clone();
        (scale, shift)
    }

    /// The evaluation-mode map with the running statistics, `[n, c, h, w]` in and out; never
    /// the batch statistics, so that it is the map every bound sees.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (scale, shift) = self.affine();
        let c = scale.dims()[0];
        x * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1])
    }

    /// Moves the running statistics towards the batch statistics of `x` (`momentum`), outside
    /// any gradient; the unbiased variance, as PyTorch keeps.
    fn refresh(self, x: &Tensor<4>) -> Self {
        let [n, c, h, w] = x.dims();
        let count = (n * h * w) as f32;
        let values = x.clone().detach().swap_dims(0, 1).reshape([c, n * h * w]);
        let mean = values.clone().mean_dim(1).reshape([c]);
        let centred = values - mean.clone().reshape([c, 1]);
        let var = (centred.clone() * centred).sum_dim(1).reshape([c]) / (count - 1.0).max(1.0);
        let m = self.momentum;
        Self {
            running_mean: self.running_mean.map(|t| t * (1.0 - m) + mean * m),
            running_var: self.running_var.map(|t| t * (1.0 - m) + var * m),
            ..self
        }
    }
}

impl Residual {
    /// `path(x) + skip(x)`, `[n, c, h, w]` in, the path's output shape out; no ReLU after.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let skip = match &self.skip {
            Some(conv) => conv.forward(x.clone()),
            None => x.clone(),
        };
        match forward_layers(&self.path, Act::Image(x)) {
            Act::Image(y) => y + skip,
            Act::Flat(_) => unreachable!("Architecture::check keeps residual paths on images"),
        }
    }
}

/// The activations between layers: images before `Flatten`, vectors after.
enum Act {
    Image(Tensor<4>),
    Flat(Tensor<2>),
}

fn forward_layer(layer: &Layer, act: Act) -> Act {
    match (layer, act) {
        (Layer::Normalize(n), Act::Image(x)) => Act::Image(n.forward(x)),
        (Layer::Conv2d(c), Act::Image(x)) => Act::Image(c.forward(x)),
        (Layer::Linear(l), Act::Flat(x)) => Act::Flat(l.forward(x)),
        (Layer::Relu(_), Act::Image(x)) => Act::Image(relu(x)),
        (Layer::Relu(_), Act::Flat(x)) => Act::Flat(relu(x)),
        (Layer::Flatten(_), Act::Image(x)) => Act::Flat(x.flatten(1, 3)),
        (Layer::AvgPool2d(p), Act::Image(x)) => Act::Image(p.forward(x)),
        (Layer::BatchNorm2d(b), Act::Image(x)) => Act::Image(b.forward(x)),
        (Layer::Residual(r), Act::Image(x)) => Act::Image(r.forward(x)),
        _ => unreachable!("Architecture::check rules out mismatched layers"),
    }
}

fn forward_layers(layers: &[Layer], mut act: Act) -> Act {
    for layer in layers {
        act = forward_layer(layer, act);
    }
    act
}

/// Refreshes the batch norms of `layers` from the activations `act` flowing through them.
fn refresh_layers(layers: Vec<Layer>, mut act: Act) -> (Vec<Layer>, Act) {
    let mut out = Vec::with_capacity(layers.len());
    for layer in layers {
        let layer = match (layer, &act) {
            (Layer::BatchNorm2d(b), Act::Image(x)) => Layer::BatchNorm2d(b.refresh(x)),
            (Layer::Residual(r), Act::Image(x)) => {
                let (path, _) = refresh_layers(r.path, Act::Image(x.clone()));
                Layer::Residual(Residual { path, ..r })
            }
            (layer, _) => layer,
        };
        act = forward_layer(&layer, act);
        out.push(layer);
    }
    (out, act)
}

/// A feed-forward network: the layers of an [`Architecture`] with their parameters.
#[derive(Module, Debug)]
pub struct Network {
    /// The top-level layers in forward order, one per [`Architecture::layers`] entry.
    pub layers: Vec<Layer>,
    #[module(skip)]
    arch: Architecture,
}

/// How a fresh network's weights are drawn. Written `default` or `ibp` in configs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// PyTorch's: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for weights and biases.
    #[default]
    Default,
    /// Shi et al. 2021 ("Fast certified robust training with short warmup"): every weight but
    /// the last layer's drawn from `N(0, 2 pi / fan_in^2)`, so that an interval's expected
    /// radius neither grows nor shrinks through a layer and its ReLU at initialisation (with
    /// PyTorch's default it grows about `sqrt(fan_in)`-fold per layer, and IBP's first robust
    /// steps see exploded bounds); a layer fed by a residual sum takes half that standard
    /// deviation, since the sum adds two such radii. Biases as `Default`.
    Ibp,
}

/// Where a network's parameter values come from.
enum Values<'a> {
    /// A seeded generator: PyTorch's default initialisation, or IBP's for the weights of every
    /// layer but `last` (the name of the final layer). `after_sum`: the next weights drawn feed
    /// on a residual sum.
    Seeded {
        rng: Box<rand::rngs::StdRng>,
        init: Init,
        last: String,
        after_sum: bool,
    },
    /// Named PyTorch-layout tensors, checked against [`Architecture::tensors`] by the caller.
    Named(&'a mut HashMap<String, Vec<f32>>),
}

impl Values<'_> {
    /// A convolution's or linear layer's `(weight, bias)` in PyTorch's layout.
    fn affine(
        &mut self,
        name: &str,
        weight: usize,
        bias: usize,
        fan_in: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        match self {
            Values::Seeded {
                rng,
                init,
                last,
                after_sum,
            } => {
                let bound = 1.0 / (fan_in as f32).sqrt();
                let draw = |rng: &mut rand::rngs::StdRng, n: usize| -> Vec<f32> {
                    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
                };
                let w = match *init {
                    Init::Ibp if name != last => {
                        let halved = if *after_sum { 0.5 } else { 1.0 };
                        let std = halved * (2.0 * std::f32::consts::PI).sqrt() / fan_in as f32;
                        (0..weight).map(|_| std * normal(rng)).collect()
                    }
                    _ => draw(rng, weight),
                };
                *after_sum = false;
                (w, draw(rng, bias))
            }
            Values::Named(map) => (
                take(map, &format!("{name}.weight")),
                take(map, &format!("{name}.bias")),
            ),
        }
    }

    fn batch_norm(&mut self, name: &str, c: usize) -> [Vec<f32>; 4] {
        match self {
            Values::Seeded { .. } => [vec![1.0; c], vec![0.0; c], vec![0.0; c], vec![1.0; c]],
            Values::Named(map) => ["weight", "bias", "running_mean", "running_var"]
                .map(|t| take(map, &format!("{name}.{t}"))),
        }
    }

    /// Whether linear weights come in burn's `[in, out]` order (seeded draws keep the order the
    /// project has always drawn in, so that a seed gives the same network as before).
    fn linear_in_burn_order(&self) -> bool {
        matches!(self, Values::Seeded { .. })
    }

    /// Whether the next weights drawn feed on a residual sum.
    fn after_sum(&self) -> bool {
        matches!(
            self,
            Values::Seeded {
                after_sum: true,
                ..
            }
        )
    }

    /// Marks the next weights drawn as fed by a residual sum, or not.
    fn mark_sum(&mut self, mark: bool) {
        if let Values::Seeded { after_sum, .. } = self {
            *after_sum = mark;
        }
    }
}

/// The name of the network's final layer, whose weights every initialisation draws PyTorch's
/// way (the logits' scale is not an interval's growth).
fn last_affine(layers: &[LayerSpec]) -> Option<String> {
    layers.last().and_then(LayerSpec::name).map(String::from)
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut rand::rngs::StdRng) -> f32 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random();
    ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
}

fn take(map: &mut HashMap<String, Vec<f32>>, name: &str) -> Vec<f32> {
    map.remove(name)
        .unwrap_or_else(|| unreachable!("the caller checked that {name} is present"))
}

fn build(spec: &LayerSpec, values: &mut Values, device: &Device) -> Layer {
    match spec {
        LayerSpec::Conv2d {
            name,
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
        } => {
            let shape = [*out_channels, *in_channels, *kernel, *kernel];
            let fan_in = in_channels * kernel * kernel;
            let (w, b) = values.affine(name, shape.iter().product(), *out_channels, fan_in);
            Layer::Conv2d(Conv2d {
                weight: param(w, shape, device),
                bias: param(b, [*out_channels], device),
                stride: *stride,
                padding: *padding,
            })
        }
        LayerSpec::Linear {
            name,
            in_features,
            out_features,
        } => {
            let (inp, out) = (*in_features, *out_features);
            let burn_order = values.linear_in_burn_order();
            let (w, b) = values.affine(name, inp * out, out, inp);
            let w = if burn_order {
                w
            } else {
                // PyTorch's [out, in] to burn's [in, out], transposed on the host so that the
                // parameter is contiguous (a transposed view would make every matmul strided,
                // and its results differ in the last bits from a contiguous one).
                let mut t = vec![0.0f32; w.len()];
                for (o, row) in w.chunks_exact(inp).enumerate() {
                    for (i, v) in row.iter().enumerate() {
                        t[i * out + o] = *v;
                    }
                }
                t
            };
            Layer::Linear(Linear {
                weight: param(w, [inp, out], device),
                bias: param(b, [out], device),
            })
        }
        LayerSpec::BatchNorm2d {
            name,
            channels,
            eps,
            momentum,
        } => {
            let [w, b, mean, var] = values.batch_norm(name, *channels);
            let c = [*channels];
            Layer::BatchNorm2d(BatchNorm2d {
                weight: param(w, c, device),
                bias: param(b, c, device),
                running_mean: param(mean, c, device).set_require_grad(false),
                running_var: param(var, c, device).set_require_grad(false),
                eps: *eps,
                momentum: *momentum,
            })
        }
        LayerSpec::Residual { path, skip } => {
            // the path's first layer and the skip both read the block's input
            let input_is_sum = values.after_sum();
            let path = path.iter().map(|l| build(l, values, device)).collect();
            values.mark_sum(input_is_sum);
            let skip = skip.as_deref().map(|s| match build(s, values, device) {
                Layer::Conv2d(c) => c,
                _ => unreachable!("Architecture::check makes skips convolutions"),
            });
            values.mark_sum(true);
            Layer::Residual(Residual { path, skip })
        }
        LayerSpec::Normalize { mean, std } => Layer::Normalize(Normalize {
            mean: mean.clone(),
            std: std.clone(),
        }),
        LayerSpec::Relu => Layer::Relu(Relu),
        LayerSpec::Flatten => Layer::Flatten(Flatten),
        LayerSpec::AvgPool2d { kernel, stride } => Layer::AvgPool2d(AvgPool2d {
            kernel: *kernel,
            stride: *stride,
        }),
    }
}

impl Network {
    /// A network with PyTorch's default initialisation (`U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for
    /// weights and biases; batch norms the identity), drawn on the host from a seeded generator
    /// so that a seed gives the same network on every backend.
    pub fn init(arch: &Architecture, seed: u64, device: &Device) -> Result<Self, NnError> {
        Self::init_with(arch, seed, Init::Default, device)
    }

    /// A network with the weights drawn as `init` says, from a seeded generator on the host.
    pub fn init_with(
        arch: &Architecture,
        seed: u64,
        init: Init,
        device: &Device,
    ) -> Result<Self, NnError> {
        arch.check()?;
        let mut values = Values::Seeded {
            rng: Box::new(rand::rngs::StdRng::seed_from_u64(seed)),
            init,
            last: last_affine(&arch.layers).unwrap_or_default(),
            after_sum: false,
        };
        Ok(Self::assemble(arch, &mut values, device))
    }

    /// Assembles a network from PyTorch-layout tensors by name (those of
    /// [`Architecture::tensors`]); the caller has checked names and shapes.
    pub(crate) fn from_pytorch(
        arch: &Architecture,
        mut tensors: HashMap<String, Vec<f32>>,
        device: &Device,
    ) -> Result<Self, NnError> {
        arch.check()?;
        Ok(Self::assemble(
            arch,
            &mut Values::Named(&mut tensors),
            device,
        ))
    }

    fn assemble(arch: &Architecture, values: &mut Values, device: &Device) -> Self {
        Self {
            layers: arch
                .layers
                .iter()
                .map(|l| build(l, values, device))
                .collect(),
            arch: arch.clone(),
        }
    }

    /// The architecture the network was built from (its name, input shape, classes, layers).
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// Logits `[n, classes]` of a batch of images `[n, c, h, w]` (pixels in `[0, 1]`).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match forward_layers(&self.layers, Act::Image(x)) {
            Act::Flat(logits) => logits,
            Act::Image(_) => unreachable!("Architecture::check requires flat logits"),
        }
    }

    /// Whether any layer keeps running statistics.
    pub fn has_batch_norm(&self) -> bool {
        fn any(layers: &[Layer]) -> bool {
            layers.iter().any(|l| match l {
                Layer::BatchNorm2d(_) => true,
                Layer::Residual(r) => any(&r.path),
                _ => false,
            })
        }
        any(&self.layers)
    }

    /// Moves every batch norm's running statistics towards those of the clean batch `x` as it
    /// reaches that layer (no gradient flows through the statistics). Training calls this
    /// before each step, so the clean loss and every bound of the step see the same affine map.
    pub fn refresh_statistics(self, x: Tensor<4>) -> Self {
        let (layers, _) = refresh_layers(self.layers, Act::Image(x));
        Self { layers, ..self }
    }
}

fn param<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}

#[cfg(test)]
pub(crate) mod tests {
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
            assert_eq!(out.dims(), [2, arch.classes], "{name}");
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

    /// Normalize, a residual block with a batch norm in its path and a projection skip, average
    /// pooling: every layer kind.
    pub(crate) fn block_arch() -> Architecture {
        let conv = LayerSpec::conv2d;
        Architecture {
            name: "block".into(),
            input: [2, 6, 6],
            classes: 3,
            layers: vec![
                LayerSpec::Normalize {
                    mean: vec![0.5, 0.4],
                    std: vec![0.3, 0.2],
                },
                LayerSpec::Residual {
                    path: vec![
                        conv("a", 2, 3, 3, 2, 1),
                        LayerSpec::BatchNorm2d {
                            name: "bn".into(),
                            channels: 3,
                            eps: 1e-5,
                            momentum: 1.0,
                        },
                        LayerSpec::Relu,
                        conv("b", 3, 4, 3, 1, 1),
                    ],
                    skip: Some(Box::new(conv("skip", 2, 4, 2, 2, 0))),
                },
                LayerSpec::Relu,
                LayerSpec::AvgPool2d {
                    kernel: 2,
                    stride: 1,
                },
                LayerSpec::Flatten,
                LayerSpec::Linear {
                    name: "out".into(),
                    in_features: 16,
                    out_features: 3,
                },
            ],
        }
    }

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.into_data().try_to_vec().unwrap()
    }

    /// Each convolution's and linear layer's weights and fan-in, in forward order.
    fn weights(layers: &[Layer]) -> Vec<(Vec<f32>, usize)> {
        let mut out = Vec::new();
        for layer in layers {
            match layer {
                Layer::Conv2d(c) => {
                    let [_, i, k, _] = c.weight.val().dims();
                    out.push((values(c.weight.val()), i * k * k));
                }
                Layer::Linear(l) => {
                    let w = l.weight.val();
                    let fan_in = w.dims()[0];
                    out.push((w.into_data().try_to_vec().unwrap(), fan_in));
                }
                Layer::Residual(r) => out.extend(weights(&r.path)),
                _ => {}
            }
        }
        out
    }

    /// The sample mean and standard deviation, and the fraction within one deviation of 0.
    fn moments(w: &[f32], std: f64) -> (f64, f64, f64) {
        let n = w.len() as f64;
        let mean = w.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let within = w.iter().filter(|v| (v.abs() as f64) < std).count() as f64 / n;
        (mean, var.sqrt(), within)
    }

    #[test]
    fn ibp_init_draws_normal_weights_of_std_sqrt_2pi_over_fan_in_but_the_last() {
        let device = Backend::Flex.device(None).unwrap();
        let sum_fed = Architecture {
            name: "sum-fed".into(),
            input: [2, 6, 6],
            classes: 3,
            layers: vec![
                LayerSpec::Residual {
                    path: vec![LayerSpec::conv2d("a", 2, 2, 3, 1, 1)],
                    skip: None,
                },
                LayerSpec::Relu,
                LayerSpec::conv2d("c", 2, 64, 3, 1, 1),
                LayerSpec::Flatten,
                LayerSpec::linear("out", 64 * 36, 3),
            ],
        };
        // (architecture, the standard deviation of each layer but the last in units of
        // sqrt(2 pi) / fan_in: 1, or 1/2 for a layer fed by a residual sum)
        let cases = [
            (
                zoo::architecture("mnist_small").unwrap(),
                vec![1.0, 1.0, 1.0],
            ),
            (sum_fed, vec![1.0, 0.5]),
        ];
        for (arch, scales) in cases {
            let net = Network::init_with(&arch, 3, Init::Ibp, &device).unwrap();
            let layers = weights(&net.layers);
            assert_eq!(layers.len(), scales.len() + 1, "{}", arch.name);
            for ((w, fan_in), scale) in layers.iter().zip(&scales) {
                let std = scale * (2.0 * std::f64::consts::PI).sqrt() / *fan_in as f64;
                let (mean, sample_std, within) = moments(w, std);
                // four standard errors of each statistic
                let n = w.len() as f64;
                assert!(
                    mean.abs() < 4.0 * std / n.sqrt(),
                    "{}: mean {mean}",
                    arch.name
                );
                let drift = (sample_std / std - 1.0).abs();
                assert!(
                    drift < 4.0 / (2.0 * n).sqrt(),
                    "{}: std {sample_std} vs {std}",
                    arch.name
                );
                // a normal puts 68.3% within one deviation, a uniform of that deviation 57.7%
                let p = 0.6827;
                let tolerance = 4.0 * (p * (1.0 - p) / n).sqrt();
                assert!(
                    (within - p).abs() < tolerance,
                    "{}: {within} within",
                    arch.name
                );
            }
            let (last, fan_in) = layers.last().unwrap();
            let bound = 1.0 / (*fan_in as f32).sqrt();
            assert!(last.iter().all(|v| v.abs() <= bound), "{}", arch.name);
        }
    }

    #[test]
    fn residual_batch_norm_and_pooling_compute_their_maps() {
        let device = Backend::Flex.device(None).unwrap();
        let net = Network::init(&block_arch(), 3, &device).unwrap();
        let x = Tensor::<4>::random([4, 2, 6, 6], burn::tensor::Distribution::Default, &device);
        let input = net.layers[0].clone();
        let Layer::Normalize(norm) = input else {
            unreachable!()
        };
        let z = norm.forward(x.clone());
        // momentum 1 takes the batch's statistics: the refreshed batch norm standardises
        let net = net.refresh_statistics(x.clone());
        let Layer::Residual(block) = &net.layers[1] else {
            unreachable!()
        };
        let (Layer::Conv2d(a), Layer::BatchNorm2d(bn), Layer::Conv2d(b)) =
            (&block.path[0], &block.path[1], &block.path[3])
        else {
            unreachable!()
        };
        let h = bn.forward(a.forward(z.clone()));
        let [n, c, hh, ww] = h.dims();
        let per_channel = h.clone().swap_dims(0, 1).reshape([c, n * hh * ww]);
        let mean: Vec<f32> = per_channel
            .clone()
            .mean_dim(1)
            .into_data()
            .try_to_vec()
            .unwrap();
        let var: Vec<f32> = per_channel.var(1).into_data().try_to_vec().unwrap();
        assert!(mean.iter().all(|m| m.abs() < 1e-4), "{mean:?}");
        assert!(var.iter().all(|v| (v - 1.0).abs() < 1e-3), "{var:?}");

        let skip = block.skip.as_ref().unwrap().forward(z.clone());
        let expected = relu(b.forward(relu(h)) + skip);
        let got = relu(block.forward(z));
        let gap = values(expected.clone() - got)
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(gap < 1e-5, "{gap}");

        let pool = AvgPool2d {
            kernel: 2,
            stride: 1,
        };
        let pooled = pool.forward(expected.clone());
        let as_conv = pool.as_conv(4, &device).forward(expected);
        let gap = values(pooled - as_conv)
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(gap < 1e-6, "{gap}");
    }
}
