//! The per-operation profile of a training step on the CPU (flex), at the shapes of
//! `mnist_small` and `cifar_small` with a batch of 50: each convolution and linear layer's
//! forward pass, input gradient and weight gradient, one at a time, in milliseconds (median of
//! `REPS` after a warm-up) and GFLOP/s, against the machine's matrix product rate (a large
//! square product in the same run), and beside it our convolution (`mixtrain-kernels`) on the
//! same tensors. Given the JSON that `bench/ops.py` writes for PyTorch, it
//! adds PyTorch's time for the same operation and the ratio; run both on the same idle
//! machine, one after the other, with the same thread count:
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo run --release -p mixtrain-nn --example op_profile -- [torch.json]
//! ```
//!
//! The backward passes are burn's `ModuleOps` on the flex primitives, as `Autodiff` calls them.

use std::collections::HashMap;

use burn::backend::Flex;
use burn::backend::ops::ModuleOps;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use mixtrain_kernels::im2col::{self, Geometry};
use mixtrain_nn::zoo;

#[path = "support/timing.rs"]
mod timing;

use timing::{median_ms, rand};

const BATCH: usize = 50;

fn flex<const D: usize>(t: &Tensor<D>) -> burn::backend::flex::FlexTensor {
    t.clone()
        .try_into_primitive::<Flex>()
        .expect("a flex tensor")
}

/// A layer of the profile: a convolution `(in, out, kernel, stride, padding, side)` or a
/// linear layer `(in, out)`.
enum Op {
    Conv([usize; 6]),
    Linear([usize; 2]),
}

/// The layers of `model` with their input shapes. The total of their multiply-adds is checked
/// against the zoo's, so that a change of the zoo cannot leave the profile on stale shapes.
fn layers(model: &str) -> Vec<(&'static str, Op)> {
    let (c, side, flat) = match model {
        "mnist_small" => (1, 28, 1568),
        "cifar_small" => (3, 32, 2048),
        _ => unreachable!("the profile's models"),
    };
    let ops = vec![
        ("conv1", Op::Conv([c, 16, 4, 2, 1, side])),
        ("conv2", Op::Conv([16, 32, 4, 2, 1, side / 2])),
        ("fc1", Op::Linear([flat, 100])),
        ("fc2", Op::Linear([100, 10])),
    ];
    let macs: usize = ops.iter().map(|(_, op)| op.macs()).sum();
    let zoo_macs = zoo::architecture(model)
        .and_then(|a| a.macs())
        .expect("a zoo model");
    assert_eq!(
        macs as u64, zoo_macs,
        "{model}: the profile's shapes are stale"
    );
    ops
}

impl Op {
    /// Multiply-adds of one image's forward pass (each backward pass has as many).
    fn macs(&self) -> usize {
        match *self {
            Op::Conv([cin, cout, k, s, p, side]) => {
                let o = (side + 2 * p - k) / s + 1;
                cout * o * o * cin * k * k
            }
            Op::Linear([i, o]) => i * o,
        }
    }

    /// `(pass, ms of burn-flex, ms of ours)` for the forward pass, the input gradient and the
    /// weight gradient; ours is `mixtrain-kernels`' convolution (linear layers have none).
    fn time(&self, device: &Device) -> [(&'static str, f64, Option<f64>); 3] {
        match *self {
            Op::Conv([cin, cout, k, s, p, side]) => {
                let opts = ConvOptions::new([s; 2], [p; 2], [1, 1], 1);
                let o = (side + 2 * p - k) / s + 1;
                let x = rand([BATCH, cin, side, side], device);
                let w = rand([cout, cin, k, k], device);
                let b = rand([cout], device);
                let g = rand([BATCH, cout, o, o], device);
                let (xf, wf, gf) = (flex(&x), flex(&w), flex(&g));
                let geometry = Geometry {
                    n: BATCH,
                    c_in: cin,
                    input: [side; 2],
                    c_out: cout,
                    kernel: [k; 2],
                    stride: [s; 2],
                    padding: [p; 2],
                    output: [o; 2],
                };
                let [xs, ws, gs] = [&x, &w, &g].map(|t| -> Vec<f32> {
                    t.clone().into_data().try_to_vec().expect("f32 values")
                });
                let mut dx = vec![0.0; xs.len()];
                let (mut dw, mut db) = (vec![0.0; ws.len()], vec![0.0; cout]);
                [
                    (
                        "forward",
                        median_ms(device, || {
                            conv2d(x.clone(), w.clone(), Some(b.clone()), opts.clone());
                        }),
                        Some(median_ms(device, || {
                            mixtrain_kernels::conv2d(
                                x.clone(),
                                w.clone(),
                                Some(b.clone()),
                                opts.clone(),
                            );
                        })),
                    ),
                    (
                        "input grad",
                        median_ms(device, || {
                            Flex::conv2d_x_backward(
                                xf.clone(),
                                wf.clone(),
                                gf.clone(),
                                opts.clone(),
                            );
                        }),
                        Some(median_ms(device, || {
                            im2col::input_grad(&geometry, &ws, &gs, &mut dx)
                        })),
                    ),
                    (
                        "weight grad",
                        median_ms(device, || {
                            Flex::conv2d_weight_backward(
                                xf.clone(),
                                wf.clone(),
                                gf.clone(),
                                opts.clone(),
                            );
                        }),
                        Some(median_ms(device, || {
                            im2col::weight_grad(&geometry, &xs, &gs, &mut dw, Some(&mut db))
                        })),
                    ),
                ]
            }
            Op::Linear([i, o]) => {
                let x = rand([BATCH, i], device);
                let w = rand([i, o], device);
                let b = rand([o], device);
                let g = rand([BATCH, o], device);
                [
                    (
                        "forward",
                        median_ms(device, || {
                            let _ = x.clone().matmul(w.clone()) + b.clone().unsqueeze_dim(0);
                        }),
                        None,
                    ),
                    (
                        "input grad",
                        median_ms(device, || {
                            g.clone().matmul(w.clone().transpose());
                        }),
                        None,
                    ),
                    (
                        "weight grad",
                        median_ms(device, || {
                            x.clone().transpose().matmul(g.clone());
                        }),
                        None,
                    ),
                ]
            }
        }
    }
}

/// PyTorch's milliseconds per `model/layer/pass`, from `bench/ops.py`'s JSON.
fn torch_times(path: &str) -> HashMap<String, f64> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// rayon's thread count: `RAYON_NUM_THREADS`, else every core.
fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |t| t.get()))
}

fn main() {
    let device = Device::flex();
    let torch = std::env::args().nth(1).map(|p| torch_times(&p));
    let n = 1024;
    let (a, b) = (rand([n, n], &device), rand([n, n], &device));
    let roof_ms = median_ms(&device, || {
        a.clone().matmul(b.clone());
    });
    let roof = 2.0 * (n * n * n) as f64 / roof_ms / 1e6;
    println!(
        "matrix product {n}x{n}x{n}: {roof_ms:.2} ms, {roof:.1} GFLOP/s (the roof below); batch {BATCH}, {} threads\n",
        threads()
    );
    println!(
        "| model | layer | pass | burn-flex ms | GFLOP/s | of roof | ours ms | ours / flex | PyTorch ms | flex / PyTorch | ours / PyTorch |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for model in ["mnist_small", "cifar_small"] {
        for (layer, op) in layers(model) {
            let gflop = 2.0 * (op.macs() * BATCH) as f64 / 1e9;
            for (pass, ms, ours) in op.time(&device) {
                let rate = gflop / ms * 1e3;
                let key = format!("{model}/{layer}/{pass}");
                let peer = torch.as_ref().map(|t| {
                    t.get(&key)
                        .copied()
                        .unwrap_or_else(|| panic!("{key} missing from PyTorch's JSON"))
                });
                let fmt = |v: Option<f64>, digits: usize| {
                    v.map_or("-".into(), |v| format!("{v:.digits$}"))
                };
                println!(
                    "| {model} | {layer} | {pass} | {ms:.3} | {rate:.1} | {:.0}% | {} | {} | {} | {} | {} |",
                    100.0 * rate / roof,
                    fmt(ours, 3),
                    fmt(ours.map(|o| o / ms), 2),
                    fmt(peer, 3),
                    fmt(peer.map(|p| ms / p), 2),
                    fmt(ours.zip(peer).map(|(o, p)| o / p), 2),
                );
            }
        }
    }
}
