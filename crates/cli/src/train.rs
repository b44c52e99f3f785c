//! `mixtrain train`: a run from a preset, a config file or a checkpoint, with flags and
//! `--set` overrides on top.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use clap::Args;
use mixtrain_train::{RunOptions, TrainConfig};

use crate::DataArgs;

#[derive(Args)]
pub(crate) struct TrainArgs {
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

pub(crate) fn train(args: TrainArgs) -> Result<()> {
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
