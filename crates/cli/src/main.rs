//! `mixtrain`: train, evaluate, attack, verify, export and fetch data, one file per command.
//! Parsing and printing only; the work is done by the library crates.

mod attack;
mod cost;
mod eval;
mod export;
mod fetch;
mod sweep;
mod train;
mod verify;
mod vnncomp;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use mixtrain_data::{DataDir, ImageSet, Manifest, Split};
use mixtrain_nn::{Architecture, Backend, Device, LayerSpec, Network, zoo};
use mixtrain_train::TrainConfig;

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
    Train(train::TrainArgs),
    /// Evaluate saved weights on a dataset's test split.
    Eval(eval::EvalArgs),
    /// Attack saved weights on a dataset's test split (FGSM, PGD, interval-gradient).
    Attack(attack::AttackArgs),
    /// Estimate and measure the time and memory of bounding points of a model in one domain.
    Cost(cost::CostArgs),
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
    /// VNN-COMP instances: an ONNX network and a VNN-LIB property decided sat (with a checked
    /// counterexample), unsat or timeout; one, or every row of an instances.csv (resumable).
    Vnncomp(vnncomp::VnncompArgs),
    /// Download a dataset (or copy it from --mirror), verifying checksums.
    Fetch(fetch::FetchArgs),
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

/// A network (of the zoo with its weights, or an ONNX file), the test split of a dataset, and
/// where to run.
#[derive(Args)]
pub(crate) struct TestArgs {
    /// A model of the zoo.
    #[arg(long, required_unless_present = "onnx", conflicts_with = "onnx")]
    model: Option<String>,
    /// Weights in PyTorch layout: safetensors, or a legacy `.pth` state dict.
    #[arg(long, required_unless_present = "onnx", conflicts_with = "onnx")]
    weights: Option<PathBuf>,
    /// An ONNX network (plain or gzipped) in place of --model and --weights: a chain of Gemm,
    /// MatMul, Conv, Relu, Flatten, Reshape, BatchNormalization and elementwise constants
    /// (docs/usage.md, Interoperability). A network that flattens its input first takes any
    /// input of as many values (VNN-COMP's [1, 784, 1] networks take MNIST's [1, 28, 28]).
    #[arg(long)]
    onnx: Option<PathBuf>,
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
        let net = match (&self.onnx, &self.model, &self.weights) {
            (Some(path), ..) => mixtrain_interop::read_onnx(path, &device)?,
            (None, Some(model), Some(weights)) => {
                Network::load_weights(&zoo::architecture(model)?, weights, &device)?
            }
            _ => bail!("--model and --weights, or --onnx, name the network"),
        };
        let dir = self.data.dir();
        let manifest = mixtrain_data::ensure(&self.dataset, &dir, self.data.mirror().as_deref())?;
        let mut set = manifest.load(self.split, &dir)?;
        if let Some(limit) = self.limit {
            set = set.take(limit);
        }
        let net = fit_input(net, set.shape(), &self.dataset, &device)?;
        Ok((backend, device, net, set))
    }

    /// The network's name in reports: the zoo model's, or the ONNX file's stem.
    pub(crate) fn model_name(&self) -> String {
        match (&self.model, &self.onnx) {
            (Some(model), _) => model.clone(),
            (None, Some(path)) => mixtrain_interop::stem(path),
            (None, None) => String::new(),
        }
    }

    /// `model`, `dataset`, `weights` or `onnx`, `backend` and `adapter` for a JSON report.
    fn describe(&self, backend: Backend, device: &Device) -> serde_json::Value {
        let mut obj = serde_json::json!({
            "model": self.model_name(),
            "dataset": self.dataset,
            "split": self.split.to_string(),
            "backend": backend.name(),
            "adapter": mixtrain_nn::adapter_name(device),
        });
        match &self.onnx {
            Some(path) => extend(&mut obj, serde_json::json!({ "onnx": path })),
            None => extend(&mut obj, serde_json::json!({ "weights": self.weights })),
        }
        obj
    }
}

/// `net` on inputs of `shape`: as it is where that is its input, else, where its first layer
/// flattens the input and `shape` has as many values, the same network taking `shape` (the
/// values are read in the same row-major order).
fn fit_input(net: Network, shape: [usize; 3], dataset: &str, device: &Device) -> Result<Network> {
    let arch = net.architecture();
    if arch.input == shape {
        return Ok(net);
    }
    let flattens = matches!(arch.layers.first(), Some(LayerSpec::Flatten));
    let count = |s: [usize; 3]| s.iter().product::<usize>();
    if !flattens || count(arch.input) != count(shape) {
        bail!(
            "model {} takes inputs {:?}, dataset {dataset} has {shape:?}",
            arch.name,
            arch.input,
        );
    }
    let arch = Architecture {
        input: shape,
        ..arch.clone()
    };
    let source = PathBuf::from(&arch.name);
    Ok(Network::from_tensors(
        &arch,
        &source,
        net.pytorch_tensors(),
        device,
    )?)
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
        Command::Train(args) => train::train(args),
        Command::Eval(args) => eval::eval(args),
        Command::Attack(args) => attack::attack(args),
        Command::Cost(args) => cost::cost(args),
        Command::Export(args) => export::export(args),
        Command::ExportSpec(args) => export::export_spec(args),
        Command::Fetch(args) => fetch::fetch(args),
        Command::Verify(args) => verify::verify(args),
        Command::Sweep(args) => sweep::sweep(args),
        Command::Vnncomp(args) => vnncomp::vnncomp(args),
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

fn parse_split(name: &str) -> Result<Split, String> {
    match name {
        "test" => Ok(Split::Test),
        "train" => Ok(Split::Train),
        other => Err(format!("unknown split {other:?}: test or train")),
    }
}

/// The backend and its device; says on stderr which adapter runs the work.
fn parse_backend(name: &str, index: Option<usize>) -> Result<(Backend, Device)> {
    let backend: Backend = name.parse()?;
    let device = backend.device(index)?;
    eprintln!(
        "backend {backend} on {}",
        mixtrain_nn::adapter_name(&device)
    );
    Ok((backend, device))
}

/// Adds every field of `extra` (an object) to `obj`.
fn extend(obj: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(o), serde_json::Value::Object(e)) = (obj.as_object_mut(), extra) {
        o.extend(e);
    }
}
