//! Verification of a test set point by point, into a JSON-lines log that a killed run resumes.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor};
use mixtrain_bounds::{InputDomain, InputSet, Verdict, Verifier};
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
    /// What the bounds decide.
    pub verdict: Verdict,
    /// The smallest lower bound over the margins `z_y - z_j`, `j != y` (positive: verified).
    pub margin: f32,
    /// Lower bounds of every margin `z_y - z_j` (the label's own is 0).
    pub margins: Vec<f32>,
    /// Seconds spent bounding the point (its batch's time shared among the batch).
    pub seconds: f64,
    /// The L_inf radius, pixel units.
    pub eps: f64,
    /// The domain's name.
    pub domain: String,
    /// The box pixels are clipped to (`unit` or `image`).
    pub input_domain: String,
}

/// Figures of a whole verification log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerifySummary {
    /// Points in the log.
    pub n: usize,
    /// Points verified.
    pub verified: usize,
    /// Points left undecided.
    pub unknown: usize,
    /// Fraction of points both classified correctly and verified.
    pub verified_acc: f64,
    /// Fraction classified correctly.
    pub clean_acc: f64,
    /// Seconds of bounding summed over the points (both runs, when resumed).
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
    /// The log.
    pub log: PathBuf,
}

/// Where a verification of a test set writes, and how it reports its progress.
pub struct VerifyLog<'a> {
    /// The JSON-lines file: one [`PointRecord`] per line, appended as points are decided.
    pub path: &'a Path,
    /// Called after every batch with (points done, points, verified so far).
    pub progress: &'a mut dyn FnMut(usize, usize, usize),
}

/// Verifies every point of `set` in the L_inf ball of radius `eps` (pixel units) clipped to
/// `input_domain`, appending a line per point to `log.path`. Points that already have a line
/// there (a killed run) are not verified again; lines written for another eps, domain or input
/// domain are an error naming the file, and a torn last line is dropped.
pub fn verify_points(
    net: &Network,
    set: &ImageSet,
    eps: f64,
    input_domain: InputDomain,
    verifier: &Verifier,
    log: VerifyLog<'_>,
    device: &Device,
) -> Result<VerifySummary, TrainError> {
    let io = |source| TrainError::Io {
        path: log.path.to_path_buf(),
        source,
    };
    let domain = verifier.domain.name();
    let mut records = read_log(log.path, eps, domain, input_domain.name())?;
    let resumed = records.len();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log.path)
        .map_err(io)?;
    let total = set.len();
    let mut verified = records
        .values()
        .filter(|r| r.verdict == Verdict::Verified)
        .count();
    (log.progress)(records.len(), total, verified);
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
            burn::tensor::TensorData::new(
                todo.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                [todo.len()],
            ),
            device,
        );
        let (x, y) = (x.select(0, rows.clone()), y.select(0, rows));
        let correct: Vec<bool> = net
            .forward(x.clone())
            .argmax(1)
            .squeeze_dim::<1>(1)
            .equal(y.clone())
            .into_data()
            .try_to_vec()
            .map_err(|e| TrainError::Bounds(read_error(e)))?;
        let ball = InputSet::linf(x, eps as f32, input_domain)?;
        let verdicts = verifier.verify(net, &ball, y)?;
        let mut lines = String::new();
        for ((&i, correct), point) in todo.iter().zip(correct).zip(verdicts) {
            let label = labels[i];
            let margin = point
                .margins
                .iter()
                .enumerate()
                .filter(|&(j, _)| j as i64 != label)
                .map(|(_, m)| *m)
                .fold(f32::INFINITY, f32::min);
            let record = PointRecord {
                index: indices[i],
                label,
                correct,
                verdict: point.verdict,
                margin,
                margins: point.margins,
                seconds: point.seconds,
                eps,
                domain: domain.to_string(),
                input_domain: input_domain.name().to_string(),
            };
            verified += usize::from(record.verdict == Verdict::Verified);
            lines.push_str(&serde_json::to_string(&record).expect("a record serialises"));
            lines.push('\n');
            records.insert(record.index, record);
        }
        file.write_all(lines.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        (log.progress)(records.len(), total, verified);
    }
    Ok(summarise(
        &records,
        resumed,
        eps,
        domain,
        input_domain,
        log.path,
    ))
}

fn read_error(e: impl std::fmt::Debug) -> mixtrain_bounds::BoundsError {
    mixtrain_bounds::BoundsError::Input(format!("reading the predictions back: {e:?}"))
}

/// The records of an earlier run's log at `path` (none if it does not exist), keyed by point.
/// A last line without its newline (the run was killed while writing it) is cut off the file.
fn read_log(
    path: &Path,
    eps: f64,
    domain: &str,
    input_domain: &str,
) -> Result<BTreeMap<usize, PointRecord>, TrainError> {
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
        if record.eps != eps || record.domain != domain || record.input_domain != input_domain {
            return Err(TrainError::Config {
                origin: path.display().to_string(),
                message: format!(
                    "line {number} was written for eps {}, domain {}, input domain {}; this run \
                     verifies eps {eps}, domain {domain}, input domain {input_domain}: give \
                     another log",
                    record.eps, record.domain, record.input_domain
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

fn summarise(
    records: &BTreeMap<usize, PointRecord>,
    resumed: usize,
    eps: f64,
    domain: &'static str,
    input_domain: InputDomain,
    log: &Path,
) -> VerifySummary {
    let n = records.len();
    let verified = records
        .values()
        .filter(|r| r.verdict == Verdict::Verified)
        .count();
    let fraction = |count: usize| if n == 0 { 0.0 } else { count as f64 / n as f64 };
    let mut ms: Vec<f64> = records.values().map(|r| r.seconds * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        if ms.is_empty() {
            0.0
        } else {
            ms[((q * (ms.len() - 1) as f64).round() as usize).min(ms.len() - 1)]
        }
    };
    VerifySummary {
        n,
        verified,
        unknown: n - verified,
        verified_acc: fraction(
            records
                .values()
                .filter(|r| r.correct && r.verdict == Verdict::Verified)
                .count(),
        ),
        clean_acc: fraction(records.values().filter(|r| r.correct).count()),
        seconds: records.values().map(|r| r.seconds).sum(),
        median_ms: quantile(0.5),
        p90_ms: quantile(0.9),
        resumed,
        peak_memory_mib: peak_memory_mib(),
        eps,
        domain,
        input_domain: input_domain.name(),
        log: log.to_path_buf(),
    }
}
