use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{
    AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig,
    momentum::MomentumConfig,
};
use burn::tensor::{Int, Tensor};
use mixtrain_data::{DataDir, ImageSet, Split};
use mixtrain_loss::{accuracy_count, cross_entropy};
use mixtrain_nn::{Network, write_atomic, zoo};
use serde::Serialize;

use crate::checkpoint::{self, State};
use crate::eval::{EvalResult, evaluate, to_device};
use crate::progress::{Progress, peak_memory_mib};
use crate::{Method, OptimizerConfig, OptimizerKind, TrainConfig, TrainError};

/// Where a run writes and reads.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The run directory.
    pub out: PathBuf,
    /// Continue the run in `out` from its last checkpoint.
    pub resume: bool,
    pub data: DataDir,
    /// An offline mirror to copy missing datasets from.
    pub mirror: Option<PathBuf>,
    /// No progress output.
    pub quiet: bool,
}

impl RunOptions {
    /// A fresh run into `out`, data from `MIXTRAIN_DATA` / `MIXTRAIN_MIRROR`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            resume: false,
            data: DataDir::from_env(),
            mirror: DataDir::mirror_from_env(),
            quiet: false,
        }
    }
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize)]
struct EpochMetrics {
    epoch: usize,
    method: &'static str,
    lr: f64,
    train_loss: f64,
    train_acc: f64,
    test_acc: f64,
    test_n: usize,
    /// Seconds of training (the optimisation steps) in this epoch.
    seconds: f64,
    eval_seconds: f64,
    images_per_second: f64,
}

/// The outcome of a run, also written to `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub model: String,
    pub dataset: String,
    pub method: &'static str,
    pub backend: String,
    pub epochs: usize,
    pub train_n: usize,
    pub test_n: usize,
    pub test_acc: f64,
    /// Training seconds of each epoch run by this process (resumed epochs are not repeated).
    pub epoch_seconds: Vec<f64>,
    pub peak_memory_mib: Option<f64>,
    pub weights: PathBuf,
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
fn prepare_dir(config: &TrainConfig, opts: &RunOptions) -> Result<(), TrainError> {
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

/// Keeps the lines of `metrics.jsonl` for epochs up to `epoch` (a run killed after logging an
/// epoch but before its checkpoint logs it again on resume).
fn truncate_metrics(path: &Path, epoch: usize) -> Result<(), TrainError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(TrainError::io(path)(e)),
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["epoch"].as_u64())
                .is_some_and(|e| e as usize <= epoch)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    write_atomic(path, kept.as_bytes()).map_err(TrainError::io(path))
}

fn load_split(
    config: &TrainConfig,
    opts: &RunOptions,
    split: Split,
    limit: Option<usize>,
) -> Result<ImageSet, TrainError> {
    let manifest = mixtrain_data::ensure(&config.dataset, &opts.data, opts.mirror.as_deref())?;
    let set = manifest.load(split, &opts.data)?;
    Ok(match limit {
        Some(n) => set.take(n),
        None => set,
    })
}

/// Trains a network as `config` says, writing the run directory `opts.out`.
pub fn run(config: &TrainConfig, opts: &RunOptions) -> Result<RunSummary, TrainError> {
    config.validate("run")?;
    let say = |line: String| {
        if !opts.quiet {
            eprintln!("{line}");
        }
    };
    let device = config.backend.device(config.device_index)?;
    let ad = device.clone().autodiff();
    let arch = zoo::architecture(&config.model)?;
    let train_set = load_split(config, opts, Split::Train, config.train_limit)?;
    let test_set = load_split(config, opts, Split::Test, config.test_limit)?;
    if train_set.shape() != arch.input {
        return Err(TrainError::Config {
            origin: "run".into(),
            message: format!(
                "model {} takes inputs {:?}, dataset {} has {:?}",
                arch.name,
                arch.input,
                config.dataset,
                train_set.shape()
            ),
        });
    }
    // Only now that data, model and device are known good does the run directory get written.
    prepare_dir(config, opts)?;

    let (mut model, mut optim, mut state) = match opts.resume {
        true => match checkpoint::load_latest(&opts.out, &arch, optimizer(&config.optimizer), &ad)?
        {
            Some(c) => (c.model, c.optim, c.state),
            None => (
                Network::init(&arch, config.seed, &ad)?,
                optimizer(&config.optimizer),
                State { epoch: 0, step: 0 },
            ),
        },
        false => (
            Network::init(&arch, config.seed, &ad)?,
            optimizer(&config.optimizer),
            State { epoch: 0, step: 0 },
        ),
    };
    let metrics_path = opts.out.join("metrics.jsonl");
    truncate_metrics(&metrics_path, state.epoch)?;
    say(format!(
        "training {} on {} ({} train / {} test images), method {}, backend {}, {} epochs{}",
        config.model,
        config.dataset,
        train_set.len(),
        test_set.len(),
        config.method.name(),
        config.backend,
        config.epochs,
        if state.epoch > 0 {
            format!(", resuming after epoch {}", state.epoch)
        } else {
            String::new()
        }
    ));

    let steps_per_epoch = train_set.len().div_ceil(config.batch_size);
    let total_steps = steps_per_epoch * config.epochs;
    let mut epoch_seconds = Vec::new();
    let mut last_eval: Option<EvalResult> = None;
    for epoch in state.epoch + 1..=config.epochs {
        let progress = Progress::new(epoch, config.epochs, steps_per_epoch, opts.quiet);
        let start = Instant::now();
        let mut loss_sum = 0.0f64;
        let mut correct: Option<Tensor<1, Int>> = None;
        let mut lr = 0.0;
        for (b, batch) in train_set
            .batches(
                config.batch_size,
                Some(config.seed.wrapping_add(epoch as u64)),
            )
            .enumerate()
        {
            lr = config.lr_schedule.lr(
                config.optimizer.lr,
                state.step,
                steps_per_epoch,
                total_steps,
            );
            let (x, y) = to_device(batch, &ad);
            let logits = model.forward(x);
            let loss = match config.method {
                Method::Natural => cross_entropy(logits.clone(), y.clone()),
            };
            // One read back per batch, so that a NaN or infinite loss is caught at the batch
            // that produced it (0.003 ms on the CPU backends; a GPU step waits for it too).
            let value: f32 = loss.clone().into_scalar();
            if !value.is_finite() {
                progress.finish();
                return Err(TrainError::NonFinite {
                    epoch,
                    batch: b + 1,
                    term: "natural cross-entropy",
                    value,
                });
            }
            loss_sum += f64::from(value);
            let hits = accuracy_count(logits.detach(), y);
            correct = Some(match correct {
                Some(c) => c + hits,
                None => hits,
            });
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            state.step += 1;
            progress.step(b + 1, loss_sum / (b + 1) as f64);
        }
        let correct: i64 = correct.map(|c| c.into_scalar()).unwrap_or(0);
        let seconds = start.elapsed().as_secs_f64();
        progress.finish();
        epoch_seconds.push(seconds);

        let eval = evaluate(&model.valid(), &test_set, config.eval_batch_size, &device);
        let metrics = EpochMetrics {
            epoch,
            method: config.method.name(),
            lr,
            train_loss: loss_sum / steps_per_epoch as f64,
            train_acc: correct as f64 / train_set.len() as f64,
            test_acc: eval.clean_acc,
            test_n: eval.n,
            seconds,
            eval_seconds: eval.seconds,
            images_per_second: train_set.len() as f64 / seconds,
        };
        say(format!(
            "epoch {epoch}/{}: loss {:.4}, train acc {:.2}%, test acc {:.2}%, {seconds:.2} s ({:.0} images/s)",
            config.epochs,
            metrics.train_loss,
            100.0 * metrics.train_acc,
            100.0 * metrics.test_acc,
            metrics.images_per_second
        ));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(TrainError::io(&metrics_path))?;
        writeln!(
            file,
            "{}",
            serde_json::to_string(&metrics).expect("metrics serialise")
        )
        .map_err(TrainError::io(&metrics_path))?;
        state.epoch = epoch;
        checkpoint::save(&opts.out, &model, &optim, &state, config.keep_checkpoints)?;
        last_eval = Some(eval);
    }

    let final_model = model.valid();
    let eval = match last_eval {
        Some(e) => e,
        None => evaluate(&final_model, &test_set, config.eval_batch_size, &device),
    };
    let weights = opts.out.join("model.safetensors");
    final_model.save_safetensors(&weights)?;
    let summary = RunSummary {
        model: config.model.clone(),
        dataset: config.dataset.clone(),
        method: config.method.name(),
        backend: config.backend.to_string(),
        epochs: config.epochs,
        train_n: train_set.len(),
        test_n: eval.n,
        test_acc: eval.clean_acc,
        epoch_seconds,
        peak_memory_mib: peak_memory_mib(),
        weights,
    };
    let summary_path = opts.out.join("summary.json");
    write_atomic(
        &summary_path,
        &serde_json::to_vec_pretty(&summary).expect("summary serialises"),
    )
    .map_err(TrainError::io(&summary_path))?;
    say(format!(
        "test accuracy {:.2}% on {} images; weights in {}",
        100.0 * summary.test_acc,
        summary.test_n,
        summary.weights.display()
    ));
    Ok(summary)
}
