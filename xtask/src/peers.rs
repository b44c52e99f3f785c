//! `cargo xtask bench --peers`: ours and the peers timed alternately in one run, on one
//! machine, and one report with a ratio per row (`target/bench-report/peers.{md,json}`).
//!
//! A host's speed moves from day to day, so a ratio counts only when both sides ran in the same
//! run: every repeat times ours, then each peer, row by row, and checks that the machine was
//! idle right before each timing. The peers run through `bench/peers.py`, which does the same
//! steps on the same data, shapes, batch, eps and thread count; a peer that is not installed
//! leaves its rows skipped, with the reason in the report.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::bench::{self, Machine};

/// Flags of `cargo xtask bench --peers`.
#[derive(Debug, PartialEq)]
pub struct Options {
    /// Fewer images and two repeats: under ten minutes on two cores.
    pub quick: bool,
    /// Repeats of every timing (each side), default 3 (2 with `--quick`).
    pub repeats: Option<usize>,
    /// The Python with the peers installed (`--python`, else `MIXTRAIN_PYTHON`, else
    /// `python3`).
    pub python: Option<String>,
    /// A checkout of the MixTrain authors' `symbolic_interval` (`--symint`, else
    /// `SYMINT_PATH`).
    pub symint: Option<PathBuf>,
    /// Threads of both sides, default: every core.
    pub threads: Option<usize>,
    /// `mnist_small` and/or `cifar_small` (`--models a,b`), default both.
    pub models: Vec<String>,
}

/// A dataset and model the rows run on.
struct ModelSet {
    model: &'static str,
    preset: &'static str,
    /// The folder of the data directory both sides read.
    dataset: &'static str,
    eps: f64,
    /// Images of the epoch that seconds are scaled to.
    epoch: usize,
    /// Training images timed per repeat, full and quick.
    images: [usize; 2],
    /// Test images verified per repeat (0: no verification rows), full and quick.
    verified: [usize; 2],
}

const MODELS: [ModelSet; 2] = [
    ModelSet {
        model: "mnist_small",
        preset: "mnist-mixtrain",
        dataset: "mnist",
        eps: 0.1,
        epoch: 60_000,
        images: [5_000, 1_000],
        verified: [2_000, 400],
    },
    // the CIFAR-10 sample: the CI mirror's, and the images do not change the work of a step
    ModelSet {
        model: "cifar_small",
        preset: "cifar",
        dataset: "cifar10-sample",
        eps: 2.0 / 255.0,
        epoch: 50_000,
        images: [2_000, 400],
        verified: [0, 0],
    },
];

/// What a row times on our side.
enum Ours {
    /// One epoch of `mixtrain train` with these flags.
    Train(&'static [&'static str]),
    /// `mixtrain eval --domain` on the reference network, this many points per bound call.
    Verify { domain: &'static str, batch: usize },
}

/// A row: ours and the peers that do the same work (names as `bench/peers.py` knows them).
struct Row {
    id: &'static str,
    label: &'static str,
    ours: Ours,
    peers: &'static [&'static str],
}

const ROWS: [Row; 9] = [
    Row {
        id: "natural",
        label: "natural",
        ours: Ours::Train(&["--method", "natural"]),
        peers: &["PyTorch"],
    },
    Row {
        id: "pgd",
        label: "PGD-10",
        ours: Ours::Train(&["--method", "pgd"]),
        peers: &["PyTorch"],
    },
    Row {
        id: "ibp",
        label: "IBP",
        ours: Ours::Train(&["--method", "ibp"]),
        peers: &["PyTorch", "auto_LiRPA"],
    },
    // CROWN-IBP's cost is that of its ramp (beta > 0 runs the CROWN pass): a ramp of 1000
    // epochs keeps beta near 1, and the peer runs at beta = 1
    Row {
        id: "crown-ibp",
        label: "CROWN-IBP",
        ours: Ours::Train(&[
            "--method",
            "crown-ibp",
            "--set",
            "eps_schedule.ramp_epochs=1000.0",
        ]),
        peers: &["auto_LiRPA"],
    },
    // the peers: the authors' symbolic step, and auto_LiRPA's CROWN on the same k points
    Row {
        id: "mixtrain",
        label: "MixTrain k = 5",
        ours: Ours::Train(&["--method", "mixtrain", "--k", "5"]),
        peers: &["symbolic_interval", "auto_LiRPA"],
    },
    Row {
        id: "verify-interval",
        label: "verify: interval",
        ours: Ours::Verify {
            domain: "interval",
            batch: 50,
        },
        peers: &["auto_LiRPA"],
    },
    Row {
        id: "verify-crown",
        label: "verify: CROWN-IBP",
        ours: Ours::Verify {
            domain: "crown",
            batch: 50,
        },
        peers: &["auto_LiRPA"],
    },
    // ours' intermediate bounds are symbolic intervals, auto_LiRPA's CROWN's are CROWN's
    Row {
        id: "verify-crown-symbolic",
        label: "verify: CROWN (ours: crown-symbolic)",
        ours: Ours::Verify {
            domain: "crown-symbolic",
            batch: 5,
        },
        peers: &["auto_LiRPA"],
    },
    Row {
        id: "verify-symbolic",
        label: "verify: symbolic",
        ours: Ours::Verify {
            domain: "symbolic",
            batch: 5,
        },
        peers: &["symbolic_interval"],
    },
];

/// One timing of one side.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Timing {
    pub seconds: f64,
    pub images: usize,
    /// Fraction of the CPU busy over the second right before (nothing of ours ran then).
    pub busy_before: Option<f64>,
    /// Points verified (verification rows): both sides must agree on the same bounds.
    pub verified: Option<usize>,
}

impl Timing {
    fn per_image(&self) -> f64 {
        self.seconds / self.images.max(1) as f64
    }

    /// Another process held a tenth of the CPU or more right before.
    fn busy(&self) -> bool {
        self.busy_before.is_some_and(|b| b >= BUSY)
    }
}

/// Busy fraction from which a timing is marked.
const BUSY: f64 = 0.1;

/// One side of a row: its timings, or why it has none.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Side {
    pub who: String,
    pub timings: Vec<Timing>,
    pub skipped: Option<String>,
}

impl Side {
    fn new(who: &str) -> Self {
        Self {
            who: who.into(),
            timings: Vec::new(),
            skipped: None,
        }
    }

    /// Median seconds per image, and the median absolute deviation over it.
    pub fn median(&self) -> Option<(f64, f64)> {
        let per: Vec<f64> = self.timings.iter().map(Timing::per_image).collect();
        let mid = median(&per)?;
        let deviations: Vec<f64> = per.iter().map(|t| (t - mid).abs()).collect();
        Some((mid, median(&deviations).unwrap_or(0.0) / mid))
    }

    pub fn busy(&self) -> bool {
        self.timings.iter().any(Timing::busy)
    }
}

fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RowReport {
    pub model: String,
    pub row: String,
    pub label: String,
    /// Training rows are reported per epoch of this many images; verification rows per image.
    pub epoch: Option<usize>,
    pub ours: Side,
    pub peers: Vec<Side>,
}

impl RowReport {
    /// `ours / peer` of the median seconds per image: above 1, ours is slower.
    pub fn ratio(&self, peer: &Side) -> Option<f64> {
        Some(self.ours.median()?.0 / peer.median()?.0)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub date: String,
    pub commit: String,
    pub quick: bool,
    pub repeats: usize,
    pub threads: usize,
    /// Wall-clock seconds of the timings, idleness checks and start-ups (after the build).
    pub seconds: f64,
    pub machine: Machine,
    /// `bench/peers.py versions`: Python, PyTorch, auto_LiRPA, symbolic_interval, and the
    /// reason each missing peer is missing.
    pub versions: serde_json::Value,
    pub rows: Vec<RowReport>,
}

/// The model sets `opts.models` names.
fn sets(opts: &Options) -> Result<Vec<&'static ModelSet>> {
    opts.models
        .iter()
        .map(|name| {
            MODELS
                .iter()
                .find(|s| s.model == name)
                .with_context(|| format!("--models {name}: expected mnist_small or cifar_small"))
        })
        .collect()
}

/// The datasets the run reads, to fetch before it.
pub fn datasets(opts: &Options) -> Result<Vec<&'static str>> {
    Ok(sets(opts)?.into_iter().map(|s| s.dataset).collect())
}

pub fn run(root: &Path, opts: &Options, data: &Path, mirror: Option<&Path>) -> Result<PathBuf> {
    let repeats = opts.repeats.unwrap_or(if opts.quick { 2 } else { 3 });
    let threads = opts.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let sets = sets(opts)?;
    let binary = bench::build_mixtrain(root, &[])?;
    let peer = Peer::new(root, opts);
    let versions = peer.versions();
    let weights = sets
        .iter()
        .any(|s| s.verified[0] > 0)
        .then(|| reference_weights(data, mirror))
        .transpose()?;
    let mut rows = planned(&sets, &versions);
    let start = std::time::Instant::now();
    let busy_before = bench::busy_fraction(std::time::Duration::from_secs(2));
    for repeat in 0..repeats {
        for report in &mut rows {
            let set = sets.iter().find(|s| s.model == report.model).unwrap();
            let row = ROWS.iter().find(|r| r.id == report.row).unwrap();
            let job = Job {
                root,
                data,
                set,
                row,
                quick: opts.quick,
                threads,
                weights: weights.as_deref(),
            };
            let busy = bench::busy_fraction(std::time::Duration::from_secs(1));
            let mut timing = job.ours(&binary)?;
            timing.busy_before = busy;
            eprintln!(
                "[{}/{repeats}] {} {}: ours {:.2} s",
                repeat + 1,
                set.model,
                row.label,
                timing.seconds
            );
            report.ours.timings.push(timing);
            for side in &mut report.peers {
                if side.skipped.is_some() {
                    continue;
                }
                let busy = bench::busy_fraction(std::time::Duration::from_secs(1));
                match peer.time(&job, &side.who)? {
                    Ok(mut timing) => {
                        timing.busy_before = busy;
                        eprintln!("    {}: {:.2} s", side.who, timing.seconds);
                        side.timings.push(timing);
                    }
                    Err(reason) => side.skipped = Some(reason),
                }
            }
        }
    }
    let busy_after = bench::busy_fraction(std::time::Duration::from_secs(2));
    let report = Report {
        date: bench::now(),
        commit: bench::git(root, &["rev-parse", "--short", "HEAD"]).unwrap_or_default(),
        quick: opts.quick,
        repeats,
        threads,
        seconds: start.elapsed().as_secs_f64(),
        machine: bench::machine(busy_before, busy_after),
        versions,
        rows,
    };
    write(root, &report)
}

/// The rows the run fills, each side empty; a peer the Python lacks is skipped with its
/// reason from the start.
fn planned(sets: &[&ModelSet], versions: &serde_json::Value) -> Vec<RowReport> {
    let mut rows = Vec::new();
    for set in sets {
        for row in ROWS.iter().filter(|r| set.runs(r)) {
            let mut report = RowReport {
                model: set.model.into(),
                row: row.id.into(),
                label: row.label.into(),
                epoch: matches!(row.ours, Ours::Train(_)).then_some(set.epoch),
                ours: Side::new("ours"),
                peers: row.peers.iter().map(|p| Side::new(p)).collect(),
            };
            for side in &mut report.peers {
                side.skipped = versions["missing"][&side.who].as_str().map(str::to_string);
            }
            rows.push(report);
        }
    }
    rows
}

/// `target/bench-report/peers.{json,md}`; the markdown's path.
fn write(root: &Path, report: &Report) -> Result<PathBuf> {
    let out = bench::target_dir(root).join("bench-report");
    std::fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
    std::fs::write(
        out.join("peers.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    let md = markdown(report);
    std::fs::write(out.join("peers.md"), &md)?;
    println!("{md}");
    Ok(out.join("peers.md"))
}

impl ModelSet {
    fn runs(&self, row: &Row) -> bool {
        match row.ours {
            Ours::Train(_) => true,
            Ours::Verify { .. } => self.verified[0] > 0,
        }
    }

    fn images(&self, quick: bool) -> usize {
        self.images[usize::from(quick)]
    }

    fn verified(&self, quick: bool) -> usize {
        self.verified[usize::from(quick)]
    }

    /// PGD's step in training: the trainer's default `pgd.step_size`, 2.5 eps over its 10
    /// steps (Madry et al.'s).
    fn pgd_step(&self) -> f64 {
        2.5 * self.eps / 10.0
    }
}

/// The MixTrain authors' eps-0.3 network, which the verification rows bound.
fn reference_weights(data: &Path, mirror: Option<&Path>) -> Result<PathBuf> {
    mixtrain_data::reference_weights(
        "mixtrain-eps0.3",
        &mixtrain_data::DataDir::new(data),
        mirror,
    )
    .context("the reference network the verification rows bound")
}

/// One row of one repeat on one model.
struct Job<'a> {
    root: &'a Path,
    data: &'a Path,
    set: &'a ModelSet,
    row: &'a Row,
    quick: bool,
    threads: usize,
    weights: Option<&'a Path>,
}

impl Job<'_> {
    fn ours(&self, binary: &Path) -> Result<Timing> {
        let (set, quick) = (self.set, self.quick);
        match self.row.ours {
            Ours::Train(flags) => {
                let dir = bench::target_dir(self.root)
                    .join("bench-peers")
                    .join(set.model)
                    .join(self.row.id);
                let mut args: Vec<String> = ["--dataset", set.dataset, "--data"]
                    .map(String::from)
                    .to_vec();
                args.push(self.data.display().to_string());
                args.extend(["--set".into(), "augment=false".into()]);
                args.extend(flags.iter().map(|f| f.to_string()));
                let (seconds, images) = bench::train_epoch(
                    binary,
                    self.root,
                    set.preset,
                    &args,
                    Some(set.images(quick)),
                    &dir,
                    Some(self.threads),
                )?;
                Ok(Timing {
                    seconds,
                    images,
                    busy_before: None,
                    verified: None,
                })
            }
            Ours::Verify { domain, batch } => {
                let weights = self.weights.context("no reference weights")?;
                let n = set.verified(quick);
                let out = bench::capture_checked(
                    Command::new(binary)
                        .current_dir(self.root)
                        .args(["eval", "--model", set.model, "--dataset", set.dataset])
                        .arg("--data")
                        .arg(self.data)
                        .arg("--weights")
                        .arg(weights)
                        .args(["--limit", &n.to_string(), "--eps", &set.eps.to_string()])
                        .args(["--domain", domain, "--bound-batch-size", &batch.to_string()])
                        .args(["--no-float-sound", "--bound-all", "--json"])
                        .env("RAYON_NUM_THREADS", self.threads.to_string()),
                )?;
                let json: serde_json::Value = serde_json::from_str(
                    out.lines()
                        .last()
                        .context("mixtrain eval printed nothing")?,
                )?;
                let field = |name: &str| {
                    json[name]
                        .as_f64()
                        .with_context(|| format!("mixtrain eval: no {name:?} in {json}"))
                };
                Ok(Timing {
                    seconds: field("verify_seconds")?,
                    images: n,
                    busy_before: None,
                    verified: Some((field("verified_acc")? * n as f64).round() as usize),
                })
            }
        }
    }
}

/// `bench/peers.py` under a Python.
struct Peer {
    python: String,
    root: PathBuf,
    script: PathBuf,
    symint: Option<PathBuf>,
}

impl Peer {
    fn new(root: &Path, opts: &Options) -> Self {
        Self {
            python: opts
                .python
                .clone()
                .or_else(|| std::env::var("MIXTRAIN_PYTHON").ok())
                .unwrap_or_else(|| "python3".into()),
            root: root.to_path_buf(),
            script: root.join("bench/peers.py"),
            symint: opts
                .symint
                .clone()
                .or_else(|| std::env::var_os("SYMINT_PATH").map(PathBuf::from)),
        }
    }

    /// The script under the Python, run from the workspace root (so that relative paths in
    /// `--symint` or `SYMINT_PATH` mean the same to both).
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.current_dir(&self.root).arg(&self.script);
        if let Some(dir) = &self.symint {
            cmd.arg("--symint").arg(dir);
        }
        cmd
    }

    /// What the peers' Python has; without a Python, every peer missing and why.
    fn versions(&self) -> serde_json::Value {
        let out = self
            .command()
            .arg("versions")
            .stderr(Stdio::null())
            .output();
        let parsed = out.ok().and_then(|o| {
            o.status
                .success()
                .then(|| serde_json::from_slice(&o.stdout).ok())
                .flatten()
        });
        parsed.unwrap_or_else(|| {
            let reason = format!(
                "{} could not run {} (set --python or MIXTRAIN_PYTHON to the peers' Python)",
                self.python,
                self.script.display()
            );
            serde_json::json!({"missing": {
                "PyTorch": reason, "auto_LiRPA": reason, "symbolic_interval": reason
            }})
        })
    }

    /// One timing of `who` on `job`; `Err` with the reason when the peer cannot run it (a
    /// failure of the script itself is an error of the run).
    fn time(&self, job: &Job, who: &str) -> Result<Result<Timing, String>> {
        let set = job.set;
        let (images, batch) = match job.row.ours {
            Ours::Train(_) => (set.images(job.quick), None),
            Ours::Verify { batch, .. } => (set.verified(job.quick), Some(batch)),
        };
        let mut cmd = self.command();
        cmd.args([
            "time", "--row", job.row.id, "--peer", who, "--model", set.model,
        ])
        .args(["--dataset", set.dataset, "--data"])
        .arg(job.data)
        .args(["--images", &images.to_string()])
        .args(["--eps", &set.eps.to_string()])
        .args(["--pgd-step", &set.pgd_step().to_string()])
        .args(["--threads", &job.threads.to_string()]);
        if let Some(batch) = batch {
            cmd.args(["--batch", &batch.to_string()]);
        }
        if let Some(w) = job.weights {
            cmd.arg("--weights").arg(w);
        }
        let out = bench::capture_checked(&mut cmd)?;
        let json: serde_json::Value = serde_json::from_str(
            out.lines()
                .last()
                .context("bench/peers.py printed nothing")?,
        )
        .context("bench/peers.py's output")?;
        if let Some(reason) = json["skipped"].as_str() {
            return Ok(Err(reason.to_string()));
        }
        let field = |name: &str| {
            json[name]
                .as_f64()
                .with_context(|| format!("bench/peers.py: no {name:?} in {json}"))
        };
        Ok(Ok(Timing {
            seconds: field("seconds")?,
            images: field("images")? as usize,
            busy_before: None,
            verified: json["verified"].as_u64().map(|v| v as usize),
        }))
    }
}

/// Training rows in seconds per epoch, verification rows in milliseconds per image.
fn cost(row: &RowReport, side: &Side) -> String {
    match side.median() {
        None => "-".into(),
        Some((per_image, spread)) => {
            let value = match row.epoch {
                Some(epoch) => format!("{:.1} s", per_image * epoch as f64),
                None => format!("{:.2} ms", per_image * 1e3),
            };
            format!("{value} ±{:.0}%", spread * 100.0)
        }
    }
}

fn markdown(r: &Report) -> String {
    let m = &r.machine;
    let version = |k: &str| {
        r.versions[k]
            .as_str()
            .unwrap_or("not installed")
            .to_string()
    };
    let mut s = format!(
        "# Ours and the peers, side by side\n\n{} · commit {} · {} · {} repeats in {:.1} min\n\n\
         Machine: {}; {} threads on each side. Python {}, PyTorch {}, \
         auto_LiRPA {}, symbolic_interval {}.\n\n\
         Each repeat times ours and then each peer, row by row, on the same images, batch and \
         eps; a figure is the median over the repeats (± the median absolute deviation). \
         Training rows: seconds per epoch of the model's dataset, scaled from the images timed. \
         Verification rows: milliseconds per image on the MixTrain authors' eps-0.3 network. \
         `ours / peer` above 1: ours is slower. **busy**: another process held {:.0}% of the CPU \
         or more right before one of the row's timings; compare such rows again.\n\n\
         | model | row | images | ours | peer | peer's | ours / peer | verified (ours, peer) |\n\
         |---|---|---|---|---|---|---|---|\n",
        r.date,
        r.commit,
        if r.quick { "quick mode" } else { "full mode" },
        r.repeats,
        r.seconds / 60.0,
        m.summary(),
        r.threads,
        version("python"),
        version("torch"),
        version("auto_LiRPA"),
        version("symbolic_interval"),
        BUSY * 100.0,
    );
    let mut skipped = Vec::new();
    for row in &r.rows {
        let images = row.ours.timings.first().map_or(0, |t| t.images);
        for peer in &row.peers {
            if let Some(reason) = &peer.skipped {
                skipped.push(format!(
                    "{} {} on {}: {reason}",
                    row.model, row.label, peer.who
                ));
                continue;
            }
            let ratio = row.ratio(peer).map_or("-".into(), |x| format!("{x:.2}"));
            let busy = if row.ours.busy() || peer.busy() {
                " **busy**"
            } else {
                ""
            };
            let verified = |side: &Side| {
                side.timings
                    .first()
                    .and_then(|t| t.verified)
                    .map_or("-".into(), |v| v.to_string())
            };
            let agreement = match row.epoch {
                Some(_) => "-".into(),
                None => format!("{}, {}", verified(&row.ours), verified(peer)),
            };
            s += &format!(
                "| {} | {} | {images} | {} | {} | {} | {ratio}{busy} | {agreement} |\n",
                row.model,
                row.label,
                cost(row, &row.ours),
                peer.who,
                cost(row, peer),
            );
        }
    }
    if !skipped.is_empty() {
        s += "\nSkipped:\n";
        for line in skipped {
            s += &format!("- {line}\n");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(seconds: f64, busy: f64) -> Timing {
        Timing {
            seconds,
            images: 1000,
            busy_before: Some(busy),
            verified: None,
        }
    }

    fn side(who: &str, timings: Vec<Timing>) -> Side {
        Side {
            who: who.into(),
            timings,
            skipped: None,
        }
    }

    fn report(rows: Vec<RowReport>) -> Report {
        Report {
            date: "2026-12-06 00:00 UTC".into(),
            commit: "abc".into(),
            quick: true,
            repeats: 3,
            threads: 2,
            seconds: 300.0,
            machine: Machine {
                cpu: "Test CPU".into(),
                cores: 2,
                os: "linux x86_64".into(),
                rustc: "rustc 1".into(),
                load_before: None,
                load_after: None,
                busy_before: None,
                busy_after: None,
                idle: true,
            },
            versions: serde_json::json!({"python": "3.11", "torch": "2.8.0", "missing": {}}),
            rows,
        }
    }

    #[test]
    fn ratios_are_ours_over_the_peers_median_per_image_with_the_spread() {
        let row = RowReport {
            model: "mnist_small".into(),
            row: "ibp".into(),
            label: "IBP".into(),
            epoch: Some(60_000),
            // per image 2, 3 and 10 ms: median 3 ms, deviations 1, 0, 7 ms: spread 1/3
            ours: side(
                "ours",
                vec![timing(2.0, 0.0), timing(3.0, 0.0), timing(10.0, 0.0)],
            ),
            peers: vec![
                side("PyTorch", vec![timing(1.5, 0.0), timing(1.5, 0.01)]),
                Side {
                    skipped: Some("auto_LiRPA is not importable".into()),
                    ..Side::new("auto_LiRPA")
                },
            ],
        };
        let (median, spread) = row.ours.median().unwrap();
        assert!((median - 3e-3).abs() < 1e-12);
        assert!((spread - 1.0 / 3.0).abs() < 1e-9);
        assert!((row.ratio(&row.peers[0]).unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(row.ratio(&row.peers[1]), None);
        let md = markdown(&report(vec![row]));
        assert!(
            md.contains(
                "| mnist_small | IBP | 1000 | 180.0 s ±33% | PyTorch | 90.0 s ±0% | 2.00 | - |"
            ),
            "{md}"
        );
        assert!(md.contains("- mnist_small IBP on auto_LiRPA: auto_LiRPA is not importable"));
        assert!(md.contains("quick mode · 3 repeats in 5.0 min"), "{md}");
        assert!(md.contains("symbolic_interval not installed"));
        assert!(!md.contains(" **busy** |"), "{md}");
    }

    #[test]
    fn a_row_timed_after_another_process_held_the_cpu_is_marked_busy() {
        let mut ours = side("ours", vec![timing(1.0, 0.0), timing(1.0, 0.35)]);
        ours.timings[0].verified = Some(940);
        let mut peer = side("auto_LiRPA", vec![timing(2.0, 0.02)]);
        peer.timings[0].verified = Some(940);
        assert!(ours.busy() && !peer.busy());
        let row = RowReport {
            model: "mnist_small".into(),
            row: "verify-interval".into(),
            label: "verify: interval".into(),
            epoch: None,
            ours,
            peers: vec![peer],
        };
        let md = markdown(&report(vec![row]));
        assert!(
            md.contains("| 1.00 ms ±0% | auto_LiRPA | 2.00 ms ±0% | 0.50 **busy** | 940, 940 |"),
            "{md}"
        );
    }

    #[test]
    fn every_row_names_peers_the_script_knows_and_pgd_steps_as_the_trainer_does() {
        let script =
            std::fs::read_to_string(crate::workspace_root().join("bench/peers.py")).unwrap();
        for row in &ROWS {
            assert!(script.contains(&format!("\"{}\"", row.id)), "{}", row.id);
            for peer in row.peers {
                assert!(script.contains(&format!("\"{peer}\"")), "{peer}");
            }
        }
        assert!((MODELS[0].pgd_step() - 0.025).abs() < 1e-12);
        assert!((MODELS[1].pgd_step() - 0.5 / 255.0).abs() < 1e-12);
    }

    /// The Python the peer script runs under in tests, and whether a skip is a failure.
    fn test_python() -> (String, bool) {
        (
            std::env::var("MIXTRAIN_PYTHON").unwrap_or_else(|_| "python3".into()),
            std::env::var_os("MIXTRAIN_REQUIRE_PEERS").is_some(),
        )
    }

    /// Runs the peer script with `args`; `None` (and the reason printed) when it skipped.
    fn script(args: &[&str]) -> Option<serde_json::Value> {
        let (python, require) = test_python();
        let mut cmd = Command::new(&python);
        cmd.arg(crate::workspace_root().join("bench/peers.py"))
            .args(args);
        let out = match cmd.output() {
            Ok(out) => out,
            Err(e) => {
                assert!(!require, "{python}: {e}");
                eprintln!("skipped: {python} does not run ({e})");
                return None;
            }
        };
        assert!(
            out.status.success(),
            "peers.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("peers.py prints one JSON object");
        if let Some(reason) = json["skipped"].as_str() {
            assert!(!require, "peers.py {args:?} skipped: {reason}");
            eprintln!("skipped: peers.py {args:?}: {reason}");
            return None;
        }
        Some(json)
    }

    /// The model, its dataset in `data` and 100 images: the arguments every call shares.
    fn on<'a>(set: &'a ModelSet, data: &'a str) -> [&'a str; 8] {
        [
            "--model",
            set.model,
            "--dataset",
            set.dataset,
            "--data",
            data,
            "--images",
            "100",
        ]
    }

    /// Equal JSON, numbers to float32's precision.
    fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                (x - y).abs() <= 1e-6 * x.abs().max(1.0)
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    /// The peer script's models and data are ours: its layers against our zoo's, its first
    /// images against our loader's (numpy only, so this runs wherever numpy is). With PyTorch
    /// importable, every row it times runs on 2 batches.
    #[test]
    fn the_peer_script_times_our_models_on_our_data() {
        let mirror = mixtrain_data::DataDir::mirror_from_env()
            .unwrap_or_else(|| crate::workspace_root().join("../shared/datasets"));
        let tmp = tempfile::tempdir().unwrap();
        let data = mixtrain_data::DataDir::new(tmp.path());
        let root = tmp.path().to_str().unwrap();
        for set in &MODELS {
            mixtrain_data::ensure(set.dataset, &data, Some(&mirror)).unwrap();
            let Some(described) = script(&[&["describe"], &on(set, root)[..]].concat()) else {
                return;
            };
            let arch = mixtrain_nn::zoo::architecture(set.model).unwrap();
            let mut ours = serde_json::to_value(&arch.layers).unwrap();
            for layer in ours.as_array_mut().unwrap() {
                layer.as_object_mut().unwrap().remove("name");
            }
            assert!(
                same(&ours, &described["layers"]),
                "{}: ours {ours}, the peers' {}",
                set.model,
                described["layers"]
            );
            assert_eq!(described["shape"], serde_json::json!(arch.input));
            let images = mixtrain_data::load(set.dataset, mixtrain_data::Split::Train, &data)
                .unwrap()
                .take(100);
            let sum: f64 = (0..100)
                .flat_map(|i| images.image(i).iter())
                .map(|&p| f64::from(p) / 255.0)
                .sum();
            let theirs = described["pixel_sum"].as_f64().unwrap();
            assert!(
                (sum - theirs).abs() < 1e-6 * sum,
                "{}: {sum} against {theirs}",
                set.model
            );
            assert_eq!(described["labels"], serde_json::json!(images.labels()));
        }

        let (python, _) = test_python();
        let torch = Command::new(&python)
            .args(["-c", "import torch"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !torch {
            assert!(!test_python().1, "PyTorch is not importable under {python}");
            eprintln!("skipped: PyTorch is not importable under {python}: no step is timed");
            return;
        }
        let weights = reference_weights(tmp.path(), Some(&mirror)).unwrap();
        for set in &MODELS {
            for row in ROWS.iter().filter(|r| set.runs(r)) {
                let batch = match row.ours {
                    Ours::Train(_) => 50,
                    Ours::Verify { batch, .. } => batch,
                }
                .to_string();
                for peer in row.peers {
                    let eps = set.eps.to_string();
                    let timed = [
                        "time",
                        "--row",
                        row.id,
                        "--peer",
                        peer,
                        "--batch",
                        &batch,
                        "--eps",
                        &eps,
                        "--weights",
                        weights.to_str().unwrap(),
                    ];
                    let Some(out) = script(&[&timed[..], &on(set, root)[..]].concat()) else {
                        continue;
                    };
                    assert_eq!(out["images"], 100, "{} {} {peer}: {out}", set.model, row.id);
                    assert!(out["seconds"].as_f64().unwrap() > 0.0);
                    match &row.ours {
                        Ours::Train(_) => {
                            assert!(out["final_loss"].as_f64().unwrap().is_finite(), "{out}")
                        }
                        Ours::Verify { .. } => {
                            assert!(out["verified"].as_u64().unwrap() <= 100, "{out}")
                        }
                    }
                }
            }
        }
    }
}
