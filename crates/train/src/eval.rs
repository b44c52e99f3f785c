use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use mixtrain_attack::Attack;
use mixtrain_bounds::{BoundsError, InputDomain, InputSet, Verdict, Verifier, read_bools};
use mixtrain_data::{Batch, ImageSet};
use mixtrain_nn::{Network, write_atomic};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde::Serialize;

use crate::{Tally, TrainError};

/// Figures of one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalResult {
    /// Points evaluated.
    pub n: usize,
    /// Fraction classified correctly.
    pub clean_acc: f64,
    /// Wall-clock seconds, including moving the data to the device.
    pub seconds: f64,
}

/// Moves a batch to `device` as `([n, c, h, w]` pixels, `[n]` labels).
pub(crate) fn to_device(batch: Batch, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let dims = batch.dims();
    let n = batch.len();
    let x = Tensor::from_data(TensorData::new(batch.pixels, dims), device);
    let y = Tensor::from_data(TensorData::new(batch.labels, [n]), device);
    (x, y)
}

/// A count of points kept on the device, so that a whole evaluation costs one read back.
#[derive(Default)]
struct Count(Option<Tensor<1, Int>>);

impl Count {
    fn add(&mut self, hits: Tensor<1, Int>) {
        self.0 = Some(match self.0.take() {
            Some(c) => c + hits,
            None => hits,
        });
    }

    /// The count over `n` points (0 for none).
    fn fraction(self, n: usize) -> f64 {
        let count: i64 = self.0.map(|c| c.into_scalar()).unwrap_or(0);
        share(count as usize, n)
    }
}

/// `count` over `n` points (0 for none).
fn share(count: usize, n: usize) -> f64 {
    if n == 0 { 0.0 } else { count as f64 / n as f64 }
}

/// Batches of at least one point, or an error naming the setting.
fn check_batch_size(batch_size: usize) -> Result<(), TrainError> {
    if batch_size == 0 {
        return Err(TrainError::Config {
            origin: "evaluation".into(),
            message: "the batch size must be at least 1".into(),
        });
    }
    Ok(())
}

/// Runs `hits` (a count of points, on the device) on every batch of `set`: the fraction of
/// points counted and the seconds taken.
fn fraction(
    set: &ImageSet,
    batch_size: usize,
    device: &Device,
    mut hits: impl FnMut(Tensor<4>, Tensor<1, Int>) -> Result<Tensor<1, Int>, TrainError>,
) -> Result<(f64, f64), TrainError> {
    check_batch_size(batch_size)?;
    let start = Instant::now();
    let mut count = Count::default();
    for batch in set.batches(batch_size, None) {
        let (x, y) = to_device(batch, device);
        count.add(hits(x, y)?);
    }
    Ok((count.fraction(set.len()), start.elapsed().as_secs_f64()))
}

/// `[n]`: whether `net` classifies each point of `x` as its label.
fn correct(net: &Network, x: Tensor<4>, y: Tensor<1, Int>) -> Tensor<1, Bool> {
    net.forward(x).argmax(1).squeeze_dim::<1>(1).equal(y)
}

/// Clean accuracy of `net` on `set`.
pub fn evaluate(
    net: &Network,
    set: &ImageSet,
    batch_size: usize,
    device: &Device,
) -> Result<EvalResult, TrainError> {
    let (clean_acc, seconds) = fraction(set, batch_size, device, |x, y| {
        Ok(correct(net, x, y).int().sum())
    })?;
    Ok(EvalResult {
        n: set.len(),
        clean_acc,
        seconds,
    })
}

/// What a robustness evaluation runs on every point of a set, cheapest first: the clean
/// pass, the attack (when there is one), then the verifier on the points neither decided. A
/// sound verifier can verify neither a misclassified point nor one with a counterexample, so
/// bounding them would cost time and change no figure; on a weak network they are most of the
/// points and the costliest to bound.
#[derive(Clone, Copy)]
pub struct Robustness<'a> {
    /// The L_inf radius, pixel units.
    pub eps: f64,
    /// The box pixels are clipped to.
    pub input_domain: InputDomain,
    /// Bounds the points left; none: the clean pass and the attack only.
    pub verifier: Option<&'a Verifier>,
    /// Runs before the verifier; none: only misclassified points are left out.
    pub attack: Option<&'a dyn Attack>,
    /// Bound every point, decided or not: a throughput comparison with a tool that does.
    pub bound_all: bool,
}

/// Figures of one robustness evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RobustnessResult {
    /// Points evaluated.
    pub n: usize,
    /// The L_inf radius, pixel units.
    pub eps: f64,
    /// The box pixels are clipped to: `unit` (`[0, 1]`) or `image` (each image's own range).
    pub input_domain: &'static str,
    /// Fraction classified correctly.
    pub clean_acc: f64,
    /// Fraction classified correctly at every point the attack tried (none without an
    /// attack): an upper bound on the robust accuracy.
    pub attack_acc: Option<f64>,
    /// Fraction both classified correctly and verified (none without a verifier).
    pub verified_acc: Option<f64>,
    /// The verifier's domain (`interval`, `symbolic`, `crown`, `crown-symbolic`,
    /// `alpha-crown`, `best`).
    pub domain: Option<&'static str>,
    /// Whether the bounds accounted for float32 rounding.
    pub float_sound: bool,
    /// Points the verifier bounded: those the clean pass and the attack left open.
    pub bounded: usize,
    /// Wall-clock seconds of the clean pass and the attack.
    pub attack_seconds: f64,
    /// Wall-clock seconds of the bounds.
    pub verify_seconds: f64,
}

/// Evaluates `net` on every point of `set` as `spec` says, `batch_size` points per clean pass
/// and attack and the verifier's batch size per bound computation, reporting the counts to
/// `progress` after each of those (a point is `falsified` when misclassified or broken by the
/// attack, `unknown` when left open). The attack's random starts are the device's: seed it
/// before for a repeatable figure.
pub fn robustness(
    net: &Network,
    set: &ImageSet,
    spec: &Robustness<'_>,
    batch_size: usize,
    device: &Device,
    progress: &mut dyn FnMut(&Tally),
) -> Result<RobustnessResult, TrainError> {
    check_batch_size(batch_size)?;
    let mut tally = Tally {
        total: set.len(),
        ..Tally::default()
    };
    let (mut classified, mut robust, mut bounded) = (0, 0, 0);
    let (mut attack_seconds, mut verify_seconds) = (0.0, 0.0);
    progress(&tally);
    for batch in set.batches(batch_size, None) {
        let n = batch.len();
        let (x, y) = to_device(batch, device);
        let clock = Instant::now();
        let ok = correct(net, x.clone(), y.clone());
        let unbroken = match spec.attack {
            Some(attack) => attack.run(net, x.clone(), y.clone())?.broken.bool_not(),
            None => ok.clone(),
        };
        let ok = read_bools(ok)?;
        let unbroken = read_bools(unbroken)?;
        attack_seconds += clock.elapsed().as_secs_f64();
        let open: Vec<usize> = (0..n).filter(|&i| ok[i] && unbroken[i]).collect();
        classified += ok.iter().filter(|&&ok| ok).count();
        robust += open.len();
        let Some(verifier) = spec.verifier else {
            tally.done += n;
            tally.falsified += n - open.len();
            tally.unknown += open.len();
            progress(&tally);
            continue;
        };
        let rows: Vec<usize> = if spec.bound_all {
            (0..n).collect()
        } else {
            open
        };
        tally.done += n - rows.len();
        tally.falsified += n - rows.len();
        progress(&tally);
        for chunk in rows.chunks(verifier.batch_size.max(1)) {
            let clock = Instant::now();
            let select = Tensor::<1, Int>::from_data(
                TensorData::new(
                    chunk.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                    [chunk.len()],
                ),
                device,
            );
            let ball = InputSet::linf(
                x.clone().select(0, select.clone()),
                spec.eps as f32,
                spec.input_domain,
            )?;
            let verdicts = verifier.verify(net, &ball, y.clone().select(0, select))?;
            verify_seconds += clock.elapsed().as_secs_f64();
            for (&i, point) in chunk.iter().zip(&verdicts) {
                match point.verdict {
                    Verdict::Verified if ok[i] => tally.verified += 1,
                    Verdict::Unknown => tally.unknown += 1,
                    _ => tally.falsified += 1,
                }
            }
            bounded += chunk.len();
            tally.done += chunk.len();
            progress(&tally);
        }
    }
    let share = |count| share(count, set.len());
    Ok(RobustnessResult {
        n: set.len(),
        eps: spec.eps,
        input_domain: spec.input_domain.name(),
        clean_acc: share(classified),
        attack_acc: spec.attack.map(|_| share(robust)),
        verified_acc: spec.verifier.map(|_| share(tally.verified)),
        domain: spec.verifier.map(|v| v.domain.name()),
        float_sound: spec.verifier.is_some_and(|v| v.float_sound),
        bounded,
        attack_seconds,
        verify_seconds,
    })
}

/// Figures of one attack run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttackResult {
    /// Points attacked.
    pub n: usize,
    /// Fraction classified correctly.
    pub clean_acc: f64,
    /// Fraction classified correctly at every point the attack tried: an upper bound on the
    /// robust accuracy (a misclassified clean point counts as broken).
    pub robust_acc: f64,
    /// Wall-clock seconds, clean pass included.
    pub seconds: f64,
}

/// Runs `attack` on every batch of `set`; with `examples`, also collects the adversarial
/// examples it found (points classified correctly and broken). Counts stay on the device
/// until the end; collecting examples reads each batch's back.
pub fn attack(
    net: &Network,
    set: &ImageSet,
    attack: &dyn Attack,
    batch_size: usize,
    device: &Device,
    mut examples: Option<&mut Examples>,
) -> Result<AttackResult, TrainError> {
    check_batch_size(batch_size)?;
    let start = Instant::now();
    let (mut clean, mut robust) = (Count::default(), Count::default());
    for batch in set.batches(batch_size, None) {
        let indices = batch.indices.clone();
        let (x, y) = to_device(batch, device);
        let ok = correct(net, x.clone(), y.clone());
        let found = attack.run(net, x, y.clone())?;
        clean.add(ok.clone().int().sum());
        robust.add(found.broken.clone().bool_not().int().sum());
        if let Some(examples) = examples.as_deref_mut() {
            examples.push(net, &indices, ok.bool_and(found.broken), found.points, y)?;
        }
    }
    Ok(AttackResult {
        n: set.len(),
        clean_acc: clean.fraction(set.len()),
        robust_acc: robust.fraction(set.len()),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Adversarial examples: inputs inside the eps-ball (and the input domain) of a correctly
/// classified test point that the network misclassifies, with where they came from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Examples {
    /// Positions in the evaluated set.
    pub indices: Vec<i64>,
    /// The true class of each example.
    pub labels: Vec<i64>,
    /// The network's class for each example.
    pub predictions: Vec<i64>,
    /// `[len, c, h, w]` pixels, row-major.
    pub images: Vec<f32>,
    /// `[channels, height, width]` of one image (zeros while empty).
    pub shape: [usize; 3],
}

impl Examples {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether no example was found.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Appends the points of a batch selected by `keep`.
    fn push(
        &mut self,
        net: &Network,
        indices: &[usize],
        keep: Tensor<1, Bool>,
        points: Tensor<4>,
        labels: Tensor<1, Int>,
    ) -> Result<(), TrainError> {
        let keep: Vec<bool> = keep.into_data().try_to_vec::<bool>().map_err(data_error)?;
        let rows: Vec<i64> = (0..keep.len() as i64)
            .filter(|&i| keep[i as usize])
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let [_, c, h, w] = points.dims();
        let select = Tensor::<1, Int>::from_data(
            TensorData::new(rows.clone(), [rows.len()]),
            &points.device(),
        );
        let points = points.select(0, select.clone());
        let predictions = net.forward(points.clone()).argmax(1).squeeze_dim::<1>(1);
        let read_ints = |t: Tensor<1, Int>| -> Result<Vec<i64>, TrainError> {
            t.into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .map_err(data_error)
        };
        self.shape = [c, h, w];
        self.indices
            .extend(rows.iter().map(|&r| indices[r as usize] as i64));
        self.labels.extend(read_ints(labels.select(0, select))?);
        self.predictions.extend(read_ints(predictions)?);
        self.images
            .extend(points.into_data().try_to_vec::<f32>().map_err(data_error)?);
        Ok(())
    }

    /// Writes safetensors (atomically) with `images` (f32 `[len, c, h, w]`), `indices`,
    /// `labels` and `predictions` (i64 `[len]`), and `metadata` in the header: readable by
    /// `safetensors.torch.load_file` or `safetensors.numpy.load_file`.
    pub fn save(&self, path: &Path, metadata: HashMap<String, String>) -> Result<(), TrainError> {
        let bytes = |v: &[i64]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let images: Vec<u8> = self.images.iter().flat_map(|x| x.to_le_bytes()).collect();
        let [c, h, w] = self.shape;
        let tensors = [
            ("images", Dtype::F32, vec![self.len(), c, h, w], images),
            (
                "indices",
                Dtype::I64,
                vec![self.len()],
                bytes(&self.indices),
            ),
            ("labels", Dtype::I64, vec![self.len()], bytes(&self.labels)),
            (
                "predictions",
                Dtype::I64,
                vec![self.len()],
                bytes(&self.predictions),
            ),
        ];
        let format = |e: safetensors::SafeTensorError| TrainError::Checkpoint {
            path: path.into(),
            message: e.to_string(),
        };
        let views = tensors
            .iter()
            .map(|(name, dtype, shape, data)| {
                Ok((*name, TensorView::new(*dtype, shape.clone(), data)?))
            })
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
            .map_err(format)?;
        let bytes = safetensors::serialize(views, Some(metadata)).map_err(format)?;
        write_atomic(path, &bytes).map_err(TrainError::io(path))
    }
}

fn data_error(e: burn::tensor::DataError) -> TrainError {
    TrainError::Bounds(BoundsError::Input(format!("reading a tensor back: {e:?}")))
}
