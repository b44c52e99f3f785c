//! ONNX import: a network of the operators verification benchmarks use, as a [`Network`].
//!
//! The file is parsed by `onnx-ir` (every opset, constants lifted, `Gemm` and `MatMul`+`Add`
//! fused to `Linear`); this module maps its chain of nodes onto our layers. The ONNX graph must
//! be one chain from its single input to its single output: each node reads the previous
//! node's value and constants. Elementwise constants are placed where our layers can hold them:
//! `Add`, `Sub`, `Mul` and `Div` right after an affine layer fold into its weights and bias,
//! and on the input they become a per-channel [`LayerSpec::Normalize`]; a batch norm right after
//! an affine layer folds into it, elsewhere it is a [`LayerSpec::BatchNorm2d`]. Anything else
//! is refused with an error that names the node and its operator.
//!
//! The input's dimensions after the batch are padded with leading ones to our `[c, h, w]`
//! (VNN-COMP's `mnist_fc` takes `[1, 784, 1]`, read as `[1, 784, 1]`; a `[1, 5]` input as
//! `[1, 1, 5]`), which keeps ONNX's row-major order of the inputs `X_i`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use mixtrain_nn::{ActShape, Architecture, LayerSpec, Network, NnError};
use onnx_ir::{ArgType, Argument, Node, OnnxGraphBuilder};

use crate::file::{read_maybe_gz, stem};

/// Why an ONNX file could not become a [`Network`].
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file could not be read or decompressed.
    #[error("{path}: {source}")]
    Io {
        /// The ONNX file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid ONNX model.
    #[error("{path}: not a valid ONNX model: {message}")]
    Parse {
        /// The ONNX file.
        path: PathBuf,
        /// The parser's error.
        message: String,
    },
    /// A node (or the graph's input or output) has no counterpart among our layers.
    #[error("{path}: node {node} ({op}): {message}")]
    Unsupported {
        /// The ONNX file.
        path: PathBuf,
        /// The node's name (`input` or `output` for the graph's own).
        node: String,
        /// Its operator.
        op: String,
        /// What is not supported and what is.
        message: String,
    },
    /// The converted layers or weights do not form a valid network.
    #[error(transparent)]
    Network(#[from] NnError),
}

/// The operators this reader takes, for the errors.
const SUPPORTED: &str = "Gemm, MatMul, Add, Sub, Mul, Div, Relu, Conv, Flatten, Reshape, \
                         BatchNormalization, Constant, Identity, Dropout";

/// Reads an ONNX model (plain or gzipped, as VNN-COMP ships them) from `path` as a network on
/// `device`, named after the file's stem.
pub fn read_onnx(path: &Path, device: &Device) -> Result<Network, OnnxError> {
    let io = |source| OnnxError::Io {
        path: path.into(),
        source,
    };
    let bytes = read_maybe_gz(path).map_err(io)?;
    onnx_network(&bytes, path, device)
}

/// The network of an ONNX model's `bytes`; `path` names it in errors and gives its name.
pub fn onnx_network(bytes: &[u8], path: &Path, device: &Device) -> Result<Network, OnnxError> {
    let graph = OnnxGraphBuilder::new()
        .parse_bytes(bytes)
        .map_err(|e| OnnxError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
    let name = stem(path);
    let mut chain = Chain::new(path, &graph.inputs)?;
    for node in &graph.nodes {
        chain.node(node)?;
    }
    let (arch, tensors) = chain.finish(name, &graph.outputs)?;
    Ok(Network::from_tensors(&arch, path, tensors, device)?)
}

/// The layers read so far, their tensors, and the value the chain has reached.
struct Chain<'a> {
    path: &'a Path,
    input: [usize; 3],
    layers: Vec<LayerSpec>,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    /// The name of the value the next node must read.
    value: String,
    /// Its shape per input, and its ONNX rank (batch included).
    shape: ActShape,
    rank: usize,
    /// Whether the last layer is an affine one whose output is `value` unchanged since.
    affine_last: bool,
}

/// What an elementwise node does with its constant `c`: `x + c`, `x - c`, `x * c`, `x / c`.
#[derive(Clone, Copy, Debug)]
enum Elementwise {
    Add,
    Sub,
    Mul,
    Div,
}

impl<'a> Chain<'a> {
    fn new(path: &'a Path, inputs: &[Argument]) -> Result<Self, OnnxError> {
        let unsupported = |message: String| OnnxError::Unsupported {
            path: path.into(),
            node: "input".into(),
            op: "graph input".into(),
            message,
        };
        let [input] = inputs else {
            return Err(unsupported(format!(
                "the graph has {} inputs; one is supported",
                inputs.len()
            )));
        };
        let dims = static_dims(input)
            .ok_or_else(|| unsupported(format!("{}: the shape is not static", input.name)))?;
        if !(2..=4).contains(&dims.len()) {
            return Err(unsupported(format!(
                "{}: shape {dims:?}; a batch dimension and 1 to 3 more are supported",
                input.name
            )));
        }
        let mut chw = [1; 3];
        chw[4 - dims.len()..].copy_from_slice(&dims[1..]);
        Ok(Self {
            path,
            input: chw,
            layers: Vec::new(),
            tensors: HashMap::new(),
            value: input.name.clone(),
            shape: ActShape::Image(chw),
            rank: dims.len(),
            affine_last: false,
        })
    }

    fn node(&mut self, node: &Node) -> Result<(), OnnxError> {
        let op = node.node_type().to_string();
        let err = |message: String| OnnxError::Unsupported {
            path: self.path.into(),
            node: node.name().into(),
            op: op.clone(),
            message,
        };
        if let Node::Constant(_) = node {
            return Ok(());
        }
        let (x, constants) = self.operands(node).map_err(err)?;
        match node {
            Node::Identity(_) | Node::Dropout(_) => {}
            Node::Relu(_) => self.push(LayerSpec::Relu, false),
            Node::Flatten(n) if n.config.axis == 1 => self.flatten(),
            Node::Flatten(n) => {
                return Err(err(format!(
                    "axis {}; only axis 1 is supported",
                    n.config.axis
                )));
            }
            Node::Reshape(_) => {
                let out = static_dims(&node.outputs()[0]);
                match out {
                    Some(d) if d.len() == 2 && d[1] == self.shape.features() => self.flatten(),
                    _ => {
                        return Err(err(format!(
                            "reshape to {out:?}; only a flattening to [batch, {}] is supported",
                            self.shape.features()
                        )));
                    }
                }
            }
            Node::Linear(n) => {
                let w = constant(&constants, 1).map_err(err)?;
                let w = if n.config.transpose_weight {
                    w
                } else {
                    transpose(w).map_err(err)?
                };
                let b = constants.get(&2).cloned();
                self.linear(node.name(), w, b).map_err(err)?;
            }
            Node::Gemm(n) => {
                let c = &n.config;
                if c.trans_a != 0 || x != 0 {
                    return Err(err("transA = 1, or the input as the second operand".into()));
                }
                let mut w = constant(&constants, 1).map_err(err)?;
                if c.trans_b == 0 {
                    w = transpose(w).map_err(err)?;
                }
                w.1.iter_mut().for_each(|v| *v *= c.alpha);
                let b = constants
                    .get(&2)
                    .cloned()
                    .map(|(s, v)| (s, v.into_iter().map(|v| v * c.beta).collect::<Vec<_>>()));
                self.linear(node.name(), w, b).map_err(err)?;
            }
            Node::MatMul(_) => {
                if x != 0 {
                    return Err(err("the input as the second operand".into()));
                }
                let w = transpose(constant(&constants, 1).map_err(err)?).map_err(err)?;
                self.linear(node.name(), w, None).map_err(err)?;
            }
            Node::Conv2d(n) => self.conv(node.name(), &n.config, &constants).map_err(err)?,
            Node::BatchNormalization(n) => {
                let eps = match &n.config {
                    onnx_ir::node::batch_norm::BatchNormConfig::Static(c) => c.epsilon,
                    onnx_ir::node::batch_norm::BatchNormConfig::Runtime(c) => c.epsilon,
                } as f32;
                // onnx-ir 0.22 reads a missing `epsilon` as 0, where ONNX's default is 1e-5;
                // an explicit 0, which nobody exports, is read as the default too
                let eps = if eps == 0.0 { 1e-5 } else { eps };
                self.batch_norm(node.name(), eps, &constants).map_err(err)?;
            }
            Node::Add(_) | Node::Sub(_) | Node::Mul(_) | Node::Div(_) => {
                let kind = match node {
                    Node::Add(_) => Elementwise::Add,
                    Node::Sub(_) => Elementwise::Sub,
                    Node::Mul(_) => Elementwise::Mul,
                    _ => Elementwise::Div,
                };
                if x != 0 && matches!(kind, Elementwise::Sub | Elementwise::Div) {
                    return Err(err("the input as the second operand".into()));
                }
                let c = constant(&constants, 1 - x).map_err(err)?;
                self.elementwise(kind, c).map_err(err)?;
            }
            _ => return Err(err(format!("not supported; the supported are {SUPPORTED}"))),
        }
        self.value = node.outputs()[0].name.clone();
        if let Some(r) = node.outputs().first().map(|o| o.ty.rank()) {
            self.rank = r;
        }
        Ok(())
    }

    /// Which input is the chain's value, and the constant inputs by position. A second
    /// computed input (a branch) is refused.
    #[allow(clippy::type_complexity)]
    fn operands(
        &self,
        node: &Node,
    ) -> Result<(usize, HashMap<usize, (Vec<usize>, Vec<f32>)>), String> {
        let mut x = None;
        let mut constants = HashMap::new();
        for (i, arg) in node.inputs().iter().enumerate() {
            if arg.is_optional() {
                continue;
            }
            match arg.value() {
                Some(data) => {
                    let shape = data.shape().to_vec();
                    let values = data
                        .convert::<f32>()
                        .try_to_vec::<f32>()
                        .map_err(|e| format!("input {i} ({}): {e:?}", arg.name))?;
                    constants.insert(i, (shape, values));
                }
                None if arg.name == self.value && x.is_none() => x = Some(i),
                None => {
                    return Err(format!(
                        "input {i} ({}) is computed elsewhere than by the previous node \
                         ({}): only a chain of layers is supported, not branches",
                        arg.name, self.value
                    ));
                }
            }
        }
        let x =
            x.ok_or_else(|| format!("does not read the previous node's value {}", self.value))?;
        Ok((x, constants))
    }

    fn push(&mut self, layer: LayerSpec, affine: bool) {
        self.layers.push(layer);
        self.affine_last = affine;
    }

    fn flatten(&mut self) {
        if let ActShape::Image(_) = self.shape {
            self.push(LayerSpec::Flatten, false);
            self.shape = ActShape::Flat(self.shape.features());
        }
    }

    /// A unique layer name from the node's.
    fn name(&self, node: &str, kind: &str) -> String {
        let base = if node.is_empty() {
            format!("{kind}{}", self.layers.len())
        } else {
            node.to_string()
        };
        let mut name = base.clone();
        let mut i = 1;
        while self.tensors.contains_key(&format!("{name}.weight")) {
            i += 1;
            name = format!("{base}_{i}");
        }
        name
    }

    /// `y = x w^T + b` with `w` `[out, in]`.
    fn linear(
        &mut self,
        node: &str,
        (w_shape, w): (Vec<usize>, Vec<f32>),
        b: Option<(Vec<usize>, Vec<f32>)>,
    ) -> Result<(), String> {
        if self.rank != 2 {
            return Err(format!(
                "a matrix product on a rank-{} value; only rank 2 ([batch, features]) is supported",
                self.rank
            ));
        }
        self.flatten();
        let [out, inp] = w_shape[..] else {
            return Err(format!("weight of shape {w_shape:?}, not a matrix"));
        };
        if inp != self.shape.features() {
            return Err(format!(
                "weight {w_shape:?} takes {inp} features, the value has {}",
                self.shape.features()
            ));
        }
        let bias = match b {
            Some((shape, values)) => per_channel(&shape, values, out, 0)?,
            None => vec![0.0; out],
        };
        let name = self.name(node, "linear");
        self.tensors
            .insert(format!("{name}.weight"), (vec![out, inp], w));
        self.tensors
            .insert(format!("{name}.bias"), (vec![out], bias));
        self.push(LayerSpec::linear(&name, inp, out), true);
        self.shape = ActShape::Flat(out);
        Ok(())
    }

    fn conv(
        &mut self,
        node: &str,
        config: &onnx_ir::node::conv2d::Conv2dConfig,
        constants: &HashMap<usize, (Vec<usize>, Vec<f32>)>,
    ) -> Result<(), String> {
        use onnx_ir::node::padding::PaddingConfig2d;
        let ActShape::Image([c, h, w]) = self.shape else {
            return Err("a convolution on a flat value".into());
        };
        let (w_shape, weight) = constant(constants, 1)?;
        let [k0, k1] = config.kernel_size;
        let [s0, s1] = config.stride;
        let padding = match config.padding {
            PaddingConfig2d::Valid => 0,
            PaddingConfig2d::Explicit(t, l, b, r) if t == l && l == b && b == r => t,
            PaddingConfig2d::Explicit(..) => {
                return Err(format!(
                    "padding {}; only equal padding on every side is supported",
                    config.padding
                ));
            }
        };
        if k0 != k1 || s0 != s1 || config.dilation != [1, 1] || config.groups != 1 {
            return Err(format!(
                "kernel {:?}, stride {:?}, dilation {:?}, {} groups; only square kernels, \
                 equal strides, no dilation and one group are supported",
                config.kernel_size, config.stride, config.dilation, config.groups
            ));
        }
        if !matches!(w_shape[..], [_, ci, a, b] if ci == c && a == k0 && b == k1) {
            return Err(format!(
                "weight {w_shape:?} does not fit a {c}-channel input"
            ));
        }
        if h + 2 * padding < k0 || w + 2 * padding < k0 {
            return Err(format!("a {k0}x{k0} kernel on a {h}x{w} image"));
        }
        let out = w_shape[0];
        let bias = match constants.get(&2) {
            Some((shape, values)) => exactly(shape, values.clone(), out)?,
            None => vec![0.0; out],
        };
        let name = self.name(node, "conv");
        self.tensors
            .insert(format!("{name}.weight"), (w_shape, weight));
        self.tensors
            .insert(format!("{name}.bias"), (vec![out], bias));
        self.push(LayerSpec::conv2d(&name, c, out, k0, s0, padding), true);
        let side = |n: usize| (n + 2 * padding - k0) / s0 + 1;
        self.shape = ActShape::Image([out, side(h), side(w)]);
        Ok(())
    }

    /// The last layer's weight and bias, when the value is its output unchanged.
    fn last_affine(&mut self) -> Option<(&mut Vec<f32>, &mut Vec<f32>, usize)> {
        if !self.affine_last {
            return None;
        }
        let name = self.layers.last()?.name()?.to_string();
        let out = self.tensors[&format!("{name}.bias")].1.len();
        let [w, b] = self
            .tensors
            .get_disjoint_mut([&format!("{name}.weight"), &format!("{name}.bias")]);
        Some((&mut w?.1, &mut b?.1, out))
    }

    fn elementwise(
        &mut self,
        kind: Elementwise,
        (shape, values): (Vec<usize>, Vec<f32>),
    ) -> Result<(), String> {
        let channels = match self.shape {
            ActShape::Image([c, ..]) => c,
            ActShape::Flat(n) => n,
        };
        let trailing = match self.shape {
            ActShape::Image(_) => 2,
            ActShape::Flat(_) => 0,
        };
        let c = per_channel(&shape, values, channels, trailing)?;
        if matches!(kind, Elementwise::Div | Elementwise::Mul) && c.contains(&0.0) {
            return Err("a zero factor".into());
        }
        if let Some((w, b, out)) = self.last_affine() {
            let per_row = w.len() / out;
            for (o, c) in c.iter().enumerate() {
                match kind {
                    Elementwise::Add => b[o] += c,
                    Elementwise::Sub => b[o] -= c,
                    Elementwise::Mul | Elementwise::Div => {
                        let f = if let Elementwise::Mul = kind {
                            *c
                        } else {
                            1.0 / c
                        };
                        w[o * per_row..(o + 1) * per_row]
                            .iter_mut()
                            .for_each(|v| *v *= f);
                        b[o] *= f;
                    }
                }
            }
            return Ok(());
        }
        let ActShape::Image(_) = self.shape else {
            return Err(
                "an elementwise constant on a flat value that no affine layer precedes".into(),
            );
        };
        // (x - mean) / std, extended by this operation; a new one on the input
        let (mut mean, mut std) = match self.layers.last() {
            Some(LayerSpec::Normalize { mean, std }) => (mean.clone(), std.clone()),
            None => (vec![0.0; channels], vec![1.0; channels]),
            Some(_) => {
                return Err(
                    "an elementwise constant between layers that cannot hold it: \
                            only after Gemm, MatMul or Conv, or on the input"
                        .into(),
                );
            }
        };
        for ((m, s), c) in mean.iter_mut().zip(&mut std).zip(&c) {
            match kind {
                Elementwise::Add => *m -= c * *s,
                Elementwise::Sub => *m += c * *s,
                Elementwise::Mul => *s /= c,
                Elementwise::Div => *s *= c,
            }
        }
        if !std.iter().all(|s| positive(*s)) {
            return Err("a negative scale of the input, which a normalisation cannot hold".into());
        }
        if let Some(LayerSpec::Normalize { .. }) = self.layers.last() {
            self.layers.pop();
        }
        self.push(LayerSpec::Normalize { mean, std }, false);
        Ok(())
    }

    fn batch_norm(
        &mut self,
        node: &str,
        eps: f32,
        constants: &HashMap<usize, (Vec<usize>, Vec<f32>)>,
    ) -> Result<(), String> {
        let channels = match self.shape {
            ActShape::Image([c, ..]) => c,
            ActShape::Flat(n) => n,
        };
        let mut stats = Vec::with_capacity(4);
        for i in 1..=4 {
            let (shape, values) = constant(constants, i)?;
            stats.push(exactly(&shape, values, channels)?);
        }
        let [scale, bias, mean, var] = [0, 1, 2, 3].map(|i| stats[i].clone());
        if !var.iter().all(|v| positive(v + eps)) {
            return Err("a running variance plus epsilon that is not positive".into());
        }
        if let Some((w, b, out)) = self.last_affine() {
            let per_row = w.len() / out;
            for o in 0..out {
                let f = scale[o] / (var[o] + eps).sqrt();
                w[o * per_row..(o + 1) * per_row]
                    .iter_mut()
                    .for_each(|v| *v *= f);
                b[o] = (b[o] - mean[o]) * f + bias[o];
            }
            return Ok(());
        }
        let ActShape::Image(_) = self.shape else {
            return Err("a batch norm on a flat value that no affine layer precedes".into());
        };
        let name = self.name(node, "bn");
        for (t, v) in ["weight", "bias", "running_mean", "running_var"]
            .into_iter()
            .zip([scale, bias, mean, var])
        {
            self.tensors
                .insert(format!("{name}.{t}"), (vec![channels], v));
        }
        self.push(
            LayerSpec::BatchNorm2d {
                name,
                channels,
                eps,
                momentum: 0.1,
            },
            false,
        );
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn finish(
        self,
        name: String,
        outputs: &[Argument],
    ) -> Result<(Architecture, Vec<(String, Vec<usize>, Vec<f32>)>), OnnxError> {
        let unsupported = |message: String| OnnxError::Unsupported {
            path: self.path.into(),
            node: "output".into(),
            op: "graph output".into(),
            message,
        };
        match outputs {
            [out] if out.name == self.value => {}
            _ => {
                return Err(unsupported(format!(
                    "the graph's outputs are {:?}; one, the chain's last value {}, is supported",
                    outputs.iter().map(|o| &o.name).collect::<Vec<_>>(),
                    self.value
                )));
            }
        }
        let ActShape::Flat(classes) = self.shape else {
            return Err(unsupported(format!(
                "the output has shape {:?}; a [batch, classes] output is supported",
                self.shape
            )));
        };
        let arch = Architecture {
            name,
            input: self.input,
            classes,
            layers: self.layers,
        };
        let tensors = self
            .tensors
            .into_iter()
            .map(|(name, (shape, values))| (name, shape, values))
            .collect();
        Ok((arch, tensors))
    }
}

/// Finite and above zero (`false` for NaN).
fn positive(v: f32) -> bool {
    v.is_finite() && v > 0.0
}

/// The static dimensions of a tensor argument (a symbolic batch counts as 1).
fn static_dims(arg: &Argument) -> Option<Vec<usize>> {
    match &arg.ty {
        ArgType::Tensor(t) => {
            let dims = t.static_shape.as_ref()?;
            let mut out = Vec::with_capacity(dims.len());
            for (i, d) in dims.iter().enumerate() {
                out.push(match d {
                    Some(v) => *v,
                    None if i == 0 => 1,
                    None => return None,
                });
            }
            Some(out)
        }
        _ => None,
    }
}

/// The constant input `i`.
fn constant(
    constants: &HashMap<usize, (Vec<usize>, Vec<f32>)>,
    i: usize,
) -> Result<(Vec<usize>, Vec<f32>), String> {
    constants
        .get(&i)
        .cloned()
        .ok_or_else(|| format!("input {i} is not a constant; only constant weights are supported"))
}

fn transpose((shape, values): (Vec<usize>, Vec<f32>)) -> Result<(Vec<usize>, Vec<f32>), String> {
    let [rows, cols] = shape[..] else {
        return Err(format!("weight of shape {shape:?}, not a matrix"));
    };
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    Ok((vec![cols, rows], out))
}

/// A constant as one value per channel (or feature), broadcast as ONNX does: a scalar, or a
/// shape whose channel axis is followed by `trailing` ones (2 on an image `[c, h, w]`, 0 on
/// features) and preceded only by ones (`[1, c, 1, 1]`, `[c, 1, 1]`; `[1, n]`, `[n]`). A
/// constant that varies over positions is refused.
fn per_channel(
    shape: &[usize],
    values: Vec<f32>,
    channels: usize,
    trailing: usize,
) -> Result<Vec<f32>, String> {
    if values.len() == 1 {
        return Ok(vec![values[0]; channels]);
    }
    let fits = shape.len() > trailing && values.len() == channels && {
        let axis = shape.len() - 1 - trailing;
        shape[axis] == channels
            && shape[..axis].iter().all(|&d| d == 1)
            && shape[axis + 1..].iter().all(|&d| d == 1)
    };
    if fits {
        return Ok(values);
    }
    Err(format!(
        "a constant of shape {shape:?}; one value, or one per channel or feature ({channels}) \
         broadcast along it, is supported"
    ))
}

/// A parameter with one value per channel (a bias, a batch norm's statistics).
fn exactly(shape: &[usize], values: Vec<f32>, channels: usize) -> Result<Vec<f32>, String> {
    if values.len() == channels {
        Ok(values)
    } else {
        Err(format!(
            "a parameter of shape {shape:?}, not {channels} values"
        ))
    }
}

#[cfg(test)]
#[path = "onnx_import_tests.rs"]
mod tests;
