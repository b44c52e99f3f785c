//! Chooses alpha-CROWN's defaults: verified points and time per image over a grid of settings,
//! on MNIST's validation split (the training split's held-out points, as `mixtrain train`
//! draws them with its default seed), never the test set.
//!
//! ```text
//! cargo run --release -p mixtrain-bounds --example alpha_tuning -- WEIGHTS [EPS] [N] [DOMAIN] \
//!     [INTERMEDIATE:ITERATIONS:STEP ...]
//! ```
//!
//! `WEIGHTS` is a PyTorch-layout safetensors file of `mnist_small`, such as the MixTrain
//! authors' `../shared/reference/mnist_small_mixtrain_eps0.3.safetensors`. `EPS` is the L_inf
//! radius in pixel units (default 0.3), `N` the number of validation images (default 200),
//! `DOMAIN` the input domain the box is clipped to (`image`, the default, or `unit`). The
//! settings tried are the grid below unless given, e.g. `optimised:30:0.5`.

use std::time::Instant;

use burn::tensor::{Int, Tensor, TensorData};
use mixtrain_bounds::{
    AlphaCrown, DomainKind, InputDomain, InputSet, Intermediate, Margins, Verifier,
};
use mixtrain_data::{DataDir, Split};
use mixtrain_nn::{Backend, Network, zoo};

/// `mixtrain train`'s defaults: the validation split's size and seed.
const VAL_SIZE: usize = 1000;
const SEED: u64 = 0;

type Error = Box<dyn std::error::Error>;
/// One way of bounding a batch's margins.
type Bound<'a> = dyn Fn(&InputSet, Tensor<1, Int>) -> Result<Margins, Error> + 'a;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let weights = args
        .next()
        .ok_or("usage: alpha_tuning WEIGHTS [EPS] [N] [DOMAIN]")?;
    let eps: f32 = args.next().map_or(Ok(0.3), |s| s.parse())?;
    let n: usize = args.next().map_or(Ok(200), |s| s.parse())?;
    let input_domain = match args.next().as_deref() {
        None | Some("image") => InputDomain::Image,
        Some("unit") => InputDomain::Unit,
        Some(other) => return Err(format!("unknown input domain {other}").into()),
    };
    let mut settings = args.map(|s| setting(&s)).collect::<Result<Vec<_>, _>>()?;
    if settings.is_empty() {
        for intermediate in [
            Intermediate::Forward,
            Intermediate::Crown,
            Intermediate::Optimised,
        ] {
            for (iterations, step) in [(0, 0.0), (10, 0.5), (20, 0.5), (20, 0.1)] {
                settings.push(AlphaCrown {
                    iterations,
                    step,
                    intermediate,
                    time_limit: None,
                });
            }
        }
    }

    let device = Backend::Flex.device(None)?;
    let arch = zoo::architecture("mnist_small")?;
    let net = Network::load_weights(&arch, weights.as_ref(), &device)?;
    let dir = DataDir::from_env();
    mixtrain_data::ensure("mnist", &dir, DataDir::mirror_from_env().as_deref())?;
    let (_, validation) =
        mixtrain_data::load("mnist", Split::Train, &dir)?.split_off_random(VAL_SIZE, SEED);
    let validation = validation.take(n);
    let sets = validation
        .batches(Verifier::new(DomainKind::AlphaCrown).batch_size, None)
        .map(|batch| {
            let len = batch.len();
            let x = Tensor::<4>::from_data(
                TensorData::new(batch.pixels.clone(), batch.dims()),
                &device,
            );
            let labels = Tensor::<1, Int>::from_data(TensorData::new(batch.labels, [len]), &device);
            Ok((InputSet::linf(x, eps, input_domain)?, labels))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let n = validation.len();
    println!(
        "{weights}: {n} validation images, eps {eps}, input domain {}",
        input_domain.name()
    );

    let run = |name: String, bound: &Bound| -> Result<(), Error> {
        let start = Instant::now();
        let mut verified = 0i64;
        for (set, labels) in &sets {
            verified += bound(set, labels.clone())?
                .verified()
                .int()
                .sum()
                .into_scalar::<i64>();
        }
        let ms = start.elapsed().as_secs_f64() * 1e3 / n as f64;
        println!("{name:>44}: {verified:>4} / {n} verified, {ms:8.2} ms per image");
        Ok(())
    };
    for domain in [DomainKind::Crown, DomainKind::CrownSymbolic] {
        run(domain.name().to_string(), &|set, labels| {
            Ok(domain.margins(&net, set, labels)?)
        })?;
    }
    for alpha in settings {
        let AlphaCrown {
            iterations,
            step,
            intermediate,
            ..
        } = alpha;
        run(
            format!(
                "alpha-crown: {iterations} iterations, step {step}, intermediate {intermediate}"
            ),
            &|set, labels| Ok(alpha.margins(&net, set, labels)?),
        )?;
    }
    Ok(())
}

/// `INTERMEDIATE:ITERATIONS:STEP`, e.g. `crown:10:0.5`.
fn setting(s: &str) -> Result<AlphaCrown, Error> {
    let parts: Vec<&str> = s.split(':').collect();
    let [intermediate, iterations, step] = parts[..] else {
        return Err(format!("setting {s:?}: expected INTERMEDIATE:ITERATIONS:STEP").into());
    };
    Ok(AlphaCrown {
        intermediate: intermediate.parse()?,
        iterations: iterations.parse()?,
        step: step.parse()?,
        time_limit: None,
    })
}
