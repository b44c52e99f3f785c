//! What bounding costs on a given network: the time and peak memory of one bounding pass (or
//! one training step of the robust loss) on seeded noise images, beside the memory estimate the
//! trainer's budget check uses. `mixtrain cost` prints it; the estimate is checked against the
//! measurement this way before a run is sized by it.

use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use mixtrain_bounds::{DomainKind, Footprint, InputDomain, InputSet, Probe, footprint};
use mixtrain_nn::Network;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::TrainError;
use crate::memory::resident;

/// What to measure.
#[derive(Clone, Copy, Debug)]
pub struct CostOptions {
    /// The domain bounded.
    pub domain: DomainKind,
    /// The L_inf radius, pixel units.
    pub eps: f32,
    /// Points bounded at once (seeded uniform-noise images); at least 1.
    pub points: usize,
    /// A training step (bounds, then the backward pass of their mean) instead of verification.
    pub train: bool,
    /// Seeds the noise images.
    pub seed: u64,
    /// Also estimate with the unstable ReLUs the symbolic domain meets (bounds the points once
    /// more, after the measurement).
    pub symbolic_probe: bool,
}

/// The measurement, as `mixtrain cost` prints it (JSON).
#[derive(Clone, Debug, Serialize)]
pub struct CostReport {
    /// The architecture's name.
    pub model: String,
    /// The domain's name.
    pub domain: &'static str,
    /// The radius, pixel units.
    pub eps: f32,
    /// Points bounded at once.
    pub points: usize,
    /// `train` or `verify`.
    pub mode: &'static str,
    /// Wall-clock seconds of the pass.
    pub seconds: f64,
    /// `seconds / points`.
    pub seconds_per_point: f64,
    /// Peak resident memory of the pass above the level before it, MiB (`None` off Linux).
    pub peak_mib: Option<f64>,
    /// `peak_mib / points`.
    pub peak_mib_per_point: Option<f64>,
    /// The budget check's estimate per point, unstable ReLUs counted by an interval pass.
    pub estimated_mib_per_point: f64,
    /// The same with the counts of a symbolic pass, when asked for.
    pub estimated_mib_per_point_symbolic_probe: Option<f64>,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// Measures `options` on the network `load` builds on a device (called once per device: the
/// given one, and its autodiff form for a training step).
pub fn measure_cost(
    load: impl Fn(&Device) -> Result<Network, TrainError>,
    options: CostOptions,
    device: &Device,
) -> Result<CostReport, TrainError> {
    if options.points == 0 {
        return Err(TrainError::Config {
            origin: "cost".into(),
            message: "points must be at least 1".into(),
        });
    }
    let net = load(device)?;
    let [c, h, w] = net.architecture().input;
    let n = options.points;
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let pixels: Vec<f32> = (0..n * c * h * w).map(|_| rng.random::<f32>()).collect();
    let x = Tensor::<4>::from_data(TensorData::new(pixels, [n, c, h, w]), device);
    let ball = |x: Tensor<4>| InputSet::linf(x, options.eps, InputDomain::Unit);
    let pick = |f: Footprint| {
        if options.train {
            f.train_bytes
        } else {
            f.eval_bytes
        }
    };
    let estimate = |net: &Network, probe| -> Result<u64, TrainError> {
        Ok(pick(footprint(
            net,
            &ball(x.clone())?,
            options.domain,
            probe,
        )?))
    };
    let by_interval = estimate(&net, Probe::Interval)?;
    let labels = |d: &Device| Tensor::<1, Int>::zeros([n], d);
    let before = resident(true);
    let start = Instant::now();
    if options.train {
        let ad = device.clone().autodiff();
        let net = load(&ad)?;
        let bounds = options
            .domain
            .margins(&net, &ball(x.clone().autodiff())?, labels(&ad))?;
        let _grads = bounds.lower.mean().neg().backward();
    } else {
        let bounds = options
            .domain
            .margins(&net, &ball(x.clone())?, labels(device))?;
        // reading the verdicts back waits for the whole pass
        let _ = bounds.verified().into_data();
    }
    let seconds = start.elapsed().as_secs_f64();
    let peak = resident(false)
        .zip(before)
        .map(|((_, hwm), (rss, _))| hwm.saturating_sub(rss));
    // after the measurement: the probe's freed pages would stay resident and hide the peak
    let by_symbolic = match options.symbolic_probe {
        true => Some(estimate(&load(device)?, Probe::Symbolic)?),
        false => None,
    };
    Ok(CostReport {
        model: net.architecture().name.clone(),
        domain: options.domain.name(),
        eps: options.eps,
        points: n,
        mode: if options.train { "train" } else { "verify" },
        seconds,
        seconds_per_point: seconds / n as f64,
        peak_mib: peak.map(mib),
        peak_mib_per_point: peak.map(|p| mib(p) / n as f64),
        estimated_mib_per_point: mib(by_interval),
        estimated_mib_per_point_symbolic_probe: by_symbolic.map(mib),
    })
}
