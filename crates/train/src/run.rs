use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{
    AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig,
    momentum::MomentumConfig,
};
use burn::tensor::{Int, Tensor};
use mixtrain_attack::Pgd;
use mixtrain_bounds::InputDomain;
use mixtrain_data::{Augment, DataDir, ImageSet, Split};
use mixtrain_loss::{AlphaChange, Dmt, Mix, Policy, accuracy_count};
use mixtrain_nn::{Network, write_atomic, zoo};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use crate::checkpoint::{self, State};
use crate::eval::{EvalResult, attack, evaluate, to_device, verify};
use crate::memory;
use crate::progress::{Progress, peak_memory_mib};
use crate::step::{self, StepContext, Terms};
use crate::{Method, OptimizerConfig, OptimizerKind, TrainConfig, TrainError};

/// Where a run writes and reads.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The run directory.
    pub out: PathBuf,
    /// Continue the run in `out` from its last checkpoint.
    pub resume: bool,
    /// Where datasets are read from (and copied into from `mirror`).
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
    /// eps of the epoch's last step.
    eps: f64,
    policy: &'static str,
    /// `fixed` / `adaptive`: the robust loss's weight this epoch (natural: `1 - alpha`).
    #[serde(skip_serializing_if = "Option::is_none")]
    alpha: Option<f64>,
    /// `schedule`: the robust weight and the probability a batch gets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    robust_weight: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    robust_probability: Option<f64>,
    /// Mean of the mixed loss over the epoch's batches.
    loss: f64,
    /// Means over the batches that computed the term.
    #[serde(skip_serializing_if = "Option::is_none")]
    natural_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    robust_loss: Option<f64>,
    /// On the training inputs (adversarial ones for `pgd`).
    train_acc: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    val_acc: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    val_vra: Option<f64>,
    val_domain: &'static str,
    test_acc: f64,
    test_n: usize,
    /// Seconds of training (the optimisation steps) in this epoch.
    seconds: f64,
    val_seconds: f64,
    eval_seconds: f64,
    images_per_second: f64,
    /// Set when the DMT policy changed alpha after this epoch, with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    alpha_change: Option<AlphaChange>,
}

/// The end-of-run evaluation on the test set, also written to `final.json` and `report.md`.
#[derive(Clone, Debug, Serialize)]
pub struct FinalEval {
    /// Test images evaluated (after `test_limit`).
    pub n: usize,
    /// The radius verified and attacked: the config's target eps, in pixel units.
    pub eps: f64,
    /// Fraction of test images classified correctly.
    pub clean_acc: f64,
    /// VRA: fraction of test images correct and verified in `domain`.
    pub vra: f64,
    /// The name of the domain of `vra` (`final_eval.domain`).
    pub domain: &'static str,
    /// Fraction correct under PGD (`None` when `final_eval.pgd_steps` is 0): an upper bound on
    /// robust accuracy, to hold against `vra`.
    pub pgd_acc: Option<f64>,
    /// Steps of the PGD attack (one random start, early stop); 0: no attack.
    pub pgd_steps: usize,
    /// The attack's step size in pixel units (`final_eval.pgd_step_size`, default eps / 4).
    pub pgd_step_size: f64,
    /// Wall-clock seconds of the verification.
    pub verify_seconds: f64,
    /// Wall-clock seconds of the attack (0 without one).
    pub pgd_seconds: f64,
}

/// The outcome of a run, also written to `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The zoo model trained.
    pub model: String,
    /// The dataset trained on (`cifar10-sample` when `cifar10` fell back to it).
    pub dataset: String,
    /// The training method's name (`natural`, `pgd`, `ibp`, `crown-ibp`, `mixtrain`).
    pub method: &'static str,
    /// The backend's name (`flex`, `ndarray`, `wgpu`).
    pub backend: String,
    /// Epochs of the whole run, resumed ones included.
    pub epochs: usize,
    /// Training images trained on (after `train_limit` and the validation hold-out).
    pub train_n: usize,
    /// Validation images held out of the training split.
    pub val_n: usize,
    /// Test images evaluated (after `test_limit`).
    pub test_n: usize,
    /// Fraction of test images classified correctly by the final weights.
    pub test_acc: f64,
    /// The end-of-run evaluation on the test set.
    pub final_eval: FinalEval,
    /// Training seconds of each epoch run by this process (resumed epochs are not repeated).
    pub epoch_seconds: Vec<f64>,
    /// Peak resident host memory of the process in MiB (Linux `VmHWM`; `None` elsewhere). GPU
    /// memory is not included.
    pub peak_memory_mib: Option<f64>,
    /// The final weights: `model.safetensors` in the run directory.
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

/// The running sums of one epoch.
#[derive(Default)]
struct EpochSums {
    loss: f64,
    natural: (f64, usize),
    robust: (f64, usize),
}

/// Reads a loss term back and stops the run on a NaN or infinity, naming where.
fn checked(
    term: &Tensor<1>,
    epoch: usize,
    batch: usize,
    name: &'static str,
) -> Result<f64, TrainError> {
    let value: f32 = term.clone().into_scalar();
    if value.is_finite() {
        Ok(f64::from(value))
    } else {
        Err(TrainError::NonFinite {
            epoch,
            batch,
            term: name,
            value,
        })
    }
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
    let dataset = resolve_dataset(config, opts)?;
    let full_train = load_split(&dataset, opts, Split::Train, config.train_limit)?;
    let (train_set, val_set) = full_train.split_off_random(config.val_size, config.seed);
    let test_set = load_split(&dataset, opts, Split::Test, config.test_limit)?;
    if train_set.is_empty() {
        return Err(TrainError::Config {
            origin: "run".into(),
            message: format!(
                "no training images left: {} loaded, val_size {} held out",
                full_train.len(),
                config.val_size
            ),
        });
    }
    if train_set.shape() != arch.input {
        return Err(TrainError::Config {
            origin: "run".into(),
            message: format!(
                "model {} takes inputs {:?}, dataset {} has {:?}",
                arch.name,
                arch.input,
                dataset,
                train_set.shape()
            ),
        });
    }
    {
        // the bounds must fit before anything is written: a few training images at the target
        // eps count the unstable ReLUs of the initial weights
        let probe = train_set.select(&(0..train_set.len().min(8)).collect::<Vec<_>>());
        let batch = probe
            .batches(probe.len(), None)
            .next()
            .expect("a non-empty probe");
        let (x, _) = to_device(batch, &device);
        memory::check(config, &Network::init(&arch, config.seed, &device)?, x)?;
    }
    // Only now that data, model and device are known good does the run directory get written.
    prepare_dir(config, opts)?;

    let fresh = || State {
        epoch: 0,
        step: 0,
        dmt: None,
    };
    let (mut model, mut optim, mut state) = match opts.resume {
        true => match checkpoint::load_latest(&opts.out, &arch, optimizer(&config.optimizer), &ad)?
        {
            Some(c) => (c.model, c.optim, c.state),
            None => (
                Network::init(&arch, config.seed, &ad)?,
                optimizer(&config.optimizer),
                fresh(),
            ),
        },
        false => (
            Network::init(&arch, config.seed, &ad)?,
            optimizer(&config.optimizer),
            fresh(),
        ),
    };
    let policy = config.policy();
    let mut dmt = state
        .dmt
        .clone()
        .unwrap_or_else(|| Dmt::new(policy, &config.dmt));
    let metrics_path = opts.out.join("metrics.jsonl");
    truncate_metrics(&metrics_path, state.epoch)?;
    say(format!(
        "training {} on {} ({} train / {} validation / {} test images), method {}, eps {}, backend {} ({}), {} epochs{}",
        config.model,
        dataset,
        train_set.len(),
        val_set.len(),
        test_set.len(),
        config.method.name(),
        config.eps,
        config.backend,
        mixtrain_nn::adapter_name(&device),
        config.epochs,
        if state.epoch > 0 {
            format!(", resuming after epoch {}", state.epoch)
        } else {
            String::new()
        }
    ));

    let steps_per_epoch = train_set.len().div_ceil(config.batch_size);
    let total_steps = steps_per_epoch * config.epochs;
    let warmup = config.eps_schedule.warmup_epochs;
    let mut epoch_seconds = Vec::new();
    let mut last_eval: Option<EvalResult> = None;
    for epoch in state.epoch + 1..=config.epochs {
        let progress = Progress::new(epoch, config.epochs, steps_per_epoch, opts.quiet);
        let start = Instant::now();
        // seeded per epoch, so that a resumed run draws what the uninterrupted one would (the
        // host's draws here, the device's for PGD's random starts)
        let epoch_seed = config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = StdRng::seed_from_u64(epoch_seed);
        device.seed(epoch_seed);
        let epochs_robust = (epoch - 1).saturating_sub(warmup);
        let mut sums = EpochSums::default();
        let mut correct: Option<Tensor<1, Int>> = None;
        let (mut lr, mut eps) = (0.0, 0.0);
        for (b, mut batch) in train_set
            .batches(
                config.batch_size,
                Some(config.seed.wrapping_add(epoch as u64)),
            )
            .enumerate()
        {
            if config.augment {
                let seed = config.seed ^ ((epoch as u64) << 32 | b as u64);
                Augment::CIFAR.apply(&mut batch, seed);
            }
            lr = config.lr_schedule.lr(
                config.optimizer.lr,
                state.step,
                steps_per_epoch,
                total_steps,
            );
            eps = config
                .eps_schedule
                .eps(config.eps, state.step, steps_per_epoch);
            let mix = match config.method {
                Method::Natural | Method::Pgd => Mix {
                    natural: 1.0,
                    robust: 1.0,
                },
                _ if eps == 0.0 => Mix {
                    natural: 1.0,
                    robust: 0.0,
                },
                _ => dmt.mix(&config.dmt, epochs_robust, &mut rng),
            };
            let ctx = StepContext {
                config,
                eps,
                progress: config
                    .eps_schedule
                    .progress(config.eps, state.step, steps_per_epoch),
                mix,
            };
            let (x, y) = to_device(batch, &ad);
            if model.has_batch_norm() {
                model = model.refresh_statistics(x.clone());
            }
            let terms = step::terms(&model, x, y.clone(), &ctx, &mut rng)?;
            let fail = |e| {
                progress.finish();
                e
            };
            let mut loss: Option<Tensor<1>> = None;
            if let Some(natural) = terms.natural {
                let v = checked(&natural, epoch, b + 1, Terms::NATURAL).map_err(fail)?;
                sums.natural.0 += v;
                sums.natural.1 += 1;
                sums.loss += v * mix.natural;
                if mix.natural > 0.0 {
                    loss = Some(natural * mix.natural);
                }
            }
            if let Some(robust) = terms.robust {
                let name = Terms::robust_name(config.method);
                let v = checked(&robust, epoch, b + 1, name).map_err(fail)?;
                sums.robust.0 += v;
                sums.robust.1 += 1;
                sums.loss += v * mix.robust;
                let weighted = robust * mix.robust;
                loss = Some(match loss {
                    Some(l) => l + weighted,
                    None => weighted,
                });
            }
            // finite terms with finite weights: the mix is finite, and its value is known
            // without a third read back
            let loss = loss.expect("every method has a natural or a robust term");
            let hits = accuracy_count(terms.logits.detach(), y);
            correct = Some(match correct {
                Some(c) => c + hits,
                None => hits,
            });
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            state.step += 1;
            progress.step(b + 1, sums.loss / (b + 1) as f64);
        }
        let correct: i64 = correct.map(|c| c.into_scalar()).unwrap_or(0);
        let seconds = start.elapsed().as_secs_f64();
        progress.finish();
        epoch_seconds.push(seconds);

        let valid = model.valid();
        let val_start = Instant::now();
        let (val_acc, val_vra) = if val_set.is_empty() {
            (None, None)
        } else {
            let clean = evaluate(&valid, &val_set, config.eval_batch_size, &device);
            let vra = verify(
                &valid,
                &val_set,
                config.eps,
                config.val_domain(),
                InputDomain::Unit,
                config.final_eval.bound_batch_size,
                &device,
            )?;
            (Some(clean.clean_acc), Some(vra.verified_acc))
        };
        let val_seconds = val_start.elapsed().as_secs_f64();
        let alpha_before = dmt.alpha;
        let alpha_change = match (val_acc, val_vra, config.method) {
            (_, _, Method::Natural | Method::Pgd) => None,
            (Some(acc), Some(vra), _) if epoch > warmup => dmt.after_epoch(&config.dmt, acc, vra),
            _ => None,
        };
        if let Some(change) = &alpha_change {
            say(format!(
                "DMT: alpha {:.2} -> {:.2}: {}",
                change.from, change.to, change.reason
            ));
        }
        let eval = evaluate(&valid, &test_set, config.eval_batch_size, &device);
        let robust_method = !matches!(config.method, Method::Natural | Method::Pgd);
        let schedule = robust_method && policy == Policy::Schedule;
        let mean = |(sum, n): (f64, usize)| (n > 0).then(|| sum / n as f64);
        let metrics = EpochMetrics {
            epoch,
            method: config.method.name(),
            lr,
            eps,
            policy: policy.name(),
            alpha: (robust_method && !schedule).then_some(alpha_before),
            robust_weight: schedule.then(|| Dmt::schedule_weight(&config.dmt, epochs_robust)),
            robust_probability: schedule.then_some(config.dmt.probability),
            loss: sums.loss / steps_per_epoch as f64,
            natural_loss: mean(sums.natural),
            robust_loss: mean(sums.robust),
            train_acc: correct as f64 / train_set.len() as f64,
            val_acc,
            val_vra,
            val_domain: config.val_domain().name(),
            test_acc: eval.clean_acc,
            test_n: eval.n,
            seconds,
            val_seconds,
            eval_seconds: eval.seconds,
            images_per_second: train_set.len() as f64 / seconds,
            alpha_change,
        };
        say(format!(
            "epoch {epoch}/{}: eps {:.4}, loss {:.4}, train acc {:.2}%, val acc {}, val VRA {} ({}), test acc {:.2}%, {seconds:.1} s ({:.0} images/s)",
            config.epochs,
            eps,
            metrics.loss,
            100.0 * metrics.train_acc,
            percent(val_acc),
            percent(val_vra),
            metrics.val_domain,
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
        state.dmt = Some(dmt.clone());
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
    say(format!(
        "final evaluation on {} test images: verifying ({}) at eps {}{}",
        test_set.len(),
        config.final_domain().name(),
        config.eps,
        if config.final_eval.pgd_steps > 0 {
            format!(", PGD-{}", config.final_eval.pgd_steps)
        } else {
            String::new()
        }
    ));
    let final_eval = final_evaluation(config, &final_model, &test_set, eval.clean_acc, &device)?;
    write_report(config, &dataset, &opts.out, &final_eval)?;
    let summary = RunSummary {
        model: config.model.clone(),
        dataset,
        method: config.method.name(),
        backend: config.backend.to_string(),
        epochs: config.epochs,
        train_n: train_set.len(),
        val_n: val_set.len(),
        test_n: eval.n,
        test_acc: eval.clean_acc,
        final_eval,
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
        "test: clean {:.2}%, verified ({}) {:.2}%, PGD {} on {} images; weights in {}",
        100.0 * summary.test_acc,
        summary.final_eval.domain,
        100.0 * summary.final_eval.vra,
        percent(summary.final_eval.pgd_acc),
        summary.test_n,
        summary.weights.display()
    ));
    Ok(summary)
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.2}%", 100.0 * v))
}

/// Clean accuracy (given), VRA in the final domain and PGD accuracy on the test set.
fn final_evaluation(
    config: &TrainConfig,
    net: &Network,
    test_set: &ImageSet,
    clean_acc: f64,
    device: &burn::tensor::Device,
) -> Result<FinalEval, TrainError> {
    let domain = config.final_domain();
    let verified = verify(
        net,
        test_set,
        config.eps,
        domain,
        InputDomain::Unit,
        config.final_eval.bound_batch_size,
        device,
    )?;
    let steps = config.final_eval.pgd_steps;
    let step_size = config.final_eval.pgd_step_size.unwrap_or(config.eps / 4.0);
    let attacked = if steps > 0 {
        // PGD's random starts come from the device: seeded, a run reports the same figure twice
        device.seed(config.seed);
        let pgd = Pgd::new(config.eps as f32, step_size as f32, steps);
        Some(attack(
            net,
            test_set,
            &pgd,
            config.eval_batch_size,
            device,
            None,
        )?)
    } else {
        None
    };
    Ok(FinalEval {
        n: test_set.len(),
        eps: config.eps,
        clean_acc,
        vra: verified.verified_acc,
        domain: domain.name(),
        pgd_acc: attacked.as_ref().map(|a| a.robust_acc),
        pgd_steps: steps,
        pgd_step_size: step_size,
        verify_seconds: verified.seconds,
        pgd_seconds: attacked.map_or(0.0, |a| a.seconds),
    })
}

/// `final.json` and a short `report.md` in the run directory.
fn write_report(
    config: &TrainConfig,
    dataset: &str,
    out: &Path,
    eval: &FinalEval,
) -> Result<(), TrainError> {
    let json_path = out.join("final.json");
    write_atomic(
        &json_path,
        &serde_json::to_vec_pretty(eval).expect("final evaluation serialises"),
    )
    .map_err(TrainError::io(&json_path))?;
    let report = format!(
        "# {model} on {dataset}: {method}, eps {eps}\n\n\
         | test images | clean accuracy | verified ({domain}) | PGD-{steps} accuracy |\n\
         |---|---|---|---|\n\
         | {n} | {clean:.2}% | {vra:.2}% | {pgd} |\n\n\
         {epochs} epochs, batch {batch}, DMT policy {policy}{k}. Verification took {vs:.1} s, \
         the attack {ps:.1} s (step {step}, one random start). Per-epoch figures: \
         `metrics.jsonl`; configuration: `config.toml`.\n",
        model = config.model,
        method = config.method.name(),
        eps = eval.eps,
        domain = eval.domain,
        steps = eval.pgd_steps,
        n = eval.n,
        clean = 100.0 * eval.clean_acc,
        vra = 100.0 * eval.vra,
        pgd = percent(eval.pgd_acc),
        epochs = config.epochs,
        batch = config.batch_size,
        policy = config.policy().name(),
        k = if config.method == Method::Mixtrain {
            format!(", k = {}", config.k)
        } else {
            String::new()
        },
        vs = eval.verify_seconds,
        ps = eval.pgd_seconds,
        step = eval.pgd_step_size,
    );
    let md_path = out.join("report.md");
    write_atomic(&md_path, report.as_bytes()).map_err(TrainError::io(&md_path))
}
