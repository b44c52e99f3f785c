//! `mixtrain cost`: the estimated and measured time and memory of bounding points.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use mixtrain_bounds::DomainKind;
use mixtrain_nn::{Device, Network, zoo};
use mixtrain_train::{CostOptions, TrainError};

use crate::parse_backend;

#[derive(Args)]
pub(crate) struct CostArgs {
    /// A model of the zoo.
    #[arg(long)]
    model: String,
    /// Weights in PyTorch layout (safetensors or a legacy `.pth`); a seeded initialisation
    /// when absent.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// interval, symbolic, crown, crown-symbolic, alpha-crown or best.
    #[arg(long)]
    domain: DomainKind,
    #[arg(long)]
    eps: f32,
    /// Points bounded at once: seeded uniform-noise images (no dataset needed).
    #[arg(long, default_value_t = 1)]
    points: usize,
    /// Time a training step (bounds, then the backward pass of their mean) instead of
    /// verification.
    #[arg(long)]
    train: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also estimate with the unstable ReLUs the symbolic domain meets (bounds the points once
    /// more after the measurement).
    #[arg(long)]
    symbolic_probe: bool,
    #[arg(long, default_value = "flex")]
    backend: String,
    #[arg(long)]
    device: Option<usize>,
}

pub(crate) fn cost(args: CostArgs) -> Result<()> {
    let (_, device) = parse_backend(&args.backend, args.device)?;
    let arch = zoo::architecture(&args.model)?;
    let load = |device: &Device| -> Result<Network, TrainError> {
        Ok(match &args.weights {
            Some(w) => Network::load_weights(&arch, w, device)?,
            None => Network::init(&arch, args.seed, device)?,
        })
    };
    let options = CostOptions {
        domain: args.domain,
        eps: args.eps,
        points: args.points,
        train: args.train,
        seed: args.seed,
        symbolic_probe: args.symbolic_probe,
    };
    let report = mixtrain_train::measure_cost(load, options, &device)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
