//! A run's set-up: its data, its directory, and the model, optimiser and state it starts from
//! (fresh, or resumed from the last checkpoint).

use burn::optim::{
    AdamConfig, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig, momentum::MomentumConfig,
};
use burn::tensor::Device;
use mixtrain_data::{ImageSet, Split};
use mixtrain_nn::{Architecture, Network, write_atomic};

use crate::checkpoint::{self, State};
use crate::eval::to_device;
use crate::memory;
use crate::run::RunOptions;
use crate::{OptimizerConfig, OptimizerKind, TrainConfig, TrainError};

/// The images of a run: the training split less the validation hold-out, and the test split
/// (`None` in a validation-only run: never loaded).
pub(crate) struct Data {
    /// The dataset trained on (the sample when the full set is not available).
    pub dataset: String,
    pub train: ImageSet,
    pub val: ImageSet,
    pub test: Option<ImageSet>,
}

impl Data {
    /// Loads the configured dataset and checks it against the architecture.
    pub fn load(
        config: &TrainConfig,
        opts: &RunOptions,
        arch: &Architecture,
    ) -> Result<Self, TrainError> {
        let dataset = resolve_dataset(config, opts)?;
        let full_train = load_split(&dataset, opts, Split::Train, config.train_limit)?;
        let (train, val) = full_train.split_off_random(config.val_size, config.seed);
        let test = match opts.validation_only {
            true => None,
            false => Some(load_split(&dataset, opts, Split::Test, config.test_limit)?),
        };
        let err = |message: String| TrainError::Config {
            origin: "run".into(),
            message,
        };
        if train.is_empty() {
            return Err(err(format!(
                "no training images left: {} loaded, val_size {} held out",
                full_train.len(),
                config.val_size
            )));
        }
        if train.shape() != arch.input {
            return Err(err(format!(
                "model {} takes inputs {:?}, dataset {} has {:?}",
                arch.name,
                arch.input,
                dataset,
                train.shape()
            )));
        }
        Ok(Self {
            dataset,
            train,
            val,
            test,
        })
    }

    /// The run's bounds must fit before anything is written: a few training images at the
    /// target eps count the unstable ReLUs of the initial weights.
    pub fn check_memory(
        &self,
        config: &TrainConfig,
        arch: &Architecture,
        device: &Device,
    ) -> Result<(), TrainError> {
        let probe = self
            .train
            .select(&(0..self.train.len().min(8)).collect::<Vec<_>>());
        let Some(batch) = probe.batches(probe.len(), None).next() else {
            return Ok(());
        };
        let (x, _) = to_device(batch, device);
        memory::check(config, &Network::init(arch, config.seed, device)?, x)
    }
}

/// The model, optimiser and state a run starts from: its last checkpoint when resuming (a
/// fresh start when it has none yet), else a seeded initialisation.
pub(crate) fn start(
    config: &TrainConfig,
    opts: &RunOptions,
    arch: &Architecture,
    device: &Device,
) -> Result<(Network, ModuleOptimizer, State), TrainError> {
    if opts.resume
        && let Some(c) =
            checkpoint::load_latest(&opts.out, arch, optimizer(&config.optimizer), device)?
    {
        return Ok((c.model, c.optim, c.state));
    }
    let state = State {
        epoch: 0,
        step: 0,
        dmt: None,
    };
    Ok((
        Network::init_with(arch, config.seed, config.init, device)?,
        optimizer(&config.optimizer),
        state,
    ))
}

fn optimizer(config: &OptimizerConfig) -> ModuleOptimizer {
    let decay =
        (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32));
    match config.kind {
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).init(),
        OptimizerKind::Sgd => SgdConfig::new()
            .with_weight_decay(decay)
            .with_momentum((config.momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(config.momentum)
                    .with_dampening(0.0)
            }))
            .init(),
    }
}

/// Prepares the run directory: a new run needs an empty or absent one; a resumed run needs the
/// saved config, which may differ from `config` only in `epochs`.
pub(crate) fn prepare_dir(config: &TrainConfig, opts: &RunOptions) -> Result<(), TrainError> {
    let config_path = opts.out.join("config.toml");
    let dir_err = |message: String| TrainError::RunDir {
        dir: opts.out.clone(),
        message,
    };
    if opts.resume {
        let saved = TrainConfig::from_file(&config_path)?;
        let mut extended = saved.clone();
        extended.epochs = config.epochs;
        if &extended != config {
            return Err(dir_err(format!(
                "resuming needs the saved configuration (only `epochs` may change); saved:\n{}\ngiven:\n{}",
                saved.to_toml(),
                config.to_toml()
            )));
        }
    } else if config_path.exists() {
        return Err(dir_err(
            "already holds a run: pass --resume to continue it, or choose another --out".into(),
        ));
    }
    std::fs::create_dir_all(&opts.out).map_err(TrainError::io(&opts.out))?;
    write_atomic(&config_path, config.to_toml().as_bytes()).map_err(TrainError::io(&config_path))
}

/// The test split of the dataset `config` trains on (after `test_limit`), and that dataset's
/// name: what a run's evaluation reads, without the training split.
pub(crate) fn test_split(
    config: &TrainConfig,
    opts: &RunOptions,
) -> Result<(String, ImageSet), TrainError> {
    let dataset = resolve_dataset(config, opts)?;
    let test = load_split(&dataset, opts, Split::Test, config.test_limit)?;
    Ok((dataset, test))
}

/// The dataset to train on: the configured one, or its sample when the full one is neither in
/// the data directory nor obtainable (no network, a mirror holding only the sample). The
/// fallback is announced loudly: figures on 4,000 images are not CIFAR-10 figures.
fn resolve_dataset(config: &TrainConfig, opts: &RunOptions) -> Result<String, TrainError> {
    let full = mixtrain_data::ensure(&config.dataset, &opts.data, opts.mirror.as_deref());
    match (full, mixtrain_data::sample_of(&config.dataset)) {
        (Ok(_), _) => Ok(config.dataset.clone()),
        (Err(e), Some(sample)) => {
            if mixtrain_data::ensure(sample, &opts.data, opts.mirror.as_deref()).is_err() {
                return Err(e.into());
            }
            eprintln!(
                "WARNING: {} is not available ({e}); training on {sample} instead. \
                 Its figures are NOT comparable with full-{} results.",
                config.dataset, config.dataset
            );
            Ok(sample.to_string())
        }
        (Err(e), None) => Err(e.into()),
    }
}

fn load_split(
    dataset: &str,
    opts: &RunOptions,
    split: Split,
    limit: Option<usize>,
) -> Result<ImageSet, TrainError> {
    let manifest = mixtrain_data::ensure(dataset, &opts.data, opts.mirror.as_deref())?;
    let set = manifest.load(split, &opts.data)?;
    Ok(match limit {
        Some(n) => set.take(n),
        None => set,
    })
}
