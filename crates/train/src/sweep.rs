//! Recipe search that never reads the test set: a grid or a seeded random subset of it over
//! named config fields, or a list of trials each with its own overrides (methods compared
//! under one time budget, each with the epochs that fit it), each trial a validation-only run
//! ([`RunOptions::validation_only`]),
//! chosen by the last epoch's validation VRA (then validation accuracy), within a time budget;
//! one row per trial in `trials.csv` and `trials.md`, and pictures (`pareto.svg`: verified
//! against clean accuracy with the trials' Pareto front; `time.svg`: verified accuracy against
//! minutes) linked from `report.md`. A killed sweep resumes: finished trials are read back,
//! an interrupted one resumes from its last checkpoint.
//!
//! The test split is read once, by the final evaluation of the chosen run, which `report.md`
//! gives as a command (and `mixtrain sweep --evaluate` runs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mixtrain_nn::write_atomic;
use mixtrain_plot::{Panel, Series, Style, chart, pareto_front};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::{RunOptions, TrainConfig, TrainError, run};

/// How the trials are drawn: from the grid, or the list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Search {
    /// Every combination, in order (the last key varies fastest).
    #[default]
    Grid,
    /// `trials` combinations drawn without replacement, seeded by `seed`.
    Random,
    /// Each entry of `list`, in order: trials whose settings are not a product (each method
    /// with its own epochs, say).
    List,
}

/// A sweep: the base config, the fields searched and the budget. Written as TOML:
///
/// ```toml
/// preset = "mnist-sabr"          # or config = "base.toml" (relative to this file)
/// search = "random"              # or "grid" (default), or "list" (`[[list]]` tables, no grid)
/// trials = 6                     # random: how many; grid: at most this many (default: all)
/// budget_minutes = 90
/// [set]                          # the same for every trial
/// epochs = 3
/// [grid]                         # each field's values
/// "sabr.lambda" = [0.2, 0.4, 0.6]
/// "dmt.alpha" = [0.5, 1.0]
/// ```
///
/// `reach = [90, 95]` adds columns with the minutes each trial took to first reach those
/// validation VRAs (percent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// A shipped preset to start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// A config file to start from, relative to the spec's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// Grid or random search.
    #[serde(default)]
    pub search: Search,
    /// Random search: the trials drawn (default 8); grid: the most trials run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials: Option<usize>,
    /// Seeds the random draw.
    #[serde(default)]
    pub seed: u64,
    /// No trial starts once the trials so far have taken this long (wall-clock minutes).
    pub budget_minutes: f64,
    /// Overrides applied to every trial (dotted field paths, as `--set`).
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    /// The values of each searched field (grid and random search).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grid: BTreeMap<String, Vec<toml::Value>>,
    /// The trials of a list search, each its own overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub list: Vec<BTreeMap<String, toml::Value>>,
    /// Validation VRAs (percent) whose first minute each trial's row gives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reach: Vec<f64>,
}

/// One trial's record, `trial.json` in its directory once it has finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// The trial's number, from 1.
    pub index: usize,
    /// The searched fields' values, as TOML.
    pub values: BTreeMap<String, String>,
    /// `done`, `failed: <error>` or `skipped (budget)`.
    pub status: String,
    /// The last epoch's validation clean accuracy.
    pub val_acc: Option<f64>,
    /// The last epoch's validation VRA (certified methods).
    pub val_vra: Option<f64>,
    /// Wall-clock seconds the trial took (its resumed parts summed).
    pub seconds: f64,
    /// Per epoch: cumulative minutes of training and validation, and validation VRA.
    pub curve: Vec<(f64, Option<f64>)>,
}

/// What a sweep found.
#[derive(Clone, Debug, Serialize)]
pub struct SweepSummary {
    /// Every trial, in order.
    pub trials: Vec<Trial>,
    /// The chosen trial's number (best validation VRA, then accuracy), if any finished.
    pub chosen: Option<usize>,
    /// The chosen trial's run directory.
    pub chosen_dir: Option<PathBuf>,
    /// The sweep directory's `report.md`.
    pub report: PathBuf,
}

impl SweepSpec {
    /// Reads and checks a spec file.
    pub fn from_file(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(TrainError::io(path))?;
        let mut spec: Self = toml::from_str(&text).map_err(|e| TrainError::Config {
            origin: path.display().to_string(),
            message: e.message().to_string(),
        })?;
        if let Some(config) = &spec.config {
            spec.config = Some(path.parent().unwrap_or(Path::new(".")).join(config));
        }
        spec.base(&path.display().to_string())?;
        Ok(spec)
    }

    /// The base config with `set` applied, checked; `origin` names the spec in errors.
    pub fn base(&self, origin: &str) -> Result<TrainConfig, TrainError> {
        let err = |message: String| TrainError::Config {
            origin: origin.into(),
            message,
        };
        let mut config = match (&self.preset, &self.config) {
            (Some(p), None) => TrainConfig::preset(p)?,
            (None, Some(c)) => TrainConfig::from_file(c)?,
            _ => return Err(err("give exactly one of preset and config".into())),
        };
        config.set_all(self.set.iter().map(|(k, v)| (k, v.to_string())))?;
        if config.val_size == 0 {
            return Err(err(
                "a sweep chooses on the validation split: val_size >= 1".into(),
            ));
        }
        if self.budget_minutes.is_nan() || self.budget_minutes <= 0.0 {
            return Err(err(format!(
                "budget_minutes {} must be positive",
                self.budget_minutes
            )));
        }
        match self.search {
            Search::List if self.list.is_empty() || !self.grid.is_empty() => {
                return Err(err("a list search needs [[list]] trials and no grid".into()));
            }
            Search::Grid | Search::Random
                if self.grid.is_empty()
                    || self.grid.values().any(Vec::is_empty)
                    || !self.list.is_empty() =>
            {
                return Err(err(
                    "grid needs at least one field, each with values (and no [[list]]: that is \
                     search = \"list\")"
                        .into(),
                ));
            }
            _ => {}
        }
        if let Some(r) = self.reach.iter().find(|r| !(0.0..=100.0).contains(*r)) {
            return Err(err(format!("reach {r} must be a percentage, 0 to 100")));
        }
        for trial in self.trials() {
            config.clone().set_all(&trial)?;
        }
        Ok(config)
    }

    /// Every combination of the grid's values, the last key varying fastest.
    fn combinations(&self) -> Vec<BTreeMap<String, String>> {
        let mut all = vec![BTreeMap::new()];
        for (key, values) in &self.grid {
            all = all
                .into_iter()
                .flat_map(|partial| {
                    values.iter().map(move |v| {
                        let mut next = partial.clone();
                        next.insert(key.clone(), v.to_string());
                        next
                    })
                })
                .collect();
        }
        all
    }

    /// The fields the trials set: the grid's, or every one some list entry sets.
    fn searched(&self) -> Vec<String> {
        match self.search {
            Search::List => {
                let keys: std::collections::BTreeSet<&String> =
                    self.list.iter().flat_map(BTreeMap::keys).collect();
                keys.into_iter().cloned().collect()
            }
            Search::Grid | Search::Random => self.grid.keys().cloned().collect(),
        }
    }

    /// The trials to run, in order.
    pub fn trials(&self) -> Vec<BTreeMap<String, String>> {
        let mut all = match self.search {
            Search::List => self
                .list
                .iter()
                .map(|entry| {
                    entry
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect()
                })
                .collect(),
            Search::Grid | Search::Random => self.combinations(),
        };
        match self.search {
            Search::Grid | Search::List => all.truncate(self.trials.unwrap_or(all.len())),
            Search::Random => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
                all.shuffle(&mut rng);
                all.truncate(self.trials.unwrap_or(8));
            }
        }
        all
    }
}

/// Runs (or resumes) the sweep `spec` into `out`, trial `i` in `out/trials/NNN`; `opts` gives
/// the data directories and quietness (its `out` and `resume` are the sweep's own). A new sweep
/// needs `out` empty or absent; resuming needs the same spec.
pub fn sweep(spec: &SweepSpec, out: &Path, opts: &RunOptions) -> Result<SweepSummary, TrainError> {
    let base = spec.base("sweep")?;
    prepare(spec, out, opts.resume)?;
    let mut trials = Vec::new();
    let mut spent = 0.0;
    for (i, values) in spec.trials().into_iter().enumerate() {
        let dir = out.join("trials").join(format!("{:03}", i + 1));
        let trial = match read_trial(&dir)? {
            Some(done) => done,
            None if spent >= 60.0 * spec.budget_minutes => Trial {
                index: i + 1,
                values,
                status: "skipped (budget)".into(),
                val_acc: None,
                val_vra: None,
                seconds: 0.0,
                curve: Vec::new(),
            },
            None => run_trial(&base, i + 1, values, &dir, opts)?,
        };
        spent += trial.seconds;
        trials.push(trial);
        write_tables(spec, out, &trials)?;
    }
    let chosen = choose(&trials);
    let chosen_dir = chosen.map(|i| out.join("trials").join(format!("{i:03}")));
    let report = out.join("report.md");
    write_pictures(out, &trials)?;
    write_report(spec, &base, &report, &trials, chosen)?;
    Ok(SweepSummary {
        trials,
        chosen,
        chosen_dir,
        report,
    })
}

/// A new sweep's directory with its spec, or a resumed one's spec checked: only the budget
/// may change (a sweep that ran out of time continues with more).
fn prepare(spec: &SweepSpec, out: &Path, resume: bool) -> Result<(), TrainError> {
    let path = out.join("sweep.toml");
    let text = toml::to_string(spec).map_err(|e| TrainError::Config {
        origin: "sweep".into(),
        message: e.to_string(),
    })?;
    let dir_err = |message: String| TrainError::RunDir {
        dir: out.into(),
        message,
    };
    if resume {
        let saved_text = std::fs::read_to_string(&path).map_err(TrainError::io(&path))?;
        let mut saved: SweepSpec = toml::from_str(&saved_text).map_err(|e| TrainError::Config {
            origin: path.display().to_string(),
            message: e.message().to_string(),
        })?;
        saved.budget_minutes = spec.budget_minutes;
        if &saved != spec {
            return Err(dir_err(format!(
                "resuming needs the same sweep (only budget_minutes may change); saved:\n{saved_text}\ngiven:\n{text}"
            )));
        }
    } else if path.exists() {
        return Err(dir_err(
            "already holds a sweep: pass --resume to continue it, or choose another --out".into(),
        ));
    }
    std::fs::create_dir_all(out).map_err(TrainError::io(out))?;
    write_atomic(&path, text.as_bytes()).map_err(TrainError::io(&path))
}

/// A finished trial's record, `None` when it has not finished.
fn read_trial(dir: &Path) -> Result<Option<Trial>, TrainError> {
    let path = dir.join("trial.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(TrainError::io(&path))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| TrainError::io(&path)(e.into()))
}

/// Runs trial `index` with `values` over `base` into `dir` (resuming what an earlier process
/// began there), validation only, and records it. A trial that fails is recorded as failed (a
/// recipe that diverges is a finding, not the end of the sweep).
fn run_trial(
    base: &TrainConfig,
    index: usize,
    values: BTreeMap<String, String>,
    dir: &Path,
    opts: &RunOptions,
) -> Result<Trial, TrainError> {
    let mut config = base.clone();
    config.set_all(&values)?;
    let before = earlier_seconds(dir);
    let start = Instant::now();
    let trial_opts = RunOptions {
        out: dir.into(),
        resume: dir.join("config.toml").exists(),
        validation_only: true,
        ..opts.clone()
    };
    if !opts.quiet {
        eprintln!("trial {index}: {}", describe(&values));
    }
    let status = match run(&config, &trial_opts) {
        Ok(_) => "done".to_string(),
        Err(e @ (TrainError::NonFinite { .. } | TrainError::Memory { .. })) => {
            format!("failed: {e}")
        }
        Err(e) => return Err(e),
    };
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_default();
    let epochs: Vec<serde_json::Value> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut minutes = 0.0;
    let curve = epochs
        .iter()
        .map(|e| {
            minutes += (e["seconds"].as_f64().unwrap_or(0.0)
                + e["val_seconds"].as_f64().unwrap_or(0.0))
                / 60.0;
            (minutes, e["val_vra"].as_f64())
        })
        .collect();
    let last = epochs.last();
    let trial = Trial {
        index,
        values,
        status,
        val_acc: last.and_then(|e| e["val_acc"].as_f64()),
        val_vra: last.and_then(|e| e["val_vra"].as_f64()),
        seconds: before + start.elapsed().as_secs_f64(),
        curve,
    };
    let path = dir.join("trial.json");
    let json = serde_json::to_vec_pretty(&trial).map_err(|e| TrainError::io(&path)(e.into()))?;
    write_atomic(&path, &json).map_err(TrainError::io(&path))?;
    Ok(trial)
}

/// Seconds an interrupted trial already spent, from its logged epochs.
fn earlier_seconds(dir: &Path) -> f64 {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|e| e["seconds"].as_f64().unwrap_or(0.0) + e["val_seconds"].as_f64().unwrap_or(0.0))
        .sum()
}

/// The best finished trial: highest validation VRA, then validation accuracy (a method
/// without VRA is chosen by accuracy alone).
fn choose(trials: &[Trial]) -> Option<usize> {
    let key = |t: &Trial| {
        (
            t.val_vra.unwrap_or(f64::NEG_INFINITY),
            t.val_acc.unwrap_or(f64::NEG_INFINITY),
        )
    };
    let mut best: Option<&Trial> = None;
    for t in trials.iter().filter(|t| t.status == "done") {
        if best.is_none_or(|b| key(t) > key(b)) {
            best = Some(t);
        }
    }
    best.map(|t| t.index)
}

fn describe(values: &BTreeMap<String, String>) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k} = {}", shown(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A searched value as a reader writes it: a TOML string without its quotes (`ibp`, not
/// `"ibp"`). The trials keep the TOML form, which is what `TrainConfig::set` and a resumed sweep
/// read.
fn shown(value: &str) -> String {
    match crate::config::override_value(value) {
        toml::Value::String(s) => s,
        _ => value.to_string(),
    }
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| format!("{:.2}", 100.0 * v))
}

/// `trials.csv` and `trials.md`: one row per trial so far, the chosen one marked.
fn write_tables(spec: &SweepSpec, out: &Path, trials: &[Trial]) -> Result<(), TrainError> {
    let chosen = choose(trials);
    let keys = spec.searched();
    let row = |t: &Trial| {
        let mut cells = vec![t.index.to_string()];
        cells.extend(
            keys.iter()
                .map(|k| t.values.get(k).map(|v| shown(v)).unwrap_or_default()),
        );
        cells.extend([
            t.status.clone(),
            percent(t.val_acc),
            percent(t.val_vra),
            format!("{:.1}", t.seconds / 60.0),
        ]);
        cells.extend(spec.reach.iter().map(|&r| {
            first_reached(&t.curve, r / 100.0).map_or_else(String::new, |m| format!("{m:.1}"))
        }));
        cells.push(if chosen == Some(t.index) { "yes" } else { "" }.to_string());
        cells
    };
    let mut header = vec!["trial".to_string()];
    header.extend(keys.iter().cloned());
    header.extend(["status", "val clean %", "val verified %", "minutes"].map(String::from));
    header.extend(spec.reach.iter().map(|r| format!("minutes to {r}%")));
    header.push("chosen".into());
    let csv_cell = |c: &String| match c.contains([',', '"']) {
        true => format!("\"{}\"", c.replace('"', "\"\"")),
        false => c.clone(),
    };
    let mut csv = String::new();
    let mut md = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for cells in std::iter::once(header.clone()).chain(trials.iter().map(row)) {
        csv += &(cells.iter().map(csv_cell).collect::<Vec<_>>().join(",") + "\n");
    }
    for t in trials {
        md += &format!("| {} |\n", row(t).join(" | ").replace('\n', " "));
    }
    for (name, text) in [("trials.csv", csv), ("trials.md", md)] {
        let path = out.join(name);
        write_atomic(&path, text.as_bytes()).map_err(TrainError::io(&path))?;
    }
    Ok(())
}

/// The cumulative minutes of training and validation after which `curve` first reached a
/// validation VRA of `vra` (a fraction); none if it never did.
fn first_reached(curve: &[(f64, Option<f64>)], vra: f64) -> Option<f64> {
    curve
        .iter()
        .find(|(_, v)| v.is_some_and(|v| v >= vra))
        .map(|(m, _)| *m)
}

/// `pareto.svg` (validation verified against clean accuracy, the front drawn) and `time.svg`
/// (each trial's validation VRA against its cumulative minutes).
fn write_pictures(out: &Path, trials: &[Trial]) -> Result<(), TrainError> {
    let points: Vec<(f64, f64)> = trials
        .iter()
        .filter_map(|t| Some((100.0 * t.val_acc?, 100.0 * t.val_vra?)))
        .collect();
    let pareto = Panel {
        title: "trials: validation verified against clean accuracy".into(),
        x_label: "validation clean accuracy (%)".into(),
        y_label: "validation verified accuracy (%)".into(),
        series: vec![
            Series::new("trials", Style::Points, points.clone()),
            Series::new("Pareto front", Style::Line, pareto_front(&points)),
        ],
    };
    let time = Panel {
        title: "validation verified accuracy against minutes".into(),
        x_label: "minutes (training and validation)".into(),
        y_label: "validation verified accuracy (%)".into(),
        series: trials
            .iter()
            .map(|t| {
                let points = t
                    .curve
                    .iter()
                    .filter_map(|(m, v)| Some((*m, 100.0 * (*v)?)))
                    .collect();
                let name = match describe(&t.values) {
                    d if d.len() <= 32 => format!("{}: {d}", t.index),
                    _ => format!("trial {}", t.index),
                };
                Series::new(name, Style::Line, points)
            })
            .collect(),
    };
    for (name, panel) in [("pareto.svg", pareto), ("time.svg", time)] {
        let path = out.join(name);
        let svg = chart(&[panel])
            .map_err(|e| TrainError::io(&path)(std::io::Error::other(e.to_string())))?;
        write_atomic(&path, svg.as_bytes()).map_err(TrainError::io(&path))?;
    }
    Ok(())
}

/// `report.md`: the spec, the table, the pictures, the chosen trial and the one command that
/// reads the test split.
fn write_report(
    spec: &SweepSpec,
    base: &TrainConfig,
    path: &Path,
    trials: &[Trial],
    chosen: Option<usize>,
) -> Result<(), TrainError> {
    let table = std::fs::read_to_string(path.with_file_name("trials.md")).unwrap_or_default();
    let choice = match chosen {
        Some(i) => {
            let t = &trials[i - 1];
            format!(
                "Chosen on the validation split: trial {i} ({}): {}% verified, {}% clean on \
                 {} validation images.\n\nThe test split has not been read. Its one reading, the \
                 chosen run's final evaluation:\n\n```\nmixtrain eval --model {} --dataset {} \
                 --eps {} --domain {} --weights trials/{i:03}/model.safetensors --json\n```\n",
                describe(&t.values),
                percent(t.val_vra),
                percent(t.val_acc),
                base.val_size,
                base.model,
                base.dataset,
                base.eps,
                base.final_eval.domain.name(),
            )
        }
        None => "No trial finished.\n".into(),
    };
    let text = format!(
        "# Sweep: {} trials ({} search), budget {} minutes\n\n{table}\n\
         ![validation verified against clean accuracy](pareto.svg)\n\n\
         ![validation verified accuracy against minutes](time.svg)\n\n{choice}",
        trials.len(),
        match spec.search {
            Search::Grid => "grid",
            Search::Random => "random",
            Search::List => "list",
        },
        spec.budget_minutes,
    );
    write_atomic(path, text.as_bytes()).map_err(TrainError::io(path))
}
