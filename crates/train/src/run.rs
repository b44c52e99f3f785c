//! The training loop, read top to bottom like burn's `custom-training-loop` example: set up,
//! then per epoch train, validate, adapt the mix, log and checkpoint; then the final
//! evaluation. What a step computes is the method's ([`crate::method`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor};
use mixtrain_attack::Pgd;
use mixtrain_data::{Augment, Batch, DataDir, ImageSet};
use mixtrain_loss::{AlphaChange, Dmt, Policy, accuracy_count};
use mixtrain_nn::{Network, zoo};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::checkpoint::{self, State};
use crate::curves;
use crate::eval::{EvalResult, Robustness, evaluate, robustness, to_device};
use crate::memory::peak_memory_mib;
use crate::method::{StepContext, Terms, step_mix};
use crate::progress::{PointProgress, Progress};
use crate::report::{EpochMetrics, FinalEval, RunSummary, percent, truncate_metrics, write_report};
use crate::setup::{self, Data};
use crate::{TrainConfig, TrainError};

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
    /// Never load the test split: no per-epoch test accuracy, no final evaluation (a sweep's
    /// trials, which must choose on the validation split alone).
    pub validation_only: bool,
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
            validation_only: false,
        }
    }
}

/// Trains a network as `config` says, writing the run directory `opts.out`.
pub fn run(config: &TrainConfig, opts: &RunOptions) -> Result<RunSummary, TrainError> {
    config.validate("run")?;
    let (trainer, mut learner) = Trainer::set_up(config, opts)?;
    let (mut epoch_seconds, mut last_test) = (Vec::new(), None);
    for epoch in learner.state.epoch + 1..=config.epochs {
        let trained = trainer.train_epoch(&mut learner, epoch)?;
        let validation = trainer.validate(&learner.model)?;
        let alpha_change = trainer.adapt(&mut learner.dmt, epoch, &validation);
        let test = trainer.test_accuracy(&learner.model.valid())?;
        trainer.log(epoch, &trained, &validation, test.as_ref(), alpha_change)?;
        trainer.draw_curves();
        trainer.checkpoint(&mut learner, epoch)?;
        epoch_seconds.push(trained.seconds);
        last_test = test;
    }
    trainer.finish(learner.model, last_test, epoch_seconds)
}

/// What a run reads: its settings, devices and data.
struct Trainer<'a> {
    config: &'a TrainConfig,
    opts: &'a RunOptions,
    /// The plain device (evaluation), and its autodiff form (training).
    device: Device,
    autodiff: Device,
    data: Data,
}

/// What training changes: the weights, the optimiser's state, the step count and the mix.
struct Learner {
    model: Network,
    optim: ModuleOptimizer,
    state: State,
    dmt: Dmt,
}

/// What one epoch of training measured.
struct Trained {
    /// Running sums: the mixed loss, and each term with the batches that computed it.
    loss: f64,
    natural: (f64, usize),
    robust: (f64, usize),
    regularizer: (f64, usize),
    correct: i64,
    seconds: f64,
    /// The learning rate and eps of the last step, alpha at the start of the epoch.
    lr: f64,
    eps: f64,
    alpha: f64,
    /// Epochs since the warm-up, before this one.
    epochs_robust: usize,
}

/// The validation figures of one epoch: clean accuracy, and VRA for certified methods.
struct Validation {
    acc: Option<f64>,
    vra: Option<f64>,
    seconds: f64,
}

impl<'a> Trainer<'a> {
    /// Checks data, model, device and memory before the run directory is written, then starts
    /// from scratch or from the last checkpoint.
    fn set_up(
        config: &'a TrainConfig,
        opts: &'a RunOptions,
    ) -> Result<(Self, Learner), TrainError> {
        let device = config.backend.device(config.device_index)?;
        let autodiff = device.clone().autodiff();
        let arch = zoo::architecture(&config.model)?;
        let data = Data::load(config, opts, &arch)?;
        data.check_memory(config, &arch, &device)?;
        setup::prepare_dir(config, opts)?;
        let (model, optim, state) = setup::start(config, opts, &arch, &autodiff)?;
        let dmt = state
            .dmt
            .clone()
            .unwrap_or_else(|| Dmt::new(config.policy(), &config.dmt));
        truncate_metrics(&opts.out.join("metrics.jsonl"), state.epoch)?;
        let trainer = Self {
            config,
            opts,
            device,
            autodiff,
            data,
        };
        trainer.say(format!(
            "training {} on {} ({} train / {} validation / {} test images), method {}, eps {}, backend {} ({}), {} epochs{}",
            config.model,
            trainer.data.dataset,
            trainer.data.train.len(),
            trainer.data.val.len(),
            trainer
                .data
                .test
                .as_ref()
                .map_or_else(|| "unread".into(), |t| t.len().to_string()),
            config.method.name(),
            match config.train_eps {
                Some(t) => format!("{} (trained at {t})", config.eps),
                None => config.eps.to_string(),
            },
            config.backend,
            mixtrain_nn::adapter_name(&trainer.device),
            config.epochs,
            match state.epoch {
                0 => String::new(),
                e => format!(", resuming after epoch {e}"),
            }
        ));
        let learner = Learner {
            model,
            optim,
            state,
            dmt,
        };
        Ok((trainer, learner))
    }

    fn say(&self, line: String) {
        if !self.opts.quiet {
            eprintln!("{line}");
        }
    }

    fn steps_per_epoch(&self) -> usize {
        self.data.train.len().div_ceil(self.config.batch_size)
    }

    /// One pass over the training set. Seeded per epoch, so that a resumed run draws what the
    /// uninterrupted one would (the host's draws here, the device's for PGD's random starts).
    fn train_epoch(&self, learner: &mut Learner, epoch: usize) -> Result<Trained, TrainError> {
        let config = self.config;
        let steps_per_epoch = self.steps_per_epoch();
        let progress = Progress::new(epoch, config.epochs, steps_per_epoch, self.opts.quiet);
        let start = Instant::now();
        let epoch_seed = config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = StdRng::seed_from_u64(epoch_seed);
        self.device.seed(epoch_seed);
        let mut trained = Trained {
            loss: 0.0,
            natural: (0.0, 0),
            robust: (0.0, 0),
            regularizer: (0.0, 0),
            correct: 0,
            seconds: 0.0,
            lr: 0.0,
            eps: 0.0,
            alpha: learner.dmt.alpha,
            epochs_robust: (epoch - 1).saturating_sub(config.eps_schedule.warmup_epochs),
        };
        let mut correct: Option<Tensor<1, Int>> = None;
        let batches = self.data.train.batches(
            config.batch_size,
            Some(config.seed.wrapping_add(epoch as u64)),
        );
        for (b, mut batch) in batches.enumerate() {
            if config.augment {
                Augment::CIFAR.apply(&mut batch, config.seed ^ ((epoch as u64) << 32 | b as u64));
            }
            let at = (epoch, b + 1);
            let hits = match self.train_step(learner, batch, at, &mut trained, &mut rng) {
                Ok(hits) => hits,
                Err(e) => {
                    progress.finish();
                    return Err(e);
                }
            };
            correct = Some(match correct {
                Some(c) => c + hits,
                None => hits,
            });
            progress.step(b + 1, trained.loss / (b + 1) as f64);
        }
        trained.correct = correct.map_or(0, |c| c.into_scalar());
        trained.seconds = start.elapsed().as_secs_f64();
        progress.finish();
        Ok(trained)
    }

    /// One optimiser step on `batch` (`at`: the epoch and the batch's number in it, from 1);
    /// adds its loss terms to `trained` and returns the count of training points classified
    /// correctly (left on the device).
    fn train_step(
        &self,
        learner: &mut Learner,
        batch: Batch,
        at: (usize, usize),
        trained: &mut Trained,
        rng: &mut StdRng,
    ) -> Result<Tensor<1, Int>, TrainError> {
        let config = self.config;
        let steps_per_epoch = self.steps_per_epoch();
        let total_steps = steps_per_epoch * config.epochs;
        let step = learner.state.step;
        trained.lr = config
            .lr_schedule
            .lr(config.optimizer.lr, step, steps_per_epoch, total_steps);
        trained.eps = config
            .eps_schedule
            .eps(config.train_eps(), step, steps_per_epoch);
        let mix = step_mix(config.method, trained.eps, || {
            learner.dmt.mix(&config.dmt, trained.epochs_robust, rng)
        });
        let ctx = StepContext {
            config,
            eps: trained.eps,
            progress: config
                .eps_schedule
                .progress(config.train_eps(), step, steps_per_epoch),
            mix,
        };
        let (x, y) = to_device(batch, &self.autodiff);
        if learner.model.has_batch_norm() {
            learner.model = learner.model.clone().refresh_statistics(x.clone());
        }
        let rule = config.method.rule();
        let terms = rule.terms(&learner.model, x, y.clone(), &ctx, rng)?;
        let natural = read_finite(&terms.natural, Terms::NATURAL, at)?;
        let robust = read_finite(&terms.robust, rule.robust_term(), at)?;
        let combined = read_finite(&terms.combined, Terms::COMBINED, at)?;
        let regularizer = read_finite(&terms.regularizer, Terms::REGULARIZER, at)?;
        // finite terms with finite weights: the loss is finite, and its value is known without
        // another read back
        for (value, weight, sum) in [
            (natural, mix.natural, &mut trained.natural),
            (robust, mix.robust, &mut trained.robust),
        ] {
            if let Some(v) = value {
                sum.0 += v;
                sum.1 += 1;
                if combined.is_none() {
                    trained.loss += v * weight;
                }
            }
        }
        trained.loss += combined.unwrap_or(0.0);
        if let Some(v) = regularizer {
            trained.regularizer.0 += v;
            trained.regularizer.1 += 1;
            trained.loss += v;
        }
        let loss = terms.loss(mix)?;
        let hits = accuracy_count(terms.logits.detach(), y);
        let grads = GradientsParams::from_grads(loss.backward(), &learner.model);
        learner.model = learner.optim.step(trained.lr, learner.model.clone(), grads);
        learner.state.step += 1;
        Ok(hits)
    }

    /// Clean accuracy on the validation split, and VRA in the validation domain for a certified
    /// method (the figure its adaptive policy reads; a natural or PGD run skips the bounds).
    fn validate(&self, model: &Network) -> Result<Validation, TrainError> {
        let start = Instant::now();
        let (val, config) = (&self.data.val, self.config);
        if val.is_empty() {
            return Ok(Validation {
                acc: None,
                vra: None,
                seconds: 0.0,
            });
        }
        let valid = model.valid();
        let acc = evaluate(&valid, val, config.eval_batch_size, &self.device)?.clean_acc;
        let vra = match config.method.certified() {
            true => {
                let verifier = config.verifier(config.val_domain());
                let spec = Robustness {
                    eps: config.eps,
                    input_domain: config.input_domain,
                    verifier: Some(&verifier),
                    attack: None,
                    bound_all: false,
                };
                let batch = config.eval_batch_size;
                robustness(&valid, val, &spec, batch, &self.device, &mut |_| {})?.verified_acc
            }
            false => None,
        };
        Ok(Validation {
            acc: Some(acc),
            vra,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// The DMT policy's move after the epoch (certified methods past the warm-up only).
    fn adapt(&self, dmt: &mut Dmt, epoch: usize, validation: &Validation) -> Option<AlphaChange> {
        let warm = epoch <= self.config.eps_schedule.warmup_epochs;
        let change = match (validation.acc, validation.vra) {
            (Some(acc), Some(vra)) if !warm => dmt.after_epoch(&self.config.dmt, acc, vra),
            _ => None,
        }?;
        self.say(format!(
            "DMT: alpha {:.2} -> {:.2}: {}",
            change.from, change.to, change.reason
        ));
        Some(change)
    }

    /// Clean accuracy on the test split, `None` in a validation-only run.
    fn test_accuracy(&self, model: &Network) -> Result<Option<EvalResult>, TrainError> {
        self.data
            .test
            .as_ref()
            .map(|test| evaluate(model, test, self.config.eval_batch_size, &self.device))
            .transpose()
    }

    /// Redraws `curves.svg` from `metrics.jsonl`. A chart that cannot be drawn costs the
    /// picture, not the run: it is said and training goes on.
    fn draw_curves(&self) {
        let out = &self.opts.out;
        if let Err(e) = curves::write(&out.join("metrics.jsonl"), &out.join("curves.svg")) {
            eprintln!("warning: curves.svg not drawn: {e}");
        }
    }

    /// The epoch's line of `metrics.jsonl` and of the console.
    fn log(
        &self,
        epoch: usize,
        trained: &Trained,
        validation: &Validation,
        test: Option<&EvalResult>,
        alpha_change: Option<AlphaChange>,
    ) -> Result<(), TrainError> {
        let config = self.config;
        let certified = config.method.certified();
        let policy = config.policy();
        let schedule = certified && policy == Policy::Schedule;
        let mean = |(sum, n): (f64, usize)| (n > 0).then(|| sum / n as f64);
        let train_n = self.data.train.len();
        let metrics = EpochMetrics {
            epoch,
            method: config.method.name(),
            lr: trained.lr,
            eps: trained.eps,
            policy: policy.name(),
            alpha: (certified && !schedule).then_some(trained.alpha),
            robust_weight: schedule
                .then(|| Dmt::schedule_weight(&config.dmt, trained.epochs_robust)),
            robust_probability: schedule.then_some(config.dmt.probability),
            loss: trained.loss / self.steps_per_epoch() as f64,
            natural_loss: mean(trained.natural),
            robust_loss: mean(trained.robust),
            regularizer_loss: mean(trained.regularizer),
            train_acc: trained.correct as f64 / train_n as f64,
            val_acc: validation.acc,
            val_vra: validation.vra,
            val_domain: validation.vra.map(|_| config.val_domain().name()),
            test_acc: test.map(|t| t.clean_acc),
            test_n: test.map_or(0, |t| t.n),
            seconds: trained.seconds,
            val_seconds: validation.seconds,
            eval_seconds: test.map_or(0.0, |t| t.seconds),
            images_per_second: train_n as f64 / trained.seconds,
            alpha_change,
        };
        self.say(format!(
            "epoch {epoch}/{}: eps {:.4}, loss {:.4}, train acc {:.2}%, val acc {}, val VRA {}{}, test acc {}, {:.1} s ({:.0} images/s)",
            config.epochs,
            trained.eps,
            metrics.loss,
            100.0 * metrics.train_acc,
            percent(validation.acc),
            percent(validation.vra),
            metrics.val_domain.map_or(String::new(), |d| format!(" ({d})")),
            percent(metrics.test_acc),
            trained.seconds,
            metrics.images_per_second
        ));
        metrics.append(&self.opts.out.join("metrics.jsonl"))
    }

    fn checkpoint(&self, learner: &mut Learner, epoch: usize) -> Result<(), TrainError> {
        learner.state.epoch = epoch;
        learner.state.dmt = Some(learner.dmt.clone());
        checkpoint::save(
            &self.opts.out,
            &learner.model,
            &learner.optim,
            &learner.state,
            self.config.keep_checkpoints,
        )
    }

    /// Saves the final weights, evaluates them on the test set (unless the run is validation
    /// only) and writes the reports.
    fn finish(
        self,
        model: Network,
        last_test: Option<EvalResult>,
        epoch_seconds: Vec<f64>,
    ) -> Result<RunSummary, TrainError> {
        let config = self.config;
        let model = model.valid();
        let weights = self.opts.out.join("model.safetensors");
        model.save_safetensors(&weights)?;
        let last = last_validation(&self.opts.out.join("metrics.jsonl"));
        let (test, final_eval) = match &self.data.test {
            Some(test_set) => {
                let test = match last_test {
                    Some(test) => test,
                    None => evaluate(&model, test_set, config.eval_batch_size, &self.device)?,
                };
                let steps = config.pgd_steps();
                self.say(format!(
                    "final evaluation on {} test images: verifying ({}) at eps {}{}",
                    test_set.len(),
                    config.final_eval.domain,
                    config.eps,
                    match steps {
                        0 => String::new(),
                        s => format!(", PGD-{s}"),
                    }
                ));
                let eval =
                    final_evaluation(config, &model, test_set, &self.device, self.opts.quiet)?;
                write_report(config, &self.data.dataset, &self.opts.out, &eval)?;
                (Some(test), Some(eval))
            }
            None => (None, None),
        };
        let summary = RunSummary {
            model: config.model.clone(),
            dataset: self.data.dataset.clone(),
            method: config.method.name(),
            backend: config.backend.to_string(),
            epochs: config.epochs,
            train_n: self.data.train.len(),
            val_n: self.data.val.len(),
            test_n: test.as_ref().map_or(0, |t| t.n),
            test_acc: test.map(|t| t.clean_acc),
            val_acc: last.0,
            val_vra: last.1,
            final_eval,
            epoch_seconds,
            peak_memory_mib: peak_memory_mib(),
            weights,
        };
        summary.write(&self.opts.out.join("summary.json"))?;
        self.say(summary.line());
        Ok(summary)
    }
}

/// The final evaluation of the run in `dir` (its `config.toml` and `model.safetensors`) on the
/// test split, as the run itself would have done it; writes its `final.json` and `report.md`.
/// What a sweep calls, once, for the run it chose on the validation split.
pub fn evaluate_run(dir: &Path, opts: &RunOptions) -> Result<FinalEval, TrainError> {
    let config = TrainConfig::from_file(&dir.join("config.toml"))?;
    let device = config.backend.device(config.device_index)?;
    let arch = zoo::architecture(&config.model)?;
    let model = Network::load_safetensors(&arch, &dir.join("model.safetensors"), &device)?;
    let (dataset, test) = setup::test_split(&config, opts)?;
    let eval = final_evaluation(&config, &model, &test, &device, opts.quiet)?;
    write_report(&config, &dataset, dir, &eval)?;
    Ok(eval)
}

/// The last logged epoch's validation accuracy and VRA (a resumed run's last epoch may have
/// been logged by an earlier process).
fn last_validation(metrics: &Path) -> (Option<f64>, Option<f64>) {
    let text = std::fs::read_to_string(metrics).unwrap_or_default();
    let last = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    match last {
        Some(v) => (v["val_acc"].as_f64(), v["val_vra"].as_f64()),
        None => (None, None),
    }
}

/// A loss term read back, or an error naming it, the epoch and the batch when it is NaN or
/// infinite.
fn read_finite(
    term: &Option<Tensor<1>>,
    name: &'static str,
    (epoch, batch): (usize, usize),
) -> Result<Option<f64>, TrainError> {
    let Some(term) = term else {
        return Ok(None);
    };
    let value: f32 = term.clone().into_scalar();
    if value.is_finite() {
        Ok(Some(f64::from(value)))
    } else {
        Err(TrainError::NonFinite {
            epoch,
            batch,
            term: name,
            value,
        })
    }
}

/// Clean accuracy, VRA in the final domain and PGD accuracy on the test set, with the
/// evaluation protocol's settings unless the config overrides them. PGD runs first, and only
/// the points it leaves open are bounded (see [`Robustness`]); progress goes to stderr unless
/// `quiet`.
fn final_evaluation(
    config: &TrainConfig,
    net: &Network,
    test: &ImageSet,
    device: &Device,
    quiet: bool,
) -> Result<FinalEval, TrainError> {
    let verifier = config.final_verifier();
    let (steps, step_size) = (config.pgd_steps(), config.pgd_step_size());
    let pgd = Pgd {
        domain: config.input_domain,
        ..Pgd::new(config.eps as f32, step_size as f32, steps)
    };
    let spec = Robustness {
        eps: config.eps,
        input_domain: config.input_domain,
        verifier: Some(&verifier),
        attack: (steps > 0).then_some(&pgd as &dyn mixtrain_attack::Attack),
        bound_all: false,
    };
    // PGD's random starts come from the device: seeded, a run reports the same figure twice
    device.seed(config.seed);
    let every_point = verifier.complete.is_some();
    let mut progress = PointProgress::new("final evaluation", test.len(), every_point, quiet);
    let result = robustness(
        net,
        test,
        &spec,
        config.eval_batch_size,
        device,
        &mut |tally| progress.update(tally),
    )?;
    progress.finish();
    Ok(FinalEval {
        n: test.len(),
        eps: config.eps,
        clean_acc: result.clean_acc,
        vra: result.verified_acc.unwrap_or(0.0),
        domain: verifier.domain.name(),
        pgd_acc: result.attack_acc,
        pgd_steps: steps,
        pgd_step_size: step_size,
        bounded: result.bounded,
        verify_seconds: result.verify_seconds,
        pgd_seconds: result.attack_seconds,
    })
}
