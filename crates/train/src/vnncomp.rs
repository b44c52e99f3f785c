//! VNN-COMP instances: an ONNX network and a VNN-LIB property decided `sat` (with a
//! counterexample that our forward pass checks), `unsat` or `timeout`, as the competition's
//! `run_instance.sh` does; and a benchmark's `instances.csv`, one result row per instance,
//! resumable.
//!
//! An instance is decided region by region (`mixtrain_interop::Region`): its output constraints
//! are folded into the network's last layer (`Region::spec_network`), so that a counterexample
//! is a point of the box where label 0 loses and a proof is positive label-0 margins. PGD on
//! every region's box comes first, since a counterexample ends the instance; then the bounds
//! and branch and bound on each region, within what is left of the timeout.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Int, Tensor, TensorData};
use mixtrain_attack::{AttackLoss, Pgd};
use mixtrain_bounds::{
    BranchAndBound, DomainKind, InputSet, Verdict, Verifier, read_bools, read_floats,
};
use mixtrain_interop::{Property, Region, read_onnx, read_vnnlib};
use mixtrain_nn::{Device, Network};

use crate::TrainError;

/// How an instance is decided.
#[derive(Clone, Copy, Debug)]
pub struct VnnSettings {
    /// PGD steps per restart on each region's box.
    pub attack_steps: usize,
    /// PGD restarts per region, run side by side in one batch (alpha-beta-CROWN's mnist_fc
    /// configuration runs 100).
    pub attack_restarts: usize,
    /// The domain of the first bound (before branch and bound).
    pub domain: DomainKind,
    /// Branch and bound's settings; its timeout is what is left of the instance's.
    pub bab: BranchAndBound,
}

impl Default for VnnSettings {
    fn default() -> Self {
        Self {
            attack_steps: 50,
            attack_restarts: 100,
            domain: DomainKind::Crown,
            bab: BranchAndBound::default(),
        }
    }
}

/// What an instance came to.
#[derive(Clone, Debug, PartialEq)]
pub enum VnnResult {
    /// A counterexample: the input and the network's outputs there, checked to meet the
    /// property.
    Sat {
        /// The input, in the ONNX input's order.
        x: Vec<f64>,
        /// The outputs our forward pass computes at `x`.
        y: Vec<f64>,
    },
    /// No input of the property's regions meets its output constraints.
    Unsat,
    /// Undecided when the time ran out.
    Timeout,
    /// Undecided with time left: a region whose disjuncts have several constraints was not
    /// proven by the bounds (branch and bound splits single constraints only), or a
    /// counterexample of one constraint met no disjunct.
    Unknown,
}

impl VnnResult {
    /// The word VNN-COMP's result files use.
    pub fn name(&self) -> &'static str {
        match self {
            VnnResult::Sat { .. } => "sat",
            VnnResult::Unsat => "unsat",
            VnnResult::Timeout => "timeout",
            VnnResult::Unknown => "unknown",
        }
    }

    /// The result file of `run_instance.sh`: the word, and for `sat` the counterexample as
    /// `((X_0 v) ... (Y_0 v) ...)` (`-0.0` written `0.0`: `v + 0.0`).
    pub fn to_result_file(&self) -> String {
        let mut s = format!("{}\n", self.name());
        if let VnnResult::Sat { x, y } = self {
            s.push('(');
            let values = x
                .iter()
                .enumerate()
                .map(|(i, v)| format!("(X_{i} {:?})", v + 0.0))
                .chain(
                    y.iter()
                        .enumerate()
                        .map(|(j, v)| format!("(Y_{j} {:?})", v + 0.0)),
                );
            for (n, v) in values.enumerate() {
                let _ = write!(s, "{}{v}", if n == 0 { "" } else { "\n " });
            }
            s.push_str(")\n");
        }
        s
    }
}

/// An instance's result and its times.
#[derive(Clone, Debug)]
pub struct InstanceOutcome {
    /// The decision.
    pub result: VnnResult,
    /// Seconds reading the network and the property.
    pub prep_seconds: f64,
    /// Seconds deciding.
    pub run_seconds: f64,
}

/// Decides the property `vnnlib` of the network `onnx` within `timeout` seconds.
pub fn run_instance(
    onnx: &Path,
    vnnlib: &Path,
    timeout: f64,
    settings: &VnnSettings,
    device: &Device,
) -> Result<InstanceOutcome, TrainError> {
    let clock = Instant::now();
    let net = read_onnx(onnx, device)?;
    let property = read_vnnlib(vnnlib)?;
    check_fits(&net, &property, vnnlib)?;
    let prep_seconds = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let result = decide(&net, &property, timeout, settings, device)?;
    Ok(InstanceOutcome {
        result,
        prep_seconds,
        run_seconds: clock.elapsed().as_secs_f64(),
    })
}

fn check_fits(net: &Network, property: &Property, vnnlib: &Path) -> Result<(), TrainError> {
    let arch = net.architecture();
    let inputs: usize = arch.input.iter().product();
    if (property.inputs, property.outputs) != (inputs, arch.classes) {
        return Err(TrainError::Config {
            origin: vnnlib.display().to_string(),
            message: format!(
                "the property has {} inputs and {} outputs, network {} has {inputs} and {}",
                property.inputs, property.outputs, arch.name, arch.classes
            ),
        });
    }
    Ok(())
}

fn decide(
    net: &Network,
    property: &Property,
    timeout: f64,
    settings: &VnnSettings,
    device: &Device,
) -> Result<VnnResult, TrainError> {
    let clock = Instant::now();
    let specs: Vec<Network> = property
        .regions
        .iter()
        .map(|r| r.spec_network(net, device))
        .collect::<Result<_, _>>()?;
    for (region, spec) in property.regions.iter().zip(&specs) {
        if clock.elapsed().as_secs_f64() >= timeout {
            return Ok(VnnResult::Timeout);
        }
        if let Some(sat) = attack(net, spec, region, settings, device)? {
            return Ok(sat);
        }
    }
    let mut undecided = false;
    for (region, spec) in property.regions.iter().zip(&specs) {
        let left = timeout - clock.elapsed().as_secs_f64();
        if left <= 0.0 {
            return Ok(VnnResult::Timeout);
        }
        let (lower, upper) = box_tensors(net, region, Rounding::Outward, device);
        let set = InputSet::new(lower, upper)?;
        let label = Tensor::<1, Int>::zeros([1], device);
        let single = region.disjuncts.iter().all(|d| d.len() == 1);
        let mut verifier = Verifier::new(settings.domain);
        verifier.batch_size = 1;
        if single {
            verifier.complete = Some(BranchAndBound {
                timeout: left,
                ..settings.bab
            });
            let point = verifier.verify(spec, &set, label)?.remove(0);
            match point.verdict {
                Verdict::Verified => {}
                Verdict::Falsified => {
                    let x = point.counterexample.unwrap_or_default();
                    match checked(net, region, &x, device)? {
                        Some(sat) => return Ok(sat),
                        None => undecided = true,
                    }
                }
                Verdict::Unknown => {
                    if clock.elapsed().as_secs_f64() >= timeout {
                        return Ok(VnnResult::Timeout);
                    }
                    undecided = true;
                }
            }
        } else {
            let margins = verifier.margins(spec, &set, label)?;
            let lower = read_floats(margins.lower)?;
            if !region.proven_by(&lower[1..]) {
                undecided = true;
            }
        }
    }
    Ok(if undecided {
        VnnResult::Unknown
    } else {
        VnnResult::Unsat
    })
}

/// PGD on the region's box against label 0 of its specification network; a point where label
/// 0 loses is a counterexample once the network's own outputs there meet a disjunct.
fn attack(
    net: &Network,
    spec: &Network,
    region: &Region,
    settings: &VnnSettings,
    device: &Device,
) -> Result<Option<VnnResult>, TrainError> {
    let radius = region
        .lower
        .iter()
        .zip(&region.upper)
        .map(|(l, u)| (u - l) / 2.0)
        .fold(0.0, f64::max) as f32;
    let (lower, upper) = box_tensors(net, region, Rounding::Inward, device);
    // a step of a quarter of the largest half-width, as alpha-beta-CROWN's `pgd_alpha: auto`:
    // on mnist_fc's counterexamples it breaks as many as 100 steps of a tenth, in half the steps
    let pgd = Pgd {
        loss: AttackLoss::Margin,
        restarts: settings.attack_restarts,
        ..Pgd::new(
            radius,
            (radius / 4.0).max(f32::MIN_POSITIVE),
            settings.attack_steps,
        )
    };
    let label = Tensor::<1, Int>::zeros([1], device);
    let found = pgd.run_box(spec, lower, upper, label)?;
    if !read_bools(found.broken)?[0] {
        return Ok(None);
    }
    let x = read_floats(found.points)?;
    checked(net, region, &x, device)
}

/// `x` (clamped into the region's box, rounded inward) as a counterexample, if the network's
/// forward pass there meets a disjunct.
fn checked(
    net: &Network,
    region: &Region,
    x: &[f32],
    device: &Device,
) -> Result<Option<VnnResult>, TrainError> {
    if x.len() != region.lower.len() {
        return Ok(None);
    }
    let x: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (l, u) = inward(region.lower[i], region.upper[i]);
            v.clamp(l, u)
        })
        .collect();
    let [c, h, w] = net.architecture().input;
    let y = read_floats(net.forward(Tensor::from_data(
        TensorData::new(x.clone(), [1, c, h, w]),
        device,
    )))?;
    let (x, y): (Vec<f64>, Vec<f64>) = (
        x.iter().map(|v| f64::from(*v)).collect(),
        y.iter().map(|v| f64::from(*v)).collect(),
    );
    Ok((region.contains(&x, 0.0) && region.violated_by(&y)).then_some(VnnResult::Sat { x, y }))
}

#[derive(Clone, Copy)]
enum Rounding {
    /// A float32 box that contains the region's (for bounds).
    Outward,
    /// A float32 box inside the region's (for counterexamples).
    Inward,
}

fn box_tensors(
    net: &Network,
    region: &Region,
    rounding: Rounding,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let (lower, upper): (Vec<f32>, Vec<f32>) = region
        .lower
        .iter()
        .zip(&region.upper)
        .map(|(&l, &u)| match rounding {
            Rounding::Outward => (down(l), up(u)),
            Rounding::Inward => inward(l, u),
        })
        .unzip();
    let [c, h, w] = net.architecture().input;
    let t = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [1, c, h, w]), device);
    (t(lower), t(upper))
}

/// The largest float32 at most `v`.
fn down(v: f64) -> f32 {
    let f = v as f32;
    if f64::from(f) > v { f.next_down() } else { f }
}

/// The smallest float32 at least `v`.
fn up(v: f64) -> f32 {
    let f = v as f32;
    if f64::from(f) < v { f.next_up() } else { f }
}

/// `[l, u]` rounded inward to float32, or to the nearest float32 where no float32 lies inside.
fn inward(l: f64, u: f64) -> (f32, f32) {
    let (a, b) = (up(l), down(u));
    if a <= b {
        (a, b)
    } else {
        let m = ((l + u) / 2.0) as f32;
        (m, m)
    }
}

/// One row of `instances.csv`: paths relative to its directory.
#[derive(Clone, Debug, PartialEq)]
pub struct VnnInstance {
    /// The ONNX network, as the CSV names it.
    pub onnx: String,
    /// The VNN-LIB property, as the CSV names it.
    pub vnnlib: String,
    /// Its timeout, seconds.
    pub timeout: f64,
}

/// Reads VNN-COMP's `instances.csv` (`onnx,vnnlib,timeout` per line).
pub fn read_instances(csv: &Path) -> Result<Vec<VnnInstance>, TrainError> {
    let text = std::fs::read_to_string(csv).map_err(|source| TrainError::Io {
        path: csv.into(),
        source,
    })?;
    let bad = |line: usize, message: String| TrainError::Config {
        origin: format!("{}:{line}", csv.display()),
        message,
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let [onnx, vnnlib, timeout] = line.split(',').map(str::trim).collect::<Vec<_>>()[..] else {
            return Err(bad(
                n + 1,
                format!("{line:?}: expected onnx,vnnlib,timeout"),
            ));
        };
        let timeout: f64 = timeout
            .parse()
            .ok()
            .filter(|t: &f64| *t > 0.0 && t.is_finite())
            .ok_or_else(|| {
                bad(
                    n + 1,
                    format!("timeout {timeout:?} is not a positive number"),
                )
            })?;
        out.push(VnnInstance {
            onnx: onnx.into(),
            vnnlib: vnnlib.into(),
            timeout,
        });
    }
    Ok(out)
}

/// A benchmark file: `dir/path`, or `dir/path.gz` where only the gzipped one exists (VNN-COMP's
/// repository ships them gzipped).
pub fn benchmark_file(dir: &Path, path: &str) -> PathBuf {
    let plain = dir.join(path);
    let gz = dir.join(format!("{path}.gz"));
    if !plain.exists() && gz.exists() {
        gz
    } else {
        plain
    }
}

/// What [`run_benchmark`] writes and where.
pub struct BenchmarkRun<'a> {
    /// The benchmark's name, the first column of every row.
    pub benchmark: &'a str,
    /// The results file: `benchmark,onnx,vnnlib,prep_time,result,run_time` per row, as the
    /// competition's; rows already there are kept and their instances skipped.
    pub out: &'a Path,
    /// Caps every instance's timeout.
    pub timeout_cap: Option<f64>,
    /// Called after each instance with its index (from 0), the instance and its outcome.
    pub progress: &'a mut dyn FnMut(usize, &VnnInstance, &InstanceOutcome),
}

/// Runs every instance of `instances.csv` not yet in the results file, appending a row each
/// (flushed, so a killed run resumes), and writes each sat's counterexample beside the results
/// as `<network stem>_<property stem>.counterexample`. Returns the outcomes of this call.
pub fn run_benchmark(
    csv: &Path,
    run: BenchmarkRun,
    settings: &VnnSettings,
    device: &Device,
) -> Result<Vec<(VnnInstance, InstanceOutcome)>, TrainError> {
    let dir = csv.parent().unwrap_or(Path::new("."));
    let instances = read_instances(csv)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Io { path, source }
    };
    let column = |path: &str| {
        format!(
            "./benchmarks/{}/{}",
            run.benchmark,
            path.trim_start_matches("./")
        )
    };
    let done: HashSet<(String, String)> = match std::fs::read_to_string(run.out) {
        Ok(text) => text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f.len() == 6).then(|| (f[1].to_string(), f[2].to_string()))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
        Err(e) => return Err(io(run.out)(e)),
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.out)
        .map_err(io(run.out))?;
    let out_dir = run.out.parent().unwrap_or(Path::new("."));
    let mut outcomes = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        let key = (column(&instance.onnx), column(&instance.vnnlib));
        if done.contains(&key) {
            continue;
        }
        let timeout = run
            .timeout_cap
            .map_or(instance.timeout, |c| c.min(instance.timeout));
        let outcome = run_instance(
            &benchmark_file(dir, &instance.onnx),
            &benchmark_file(dir, &instance.vnnlib),
            timeout,
            settings,
            device,
        )?;
        if let VnnResult::Sat { .. } = &outcome.result {
            let path = out_dir.join(counterexample_name(&instance.onnx, &instance.vnnlib));
            mixtrain_nn::write_atomic(&path, outcome.result.to_result_file().as_bytes())
                .map_err(io(&path))?;
        }
        writeln!(
            file,
            "{},{},{},{:.6},{},{:.6}",
            run.benchmark,
            key.0,
            key.1,
            outcome.prep_seconds,
            outcome.result.name(),
            outcome.run_seconds
        )
        .and_then(|()| file.flush())
        .map_err(io(run.out))?;
        (run.progress)(i, instance, &outcome);
        outcomes.push((instance.clone(), outcome));
    }
    Ok(outcomes)
}

/// `<network stem>_<property stem>.counterexample`.
pub fn counterexample_name(onnx: &str, vnnlib: &str) -> String {
    let (network, property) = crate::vnncomp_compare::key(onnx, vnnlib);
    format!("{network}_{property}.counterexample")
}
