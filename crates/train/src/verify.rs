//! Verification of a test set point by point, into a JSON-lines log that a killed run resumes.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use mixtrain_attack::{Adversarial, Attack};
use mixtrain_bounds::{InputDomain, InputSet, Verdict, Verifier, read_bools, read_floats};
use mixtrain_data::ImageSet;
use mixtrain_nn::Network;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::eval::to_device;
use crate::memory::peak_memory_mib;

/// One line of a verification log: a test point and what the verifier made of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointRecord {
    /// The point's index in the test split.
    pub index: usize,
    /// Its label.
    pub label: i64,
    /// Whether the network classifies the point itself correctly.
    pub correct: bool,
    /// What the attack and the bounds decide.
    pub verdict: Verdict,
    /// The smallest lower bound over the margins `z_y - z_j`, `j != y` (positive: verified);
    /// for a falsified point, the smallest margin at the counterexample (negative).
    pub margin: f32,
    /// Lower bounds of every margin `z_y - z_j` (the label's own is 0); empty for a falsified
    /// point, which is not bounded.
    pub margins: Vec<f32>,
    /// Seconds spent on the point: its batch's attack and bounding time shared among the
    /// batch's points (the attack's among all of them, the bounds' among those bounded).
    pub seconds: f64,
    /// The L_inf radius, pixel units.
    pub eps: f64,
    /// The domain's name.
    pub domain: String,
    /// The box pixels are clipped to (`unit` or `image`).
    pub input_domain: String,
    /// Whether the bounds account for float32 rounding (a log from before this field: no).
    #[serde(default)]
    pub float_sound: bool,
    /// Whether points the bounds left undecided went on to branch and bound.
    #[serde(default)]
    pub complete: bool,
    /// Subproblems branch and bound visited on the point (0: it did not run).
    #[serde(default)]
    pub subproblems: usize,
    /// The most ReLU splits among them.
    #[serde(default)]
    pub depth: usize,
    /// For a falsified point, the input (`c*h*w` pixels) that the network misclassifies: the
    /// attack's or branch and bound's. Checked again by a forward pass when the log is read
    /// back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Vec<f32>>,
}

/// Figures of a whole verification log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerifySummary {
    /// Points in the log.
    pub n: usize,
    /// Points verified.
    pub verified: usize,
    /// Points with a counterexample found by the attack.
    pub falsified: usize,
    /// Points left undecided.
    pub unknown: usize,
    /// Fraction of points both classified correctly and verified.
    pub verified_acc: f64,
    /// Fraction classified correctly.
    pub clean_acc: f64,
    /// Seconds of attack and bounding summed over the points (both runs, when resumed).
    pub seconds: f64,
    /// Median milliseconds per point.
    pub median_ms: f64,
    /// 90th-percentile milliseconds per point.
    pub p90_ms: f64,
    /// Points read back from an earlier run's log instead of verified again.
    pub resumed: usize,
    /// Peak resident memory of the process, MiB (Linux).
    pub peak_memory_mib: Option<f64>,
    /// The L_inf radius, pixel units.
    pub eps: f64,
    /// The domain's name.
    pub domain: &'static str,
    /// The input domain's name.
    pub input_domain: &'static str,
    /// Whether the bounds accounted for float32 rounding.
    pub float_sound: bool,
    /// Whether undecided points went on to branch and bound.
    pub complete: bool,
    /// Median seconds per decided (verified or falsified) point.
    pub median_decided_s: f64,
    /// 90th-percentile seconds per decided point.
    pub p90_decided_s: f64,
    /// The log.
    pub log: PathBuf,
}

/// What a verification of a test set decides: the ball, the verifier, and the attack run on
/// every point before it is bounded (as alpha-beta-CROWN does: a point with a counterexample
/// cannot be verified, and is the most expensive to bound).
pub struct VerifySettings<'a> {
    /// The L_inf radius, pixel units.
    pub eps: f64,
    /// The box pixels are clipped to.
    pub input_domain: InputDomain,
    /// The verifier of the points the attack leaves.
    pub verifier: Verifier,
    /// The attack run first, or none.
    pub attack: Option<&'a dyn Attack>,
    /// Seeds the attack's random starts, batch by batch (with the batch's first point), so
    /// that a resumed run attacks a batch as the killed one did.
    pub seed: u64,
}

/// Where a verification of a test set writes, and how it reports its progress.
pub struct VerifyLog<'a> {
    /// The JSON-lines file: one [`PointRecord`] per line, appended as points are decided.
    pub path: &'a Path,
    /// Called after every batch with the counts so far.
    pub progress: &'a mut dyn FnMut(&Tally),
}

/// Points decided so far, for progress reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Points with a line in the log.
    pub done: usize,
    /// Points to verify.
    pub total: usize,
    /// Of those done: verified.
    pub verified: usize,
    /// Falsified.
    pub falsified: usize,
    /// Left unknown.
    pub unknown: usize,
}

impl Tally {
    fn of(records: &BTreeMap<usize, PointRecord>, total: usize) -> Self {
        let (verified, falsified) = (
            count(records, Verdict::Verified),
            count(records, Verdict::Falsified),
        );
        Self {
            done: records.len(),
            total,
            verified,
            falsified,
            unknown: records.len() - verified - falsified,
        }
    }
}

/// Decides every point of `set` in the L_inf ball of `settings`: falsified when the attack
/// finds an input of the ball (checked to lie in it) that the network misclassifies, else by
/// the verifier; appends a line per point to `log.path`. Points that already have a line
/// there (a killed run) are not decided again; lines written for another eps, domain or input
/// domain are an error naming the file, and a torn last line is dropped.
pub fn verify_points(
    net: &Network,
    set: &ImageSet,
    settings: &VerifySettings<'_>,
    log: VerifyLog<'_>,
    device: &Device,
) -> Result<VerifySummary, TrainError> {
    let VerifySettings {
        eps,
        input_domain,
        verifier,
        attack,
        seed,
    } = settings;
    let (eps, input_domain) = (*eps, *input_domain);
    let io = |source| TrainError::Io {
        path: log.path.to_path_buf(),
        source,
    };
    let domain = verifier.domain.name();
    let kind = LogKind {
        eps,
        domain,
        input_domain: input_domain.name(),
        float_sound: verifier.float_sound,
        complete: verifier.complete.is_some(),
    };
    let mut records = read_log(log.path, &kind)?;
    recheck(net, set, eps, input_domain, &records, log.path, device)?;
    let resumed = records.len();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log.path)
        .map_err(io)?;
    let total = set.len();
    (log.progress)(&Tally::of(&records, total));
    let batch_size = verifier.batch_size.max(1);
    for batch in set.batches(batch_size, None) {
        let todo: Vec<usize> = (0..batch.len())
            .filter(|&i| !records.contains_key(&batch.indices[i]))
            .collect();
        if todo.is_empty() {
            continue;
        }
        let indices = batch.indices.clone();
        let labels = batch.labels.clone();
        let (x, y) = to_device(batch, device);
        let rows = Tensor::<1, Int>::from_data(
            TensorData::new(
                todo.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                [todo.len()],
            ),
            device,
        );
        let (x, y) = (x.select(0, rows.clone()), y.select(0, rows));
        let clock = Instant::now();
        let correct = read_bools(
            net.forward(x.clone())
                .argmax(1)
                .squeeze_dim::<1>(1)
                .equal(y.clone()),
        )?;
        let ball = InputSet::linf(x.clone(), eps as f32, input_domain)?;
        let mut falsified = match attack {
            Some(attack) => {
                device.seed(seed.wrapping_add(indices[todo[0]] as u64));
                counterexamples(net, &ball, attack.run(net, x, y.clone())?, &y)?
            }
            None => vec![None; todo.len()],
        };
        let attack_seconds = clock.elapsed().as_secs_f64() / todo.len() as f64;
        let open: Vec<i64> = (0..todo.len())
            .filter(|&k| falsified[k].is_none())
            .map(|k| k as i64)
            .collect();
        let mut bounded = Vec::new().into_iter();
        if !open.is_empty() {
            let rows =
                Tensor::<1, Int>::from_data(TensorData::new(open.clone(), [open.len()]), device);
            let ball = ball.select(rows.clone());
            bounded = verifier.verify(net, &ball, y.select(0, rows))?.into_iter();
        }
        let mut lines = String::new();
        for (k, (&i, correct)) in todo.iter().zip(correct).enumerate() {
            let label = labels[i];
            let (verdict, margin, margins, seconds, search, counterexample) =
                match falsified[k].take() {
                    Some((margin, x)) => (
                        Verdict::Falsified,
                        margin,
                        Vec::new(),
                        attack_seconds,
                        (0, 0),
                        Some(x),
                    ),
                    None => {
                        let point = bounded.next().expect("a verdict per bounded point");
                        let margin = match &point.counterexample {
                            Some(x) => margin_at(net, x, label, device)?,
                            None => point
                                .margins
                                .iter()
                                .enumerate()
                                .filter(|&(j, _)| j as i64 != label)
                                .map(|(_, m)| *m)
                                .fold(f32::INFINITY, f32::min),
                        };
                        (
                            point.verdict,
                            margin,
                            point.margins,
                            attack_seconds + point.seconds,
                            (point.subproblems, point.depth),
                            point.counterexample,
                        )
                    }
                };
            let record = PointRecord {
                index: indices[i],
                label,
                correct,
                verdict,
                margin,
                margins,
                seconds,
                eps,
                domain: domain.to_string(),
                input_domain: input_domain.name().to_string(),
                float_sound: verifier.float_sound,
                complete: kind.complete,
                subproblems: search.0,
                depth: search.1,
                counterexample,
            };
            lines.push_str(&serde_json::to_string(&record).expect("a record serialises"));
            lines.push('\n');
            records.insert(record.index, record);
        }
        file.write_all(lines.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        (log.progress)(&Tally::of(&records, total));
    }
    Ok(summarise(&records, resumed, &kind, log.path))
}

/// A checked counterexample: the smallest margin `z_y - z_j` there (negative) and the input.
type Counterexample = (f32, Vec<f32>);

/// Per point of `ball`, the smallest margin `z_y - z_j` at the attack's point and the point
/// itself when it is a counterexample: misclassified by a forward pass of its own and inside
/// the ball.
fn counterexamples(
    net: &Network,
    ball: &InputSet,
    found: Adversarial,
    labels: &Tensor<1, Int>,
) -> Result<Vec<Option<Counterexample>>, TrainError> {
    let logits = net.forward(found.points.clone());
    let [n, classes] = logits.dims();
    let own = logits.clone().gather(1, labels.clone().unsqueeze_dim(1));
    let others = labels.clone().one_hot::<2>(classes).bool();
    let margins = (own - logits).mask_fill(others, f32::INFINITY).min_dim(1);
    let inside = found
        .points
        .clone()
        .greater_equal(ball.lower.clone())
        .bool_and(found.points.clone().lower_equal(ball.upper.clone()))
        .reshape([n as i32, -1])
        .all_dim(1);
    let margins = read_floats(margins)?;
    let inside = read_bools(inside)?;
    let points = read_floats(found.points)?;
    let features = points.len() / n.max(1);
    Ok(margins
        .into_iter()
        .zip(inside)
        .zip(points.chunks(features.max(1)))
        .map(|((m, inside), x)| (m < 0.0 && inside).then(|| (m, x.to_vec())))
        .collect())
}

/// The smallest margin `z_y - z_j` of `label` at the input `x` (`c*h*w` pixels).
fn margin_at(net: &Network, x: &[f32], label: i64, device: &Device) -> Result<f32, TrainError> {
    let [c, h, w] = net.architecture().input;
    let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), [1, c, h, w]), device);
    let logits = net.forward(x);
    let classes = logits.dims()[1];
    let own = logits
        .clone()
        .slice([0..1, label as usize..label as usize + 1]);
    let margins = read_floats((own - logits).squeeze_dim::<1>(0))?;
    Ok((0..classes)
        .filter(|&j| j as i64 != label)
        .map(|j| margins[j])
        .fold(f32::INFINITY, f32::min))
}

/// Checks every counterexample of `records` (a log read back) again: inside its point's ball
/// (eps, `input_domain`, as the verifier built it) and misclassified by a forward pass. A log
/// that fails is an error naming it and the point: its `falsified` cannot be trusted.
fn recheck(
    net: &Network,
    set: &ImageSet,
    eps: f64,
    input_domain: InputDomain,
    records: &BTreeMap<usize, PointRecord>,
    log: &Path,
    device: &Device,
) -> Result<(), TrainError> {
    let [c, h, w] = set.shape();
    for record in records.values() {
        let Some(x) = &record.counterexample else {
            continue;
        };
        let bad = |why: &str| TrainError::Config {
            origin: log.display().to_string(),
            message: format!(
                "point {}'s counterexample {why}: the log cannot be trusted",
                record.index
            ),
        };
        if record.index >= set.len() || x.len() != c * h * w {
            return Err(bad("does not fit the test set"));
        }
        let pixels: Vec<f32> = set
            .image(record.index)
            .iter()
            .map(|&p| f32::from(p) / 255.0)
            .collect();
        let image = Tensor::<4>::from_data(TensorData::new(pixels, [1, c, h, w]), device);
        let ball = InputSet::linf(image, eps as f32, input_domain)?;
        let (lower, upper) = (read_floats(ball.lower)?, read_floats(ball.upper)?);
        if (0..x.len()).any(|k| !(lower[k] <= x[k] && x[k] <= upper[k])) {
            return Err(bad("lies outside the ball"));
        }
        if margin_at(net, x, record.label, device)? >= 0.0 {
            return Err(bad("is classified correctly"));
        }
    }
    Ok(())
}

/// The records of an earlier run's log at `path` (none if it does not exist), keyed by point.
/// A last line without its newline (the run was killed while writing it) is cut off the file.
fn read_log(path: &Path, kind: &LogKind) -> Result<BTreeMap<usize, PointRecord>, TrainError> {
    let io = |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut records = BTreeMap::new();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(records),
        Err(e) => return Err(io(e)),
    };
    let mut whole = 0u64;
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    for number in 1.. {
        line.clear();
        let read = reader.read_line(&mut line).map_err(io)?;
        if read == 0 || !line.ends_with('\n') {
            break;
        }
        whole += read as u64;
        let record: PointRecord =
            serde_json::from_str(line.trim_end()).map_err(|e| TrainError::Config {
                origin: path.display().to_string(),
                message: format!("line {number} is not a verification record: {e}"),
            })?;
        let written = LogKind {
            eps: record.eps,
            domain: &record.domain,
            input_domain: &record.input_domain,
            float_sound: record.float_sound,
            complete: record.complete,
        };
        if written != *kind {
            return Err(TrainError::Config {
                origin: path.display().to_string(),
                message: format!(
                    "line {number} was written for {written}; this run verifies {kind}: give \
                     another log"
                ),
            });
        }
        records.insert(record.index, record);
    }
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(whole))
        .map_err(io)?;
    Ok(records)
}

/// What the lines of one log have in common: a resumed run must verify the same.
#[derive(Clone, Copy, Debug, PartialEq)]
struct LogKind<'a> {
    eps: f64,
    domain: &'a str,
    input_domain: &'a str,
    float_sound: bool,
    complete: bool,
}

impl std::fmt::Display for LogKind<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sound = if self.float_sound { "" } else { "not " };
        let complete = if self.complete { "with" } else { "without" };
        write!(
            f,
            "eps {}, domain {}, input domain {}, {sound}float sound, {complete} branch and bound",
            self.eps, self.domain, self.input_domain
        )
    }
}

/// The records with `verdict`.
fn count(records: &BTreeMap<usize, PointRecord>, verdict: Verdict) -> usize {
    records.values().filter(|r| r.verdict == verdict).count()
}

fn summarise(
    records: &BTreeMap<usize, PointRecord>,
    resumed: usize,
    kind: &LogKind<'static>,
    log: &Path,
) -> VerifySummary {
    let n = records.len();
    let (verified, falsified) = (
        count(records, Verdict::Verified),
        count(records, Verdict::Falsified),
    );
    let fraction = |count: usize| if n == 0 { 0.0 } else { count as f64 / n as f64 };
    let mut ms: Vec<f64> = records.values().map(|r| r.seconds * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let quantile = |ms: &[f64], q: f64| {
        if ms.is_empty() {
            0.0
        } else {
            ms[((q * (ms.len() - 1) as f64).round() as usize).min(ms.len() - 1)]
        }
    };
    let mut decided: Vec<f64> = records
        .values()
        .filter(|r| r.verdict != Verdict::Unknown)
        .map(|r| r.seconds)
        .collect();
    decided.sort_by(f64::total_cmp);
    VerifySummary {
        n,
        verified,
        falsified,
        unknown: n - verified - falsified,
        verified_acc: fraction(
            records
                .values()
                .filter(|r| r.correct && r.verdict == Verdict::Verified)
                .count(),
        ),
        clean_acc: fraction(records.values().filter(|r| r.correct).count()),
        seconds: records.values().map(|r| r.seconds).sum(),
        median_ms: quantile(&ms, 0.5),
        p90_ms: quantile(&ms, 0.9),
        median_decided_s: quantile(&decided, 0.5),
        p90_decided_s: quantile(&decided, 0.9),
        resumed,
        peak_memory_mib: peak_memory_mib(),
        eps: kind.eps,
        domain: kind.domain,
        input_domain: kind.input_domain,
        float_sound: kind.float_sound,
        complete: kind.complete,
        log: log.to_path_buf(),
    }
}
