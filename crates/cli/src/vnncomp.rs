//! `mixtrain vnncomp`: VNN-COMP instances (an ONNX network and a VNN-LIB property), one as the
//! competition's `run_instance.sh` runs it, or every row of a benchmark's `instances.csv`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use mixtrain_bounds::{BranchAndBound, DomainKind};
use mixtrain_train::{BenchmarkRun, VnnSettings, read_results, run_benchmark, run_instance};

use crate::parse_backend;

#[derive(Args)]
pub(crate) struct VnncompArgs {
    #[command(subcommand)]
    command: VnncompCommand,
    #[command(flatten)]
    settings: SettingsArgs,
    /// flex, ndarray, wgpu or cuda.
    #[arg(long, default_value = "flex", global = true)]
    backend: String,
    /// GPU index for wgpu or cuda.
    #[arg(long, global = true)]
    device: Option<usize>,
}

#[derive(Subcommand)]
enum VnncompCommand {
    /// Decide one instance: writes `sat` and the counterexample as `((X_0 v) ... (Y_0 v))`,
    /// `unsat`, `timeout` or `unknown` to --result (and stdout).
    Instance {
        /// The ONNX network (plain or gzipped).
        #[arg(long)]
        onnx: PathBuf,
        /// The VNN-LIB property (plain or gzipped).
        #[arg(long)]
        vnnlib: PathBuf,
        /// Seconds to decide it (reading the files not counted).
        #[arg(long, default_value_t = 120.0)]
        timeout: f64,
        /// The result file.
        #[arg(long)]
        result: Option<PathBuf>,
    },
    /// Every row of a benchmark's instances.csv not yet in --out: one row each of the
    /// competition's columns (benchmark, onnx, vnnlib, prep_time, result, run_time), and each
    /// sat's counterexample beside --out as `<network stem>_<property stem>.counterexample`.
    Run {
        /// The benchmark's instances.csv (`onnx,vnnlib,timeout` per line, paths relative to it;
        /// a missing file is looked for gzipped).
        #[arg(long)]
        instances: PathBuf,
        /// The results CSV; a killed run resumes from it.
        #[arg(long)]
        out: PathBuf,
        /// Caps every instance's own timeout, seconds.
        #[arg(long)]
        timeout: Option<f64>,
        /// The benchmark's name in the results [default: the directory of instances.csv].
        #[arg(long)]
        benchmark: Option<String>,
    },
    /// Our results beside the competition's (markdown on stdout): per instance the tools'
    /// consensus (conflicts among them named) and whether ours agrees; per tool, decided
    /// counts, answers against the consensus and time.
    Compare {
        /// Our results CSV (`vnncomp run --out`).
        #[arg(long)]
        ours: PathBuf,
        /// A directory of the tools' results CSVs, one per tool, named after it.
        #[arg(long)]
        tools: PathBuf,
        /// Only the instances of this instances.csv [default: every instance of ours].
        #[arg(long)]
        instances: Option<PathBuf>,
    },
}

/// How each instance is decided.
#[derive(Args)]
struct SettingsArgs {
    /// PGD steps per restart on each region of the property.
    #[arg(long, default_value_t = VnnSettings::default().attack_steps, global = true)]
    attack_steps: usize,
    /// PGD restarts per region, run side by side as one batch.
    #[arg(long, default_value_t = VnnSettings::default().attack_restarts, global = true)]
    attack_restarts: usize,
    /// The first bound's domain, before branch and bound: interval, crown, alpha-crown, ...
    #[arg(long, default_value = "crown", global = true)]
    domain: DomainKind,
    /// Subproblems branch and bound bounds at once.
    #[arg(long, default_value_t = BranchAndBound::default().batch, global = true)]
    bab_batch: usize,
}

pub(crate) fn vnncomp(args: VnncompArgs) -> Result<()> {
    if let VnncompCommand::Compare {
        ours,
        tools,
        instances,
    } = &args.command
    {
        return compare(ours, tools, instances.as_deref());
    }
    let (_, device) = parse_backend(&args.backend, args.device)?;
    let s = &args.settings;
    let settings = VnnSettings {
        attack_steps: s.attack_steps,
        attack_restarts: s.attack_restarts,
        domain: s.domain,
        bab: BranchAndBound {
            batch: s.bab_batch,
            ..BranchAndBound::default()
        },
    };
    match args.command {
        VnncompCommand::Instance {
            onnx,
            vnnlib,
            timeout,
            result,
        } => {
            if !(timeout > 0.0 && timeout.is_finite()) {
                bail!("--timeout must be a positive number of seconds, not {timeout}");
            }
            let outcome = run_instance(&onnx, &vnnlib, timeout, &settings, &device)?;
            let text = outcome.result.to_result_file();
            if let Some(path) = result {
                mixtrain_nn::write_atomic(&path, text.as_bytes())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            }
            print!("{text}");
            eprintln!(
                "{}: prepared in {:.2} s, decided in {:.2} s",
                outcome.result.name(),
                outcome.prep_seconds,
                outcome.run_seconds
            );
        }
        VnncompCommand::Run {
            instances,
            out,
            timeout,
            benchmark,
        } => {
            if timeout.is_some_and(|t| !(t > 0.0 && t.is_finite())) {
                bail!("--timeout must be a positive number of seconds");
            }
            let benchmark = benchmark.unwrap_or_else(|| {
                instances
                    .canonicalize()
                    .ok()
                    .and_then(|p| p.parent()?.file_name()?.to_str().map(String::from))
                    .unwrap_or_else(|| "benchmark".into())
            });
            let total = mixtrain_train::read_instances(&instances)?.len();
            let mut progress =
                |i: usize,
                 instance: &mixtrain_train::VnnInstance,
                 o: &mixtrain_train::InstanceOutcome| {
                    eprintln!(
                        "[{}/{total}] {} {}: {} in {:.2} s",
                        i + 1,
                        instance.onnx,
                        instance.vnnlib,
                        o.result.name(),
                        o.run_seconds
                    );
                };
            let outcomes = run_benchmark(
                &instances,
                BenchmarkRun {
                    benchmark: &benchmark,
                    out: &out,
                    timeout_cap: timeout,
                    progress: &mut progress,
                },
                &settings,
                &device,
            )?;
            let count = |name: &str| {
                outcomes
                    .iter()
                    .filter(|(_, o)| o.result.name() == name)
                    .count()
            };
            let seconds: f64 = outcomes.iter().map(|(_, o)| o.run_seconds).sum();
            println!(
                "{benchmark}: {} instances run now ({} already in {}): {} sat, {} unsat, {} timeout, {} unknown; {seconds:.1} s deciding",
                outcomes.len(),
                total - outcomes.len(),
                out.display(),
                count("sat"),
                count("unsat"),
                count("timeout"),
                count("unknown"),
            );
        }
        VnncompCommand::Compare { .. } => unreachable!("handled first"),
    }
    Ok(())
}

fn compare(ours: &Path, tools: &Path, instances: Option<&Path>) -> Result<()> {
    let mut results = BTreeMap::new();
    let entries =
        std::fs::read_dir(tools).map_err(|e| anyhow::anyhow!("{}: {e}", tools.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("csv") {
            let tool = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("?")
                .to_string();
            results.insert(tool, read_results(&path)?);
        }
    }
    if results.is_empty() {
        bail!("{}: no tool's results (*.csv)", tools.display());
    }
    let comparison = mixtrain_train::compare(&read_results(ours)?, &results, instances)?;
    print!("{}", comparison.to_markdown());
    Ok(())
}
