//! Small ONNX graphs written here, one or two operators each: what the reader makes of them
//! is checked against onnxruntime (`tests/onnx_check.py`, the oracle of the export's tests),
//! and what it refuses must be refused with the node named.

use std::path::Path;
use std::process::Command;

use burn::tensor::{Tensor, TensorData};
use mixtrain_nn::{Backend, LayerSpec};
use rand::{Rng, SeedableRng};

use super::*;
use crate::onnx::{Attr, model, node, tensor};
use crate::protobuf::Message;

const BATCH: usize = 3;

/// A graph under test: nodes, initializers, the input's dimensions after the batch.
struct Case {
    nodes: Vec<Message>,
    inits: Vec<Message>,
    input: Vec<usize>,
    rng: rand::rngs::StdRng,
}

impl Case {
    fn new(input: &[usize]) -> Self {
        Self {
            nodes: Vec::new(),
            inits: Vec::new(),
            input: input.to_vec(),
            rng: rand::rngs::StdRng::seed_from_u64(7),
        }
    }

    /// `op(inputs) -> output`.
    fn op(&mut self, op: &str, inputs: &[&str], output: &str, attrs: Vec<(&str, Attr)>) {
        self.nodes.push(node(op, inputs, output, attrs));
    }

    /// A random float initializer `name` (in `[lo, hi)`).
    fn init(&mut self, name: &str, dims: &[usize], (lo, hi): (f32, f32)) -> String {
        let n = dims.iter().product();
        let values: Vec<f32> = (0..n).map(|_| self.rng.random_range(lo..hi)).collect();
        self.inits.push(tensor(name, dims, &values));
        name.into()
    }

    /// An int64 initializer (a `Reshape`'s shape).
    fn ints(&mut self, name: &str, values: &[i64]) -> String {
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.inits.push(
            Message::default()
                .ints(1, [values.len() as i64])
                .int(2, 7)
                .string(8, name)
                .bytes(9, &raw),
        );
        name.into()
    }

    fn bytes(self, classes: usize) -> Vec<u8> {
        let mut dims = vec![None];
        dims.extend(self.input.iter().map(|&d| Some(d)));
        model(
            "case",
            self.nodes,
            self.inits,
            &dims,
            ("logits", &[None, Some(classes)]),
        )
    }
}

fn read(bytes: &[u8]) -> Result<Network, OnnxError> {
    let device = Backend::Flex.device(None).unwrap();
    onnx_network(bytes, Path::new("case.onnx"), &device)
}

/// Reads `case`, runs our network on random inputs and has onnxruntime run the file on the
/// same; returns the network's layers. Skips the comparison (said on stdout) where Python or
/// its packages are missing, unless `MIXTRAIN_REQUIRE_ONNXRUNTIME` is set.
fn agrees_with_onnxruntime(case: Case, classes: usize) -> Vec<LayerSpec> {
    let input = case.input.clone();
    let bytes = case.bytes(classes);
    let net = read(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let [c, h, w] = net.architecture().input;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let x: Vec<f32> = (0..BATCH * c * h * w).map(|_| rng.random()).collect();
    let device = Backend::Flex.device(None).unwrap();
    let logits: Vec<f32> = net
        .forward(Tensor::from_data(
            TensorData::new(x.clone(), [BATCH, c, h, w]),
            &device,
        ))
        .into_data()
        .try_to_vec()
        .unwrap();
    assert_eq!(logits.len(), BATCH * classes);

    let dir = tempfile::tempdir().unwrap();
    let f32s = |name: &str, v: &[f32]| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            v.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>(),
        )
        .unwrap();
        path
    };
    let model = dir.path().join("case.onnx");
    std::fs::write(&model, &bytes).unwrap();
    let shape: Vec<String> = std::iter::once(BATCH)
        .chain(input)
        .map(|d| d.to_string())
        .collect();
    let python = std::env::var("MIXTRAIN_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_check.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(&model)
        .arg(f32s("input.f32", &x))
        .arg(shape.join(","))
        .arg(f32s("expected.f32", &logits))
        .output();
    let said = out.as_ref().map_or_else(
        |e| format!("cannot run {python}: {e}"),
        |o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        },
    );
    match out.ok().and_then(|o| o.status.code()) {
        Some(0) => {}
        Some(1) => panic!("onnxruntime disagrees with the network read:\n{said}"),
        _ if std::env::var_os("MIXTRAIN_REQUIRE_ONNXRUNTIME").is_some() => {
            panic!("MIXTRAIN_REQUIRE_ONNXRUNTIME is set, but: {said}")
        }
        _ => println!("SKIPPED the onnxruntime comparison: {}", said.trim()),
    }
    net.architecture().layers.clone()
}

#[test]
fn gemm_matmul_and_constants_on_features() {
    let mut g = Case::new(&[6]);
    let w1 = g.init("w1", &[6, 4], (-1.0, 1.0));
    let b1 = g.init("b1", &[4], (-1.0, 1.0));
    g.op(
        "Gemm",
        &["input", &w1, &b1],
        "h1",
        vec![("alpha", Attr::Float(0.5)), ("beta", Attr::Float(2.0))],
    );
    g.op("Relu", &["h1"], "a1", vec![]);
    let w2 = g.init("w2", &[4, 3], (-1.0, 1.0));
    g.op("MatMul", &["a1", &w2], "h2", vec![]);
    let c = g.init("c", &[3], (-1.0, 1.0));
    g.op("Add", &["h2", &c], "h3", vec![]);
    let s = g.init("s", &[1, 3], (0.5, 2.0));
    g.op("Mul", &["h3", &s], "h4", vec![]);
    let d = g.init("d", &[1], (2.0, 3.0));
    g.op("Div", &["h4", &d], "h5", vec![]);
    g.op("Sub", &["h5", &c], "logits", vec![]);
    let layers = agrees_with_onnxruntime(g, 3);
    let kinds: Vec<&str> = layers.iter().map(kind).collect();
    assert_eq!(kinds, ["flatten", "linear", "relu", "linear"]);
}

#[test]
fn convolutions_normalisation_batch_norms_and_reshape() {
    let mut g = Case::new(&[2, 6, 6]);
    let mean = g.init("mean", &[1, 2, 1, 1], (0.2, 0.6));
    let std = g.init("std", &[2, 1, 1], (0.2, 0.5));
    g.op("Sub", &["input", &mean], "centred", vec![]);
    g.op("Div", &["centred", &std], "normal", vec![]);
    let w1 = g.init("w1", &[3, 2, 3, 3], (-1.0, 1.0));
    let b1 = g.init("b1", &[3], (-1.0, 1.0));
    let conv = |k: i64, s: i64, p: i64| {
        vec![
            ("kernel_shape", Attr::Ints(vec![k, k])),
            ("strides", Attr::Ints(vec![s, s])),
            ("pads", Attr::Ints(vec![p, p, p, p])),
        ]
    };
    g.op("Conv", &["normal", &w1, &b1], "c1", conv(3, 2, 1));
    let bn = |g: &mut Case, name: &str, ch: usize| {
        ["scale", "bias", "mean", "var"].map(|t| {
            let range = if t == "var" { (0.5, 2.0) } else { (-1.0, 1.0) };
            g.init(&format!("{name}.{t}"), &[ch], range)
        })
    };
    let [s, b, m, v] = bn(&mut g, "bn1", 3);
    g.op(
        "BatchNormalization",
        &["c1", &s, &b, &m, &v],
        "n1",
        vec![("epsilon", Attr::Float(1e-3))],
    );
    g.op("Relu", &["n1"], "a1", vec![]);
    let [s, b, m, v] = bn(&mut g, "bn2", 3);
    g.op("BatchNormalization", &["a1", &s, &b, &m, &v], "n2", vec![]);
    let w2 = g.init("w2", &[4, 3, 2, 2], (-1.0, 1.0));
    g.op("Conv", &["n2", &w2], "c2", conv(2, 1, 0));
    g.op("Relu", &["c2"], "a2", vec![]);
    let shape = g.ints("shape", &[-1, 16]);
    g.op("Reshape", &["a2", &shape], "flat", vec![]);
    let w3 = g.init("w3", &[5, 16], (-1.0, 1.0));
    let b3 = g.init("b3", &[5], (-1.0, 1.0));
    g.op(
        "Gemm",
        &["flat", &w3, &b3],
        "g",
        vec![("transB", Attr::Int(1))],
    );
    g.op("Dropout", &["g"], "logits", vec![]);
    let layers = agrees_with_onnxruntime(g, 5);
    let kinds: Vec<&str> = layers.iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "normalize",
            "conv",
            "relu",
            "batch_norm",
            "conv",
            "relu",
            "flatten",
            "linear"
        ]
    );
}

fn kind(layer: &LayerSpec) -> &'static str {
    match layer {
        LayerSpec::Normalize { .. } => "normalize",
        LayerSpec::Conv2d { .. } => "conv",
        LayerSpec::Linear { .. } => "linear",
        LayerSpec::Relu => "relu",
        LayerSpec::Flatten => "flatten",
        LayerSpec::AvgPool2d { .. } => "avg_pool",
        LayerSpec::BatchNorm2d { .. } => "batch_norm",
        LayerSpec::Residual { .. } => "residual",
    }
}

/// The reader's error for a graph `input [6] -> build -> Gemm [6 -> 2] -> logits`.
fn refused(input: &[usize], build: impl FnOnce(&mut Case) -> String) -> String {
    let mut g = Case::new(input);
    let last = build(&mut g);
    let w = g.init("w_out", &[2, input.iter().product()], (-1.0, 1.0));
    g.op(
        "Flatten",
        &[&last],
        "flat_out",
        vec![("axis", Attr::Int(1))],
    );
    g.op(
        "Gemm",
        &["flat_out", &w],
        "logits",
        vec![("transB", Attr::Int(1))],
    );
    match read(&g.bytes(2)) {
        Ok(_) => panic!("the graph was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_unsupported_operator_is_named_with_its_node() {
    let e = refused(&[6], |g| {
        g.op("Sigmoid", &["input"], "s", vec![]);
        "s".into()
    });
    assert!(
        e.contains("case.onnx: node sigmoid1 (Sigmoid): not supported"),
        "{e}"
    );
    assert!(e.contains("Gemm, MatMul"), "{e}");
}

#[test]
fn branches_are_refused() {
    let e = refused(&[6], |g| {
        g.op("Relu", &["input"], "r", vec![]);
        g.op("Add", &["r", "input"], "sum", vec![]);
        "sum".into()
    });
    assert!(e.contains("node add1 (Add)"), "{e}");
    assert!(e.contains("not branches"), "{e}");
}

#[test]
fn a_constant_that_varies_over_positions_is_refused() {
    let e = refused(&[2, 3, 3], |g| {
        let c = g.init("c", &[1, 2, 3, 3], (0.0, 1.0));
        g.op("Add", &["input", &c], "shifted", vec![]);
        "shifted".into()
    });
    assert!(
        e.contains("node add1 (Add): a constant of shape [1, 2, 3, 3]"),
        "{e}"
    );
}

#[test]
fn a_constant_between_layers_that_cannot_hold_it_is_refused() {
    let e = refused(&[2, 3, 3], |g| {
        g.op("Relu", &["input"], "r", vec![]);
        let c = g.init("c", &[1], (1.0, 2.0));
        g.op("Div", &["r", &c], "scaled", vec![]);
        "scaled".into()
    });
    assert!(e.contains("node div1 (Div)"), "{e}");
    assert!(e.contains("cannot hold it"), "{e}");
}

#[test]
fn dilation_and_flatten_axes_are_refused() {
    let e = refused(&[2, 5, 5], |g| {
        let w = g.init("w", &[2, 2, 3, 3], (-1.0, 1.0));
        g.op(
            "Conv",
            &["input", &w],
            "c",
            vec![
                ("kernel_shape", Attr::Ints(vec![3, 3])),
                ("dilations", Attr::Ints(vec![2, 2])),
                ("pads", Attr::Ints(vec![2, 2, 2, 2])),
            ],
        );
        "c".into()
    });
    assert!(e.contains("node conv2d1 (Conv2d)"), "{e}");
    assert!(e.contains("dilation [2, 2]"), "{e}");
    let e = refused(&[2, 3, 3], |g| {
        g.op("Flatten", &["input"], "f", vec![("axis", Attr::Int(2))]);
        "f".into()
    });
    assert!(e.contains("axis 2; only axis 1"), "{e}");
}

#[test]
fn not_an_onnx_file_says_so() {
    let e = read(b"not a protobuf at all").unwrap_err().to_string();
    assert!(e.starts_with("case.onnx: not a valid ONNX model"), "{e}");
}
