//! Verifies the first MNIST test images with every domain of the bounds engine.
//!
//! ```text
//! cargo run --release -p mixtrain-bounds --example verify -- [WEIGHTS] [EPS] [N]
//! ```
//!
//! `WEIGHTS` is a PyTorch-layout safetensors file of `mnist_small`, such as the MixTrain
//! authors' `../shared/reference/mnist_small_mixtrain_eps0.3.safetensors`; without one a seeded,
//! untrained network is bounded instead (sound bounds, but nothing verified). `EPS` is the L_inf
//! radius in pixel units (default 0.1), `N` the number of test images (default 100). MNIST is
//! read from `MIXTRAIN_DATA` (default `datasets/cache`), copied there from the offline mirror
//! `MIXTRAIN_MIRROR` when missing.

use std::time::Instant;

use burn::tensor::{Int, Tensor, TensorData};
use mixtrain_bounds::{DomainKind, InputDomain, InputSet};
use mixtrain_data::{DataDir, Split};
use mixtrain_nn::{Backend, Network, zoo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let weights = args.next();
    let eps: f32 = args.next().map_or(Ok(0.1), |s| s.parse())?;
    let n: usize = args.next().map_or(Ok(100), |s| s.parse())?;

    let device = Backend::Flex.device(None)?;
    let arch = zoo::architecture("mnist_small")?;
    let net = match &weights {
        Some(path) => Network::load_weights(&arch, path.as_ref(), &device)?,
        None => Network::init(&arch, 0, &device)?,
    };

    let dir = DataDir::from_env();
    mixtrain_data::ensure("mnist", &dir, DataDir::mirror_from_env().as_deref())?;
    let test = mixtrain_data::load("mnist", Split::Test, &dir)?.take(n);
    let batch = test
        .batches(test.len(), None)
        .next()
        .ok_or("no test images")?;
    let n = batch.len();
    let dims = batch.dims();
    let x = Tensor::<4>::from_data(TensorData::new(batch.pixels, dims), &device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(batch.labels, [n]), &device);

    println!(
        "mnist_small ({}), {n} test images, eps {eps}",
        weights.as_deref().unwrap_or("seeded, untrained")
    );
    let set = InputSet::linf(x, eps, InputDomain::Unit)?;
    for domain in DomainKind::ALL {
        let start = Instant::now();
        let margins = domain.margins(&net, &set, labels.clone())?;
        let verified: i64 = margins.verified().int().sum().into_scalar();
        println!(
            "{:>14}: {verified:>4} / {n} verified, {:.2} ms per image",
            domain.name(),
            start.elapsed().as_secs_f64() * 1e3 / n as f64
        );
    }
    Ok(())
}
