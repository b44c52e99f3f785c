//! Brackets a network's robust accuracy from both sides: PGD finds the points it can break
//! (an upper bound on robust accuracy), the bounds engine proves the points it can (a lower
//! bound, the verified robust accuracy). Between the two lies what no tool here can decide.
//!
//! ```text
//! cargo run --release -p mixtrain-attack --example pgd_vs_verified -- [WEIGHTS] [EPS] [N]
//! ```
//!
//! `WEIGHTS` is a PyTorch-layout safetensors file of `mnist_small`, such as the MixTrain
//! authors' `../shared/reference/mnist_small_mixtrain_eps0.3.safetensors` (default: a seeded,
//! untrained network), `EPS` the L_inf radius in pixels (default 0.1), `N` the number of MNIST
//! test images (default 100), read from `MIXTRAIN_DATA` or copied from `MIXTRAIN_MIRROR`.

use burn::tensor::{Int, Tensor, TensorData};
use mixtrain_attack::{Attack, Pgd};
use mixtrain_bounds::{DomainKind, InputDomain, InputSet};
use mixtrain_data::{DataDir, Split};
use mixtrain_nn::{Backend, Network, zoo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let weights = args.next();
    let eps: f32 = args.next().map_or(Ok(0.1), |s| s.parse())?;
    let n: usize = args.next().map_or(Ok(100), |s| s.parse())?;

    let device = Backend::Flex.device(None)?;
    device.seed(0);
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
    let y = Tensor::<1, Int>::from_data(TensorData::new(batch.labels, [n]), &device);

    let correct: i64 = net
        .forward(x.clone())
        .argmax(1)
        .squeeze_dim::<1>(1)
        .equal(y.clone())
        .int()
        .sum()
        .into_scalar();
    // PGD-40 with step eps/4, one random start: the attack the paper reports
    let found = Pgd::new(eps, eps / 4.0, 40).run(&net, x.clone(), y.clone())?;
    let broken: i64 = found.broken.int().sum().into_scalar();
    let set = InputSet::linf(x, eps, InputDomain::Unit)?;
    let verified: i64 = DomainKind::Best
        .margins(&net, &set, y)?
        .verified()
        .int()
        .sum()
        .into_scalar();

    let pct = |k: i64| 100.0 * k as f64 / n as f64;
    println!("{n} MNIST test images, eps {eps}:");
    println!("  clean accuracy          {:5.1}%", pct(correct));
    println!(
        "  PGD-40 accuracy         {:5.1}%  (upper bound)",
        pct(n as i64 - broken)
    );
    println!(
        "  verified (best domain)  {:5.1}%  (lower bound)",
        pct(verified)
    );
    if verified > n as i64 - broken {
        return Err("a verified point was broken: the bounds would be unsound".into());
    }
    Ok(())
}
