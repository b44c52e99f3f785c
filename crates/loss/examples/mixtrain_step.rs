//! MixTrain's loss, step by step: the natural cross-entropy of a batch plus the robust
//! cross-entropy of symbolic-interval bounds on `k` points drawn from it (stochastic robust
//! approximation), mixed by dynamic mixed training's alpha, and minimised with Adam.
//!
//! ```text
//! cargo run --release -p mixtrain-loss --example mixtrain_step -- [STEPS]
//! ```
//!
//! Trains `mnist_small` from a seeded initialisation for `STEPS` batches of 50 MNIST training
//! images (default 20) at eps 0.1, k = 5, alpha 0.5, and prints both loss terms as they fall.
//! MNIST is read from `MIXTRAIN_DATA` (default `datasets/cache`), copied there from the
//! offline mirror `MIXTRAIN_MIRROR` when missing.

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Int, Tensor, TensorData};
use mixtrain_bounds::{DomainKind, InputDomain, InputSet};
use mixtrain_data::{DataDir, Split};
use mixtrain_loss::{Dmt, DmtConfig, Policy, Sra, cross_entropy, robust_cross_entropy};
use mixtrain_nn::{Backend, Network, zoo};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: usize = std::env::args().nth(1).map_or(Ok(20), |s| s.parse())?;
    let (eps, batch_size) = (0.1f32, 50);

    let device = Backend::Flex.device(None)?.autodiff();
    let mut net = Network::init(&zoo::architecture("mnist_small")?, 1, &device)?;
    let mut optim = AdamConfig::new().init();
    let sra = Sra {
        k: 5,
        replacement: true,
    };
    let dmt_config = DmtConfig {
        alpha: 0.5,
        ..DmtConfig::default()
    };
    let dmt = Dmt::new(Policy::Fixed, &dmt_config);
    let mut rng = StdRng::seed_from_u64(1);

    let dir = DataDir::from_env();
    mixtrain_data::ensure("mnist", &dir, DataDir::mirror_from_env().as_deref())?;
    let train = mixtrain_data::load("mnist", Split::Train, &dir)?.take(steps * batch_size);

    for (step, batch) in train.batches(batch_size, Some(1)).enumerate() {
        let n = batch.len();
        let dims = batch.dims();
        let x = Tensor::<4>::from_data(TensorData::new(batch.pixels, dims), &device);
        let y = Tensor::<1, Int>::from_data(TensorData::new(batch.labels, [n]), &device);

        let natural = cross_entropy(net.forward(x.clone()), y.clone());
        // the sound bound on k of the n points only
        let picked: Vec<i64> = sra.sample(n, &mut rng).iter().map(|&i| i as i64).collect();
        let k = picked.len();
        let picked = Tensor::<1, Int>::from_data(TensorData::new(picked, [k]), &device);
        let set = InputSet::linf(x.select(0, picked.clone()), eps, InputDomain::Unit)?;
        let margins = DomainKind::Symbolic.margins(&net, &set, y.select(0, picked))?;
        let robust = robust_cross_entropy(&margins);

        let mix = dmt.mix(&dmt_config, 0, &mut rng);
        let loss = natural.clone() * mix.natural + robust.clone() * mix.robust;
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(1e-3, net, grads);

        if step % 5 == 0 || step + 1 == steps {
            let natural: f32 = natural.into_scalar();
            let robust: f32 = robust.into_scalar();
            println!("step {step:>3}: natural CE {natural:.3}, robust CE (k = {k}) {robust:.3}");
        }
    }
    Ok(())
}
