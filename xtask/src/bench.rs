//! `cargo xtask bench`: runs the criterion benches, optionally times one training epoch per
//! method, and writes `target/bench-report/report.{md,json}`.
//!
//! Criterion measures time; the benches add, per benchmark, the unit of its throughput, the
//! peak heap of one iteration and its FLOP count where a model exists (`target/bench-meta/`,
//! see `mixtrain-bench`). The report joins the two, adds the machine, whether it was idle
//! (load average before and after), and, given a previous report, the ratio to it with
//! regressions marked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Flags of `cargo xtask bench`.
#[derive(Debug)]
pub struct Options {
    pub quick: bool,
    /// Run the criterion benches (`--epoch-only` turns them off).
    pub benches: bool,
    /// A previous `report.json`.
    pub baseline: Option<PathBuf>,
    /// A git ref whose `bench/baseline.json` is the baseline.
    pub baseline_ref: Option<String>,
    /// Slower than the baseline by more than this fraction: a regression.
    pub threshold: f64,
    /// `mnist` or `cifar`: also time one training epoch per method.
    pub epoch: Option<String>,
    /// `flex`, `ndarray`, `wgpu` or `cuda` (the GPU backends built with their features), and a
    /// GPU index for them.
    pub backend: String,
    pub device: Option<usize>,
}

impl Options {
    /// Cargo flags that compile the backend in: `mixtrain-bench/wgpu` (or `/cuda`) for the benches,
    /// `mixtrain-cli/wgpu` for the binary that times epochs.
    pub(crate) fn features(&self, package: &str) -> Vec<String> {
        match self.backend.as_str() {
            gpu @ ("wgpu" | "cuda") => vec!["--features".into(), format!("{package}/{gpu}")],
            _ => Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub date: String,
    pub commit: String,
    pub quick: bool,
    /// The backend the benchmarks ran on (`flex` in reports that predate the field).
    #[serde(default = "flex")]
    pub backend: String,
    pub machine: Machine,
    pub benchmarks: Vec<Entry>,
    pub epochs: Vec<EpochEntry>,
    #[serde(default)]
    pub baseline: Option<String>,
    #[serde(default)]
    pub regressions: Vec<String>,
}

fn flex() -> String {
    "flex".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub os: String,
    pub rustc: String,
    /// 1-minute load average before and after the run.
    pub load_before: Option<f64>,
    pub load_after: Option<f64>,
    /// Fraction of all cores busy over two seconds right before and after the benchmarks
    /// (nothing of ours runs then: any of it is another process).
    #[serde(default)]
    pub busy_before: Option<f64>,
    #[serde(default)]
    pub busy_after: Option<f64>,
    pub idle: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub median_s: f64,
    /// Median absolute deviation over the median.
    pub spread: f64,
    pub unit: String,
    /// `unit`s per second.
    pub throughput: Option<f64>,
    pub peak_mib: Option<f64>,
    pub flop: Option<f64>,
    pub gflops: Option<f64>,
    #[serde(default)]
    pub ratio: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochEntry {
    pub dataset: String,
    pub method: String,
    /// Training images of the timed epoch.
    pub images: usize,
    pub seconds: f64,
    /// Seconds scaled to an epoch of `scaled_to` images (the dataset's training set).
    pub seconds_scaled: f64,
    pub scaled_to: usize,
}

pub fn run(root: &Path, opts: &Options) -> Result<PathBuf> {
    let target = target_dir(root);
    let meta_dir = target.join("bench-meta");
    if meta_dir.exists() {
        std::fs::remove_dir_all(&meta_dir).context("clearing target/bench-meta")?;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut bench = Command::new(&cargo);
    // every bench target of the workspace (the whole workspace, so that features resolve as in
    // any other workspace build and burn is not built a second time)
    bench
        .current_dir(root)
        .args(["bench", "--workspace", "--bench", "*"])
        .args(opts.features("mixtrain-bench"))
        .env("MIXTRAIN_BENCH_BACKEND", &opts.backend);
    if let Some(index) = opts.device {
        bench.env("MIXTRAIN_BENCH_DEVICE", index.to_string());
    }
    if opts.quick {
        bench.env("MIXTRAIN_BENCH_QUICK", "1");
    }
    // build first: a build's own load must not count as another process's
    if opts.benches {
        let status = Command::new(&cargo)
            .current_dir(root)
            .args(["bench", "--workspace", "--bench", "*", "--no-run"])
            .args(opts.features("mixtrain-bench"))
            .status()
            .context("building the benches")?;
        if !status.success() {
            bail!("building the benches failed ({status})");
        }
    }
    let busy_before = busy_fraction(Duration::from_secs(2));
    let load_before = load_average();
    if opts.benches {
        let status = bench.status().context("running cargo bench")?;
        if !status.success() {
            bail!("cargo bench failed ({status})");
        }
    }
    let epochs = match opts.epoch.as_deref() {
        None => Vec::new(),
        Some(name) => {
            let Some(set) = EPOCH_SETS.iter().find(|s| s.name == name) else {
                bail!("--epoch {name}: expected mnist or cifar");
            };
            epochs(root, set, opts)?
        }
    };
    let load_after = load_average();
    let busy_after = busy_fraction(Duration::from_secs(2));
    let mut benchmarks = if opts.benches {
        collect(&target.join("criterion"), &meta_dir)?
    } else {
        Vec::new()
    };
    let mut report = Report {
        date: now(),
        commit: git(root, &["rev-parse", "--short", "HEAD"]).unwrap_or_default(),
        quick: opts.quick,
        backend: opts.backend.clone(),
        machine: Machine {
            load_before,
            load_after,
            ..machine(busy_before, busy_after)
        },
        benchmarks: Vec::new(),
        epochs,
        baseline: None,
        regressions: Vec::new(),
    };
    if let Some((name, base)) = baseline(root, opts)? {
        report.regressions = compare(&mut benchmarks, &base, opts.threshold);
        report.baseline = Some(name);
    }
    report.benchmarks = benchmarks;
    let out = target.join("bench-report");
    std::fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let md = markdown(&report, opts.threshold);
    std::fs::write(out.join("report.md"), &md)?;
    println!("{md}");
    Ok(out)
}

/// Sets each entry's ratio to its baseline median; returns the ids slower by more than
/// `threshold`.
fn compare(entries: &mut [Entry], base: &Report, threshold: f64) -> Vec<String> {
    let by_id: BTreeMap<&str, &Entry> =
        base.benchmarks.iter().map(|e| (e.id.as_str(), e)).collect();
    let mut regressions = Vec::new();
    for entry in entries {
        if let Some(b) = by_id.get(entry.id.as_str()) {
            let ratio = entry.median_s / b.median_s;
            entry.ratio = Some(ratio);
            if ratio > 1.0 + threshold {
                regressions.push(entry.id.clone());
            }
        }
    }
    regressions
}

/// Criterion's estimates joined with the benches' metadata; only benchmarks that wrote
/// metadata in this run (criterion keeps older results beside them).
fn collect(criterion: &Path, meta_dir: &Path) -> Result<Vec<Entry>> {
    let mut metas = BTreeMap::new();
    for file in read_dir(meta_dir)? {
        let meta: mixtrain_bench::Meta = read_json(&file)?;
        metas.insert(meta.id.clone(), meta);
    }
    let mut entries = Vec::new();
    for file in find(criterion, "benchmark.json")? {
        if file.parent().and_then(Path::file_name) != Some("new".as_ref()) {
            continue;
        }
        let info: serde_json::Value = read_json(&file)?;
        let Some(id) = info["full_id"].as_str() else {
            continue;
        };
        let Some(meta) = metas.get(id) else {
            continue;
        };
        let estimates: serde_json::Value = read_json(&file.with_file_name("estimates.json"))?;
        let ns = |v: &serde_json::Value| v.as_f64().map(|x| x * 1e-9);
        let median_s = ns(&estimates["median"]["point_estimate"])
            .with_context(|| format!("{}: no median", file.display()))?;
        let mad = ns(&estimates["median_abs_dev"]["point_estimate"]).unwrap_or(0.0);
        let elements = info["throughput"]["Elements"]
            .as_f64()
            .or_else(|| info["throughput"]["Bytes"].as_f64());
        entries.push(Entry {
            id: id.to_string(),
            median_s,
            spread: mad / median_s,
            unit: meta.unit.clone(),
            throughput: elements.map(|e| e / median_s),
            peak_mib: Some(meta.peak_bytes as f64 / (1024.0 * 1024.0)),
            flop: meta.flop,
            gflops: meta.flop.map(|f| f / median_s * 1e-9),
            ratio: None,
        });
    }
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    if entries.is_empty() {
        bail!(
            "no benchmark results in {} joined with {}",
            criterion.display(),
            meta_dir.display()
        );
    }
    Ok(entries)
}

/// A dataset whose epoch `--epoch` times: the preset, the images of a quick epoch, and the
/// epoch seconds are scaled to (the dataset's full training set).
struct EpochSet {
    name: &'static str,
    preset: &'static str,
    quick_images: usize,
    scaled_to: usize,
}

const EPOCH_SETS: [EpochSet; 2] = [
    EpochSet {
        name: "mnist",
        preset: "mnist-mixtrain",
        quick_images: 5_000,
        scaled_to: 60_000,
    },
    // the trainer falls back to the CIFAR-10 sample (3,900 training images here) without the
    // full set
    EpochSet {
        name: "cifar",
        preset: "cifar",
        quick_images: 2_000,
        scaled_to: 50_000,
    },
];

/// `(method label, train flags)`. CROWN-IBP's cost is that of its ramp (beta = 1 - progress > 0
/// runs the CROWN pass), so its epoch keeps beta near 1 with a ramp of 1000 epochs; the others
/// train at the full eps from the first step.
const EPOCH_METHODS: [(&str, &[&str]); 6] = [
    ("natural", &["--method", "natural"]),
    ("pgd (PGD-10)", &["--method", "pgd"]),
    ("ibp", &["--method", "ibp"]),
    (
        "crown-ibp",
        &[
            "--method",
            "crown-ibp",
            "--set",
            "eps_schedule.ramp_epochs=1000.0",
        ],
    ),
    ("mixtrain k=1", &["--method", "mixtrain", "--k", "1"]),
    ("mixtrain k=5", &["--method", "mixtrain", "--k", "5"]),
];

/// One epoch of each method on `set` (its preset's model, batch and eps), through the release
/// binary; `quick` trains on fewer images. Seconds are scaled by the training images the run
/// reports.
fn epochs(root: &Path, set: &EpochSet, opts: &Options) -> Result<Vec<EpochEntry>> {
    let binary = build_mixtrain(root, &opts.features("mixtrain-cli"))?;
    let runs = target_dir(root).join("bench-epoch").join(set.name);
    let mut backend = vec!["--backend".to_string(), opts.backend.clone()];
    backend.extend(opts.device.map(|i| format!("--device={i}")));
    let mut out = Vec::new();
    for (label, flags) in EPOCH_METHODS {
        let dir = runs.join(label.replace([' ', '(', ')', '='], ""));
        let args: Vec<String> = backend
            .iter()
            .cloned()
            .chain(flags.iter().map(|f| f.to_string()))
            .collect();
        let limit = opts.quick.then_some(set.quick_images);
        let start = Instant::now();
        let (seconds, images) = train_epoch(&binary, root, set.preset, &args, limit, &dir, None)
            .with_context(|| format!("epoch of {label} on {}", set.name))?;
        eprintln!(
            "{} {label}: {seconds:.1} s for {images} images ({:.0} s wall)",
            set.name,
            start.elapsed().as_secs_f64()
        );
        out.push(EpochEntry {
            dataset: set.name.into(),
            method: label.into(),
            images,
            seconds,
            seconds_scaled: seconds * set.scaled_to as f64 / images.max(1) as f64,
            scaled_to: set.scaled_to,
        });
    }
    Ok(out)
}

/// Builds the release `mixtrain` binary with `features`; its path.
pub(crate) fn build_mixtrain(root: &Path, features: &[String]) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--quiet", "-p", "mixtrain-cli"])
        .args(features)
        .status()
        .context("building the mixtrain binary")?;
    if !status.success() {
        bail!("building mixtrain failed ({status})");
    }
    Ok(target_dir(root).join("release/mixtrain"))
}

/// One epoch of `mixtrain train --preset preset` with `args` into `dir`, at the full eps from
/// the first step (no warm-up), PGD-10, on the first `train_limit` training images (100 more
/// are held out for validation); `threads` caps rayon's. The epoch's training seconds (the
/// trainer's own clock: no start-up, validation or evaluation) and its images.
pub(crate) fn train_epoch(
    binary: &Path,
    root: &Path,
    preset: &str,
    args: &[String],
    train_limit: Option<usize>,
    dir: &Path,
    threads: Option<usize>,
) -> Result<(f64, usize)> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let mut train = Command::new(binary);
    train
        .current_dir(root)
        .args(["train", "--preset", preset, "--epochs", "1", "--quiet"])
        .args(["--val-size", "100", "--test-limit", "100"])
        .args(["--set", "eps_schedule.warmup_epochs=0"])
        .args(["--set", "eps_schedule.ramp_epochs=0.0"])
        .args(["--set", "pgd.steps=10"])
        .args(["--set", "final_eval.pgd_steps=0"])
        .args(["--set", "final_eval.domain=\"interval\""])
        .args(args)
        .arg("--out")
        .arg(dir);
    if let Some(n) = train_limit {
        train.args(["--train-limit", &(n + 100).to_string()]);
    }
    if let Some(t) = threads {
        train.env("RAYON_NUM_THREADS", t.to_string());
    }
    capture_checked(&mut train)?;
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl"))?;
    let first: serde_json::Value = serde_json::from_str(
        metrics
            .lines()
            .next()
            .context("metrics.jsonl has no epoch")?,
    )?;
    let seconds = first["seconds"]
        .as_f64()
        .context("no `seconds` in metrics")?;
    let summary: serde_json::Value = read_json(&dir.join("summary.json"))?;
    let images = summary["train_n"]
        .as_u64()
        .context("no `train_n` in summary.json")? as usize;
    Ok((seconds, images))
}

fn baseline(root: &Path, opts: &Options) -> Result<Option<(String, Report)>> {
    if let Some(path) = &opts.baseline {
        let report: Report = read_json(path)?;
        return Ok(Some((path.display().to_string(), report)));
    }
    if let Some(rev) = &opts.baseline_ref {
        let Some(text) = git(root, &["show", &format!("{rev}:bench/baseline.json")]) else {
            eprintln!("WARNING: no bench/baseline.json at {rev}: no comparison");
            return Ok(None);
        };
        let report: Report = serde_json::from_str(&text)
            .with_context(|| format!("parsing bench/baseline.json at {rev}"))?;
        return Ok(Some((format!("{rev}:bench/baseline.json"), report)));
    }
    Ok(None)
}

impl Machine {
    /// The machine in a report's words: CPU, cores, OS, rustc, and how busy other work kept the
    /// CPU before and after.
    pub(crate) fn summary(&self) -> String {
        let busy = |b: Option<f64>| b.map_or("n/a".into(), |v| format!("{:.0}%", v * 100.0));
        format!(
            "{} ({} cores), {}, {}; CPU busy with other work before {}, after {}",
            self.cpu,
            self.cores,
            self.os,
            self.rustc,
            busy(self.busy_before),
            busy(self.busy_after)
        )
    }
}

fn markdown(r: &Report, threshold: f64) -> String {
    let m = &r.machine;
    let load = |l: Option<f64>| l.map_or("n/a".into(), |v| format!("{v:.2}"));
    let mut s = format!(
        "# Benchmark report\n\n{} · commit {} · {} · backend {}{}\n\nMachine: {}; load average (1 min) before {}, after {}.\n\n",
        r.date,
        r.commit,
        if r.quick { "quick mode" } else { "full mode" },
        r.backend,
        r.baseline
            .as_ref()
            .map_or(String::new(), |b| format!(" · baseline {b}")),
        m.summary(),
        load(m.load_before),
        load(m.load_after),
    );
    if !m.idle {
        s += "**WARNING: the machine was not idle (10% or more of the CPU busy with other work before or after the benchmarks): other work inflates these figures, often several times. Re-run on an idle machine before comparing.**\n\n";
    }
    if !r.regressions.is_empty() {
        s += &format!(
            "**Regressions** (slower than the baseline by more than {:.0}%): {}\n\n",
            threshold * 100.0,
            r.regressions.join(", ")
        );
    }
    if !r.benchmarks.is_empty() {
        s += "| benchmark | median | spread | throughput | peak heap | GFLOP | GFLOP/s | vs baseline |\n|---|---|---|---|---|---|---|---|\n";
    }
    for e in &r.benchmarks {
        let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".into(), f);
        let mark = if r.regressions.contains(&e.id) {
            " **regression**"
        } else {
            ""
        };
        s += &format!(
            "| {} | {} | ±{:.1}% | {} | {} | {} | {} | {}{} |\n",
            e.id,
            duration(e.median_s),
            e.spread * 100.0,
            opt(e.throughput, &|t| format!("{t:.1} {}/s", e.unit)),
            opt(e.peak_mib, &|p| format!("{p:.1} MiB")),
            opt(e.flop, &|f| format!("{:.3}", f * 1e-9)),
            opt(e.gflops, &|g| format!("{g:.1}")),
            opt(e.ratio, &|x| format!("{x:.2}x")),
            mark,
        );
    }
    if !r.epochs.is_empty() {
        s += "\n## One training epoch (the preset's model, batch and eps)\n\n| dataset | method | images | seconds | s per epoch of the training set |\n|---|---|---|---|---|\n";
        for e in &r.epochs {
            s += &format!(
                "| {} | {} | {} | {:.1} | {:.1} (of {}) |\n",
                e.dataset, e.method, e.images, e.seconds, e.seconds_scaled, e.scaled_to,
            );
        }
        s += "\nThe peers' figures: `cargo xtask bench --peers` times them beside ours in one run.\n";
    }
    s += "\nspread: median absolute deviation over the median. GFLOP: a model of the work (2 x MAC of the affine layers each pass runs; none for the symbolic domains, whose cost depends on the network's unstable neurons).\n";
    s
}

fn duration(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else `target/` of the workspace.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(|d| root.join(d))
        .unwrap_or_else(|| root.join("target"))
}

/// The fraction of CPU time (all cores) spent busy over the next `window`, from `/proc/stat`;
/// `None` off Linux.
pub(crate) fn busy_fraction(window: Duration) -> Option<f64> {
    fn sample() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let idle = cpu.get(3)? + cpu.get(4).unwrap_or(&0); // idle + iowait
        Some((cpu.iter().sum(), idle))
    }
    let (total0, idle0) = sample()?;
    std::thread::sleep(window);
    let (total1, idle1) = sample()?;
    let total = total1.saturating_sub(total0).max(1);
    Some(1.0 - idle1.saturating_sub(idle0) as f64 / total as f64)
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The CPU's model name with its family and model numbers: a virtual machine's name is often
/// only "AMD EPYC", which says nothing of the generation (family 25 model 17 is Zen 4).
fn cpu_model() -> String {
    match std::fs::read_to_string("/proc/cpuinfo") {
        Ok(info) => describe_cpu(&info),
        Err(_) => "unknown CPU".into(),
    }
}

fn describe_cpu(info: &str) -> String {
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
    };
    let name = field("model name").unwrap_or_else(|| "unknown CPU".into());
    match (field("cpu family"), field("model")) {
        (Some(family), Some(model)) => format!("{name} (family {family}, model {model})"),
        _ => name,
    }
}

/// The machine: CPU, cores, OS, rustc, and whether it was idle given the busy fractions
/// measured before and after (less than a tenth of the CPU busy with other work).
pub(crate) fn machine(busy_before: Option<f64>, busy_after: Option<f64>) -> Machine {
    Machine {
        cpu: cpu_model(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        rustc: capture(Command::new("rustc").arg("--version")).unwrap_or_default(),
        load_before: None,
        load_after: None,
        busy_before,
        busy_after,
        idle: [busy_before, busy_after]
            .iter()
            .all(|b| b.is_none_or(|b| b < 0.1)),
    }
}

pub(crate) fn now() -> String {
    capture(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])).unwrap_or_default()
}

pub(crate) fn git(root: &Path, args: &[&str]) -> Option<String> {
    capture(Command::new("git").current_dir(root).args(args))
}

fn capture(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `cmd`'s standard output; a failure is an error that names the program and ends with the
/// last lines it wrote to standard error.
pub(crate) fn capture_checked(cmd: &mut Command) -> Result<String> {
    let program = cmd.get_program().to_string_lossy().to_string();
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{program} failed ({}):\n{}", out.status, tail.join("\n"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        files.push(entry?.path());
    }
    Ok(files)
}

/// Every file named `name` under `dir`.
fn find(dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for path in read_dir(dir)? {
        if path.is_dir() {
            found.extend(find(&path, name)?);
        } else if path.file_name() == Some(name.as_ref()) {
            found.push(path);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A criterion result as criterion 0.8 lays it out, median `median_ns` per iteration.
    fn criterion_result(dir: &Path, id: &str, elements: u64, median_ns: f64) {
        let new = dir.join(id.replace('/', "_")).join("new");
        std::fs::create_dir_all(&new).unwrap();
        let info = serde_json::json!({"full_id": id, "throughput": {"Elements": elements}});
        std::fs::write(new.join("benchmark.json"), info.to_string()).unwrap();
        let estimates = serde_json::json!({
            "median": {"point_estimate": median_ns},
            "median_abs_dev": {"point_estimate": median_ns * 0.05},
        });
        std::fs::write(new.join("estimates.json"), estimates.to_string()).unwrap();
    }

    fn meta(dir: &Path, id: &str, flop: Option<f64>) {
        std::fs::create_dir_all(dir).unwrap();
        let meta = mixtrain_bench::Meta {
            id: id.into(),
            unit: "images".into(),
            peak_bytes: 3 * 1024 * 1024,
            flop,
        };
        let name = id.replace('/', "__");
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_string(&meta).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn the_cpu_is_named_with_its_family_and_model() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n";
        assert_eq!(describe_cpu(info), "AMD EPYC (family 25, model 17)");
        assert_eq!(describe_cpu("model name\t: Some CPU\n"), "Some CPU");
    }

    #[test]
    fn criterion_estimates_join_the_benches_metadata_and_baselines_mark_regressions() {
        let tmp = tempfile::tempdir().unwrap();
        let (criterion, metas) = (tmp.path().join("criterion"), tmp.path().join("meta"));
        criterion_result(&criterion, "g/fast/50", 50, 2e6); // 2 ms for 50 images
        criterion_result(&criterion, "g/slow/50", 50, 4e8);
        criterion_result(&criterion, "g/stale/50", 50, 1e6); // no metadata: an older run
        meta(&metas, "g/fast/50", Some(1e9));
        meta(&metas, "g/slow/50", None);
        let mut entries = collect(&criterion, &metas).unwrap();
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["g/fast/50", "g/slow/50"]);
        let fast = &entries[0];
        assert!((fast.median_s - 2e-3).abs() < 1e-12);
        assert!((fast.throughput.unwrap() - 25_000.0).abs() < 1e-6);
        assert!((fast.gflops.unwrap() - 500.0).abs() < 1e-6);
        assert!((fast.spread - 0.05).abs() < 1e-12);
        assert_eq!(fast.peak_mib, Some(3.0));
        assert_eq!(entries[1].gflops, None);

        let mut base = entries.clone();
        base[0].median_s = 1e-3; // fast was twice as fast before
        base[1].median_s = 0.39; // slow: within 10%
        let report = Report {
            date: String::new(),
            commit: String::new(),
            quick: true,
            backend: flex(),
            machine: Machine {
                cpu: String::new(),
                cores: 2,
                os: String::new(),
                rustc: String::new(),
                load_before: Some(1.5),
                load_after: None,
                busy_before: Some(0.4),
                busy_after: None,
                idle: false,
            },
            benchmarks: base,
            epochs: Vec::new(),
            baseline: None,
            regressions: Vec::new(),
        };
        let regressions = compare(&mut entries, &report, 0.10);
        assert_eq!(regressions, ["g/fast/50"]);
        assert!((entries[0].ratio.unwrap() - 2.0).abs() < 1e-9);
        let md = markdown(
            &Report {
                benchmarks: entries,
                regressions,
                ..report
            },
            0.10,
        );
        assert!(md.contains("WARNING: the machine was not idle"));
        assert!(md.contains("| g/fast/50 | 2.00 ms | ±5.0% | 25000.0 images/s | 3.0 MiB | 1.000 | 500.0 | 2.00x **regression** |"), "{md}");
    }
}
