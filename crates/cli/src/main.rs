//! `mixtrain`: train, evaluate and fetch data. Parsing and printing only; the work is done by
//! the library crates.

mod export;
mod sweep;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use mixtrain_attack::{Attack, AttackLoss, IntervalAttack, Pgd};
use mixtrain_bounds::{DomainKind, InputDomain, Verifier};
use mixtrain_data::{DataDir, ImageSet, Manifest, Source, Split};
use mixtrain_nn::{Backend, Device, Network, zoo};
use mixtrain_train::{
    CostOptions, Examples, PointProgress, Robustness, RunOptions, TrainConfig, TrainError, protocol,
};

/// burn-flex allocates each op's output afresh, and the bounds passes make many of tens of MB.
/// glibc serves those with mmap/munmap, so every op page-faults its output in and the unmaps
/// shoot down the TLBs of all worker threads. mimalloc keeps and reuses the memory (figures in
/// docs/performance.md and docs/decisions.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mixtrain",
    version,
    about = "Verifiably robust training of neural networks (MixTrain) on burn"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network; writes config, metrics, checkpoints and model.safetensors to --out.
    Train(TrainArgs),
    /// Evaluate saved weights on a dataset's test split.
    Eval(EvalArgs),
    /// Attack saved weights on a dataset's test split (FGSM, PGD, interval-gradient).
    Attack(AttackArgs),
    /// Estimate and measure the time and memory of bounding points of a model in one domain.
    Cost(CostArgs),
    /// Write saved weights as PyTorch-layout safetensors or as an ONNX model.
    Export(export::ExportArgs),
    /// Write a VNN-COMP benchmark: the network as ONNX, one VNN-LIB robustness property per
    /// correctly classified test image, instances.csv.
    ExportSpec(export::ExportSpecArgs),
    /// Verify every test point in an L_inf ball: a verdict, the margins' bounds and seconds per
    /// point, one JSON line each in --out; a killed run resumes from it.
    Verify(verify::VerifyArgs),
    /// Search recipes on the validation split (grid or random, within a time budget,
    /// resumable): a table of trials, pictures, the chosen run; the test split is read only by
    /// --evaluate, for the chosen run.
    Sweep(sweep::SweepArgs),
    /// Download a dataset (or copy it from --mirror), verifying checksums.
    Fetch(FetchArgs),
    /// List the training presets, models and datasets.
    List,
}

#[derive(Args)]
pub(crate) struct DataArgs {
    /// Data directory [env: MIXTRAIN_DATA, default: datasets/cache].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Offline mirror laid out as shared/datasets, used for missing datasets [env: MIXTRAIN_MIRROR].
    #[arg(long)]
    mirror: Option<PathBuf>,
}

impl DataArgs {
    pub(crate) fn dir(&self) -> DataDir {
        self.data
            .clone()
            .map(DataDir::new)
            .unwrap_or_else(DataDir::from_env)
    }

    pub(crate) fn mirror(&self) -> Option<PathBuf> {
        self.mirror.clone().or_else(DataDir::mirror_from_env)
    }
}

#[derive(Args)]
struct TrainArgs {
    /// A TOML config file.
    #[arg(long, conflicts_with = "preset")]
    config: Option<PathBuf>,
    /// A preset shipped with mixtrain (see `mixtrain list`).
    #[arg(long)]
    preset: Option<String>,
    /// Continue the run in --out from its last checkpoint (its saved config is used).
    #[arg(long, requires = "out", conflicts_with_all = ["config", "preset"])]
    resume: bool,
    /// Run directory [default: runs/<preset or model>-<UTC time>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Training method: natural, pgd, ibp, crown-ibp, mixtrain, sabr, mtl-ibp, cc-ibp or exp-ibp.
    #[arg(long)]
    method: Option<String>,
    /// L_inf radius to train for and verify (pixel units).
    #[arg(long)]
    eps: Option<f64>,
    /// mixtrain: points per batch bounded soundly (stochastic robust approximation).
    #[arg(long)]
    k: Option<usize>,
    /// DMT policy: fixed, schedule or adaptive (dmt.policy).
    #[arg(long)]
    policy: Option<String>,
    /// Training images held out for per-epoch validation.
    #[arg(long)]
    val_size: Option<usize>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate (optimizer.lr).
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    dataset: Option<String>,
    /// flex (default), ndarray, wgpu or cuda (the GPU backends need the binary built with their
    /// cargo features).
    #[arg(long)]
    backend: Option<String>,
    /// GPU index for wgpu or cuda.
    #[arg(long)]
    device: Option<usize>,
    /// Train on the first N images only.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Override any config field: --set optimizer.kind=sgd --set lr_schedule.kind=cosine.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    test: TestArgs,
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Also verify robustness in an L_inf ball of this radius (pixel units) and report
    /// `verified_acc`.
    #[arg(long)]
    eps: Option<f64>,
    /// Bound domain for --eps: interval, symbolic, crown (CROWN-IBP), crown-symbolic,
    /// alpha-crown (optimised slopes) or best
    /// [default: the evaluation protocol's, best].
    #[arg(long, requires = "eps")]
    domain: Option<DomainKind>,
    /// The box inputs stay in: unit ([0,1]) or image (each image's own min and max pixel).
    #[arg(long, default_value = "unit", requires = "eps")]
    input_domain: InputDomain,
    /// Points per bound computation [default: the evaluation protocol's, 5 for the domains with
    /// symbolic bounds, 50 for interval and crown].
    #[arg(long)]
    bound_batch_size: Option<usize>,
    /// Bounds in float32 as computed, without widening them by a bound of their rounding (by
    /// default every bound does, so that a verified point is verified for exact arithmetic).
    #[arg(long, requires = "eps")]
    no_float_sound: bool,
    /// Bound every point, also those misclassified or broken by --attack, which no sound
    /// verifier can verify (by default they are left out): for a throughput comparison with a
    /// tool that bounds them all.
    #[arg(long, requires = "eps")]
    bound_all: bool,
    /// Also attack every point in the --eps ball and report `<attack>_acc` (e.g. `pgd_acc`):
    /// fgsm, pgd or interval.
    #[arg(long, requires = "eps")]
    attack: Option<String>,
    #[command(flatten)]
    attack_opts: AttackOpts,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// How an attack runs. Defaults are the evaluation protocol's (`mixtrain_train::protocol`): on
/// MNIST 40 steps of 0.01, elsewhere 20 steps of eps / 4; one random start.
#[derive(Args)]
struct AttackOpts {
    /// PGD steps (after each interval step, for the interval attack); FGSM takes one.
    #[arg(long)]
    steps: Option<usize>,
    /// PGD step size (pixel units).
    #[arg(long)]
    step_size: Option<f64>,
    /// Runs per point from fresh random starts; the first adversarial example found counts.
    #[arg(long, default_value_t = 1)]
    restarts: usize,
    /// The loss the attack ascends: ce (cross-entropy) or margin (max_j z_j - z_y).
    #[arg(long, default_value = "ce")]
    loss: AttackLoss,
    /// Interval attack: rounds of one interval step then the PGD steps.
    #[arg(long, default_value_t = 3)]
    interval_steps: usize,
    /// Interval attack: half-width of the first box bounded around the point.
    #[arg(long, default_value_t = 0.01)]
    estep: f64,
    /// Seed of the random starts.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl AttackOpts {
    /// The attack `name` at `eps` on `dataset`, with the PGD settings it runs (FGSM's own, the
    /// interval attack's inner PGD) for reports.
    fn build(
        &self,
        name: &str,
        eps: f64,
        dataset: &str,
        domain: InputDomain,
    ) -> Result<(Box<dyn Attack>, Pgd)> {
        let steps = self.steps.unwrap_or_else(|| protocol::pgd_steps(dataset));
        let step_size = self
            .step_size
            .unwrap_or_else(|| protocol::pgd_step_size(dataset, eps));
        let pgd = Pgd {
            restarts: self.restarts,
            loss: self.loss,
            domain,
            ..Pgd::new(eps as f32, step_size as f32, steps)
        };
        Ok(match name {
            // FGSM keeps the loss and the input domain asked for; steps and restarts are its own
            "fgsm" => {
                let fgsm = Pgd {
                    loss: pgd.loss,
                    domain,
                    ..Pgd::fgsm(eps as f32)
                };
                (Box::new(fgsm), fgsm)
            }
            "pgd" => (Box::new(pgd), pgd),
            "interval" => (
                Box::new(IntervalAttack {
                    estep: self.estep as f32,
                    interval_steps: self.interval_steps,
                    ..IntervalAttack::new(pgd)
                }),
                pgd,
            ),
            _ => bail!("unknown attack {name:?}: expected fgsm, pgd or interval"),
        })
    }
}

#[derive(Args)]
struct AttackArgs {
    #[command(flatten)]
    test: TestArgs,
    /// L_inf radius of the attack (pixel units).
    #[arg(long)]
    eps: f64,
    /// fgsm, pgd or interval.
    #[arg(long, default_value = "pgd")]
    attack: String,
    #[command(flatten)]
    attack_opts: AttackOpts,
    /// The box inputs stay in: unit ([0,1]) or image (each image's own min and max pixel).
    #[arg(long, default_value = "unit")]
    input_domain: InputDomain,
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Save the adversarial examples found (safetensors: images, indices, labels,
    /// predictions).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// A network of the zoo with its weights, the test split of a dataset, and where to run.
#[derive(Args)]
pub(crate) struct TestArgs {
    /// A model of the zoo.
    #[arg(long)]
    model: String,
    /// Weights in PyTorch layout: safetensors, or a legacy `.pth` state dict.
    #[arg(long)]
    weights: PathBuf,
    #[arg(long)]
    pub(crate) dataset: String,
    /// The split read: `test`, or `train` to choose a verifier's or attack's settings
    /// without looking at the test images.
    #[arg(long, default_value = "test", value_parser = parse_split)]
    split: Split,
    /// Use the first N images of the split only.
    #[arg(long)]
    limit: Option<usize>,
    /// flex, ndarray, wgpu or cuda.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// GPU index for wgpu or cuda.
    #[arg(long)]
    device: Option<usize>,
    #[command(flatten)]
    data: DataArgs,
}

impl TestArgs {
    /// The backend and device, the network with its weights, and the test images, shapes
    /// checked.
    pub(crate) fn load(&self) -> Result<(Backend, Device, Network, ImageSet)> {
        let (backend, device) = parse_backend(&self.backend, self.device)?;
        let arch = zoo::architecture(&self.model)?;
        let net = Network::load_weights(&arch, &self.weights, &device)?;
        let dir = self.data.dir();
        let manifest = mixtrain_data::ensure(&self.dataset, &dir, self.data.mirror().as_deref())?;
        let mut set = manifest.load(self.split, &dir)?;
        if let Some(limit) = self.limit {
            set = set.take(limit);
        }
        if set.shape() != arch.input {
            bail!(
                "model {} takes inputs {:?}, dataset {} has {:?}",
                arch.name,
                arch.input,
                self.dataset,
                set.shape()
            );
        }
        Ok((backend, device, net, set))
    }

    /// `model`, `dataset`, `weights`, `backend` and `adapter` for a JSON report.
    fn describe(&self, backend: Backend, device: &Device) -> serde_json::Value {
        serde_json::json!({
            "model": self.model,
            "dataset": self.dataset,
            "split": self.split.to_string(),
            "weights": self.weights,
            "backend": backend.name(),
            "adapter": mixtrain_nn::adapter_name(device),
        })
    }
}

#[derive(Args)]
struct FetchArgs {
    /// Dataset name (see `mixtrain list`).
    name: String,
    #[command(flatten)]
    data: DataArgs,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train(args),
        Command::Eval(args) => eval(args),
        Command::Attack(args) => attack(args),
        Command::Cost(args) => cost(args),
        Command::Export(args) => export::export(args),
        Command::ExportSpec(args) => export::export_spec(args),
        Command::Fetch(args) => fetch(args),
        Command::Verify(args) => verify::verify(args),
        Command::Sweep(args) => sweep::sweep(args),
        Command::List => {
            println!(
                "presets:  {}",
                TrainConfig::preset_names().collect::<Vec<_>>().join(", ")
            );
            println!("models:   {}", zoo::NAMES.join(", "));
            println!(
                "datasets: {}",
                Manifest::builtin_names().collect::<Vec<_>>().join(", ")
            );
            let backends: Vec<_> = Backend::ALL
                .iter()
                .filter(|b| b.is_compiled())
                .map(|b| b.name())
                .collect();
            println!(
                "backends: {} (default {})",
                backends.join(", "),
                Backend::default()
            );
            Ok(())
        }
    }
}

#[derive(Args)]
struct CostArgs {
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

fn cost(args: CostArgs) -> Result<()> {
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

/// The backend and its device; says on stderr which adapter runs the work.
fn parse_split(name: &str) -> Result<Split, String> {
    match name {
        "test" => Ok(Split::Test),
        "train" => Ok(Split::Train),
        other => Err(format!("unknown split {other:?}: test or train")),
    }
}

fn parse_backend(name: &str, index: Option<usize>) -> Result<(Backend, Device)> {
    let backend: Backend = name.parse()?;
    let device = backend.device(index)?;
    eprintln!(
        "backend {backend} on {}",
        mixtrain_nn::adapter_name(&device)
    );
    Ok((backend, device))
}

/// UTC `YYYYMMDD-HHMMSS`, for default run directory names.
fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn train(args: TrainArgs) -> Result<()> {
    let mut config = if args.resume {
        let out = args
            .out
            .as_ref()
            .expect("clap requires --out with --resume");
        TrainConfig::from_file(&out.join("config.toml"))?
    } else if let Some(path) = &args.config {
        TrainConfig::from_file(path)?
    } else if let Some(preset) = &args.preset {
        TrainConfig::preset(preset)?
    } else {
        TrainConfig::default()
    };
    let flags = [
        ("method", args.method.clone()),
        ("eps", args.eps.map(|v| format!("{v:?}"))),
        ("k", args.k.map(|v| v.to_string())),
        ("dmt.policy", args.policy.clone()),
        ("val_size", args.val_size.map(|v| v.to_string())),
        ("epochs", args.epochs.map(|v| v.to_string())),
        ("batch_size", args.batch_size.map(|v| v.to_string())),
        ("optimizer.lr", args.lr.map(|v| format!("{v:?}"))),
        ("seed", args.seed.map(|v| v.to_string())),
        ("model", args.model.clone()),
        ("dataset", args.dataset.clone()),
        ("backend", args.backend.clone()),
        ("device_index", args.device.map(|v| v.to_string())),
        ("train_limit", args.train_limit.map(|v| v.to_string())),
        ("test_limit", args.test_limit.map(|v| v.to_string())),
    ];
    // flags first, then every --set, checked together: fields that constrain each other may
    // come in any order (`--method pgd --set warmup_reg.lambda=0` on an IBP preset)
    let mut overrides: Vec<(String, String)> = flags
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_string(), toml_value(&value?))))
        .collect();
    for set in &args.sets {
        let Some((key, value)) = set.split_once('=') else {
            bail!("--set {set:?}: expected KEY=VALUE");
        };
        overrides.push((key.trim().into(), value.trim().into()));
    }
    config.set_all(overrides)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args.preset.clone().unwrap_or_else(|| config.model.clone());
        PathBuf::from("runs").join(format!("{stem}-{}", timestamp()))
    });
    let opts = RunOptions {
        out,
        resume: args.resume,
        data: args.data.dir(),
        mirror: args.data.mirror(),
        quiet: args.quiet,
        validation_only: false,
    };
    let summary = mixtrain_train::run(&config, &opts)?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

/// Flag values are plain strings; quote those that are not TOML numbers or booleans.
fn toml_value(v: &str) -> String {
    if v.parse::<f64>().is_ok() || v == "true" || v == "false" {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

/// Adds every field of `extra` (an object) to `obj`.
fn extend(obj: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(o), serde_json::Value::Object(e)) = (obj.as_object_mut(), extra) {
        o.extend(e);
    }
}

fn eval(args: EvalArgs) -> Result<()> {
    let (backend, device, net, set) = args.test.load()?;
    let input_domain = args.input_domain;
    let result = mixtrain_train::evaluate(&net, &set, args.batch_size, &device)?;
    let verifier = args.eps.map(|_| {
        let mut verifier = Verifier::new(args.domain.unwrap_or(protocol::VERIFY_DOMAIN));
        if let Some(b) = args.bound_batch_size {
            verifier.batch_size = b;
        }
        verifier.float_sound = !args.no_float_sound;
        verifier
    });
    let attack = match (&args.attack, args.eps) {
        (Some(name), Some(eps)) => Some(
            args.attack_opts
                .build(name, eps, &args.test.dataset, input_domain)?
                .0,
        ),
        _ => None,
    };
    let robust = match args.eps {
        Some(eps) => {
            device.seed(args.attack_opts.seed);
            let spec = Robustness {
                eps,
                input_domain,
                verifier: verifier.as_ref(),
                attack: attack.as_deref(),
                bound_all: args.bound_all,
            };
            // progress goes to stderr, so `--json` keeps stdout one object and still shows it
            let mut progress = PointProgress::new("eval", set.len(), false, false);
            let robust = mixtrain_train::robustness(
                &net,
                &set,
                &spec,
                args.batch_size,
                &device,
                &mut |tally| progress.update(tally),
            )?;
            progress.finish();
            Some(robust)
        }
        None => None,
    };
    let verified = robust.as_ref().filter(|r| r.verified_acc.is_some());
    let attacked = robust
        .as_ref()
        .zip(args.attack.as_ref())
        .filter(|(r, _)| r.attack_acc.is_some());
    if args.json {
        let mut obj = serde_json::to_value(&result)?;
        if let Some(v) = verified {
            extend(
                &mut obj,
                serde_json::json!({
                    "eps": v.eps,
                    "domain": v.domain,
                    "input_domain": v.input_domain,
                    "verified_acc": v.verified_acc,
                    "float_sound": v.float_sound,
                    "bounded": v.bounded,
                    "verify_seconds": v.verify_seconds,
                }),
            );
        }
        if let Some((a, name)) = attacked {
            extend(
                &mut obj,
                serde_json::json!({
                    "attack": name,
                    format!("{name}_acc"): a.attack_acc,
                    "attack_seconds": a.attack_seconds,
                }),
            );
        }
        extend(&mut obj, args.test.describe(backend, &device));
        println!("{obj}");
    } else {
        println!(
            "{} on {} ({} test images): clean accuracy {:.2}% in {:.2} s",
            args.test.model,
            args.test.dataset,
            result.n,
            100.0 * result.clean_acc,
            result.seconds
        );
        if let Some((a, name)) = attacked {
            println!(
                "accuracy under {name} {:.2}% in {:.2} s (clean pass included)",
                100.0 * a.attack_acc.unwrap_or(0.0),
                a.attack_seconds
            );
        }
        if let Some(v) = verified {
            println!(
                "verified accuracy {:.2}% at eps {} ({} domain, {} inputs{}) in {:.2} s, {} points bounded",
                100.0 * v.verified_acc.unwrap_or(0.0),
                v.eps,
                v.domain.unwrap_or_default(),
                v.input_domain,
                if v.float_sound { ", float sound" } else { "" },
                v.verify_seconds,
                v.bounded
            );
        }
    }
    Ok(())
}

fn attack(args: AttackArgs) -> Result<()> {
    let (backend, device, net, set) = args.test.load()?;
    let test = &args.test;
    let input_domain = args.input_domain;
    let opts = &args.attack_opts;
    // `settings`: the (inner) PGD the attack runs, as reported
    let (attack, settings) = opts.build(&args.attack, args.eps, &test.dataset, input_domain)?;
    device.seed(opts.seed);
    let mut examples = args.save.as_ref().map(|_| Examples::default());
    let result = mixtrain_train::attack(
        &net,
        &set,
        &*attack,
        args.batch_size,
        &device,
        examples.as_mut(),
    )?;
    if let (Some(path), Some(examples)) = (&args.save, &examples) {
        let meta = [
            ("model", test.model.clone()),
            ("dataset", test.dataset.clone()),
            ("attack", args.attack.clone()),
            ("eps", args.eps.to_string()),
        ];
        examples.save(
            path,
            meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        )?;
    }
    if args.json {
        let mut obj = serde_json::to_value(&result)?;
        extend(
            &mut obj,
            serde_json::json!({
                "attack": args.attack,
                "eps": args.eps,
                "steps": settings.steps,
                // f32 inside: rounded back to what was asked for
                "step_size": (f64::from(settings.step_size) * 1e6).round() / 1e6,
                "restarts": settings.restarts,
                "loss": settings.loss.name(),
                "input_domain": input_domain.name(),
            }),
        );
        extend(&mut obj, test.describe(backend, &device));
        if let (Some(path), Some(examples)) = (&args.save, &examples) {
            extend(
                &mut obj,
                serde_json::json!({ "examples": examples.len(), "saved": path }),
            );
        }
        println!("{obj}");
    } else {
        println!(
            "{} on {} ({} test images), {} at eps {}: clean accuracy {:.2}%, robust accuracy {:.2}% in {:.2} s",
            test.model,
            test.dataset,
            result.n,
            args.attack,
            args.eps,
            100.0 * result.clean_acc,
            100.0 * result.robust_acc,
            result.seconds
        );
        if let (Some(path), Some(examples)) = (&args.save, &examples) {
            println!(
                "{} adversarial examples saved to {}",
                examples.len(),
                path.display()
            );
        }
    }
    Ok(())
}

fn fetch(args: FetchArgs) -> Result<()> {
    let manifest = Manifest::builtin(&args.name)?;
    let dir = args.data.dir();
    let source = match args.data.mirror() {
        Some(m) => Source::Mirror(m),
        None => Source::Download,
    };
    let report = mixtrain_data::fetch(&manifest, &dir, &source)
        .with_context(|| format!("fetching {}", args.name))?;
    println!(
        "{}: {} fetched, {} already present, in {}",
        args.name,
        report.fetched.len(),
        report.present.len(),
        dir.dataset(&args.name).display()
    );
    Ok(())
}
