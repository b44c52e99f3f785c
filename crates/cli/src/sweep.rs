//! `mixtrain sweep`: a recipe search on the validation split, resumable; the test split is read
//! only by `--evaluate`, once, for the chosen run.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use mixtrain_train::{RunOptions, SweepSpec, evaluate_run};

use crate::DataArgs;

#[derive(Args)]
pub struct SweepArgs {
    /// The sweep (TOML): preset or config, search (grid or random), trials, seed,
    /// budget_minutes, [set] and [grid] (each searched field's values).
    spec: PathBuf,
    /// The sweep directory: sweep.toml, trials/NNN/ (one run each), trials.csv, trials.md,
    /// pareto.svg, time.svg, report.md.
    #[arg(long)]
    out: PathBuf,
    /// Continue the sweep in --out: finished trials are kept, an interrupted one resumes.
    #[arg(long)]
    resume: bool,
    /// After the search, evaluate the chosen run on the test split (its one reading): its
    /// final.json and report.md.
    #[arg(long)]
    evaluate: bool,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    data: DataArgs,
}

pub fn sweep(args: SweepArgs) -> Result<()> {
    let spec = SweepSpec::from_file(&args.spec)?;
    let opts = RunOptions {
        out: args.out.clone(),
        resume: args.resume,
        data: args.data.dir(),
        mirror: args.data.mirror(),
        quiet: args.quiet,
        validation_only: true,
    };
    let summary = mixtrain_train::sweep(&spec, &args.out, &opts)?;
    let mut json = serde_json::to_value(&summary)?;
    if args.evaluate {
        let Some(dir) = &summary.chosen_dir else {
            anyhow::bail!("no trial finished: nothing to evaluate");
        };
        let eval = evaluate_run(
            dir,
            &RunOptions {
                validation_only: false,
                ..opts
            },
        )?;
        json["final_eval"] = serde_json::to_value(&eval)?;
    }
    println!("{}", serde_json::to_string(&json)?);
    Ok(())
}
