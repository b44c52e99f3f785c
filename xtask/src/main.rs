//! `cargo xtask`: project automation in Rust.
//!
//! - `cargo xtask fetch <dataset> [--mirror DIR] [--data DIR]`: download a dataset (HTTPS,
//!   resumable, checksum-verified) or copy it from a mirror laid out as `shared/datasets`.
//! - `cargo xtask train <preset> [mixtrain train flags...]`: fetch the preset's dataset (from
//!   `MIXTRAIN_MIRROR` when set, else by download), build the `mixtrain` binary in release
//!   mode and train with the preset. A CIFAR-10 preset falls back to `cifar10-sample` when the
//!   full set cannot be fetched (offline, a mirror holding only the sample), and says so.
//! - `cargo xtask bench [--quick] [--backend B [--device I]] [--baseline FILE | --baseline-ref REF] [--threshold PCT]
//!   [--epoch mnist|cifar [--epoch-only]]`: run the criterion benches (and time a training epoch per
//!   method) and
//!   write `target/bench-report/report.{md,json}`; see `bench.rs`.
//! - `cargo xtask gpu-report FILE`: the report of `scripts/gpu-check.sh run` (a GPU machine's)
//!   as markdown; see `gpu.rs`.
//! - `cargo xtask bench --peers [--quick] [--repeats N] [--python PY] [--symint DIR] [--threads N]
//!   [--models mnist_small,cifar_small] [--data DIR] [--mirror DIR]`: time ours and the peers
//!   (`bench/peers.py`) alternately and write `target/bench-report/peers.{md,json}`; see
//!   `peers.rs`.
//!
//! Data lives in `MIXTRAIN_DATA`, by default `datasets/cache/` of the workspace (git-ignored).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use mixtrain_data::{DataDir, Manifest, Source};

mod bench;
mod gpu;
mod peers;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `MIXTRAIN_DATA`, or `datasets/cache` under the workspace root (absolute, so that the
/// binary finds it from any working directory).
fn data_dir(flag: Option<PathBuf>) -> DataDir {
    match flag {
        Some(dir) => DataDir::new(dir),
        None => match std::env::var_os(DataDir::ENV).filter(|v| !v.is_empty()) {
            Some(dir) => DataDir::new(dir),
            None => DataDir::new(workspace_root().join(DataDir::DEFAULT)),
        },
    }
}

/// Takes `--name VALUE` out of `args`.
fn take_flag(args: &mut Vec<String>, name: &str) -> Result<Option<String>> {
    match args.iter().position(|a| a == name) {
        Some(i) if i + 1 < args.len() => {
            let value = args.remove(i + 1);
            args.remove(i);
            Ok(Some(value))
        }
        Some(_) => bail!("{name} needs a value"),
        None => Ok(None),
    }
}

fn fetch(name: &str, dir: &DataDir, mirror: Option<PathBuf>) -> Result<()> {
    let manifest = Manifest::builtin(name)?;
    let source = match mirror {
        Some(m) => Source::Mirror(m),
        None => Source::Download,
    };
    let report = mixtrain_data::fetch(&manifest, dir, &source)
        .with_context(|| format!("fetching {name}"))?;
    eprintln!(
        "{name}: {} fetched, {} already present, in {}",
        report.fetched.len(),
        report.present.len(),
        dir.dataset(name).display()
    );
    Ok(())
}

/// The `dataset` a preset trains on.
fn preset_dataset(preset: &str) -> Result<String> {
    let path = workspace_root()
        .join("crates/train/presets")
        .join(format!("{preset}.toml"));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("preset {preset}: {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    match table.get("dataset").and_then(|v| v.as_str()) {
        Some(d) => Ok(d.to_string()),
        None => bail!("{}: no `dataset` field", path.display()),
    }
}

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        bail!(
            "usage: cargo xtask fetch <dataset> [--mirror DIR] [--data DIR] | cargo xtask train <preset> [flags] | cargo xtask bench [--quick] [--backend flex|ndarray|wgpu|cuda [--device I]] [--baseline FILE | --baseline-ref REF] [--threshold PCT] [--epoch mnist|cifar [--epoch-only]] | cargo xtask bench --peers [--quick] [--repeats N] [--python PY] [--symint DIR] [--threads N] [--models LIST] [--data DIR] [--mirror DIR] | cargo xtask gpu-report FILE"
        );
    }
    let task = args.remove(0);
    if task == "bench" {
        return run_bench(args);
    }
    if task == "gpu-report" {
        let [file] = args.as_slice() else {
            bail!(
                "usage: cargo xtask gpu-report <gpu-report.jsonl> (what scripts/gpu-check.sh run wrote)"
            );
        };
        println!("{}", gpu::report(Path::new(file))?);
        return Ok(());
    }
    let data = data_dir(take_flag(&mut args, "--data")?.map(PathBuf::from));
    let mirror = take_flag(&mut args, "--mirror")?
        .map(PathBuf::from)
        .or_else(DataDir::mirror_from_env);
    match task.as_str() {
        "fetch" => {
            let [name] = args.as_slice() else {
                bail!(
                    "usage: cargo xtask fetch <dataset> [--mirror DIR] [--data DIR]; datasets: {}",
                    Manifest::builtin_names().collect::<Vec<_>>().join(", ")
                );
            };
            fetch(name, &data, mirror)
        }
        "train" => {
            if args.is_empty() {
                bail!("usage: cargo xtask train <preset> [mixtrain train flags]");
            }
            let preset = args.remove(0);
            let dataset = preset_dataset(&preset)?;
            if let Err(e) = fetch(&dataset, &data, mirror.clone()) {
                // The trainer falls back to the sample (loudly) when only the sample is there.
                let Some(sample) = mixtrain_data::sample_of(&dataset) else {
                    return Err(e);
                };
                eprintln!("WARNING: {e:#}; fetching {sample} instead");
                fetch(sample, &data, mirror)?;
            }
            // a GPU backend needs the binary built with its feature
            let gpu = ["wgpu", "cuda"].into_iter().find(|b| {
                args.windows(2).any(|w| w[0] == "--backend" && w[1] == *b)
                    || args.iter().any(|a| *a == format!("--backend={b}"))
            });
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(workspace_root())
                .args(["run", "--release", "--quiet", "-p", "mixtrain-cli"])
                .args(gpu.map(|b| ["--features", b]).into_iter().flatten())
                .args(["--", "train", "--preset", &preset])
                .args(&args)
                .env(DataDir::ENV, data.root())
                .status()
                .context("running cargo")?;
            if !status.success() {
                bail!("training failed ({status})");
            }
            Ok(())
        }
        other => bail!("unknown task {other:?}: expected fetch, train, bench or gpu-report"),
    }
}

/// What `cargo xtask bench` was asked for.
#[derive(Debug)]
enum BenchTask {
    Benches(bench::Options),
    /// `--peers`, and the data directory (`--data`) and mirror (`--mirror`) it reads.
    Peers(peers::Options, Option<PathBuf>, Option<PathBuf>),
}

fn run_bench(args: Vec<String>) -> Result<()> {
    match parse_bench(args)? {
        BenchTask::Benches(opts) => {
            let out = bench::run(&workspace_root(), &opts)?;
            eprintln!("report: {}", out.join("report.md").display());
        }
        BenchTask::Peers(opts, data, mirror) => {
            let data = data_dir(data);
            let mirror = mirror.or_else(DataDir::mirror_from_env);
            for name in peers::datasets(&opts)? {
                fetch(name, &data, mirror.clone())?;
            }
            let out = peers::run(&workspace_root(), &opts, data.root(), mirror.as_deref())?;
            eprintln!("report: {}", out.display());
        }
    }
    Ok(())
}

/// Takes `--name N` out of `args` as a positive count.
fn take_count(args: &mut Vec<String>, name: &str) -> Result<Option<usize>> {
    match take_flag(args, name)? {
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => bail!("{name} {v:?}: a positive whole number"),
        },
        None => Ok(None),
    }
}

fn parse_bench(mut args: Vec<String>) -> Result<BenchTask> {
    let mut switch = |name: &str| match args.iter().position(|a| a == name) {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    };
    let quick = switch("--quick");
    let epoch_only = switch("--epoch-only");
    let peers = switch("--peers");
    if peers {
        if epoch_only {
            bail!("--epoch-only does not apply to --peers");
        }
        for flag in [
            "--baseline",
            "--baseline-ref",
            "--threshold",
            "--epoch",
            "--backend",
            "--device",
        ] {
            if args.iter().any(|a| a == flag) {
                bail!("{flag} does not apply to --peers (it times ours and the peers on the CPU)");
            }
        }
        let opts = peers::Options {
            quick,
            repeats: take_count(&mut args, "--repeats")?,
            python: take_flag(&mut args, "--python")?,
            symint: take_flag(&mut args, "--symint")?.map(PathBuf::from),
            threads: take_count(&mut args, "--threads")?,
            models: match take_flag(&mut args, "--models")? {
                Some(list) => list.split(',').map(str::to_string).collect(),
                None => vec!["mnist_small".into(), "cifar_small".into()],
            },
        };
        peers::datasets(&opts)?;
        let data = take_flag(&mut args, "--data")?.map(PathBuf::from);
        let mirror = take_flag(&mut args, "--mirror")?.map(PathBuf::from);
        if let Some(extra) = args.first() {
            bail!("cargo xtask bench --peers: unexpected argument {extra:?}");
        }
        return Ok(BenchTask::Peers(opts, data, mirror));
    }
    let threshold = match take_flag(&mut args, "--threshold")? {
        Some(t) => {
            t.parse::<f64>()
                .with_context(|| format!("--threshold {t:?}: a percentage"))?
                / 100.0
        }
        None => 0.10,
    };
    let opts = bench::Options {
        quick,
        benches: !epoch_only,
        baseline: take_flag(&mut args, "--baseline")?.map(PathBuf::from),
        baseline_ref: take_flag(&mut args, "--baseline-ref")?,
        threshold,
        epoch: take_flag(&mut args, "--epoch")?,
        backend: take_flag(&mut args, "--backend")?.unwrap_or_else(|| "flex".into()),
        device: match take_flag(&mut args, "--device")? {
            Some(d) => Some(
                d.parse()
                    .with_context(|| format!("--device {d:?}: a GPU index"))?,
            ),
            None => None,
        },
    };
    if !["flex", "ndarray", "wgpu", "cuda"].contains(&opts.backend.as_str()) {
        bail!(
            "--backend {:?}: expected flex, ndarray, wgpu or cuda",
            opts.backend
        );
    }
    if let Some(extra) = args.first() {
        bail!("cargo xtask bench: unexpected argument {extra:?}");
    }
    Ok(BenchTask::Benches(opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<BenchTask> {
        parse_bench(line.split_whitespace().map(str::to_string).collect())
    }

    #[test]
    fn bench_peers_takes_its_own_flags_and_refuses_the_benches() {
        let BenchTask::Peers(opts, data, mirror) = parse(
            "--peers --quick --repeats 4 --python /venv/bin/python --symint /si --threads 1 --models cifar_small --data /d",
        )
        .unwrap() else {
            panic!("not --peers")
        };
        assert_eq!(
            opts,
            peers::Options {
                quick: true,
                repeats: Some(4),
                python: Some("/venv/bin/python".into()),
                symint: Some("/si".into()),
                threads: Some(1),
                models: vec!["cifar_small".into()],
            }
        );
        assert_eq!((data, mirror), (Some("/d".into()), None));
        let BenchTask::Peers(opts, ..) = parse("--peers").unwrap() else {
            panic!("not --peers")
        };
        assert_eq!(opts.models, ["mnist_small", "cifar_small"]);
        assert!(!opts.quick && opts.repeats.is_none() && opts.python.is_none());

        for (line, says) in [
            (
                "--peers --baseline b.json",
                "--baseline does not apply to --peers",
            ),
            ("--peers --epoch mnist", "--epoch does not apply"),
            ("--peers --epoch-only", "--epoch-only does not apply"),
            (
                "--peers --repeats 0",
                "--repeats \"0\": a positive whole number",
            ),
            ("--peers --threads x", "--threads \"x\""),
            (
                "--peers --models mnist_large",
                "--models mnist_large: expected",
            ),
            ("--peers --repeats", "--repeats needs a value"),
            ("--peers --fast", "unexpected argument \"--fast\""),
        ] {
            let e = format!("{:#}", parse(line).unwrap_err());
            assert!(e.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn bench_without_peers_keeps_its_flags() {
        let BenchTask::Benches(opts) =
            parse("--quick --epoch cifar --epoch-only --threshold 5").unwrap()
        else {
            panic!("not the benches")
        };
        assert!(opts.quick && !opts.benches);
        assert_eq!(opts.epoch.as_deref(), Some("cifar"));
        assert!((opts.threshold - 0.05).abs() < 1e-12);
        assert_eq!(opts.backend, "flex");
        let e = format!("{:#}", parse("--backend rocm").unwrap_err());
        assert!(e.contains("expected flex, ndarray, wgpu or cuda"), "{e}");
        let BenchTask::Benches(opts) = parse("--backend cuda --device 1").unwrap() else {
            panic!("not the benches")
        };
        assert_eq!((opts.backend.as_str(), opts.device), ("cuda", Some(1)));
        assert_eq!(
            opts.features("mixtrain-bench"),
            ["--features", "mixtrain-bench/cuda"]
        );
        let e = format!("{:#}", parse("--repeats 3").unwrap_err());
        assert!(e.contains("unexpected argument \"--repeats\""), "{e}");
    }
}
