//! The trainer: configuration, the training loop, evaluation, checkpoints and run directories.
//!
//! A run is driven by a [`TrainConfig`] (TOML, every field overridable with
//! [`TrainConfig::set`]) and writes everything to one directory:
//!
//! ```text
//! DIR/config.toml         the effective configuration
//! DIR/metrics.jsonl       one JSON object per epoch
//! DIR/curves.svg          its figures as pictures, redrawn every epoch
//! DIR/checkpoints/        epoch-NNNN/{model.bpk, optim.bpk, state.json} and `latest`
//! DIR/model.safetensors   the final weights, PyTorch layout
//! DIR/final.json          the test-set evaluation: clean accuracy, VRA, PGD accuracy
//! DIR/report.md           the same as a short Markdown report
//! DIR/summary.json        final figures (accuracy, seconds, peak memory)
//! ```
//!
//! A validation-only run ([`RunOptions::validation_only`]) never loads the test split and
//! writes no `final.json` or `report.md`; [`sweep`] runs its trials so, chooses among them on
//! the validation split, and [`evaluate_run`] evaluates the chosen one on the test split.
//!
//! Checkpoints are written to a temporary directory and renamed into place, and `latest` is
//! replaced atomically, so a run killed at any moment resumes ([`RunOptions::resume`]) from
//! its last whole epoch.
//!
//! A configuration is a preset with fields overridden by their dotted names (checked at once):
//!
//! ```
//! use mixtrain_train::TrainConfig;
//!
//! let mut config = TrainConfig::preset("mnist")?;
//! config.set("epochs", "1")?;
//! config.set("dmt.alpha", "0.3")?;
//! assert!(config.set("dmt.alpha", "lots").is_err());
//! assert!(config.to_toml().contains("epochs = 1"));
//! # Ok::<(), mixtrain_train::TrainError>(())
//! ```
//!
//! and a run trains, checkpoints and evaluates (MNIST from the data directory or the mirror; see
//! `examples/short_run.rs` for a run small enough for a laptop):
//!
//! ```no_run
//! use mixtrain_train::{RunOptions, TrainConfig};
//!
//! let summary = mixtrain_train::run(&TrainConfig::preset("mnist")?, &RunOptions::new("runs/mnist"))?;
//! if let Some(eval) = &summary.final_eval {
//!     println!("test accuracy {:.2}%, VRA {:.2}%", 100.0 * eval.clean_acc, 100.0 * eval.vra);
//! }
//! # Ok::<(), mixtrain_train::TrainError>(())
//! ```

#![warn(missing_docs)]

mod checkpoint;
mod config;
mod cost;
mod curves;
mod error;
mod eval;
mod memory;
mod method;
mod progress;
pub mod protocol;
mod report;
mod run;
mod setup;
mod sweep;
mod verify;
mod vnncomp;
mod vnncomp_compare;

pub use config::{
    FinalEvalConfig, OptimizerConfig, OptimizerKind, PgdConfig, RobustSet, SabrConfig, TrainConfig,
    WarmupRegConfig,
};
pub use cost::{CostOptions, CostReport, measure_cost};
pub use error::TrainError;
pub use eval::{
    AttackResult, EvalResult, Examples, Robustness, RobustnessResult, attack, evaluate, robustness,
};
pub use method::{Method, step_loss};
pub use progress::PointProgress;
pub use report::{FinalEval, RunSummary};
pub use run::{RunOptions, evaluate_run, run};
pub use sweep::{Search, SweepSpec, SweepSummary, Trial, sweep};
pub use verify::{PointRecord, Tally, VerifyLog, VerifySettings, VerifySummary, verify_points};
pub use vnncomp::{
    BenchmarkRun, InstanceOutcome, VnnInstance, VnnResult, VnnSettings, benchmark_file,
    counterexample_name, read_instances, run_benchmark, run_instance,
};
pub use vnncomp_compare::{
    Answer, ComparedInstance, Comparison, InstanceKey, ToolSummary, compare, read_results,
};
