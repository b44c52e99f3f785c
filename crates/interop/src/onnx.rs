//! ONNX export: a [`Network`] as a standard ONNX model (opset 13), the form external verifiers
//! (alpha-beta-CROWN, NNV, Marabou, ...) and runtimes (onnxruntime, PyTorch) read.
//!
//! One ONNX node per layer: normalisation as `Sub` and `Div` by per-channel constants,
//! `Conv`, `Gemm` (`transB = 1`, PyTorch's `[out, in]` weight), `Relu`, `Flatten` (axis 1: NCHW
//! order, as ours), `AveragePool`, `BatchNormalization` (inference form, running statistics)
//! and residual blocks as their two branches joined by `Add`. Weights are initializers named as
//! in PyTorch (`conv1.weight`); the input is `input` `[batch, c, h, w]` (pixels in `[0, 1]`,
//! normalisation inside the graph) and the output `logits` `[batch, classes]`.

use mixtrain_nn::{LayerSpec, Network};

use crate::protobuf::Message;

/// The opset the graph is written against.
pub const OPSET: i64 = 13;
/// ONNX IR version 7 is the one of opset 13 (ONNX 1.8).
const IR_VERSION: i64 = 7;
/// TensorProto.DataType.FLOAT.
const FLOAT: i64 = 1;

// AttributeProto.AttributeType
const ATTR_FLOAT: i64 = 1;
const ATTR_INT: i64 = 2;
const ATTR_INTS: i64 = 7;

/// An attribute of a node.
pub(crate) enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
}

fn attribute(name: &str, value: Attr) -> Message {
    let m = Message::default().string(1, name);
    match value {
        Attr::Float(f) => m.float(2, f).int(20, ATTR_FLOAT),
        Attr::Int(i) => m.int(3, i).int(20, ATTR_INT),
        Attr::Ints(is) => m.ints(8, is).int(20, ATTR_INTS),
    }
}

pub(crate) fn tensor(name: &str, dims: &[usize], values: &[f32]) -> Message {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Message::default()
        .ints(1, dims.iter().map(|&d| d as i64))
        .int(2, FLOAT)
        .string(8, name)
        .bytes(9, &raw)
}

/// `name: float[dims]`; a `None` dimension is the symbolic batch size.
fn value_info(name: &str, dims: &[Option<usize>]) -> Message {
    let shape = dims.iter().fold(Message::default(), |shape, d| {
        let dim = match d {
            Some(v) => Message::default().int(1, *v as i64),
            None => Message::default().string(2, "batch"),
        };
        shape.message(1, dim)
    });
    let tensor_type = Message::default().int(1, FLOAT).message(2, shape);
    Message::default()
        .string(1, name)
        .message(2, Message::default().message(1, tensor_type))
}

/// The node `op(inputs) -> output`, named after its output.
pub(crate) fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<(&str, Attr)>) -> Message {
    let mut node = Message::default();
    for i in inputs {
        node = node.string(1, i);
    }
    node = node.string(2, output).string(3, output).string(4, op);
    for (name, value) in attrs {
        node = node.message(5, attribute(name, value));
    }
    node
}

/// The graph under construction: nodes, initializers, fresh value names.
struct Graph {
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    /// Parameters by PyTorch name.
    params: std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>,
    values: usize,
}

impl Graph {
    fn fresh(&mut self, op: &str) -> String {
        self.values += 1;
        format!("{}_{}", op.to_lowercase(), self.values)
    }

    /// Appends `op(inputs) -> fresh value` and returns the value's name.
    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let output = self.fresh(op);
        self.emit(op, inputs, attrs, output)
    }

    /// Appends `op(inputs) -> output`.
    fn emit(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
        output: String,
    ) -> String {
        self.nodes.push(node(op, inputs, &output, attrs));
        output
    }

    /// The initializer `name` (a network parameter); returns its name.
    fn param(&mut self, name: String) -> String {
        let (dims, values) = self
            .params
            .remove(&name)
            .expect("Architecture::tensors names every parameter a layer reads");
        self.initializers.push(tensor(&name, &dims, &values));
        name
    }

    /// A constant initializer with a fresh name.
    fn constant(&mut self, what: &str, dims: &[usize], values: &[f32]) -> String {
        let name = self.fresh(what);
        self.initializers.push(tensor(&name, dims, values));
        name
    }

    fn conv(
        &mut self,
        x: &str,
        name: &str,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> String {
        let (k, s, p) = (kernel as i64, stride as i64, padding as i64);
        let w = self.param(format!("{name}.weight"));
        let b = self.param(format!("{name}.bias"));
        self.node(
            "Conv",
            &[x, &w, &b],
            vec![
                ("kernel_shape", Attr::Ints(vec![k, k])),
                ("strides", Attr::Ints(vec![s, s])),
                ("pads", Attr::Ints(vec![p, p, p, p])),
                ("dilations", Attr::Ints(vec![1, 1])),
                ("group", Attr::Int(1)),
            ],
        )
    }

    fn layers(&mut self, layers: &[LayerSpec], mut x: String) -> String {
        for layer in layers {
            x = self.layer(layer, x);
        }
        x
    }

    fn layer(&mut self, layer: &LayerSpec, x: String) -> String {
        match layer {
            LayerSpec::Normalize { mean, std } => {
                let dims = [1, mean.len(), 1, 1];
                let m = self.constant("mean", &dims, mean);
                let s = self.constant("std", &dims, std);
                let centred = self.node("Sub", &[&x, &m], vec![]);
                self.node("Div", &[&centred, &s], vec![])
            }
            LayerSpec::Conv2d {
                name,
                kernel,
                stride,
                padding,
                ..
            } => self.conv(&x, name, *kernel, *stride, *padding),
            LayerSpec::Linear { name, .. } => {
                let w = self.param(format!("{name}.weight"));
                let b = self.param(format!("{name}.bias"));
                self.node("Gemm", &[&x, &w, &b], vec![("transB", Attr::Int(1))])
            }
            LayerSpec::Relu => self.node("Relu", &[&x], vec![]),
            LayerSpec::Flatten => self.node("Flatten", &[&x], vec![("axis", Attr::Int(1))]),
            LayerSpec::AvgPool2d { kernel, stride } => {
                let (k, s) = (*kernel as i64, *stride as i64);
                self.node(
                    "AveragePool",
                    &[&x],
                    vec![
                        ("kernel_shape", Attr::Ints(vec![k, k])),
                        ("strides", Attr::Ints(vec![s, s])),
                    ],
                )
            }
            LayerSpec::BatchNorm2d { name, eps, .. } => {
                let inputs = ["weight", "bias", "running_mean", "running_var"]
                    .map(|t| self.param(format!("{name}.{t}")));
                let [scale, bias, mean, var] = inputs.each_ref().map(String::as_str);
                self.node(
                    "BatchNormalization",
                    &[&x, scale, bias, mean, var],
                    vec![("epsilon", Attr::Float(*eps))],
                )
            }
            LayerSpec::Residual { path, skip } => {
                let through = self.layers(path, x.clone());
                let skipped = match skip.as_deref() {
                    Some(LayerSpec::Conv2d {
                        name,
                        kernel,
                        stride,
                        padding,
                        ..
                    }) => self.conv(&x, name, *kernel, *stride, *padding),
                    Some(other) => self.layer(other, x),
                    None => x,
                };
                self.node("Add", &[&through, &skipped], vec![])
            }
        }
    }
}

/// The network as the bytes of an ONNX model (opset 13): input `input` `[batch, c, h, w]`,
/// output `logits` `[batch, classes]`, weights as of now (batch norms with their running
/// statistics).
pub fn to_onnx(net: &Network) -> Vec<u8> {
    let arch = net.architecture();
    let mut graph = Graph {
        nodes: Vec::new(),
        initializers: Vec::new(),
        params: net
            .pytorch_tensors()
            .into_iter()
            .map(|(name, dims, values)| (name, (dims, values)))
            .collect(),
        values: 0,
    };
    let last = graph.layers(&arch.layers, "input".into());
    let output = graph.emit("Identity", &[&last], vec![], "logits".into());
    let [c, h, w] = arch.input;
    model(
        &arch.name,
        graph.nodes,
        graph.initializers,
        &[None, Some(c), Some(h), Some(w)],
        (&output, &[None, Some(arch.classes)]),
    )
}

/// An ONNX model (opset [`OPSET`]) of `nodes` and `initializers` with the input `input` of
/// `input_dims` and the output `(name, dims)`; a `None` dimension is the symbolic batch.
pub(crate) fn model(
    name: &str,
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    input_dims: &[Option<usize>],
    (output, output_dims): (&str, &[Option<usize>]),
) -> Vec<u8> {
    let mut g = Message::default();
    for node in nodes {
        g = g.message(1, node);
    }
    g = g.string(2, name);
    for init in initializers {
        g = g.message(5, init);
    }
    g = g
        .message(11, value_info("input", input_dims))
        .message(12, value_info(output, output_dims));
    Message::default()
        .int(1, IR_VERSION)
        .string(2, "mixtrain-rs")
        .string(3, env!("CARGO_PKG_VERSION"))
        .message(7, g)
        .message(8, Message::default().string(1, "").int(2, OPSET))
        .into_bytes()
}
