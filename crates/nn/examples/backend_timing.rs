//! Times the hot paths of training on each CPU backend (release build):
//! `cargo run --release -p mixtrain-nn --example backend_timing`.
//!
//! Shapes are those of the paper's small models at batch 50: the two convolutions and the
//! first linear layer of `mnist_small`, the first convolution of `cifar_small`, and a whole
//! forward+backward pass of `mnist_small`. Each figure is the median of `REPS` runs after a
//! warm-up, in milliseconds. Run it on an idle machine.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use mixtrain_nn::{Backend, Network, zoo};

#[path = "support/timing.rs"]
mod timing;

use timing::{median_ms, rand};

/// `(name, ms forward, ms forward+backward)` per workload.
fn measure(backend: Backend) -> Vec<(&'static str, f64, f64)> {
    let device = backend
        .device(None)
        .expect("CPU backends are always compiled");
    let ad = device.clone().autodiff();
    let conv = |name, x: [usize; 4], w: [usize; 4], stride| {
        let opts = ConvOptions::new([stride; 2], [1, 1], [1, 1], 1);
        let (xv, wv) = (rand(x, &device), rand(w, &device));
        let fwd = median_ms(&device, || {
            let _ = conv2d(xv.clone(), wv.clone(), None, opts.clone()).into_data();
        });
        let (xa, wa) = (rand(x, &ad).require_grad(), rand(w, &ad).require_grad());
        let both = median_ms(&device, || {
            let grads = conv2d(xa.clone(), wa.clone(), None, opts.clone())
                .sum()
                .backward();
            let _ = xa.grad(&grads).map(|g| g.into_data());
        });
        (name, fwd, both)
    };
    let matmul = |name, a: [usize; 2], b: [usize; 2]| {
        let (av, bv) = (rand(a, &device), rand(b, &device));
        let fwd = median_ms(&device, || {
            let _ = av.clone().matmul(bv.clone()).into_data();
        });
        let (aa, ba) = (rand(a, &ad).require_grad(), rand(b, &ad).require_grad());
        let both = median_ms(&device, || {
            let grads = aa.clone().matmul(ba.clone()).sum().backward();
            let _ = aa.grad(&grads).map(|g| g.into_data());
        });
        (name, fwd, both)
    };
    let net_plain = Network::init(&zoo::architecture("mnist_small").unwrap(), 0, &device).unwrap();
    let net_ad = Network::init(&zoo::architecture("mnist_small").unwrap(), 0, &ad).unwrap();
    let (xp, xa) = (rand([50, 1, 28, 28], &device), rand([50, 1, 28, 28], &ad));
    let net = (
        "mnist_small fwd (+bwd), batch 50",
        median_ms(&device, || {
            let _ = net_plain.forward(xp.clone()).into_data();
        }),
        median_ms(&device, || {
            let _ = net_ad.forward(xa.clone()).sum().backward();
        }),
    );
    vec![
        conv(
            "conv 1->16 4x4 s2, 28x28, batch 50",
            [50, 1, 28, 28],
            [16, 1, 4, 4],
            2,
        ),
        conv(
            "conv 16->32 4x4 s2, 14x14, batch 50",
            [50, 16, 14, 14],
            [32, 16, 4, 4],
            2,
        ),
        conv(
            "conv 3->16 4x4 s2, 32x32, batch 50",
            [50, 3, 32, 32],
            [16, 3, 4, 4],
            2,
        ),
        matmul("matmul 50x1568 @ 1568x100", [50, 1568], [1568, 100]),
        matmul("matmul 50x4096 @ 4096x512", [50, 4096], [4096, 512]),
        net,
    ]
}

fn main() {
    let flex = measure(Backend::Flex);
    let ndarray = measure(Backend::Ndarray);
    println!(
        "| workload | flex fwd ms | ndarray fwd ms | flex fwd+bwd ms | ndarray fwd+bwd ms | ndarray/flex (fwd+bwd) |"
    );
    println!("|---|---|---|---|---|---|");
    for ((name, ff, fb), (_, nf, nb)) in flex.iter().zip(&ndarray) {
        println!(
            "| {name} | {ff:.3} | {nf:.3} | {fb:.3} | {nb:.3} | {:.1}x |",
            nb / fb
        );
    }
}
