//! What a run writes besides its checkpoints: one line of `metrics.jsonl` per epoch, and at the
//! end `final.json`, `report.md` and `summary.json`.

use std::io::Write;
use std::path::{Path, PathBuf};

use mixtrain_loss::AlphaChange;
use mixtrain_nn::write_atomic;
use serde::Serialize;

use crate::{Method, TrainConfig, TrainError};

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct EpochMetrics {
    pub epoch: usize,
    pub method: &'static str,
    pub lr: f64,
    /// eps of the epoch's last step.
    pub eps: f64,
    pub policy: &'static str,
    /// `fixed` / `adaptive`: the robust loss's weight this epoch (natural: `1 - alpha`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// `schedule`: the robust weight and the probability a batch gets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub robust_weight: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub robust_probability: Option<f64>,
    /// Mean of the mixed loss over the epoch's batches.
    pub loss: f64,
    /// Means over the batches that computed the term.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub natural_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub robust_loss: Option<f64>,
    /// The warm-up regularisers' weighted sum, over the steps that computed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regularizer_loss: Option<f64>,
    /// On the training inputs (adversarial ones for `pgd`).
    pub train_acc: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_acc: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_vra: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_domain: Option<&'static str>,
    /// Clean accuracy on the test split (`None` in a validation-only run, which never reads it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_acc: Option<f64>,
    pub test_n: usize,
    /// Seconds of training (the optimisation steps) in this epoch.
    pub seconds: f64,
    pub val_seconds: f64,
    pub eval_seconds: f64,
    pub images_per_second: f64,
    /// Set when the DMT policy changed alpha after this epoch, with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha_change: Option<AlphaChange>,
}

/// The end-of-run evaluation on the test set, also written to `final.json` and `report.md`.
#[derive(Clone, Debug, Serialize)]
pub struct FinalEval {
    /// Test images evaluated (after `test_limit`).
    pub n: usize,
    /// The radius verified and attacked: the config's target eps, in pixel units.
    pub eps: f64,
    /// Fraction of test images classified correctly.
    pub clean_acc: f64,
    /// VRA: fraction of test images correct and verified in `domain`.
    pub vra: f64,
    /// The name of the domain of `vra` (`final_eval.domain`).
    pub domain: &'static str,
    /// Fraction correct under PGD (`None` when `final_eval.pgd_steps` is 0): an upper bound on
    /// robust accuracy, to hold against `vra`.
    pub pgd_acc: Option<f64>,
    /// Steps of the PGD attack (one random start, early stop); 0: no attack.
    pub pgd_steps: usize,
    /// The attack's step size in pixel units (`final_eval.pgd_step_size`, default eps / 4).
    pub pgd_step_size: f64,
    /// Points bounded: those neither misclassified nor broken by PGD (no sound verifier could
    /// verify those).
    pub bounded: usize,
    /// Wall-clock seconds of the verification.
    pub verify_seconds: f64,
    /// Wall-clock seconds of the clean pass and the attack.
    pub pgd_seconds: f64,
}

/// The outcome of a run, also written to `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The zoo model trained.
    pub model: String,
    /// The dataset trained on (`cifar10-sample` when `cifar10` fell back to it).
    pub dataset: String,
    /// The training method's name (`natural`, `pgd`, `ibp`, `crown-ibp`, `mixtrain`).
    pub method: &'static str,
    /// The backend's name (`flex`, `ndarray`, `wgpu`).
    pub backend: String,
    /// Epochs of the whole run, resumed ones included.
    pub epochs: usize,
    /// Training images trained on (after `train_limit` and the validation hold-out).
    pub train_n: usize,
    /// Validation images held out of the training split.
    pub val_n: usize,
    /// Test images evaluated (after `test_limit`; 0 in a validation-only run).
    pub test_n: usize,
    /// Fraction of test images classified correctly by the final weights (`None` in a
    /// validation-only run, which never reads the test split).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_acc: Option<f64>,
    /// The last epoch's validation clean accuracy (when the run validates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_acc: Option<f64>,
    /// The last epoch's validation VRA (certified methods).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_vra: Option<f64>,
    /// The end-of-run evaluation on the test set (`None` in a validation-only run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_eval: Option<FinalEval>,
    /// Training seconds of each epoch run by this process (resumed epochs are not repeated).
    pub epoch_seconds: Vec<f64>,
    /// Peak resident host memory of the process in MiB (Linux `VmHWM`; `None` elsewhere). GPU
    /// memory is not included.
    pub peak_memory_mib: Option<f64>,
    /// The final weights: `model.safetensors` in the run directory.
    pub weights: PathBuf,
}

impl EpochMetrics {
    /// Appends this epoch's line to `path`.
    pub fn append(&self, path: &Path) -> Result<(), TrainError> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(TrainError::io(path))?;
        let line = serde_json::to_string(self).map_err(|e| TrainError::io(path)(e.into()))?;
        writeln!(file, "{line}").map_err(TrainError::io(path))
    }
}

impl RunSummary {
    /// Writes `summary.json` (atomically).
    pub(crate) fn write(&self, path: &Path) -> Result<(), TrainError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| TrainError::io(path)(e.into()))?;
        write_atomic(path, &json).map_err(TrainError::io(path))
    }

    /// The run's result in one line.
    pub(crate) fn line(&self) -> String {
        match &self.final_eval {
            Some(eval) => format!(
                "test: clean {:.2}%, verified ({}) {:.2}%, PGD {} on {} images; weights in {}",
                100.0 * eval.clean_acc,
                eval.domain,
                100.0 * eval.vra,
                percent(eval.pgd_acc),
                self.test_n,
                self.weights.display()
            ),
            None => format!(
                "validation only: clean {}, verified {} on {} images; weights in {}",
                percent(self.val_acc),
                percent(self.val_vra),
                self.val_n,
                self.weights.display()
            ),
        }
    }
}

/// Keeps the lines of `metrics.jsonl` for epochs up to `epoch` (a run killed after logging an
/// epoch but before its checkpoint logs it again on resume).
pub(crate) fn truncate_metrics(path: &Path, epoch: usize) -> Result<(), TrainError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(TrainError::io(path)(e)),
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["epoch"].as_u64())
                .is_some_and(|e| e as usize <= epoch)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    write_atomic(path, kept.as_bytes()).map_err(TrainError::io(path))
}

pub(crate) fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.2}%", 100.0 * v))
}

/// `final.json` and a short `report.md` in the run directory.
pub(crate) fn write_report(
    config: &TrainConfig,
    dataset: &str,
    out: &Path,
    eval: &FinalEval,
) -> Result<(), TrainError> {
    let json_path = out.join("final.json");
    write_atomic(
        &json_path,
        &serde_json::to_vec_pretty(eval).expect("final evaluation serialises"),
    )
    .map_err(TrainError::io(&json_path))?;
    let report = format!(
        "# {model} on {dataset}: {method}, eps {eps}\n\n\
         | test images | clean accuracy | verified ({domain}) | PGD-{steps} accuracy |\n\
         |---|---|---|---|\n\
         | {n} | {clean:.2}% | {vra:.2}% | {pgd} |\n\n\
         {epochs} epochs, batch {batch}, DMT policy {policy}{k}. The clean pass and the attack \
         took {ps:.1} s (step {step}, one random start), the bounds on the {bounded} points they \
         left open {vs:.1} s. Per-epoch figures: \
         `metrics.jsonl`; configuration: `config.toml`.\n\n\
         ![per-epoch curves: accuracy, losses, eps and alpha](curves.svg)\n",
        model = config.model,
        method = config.method.name(),
        eps = eval.eps,
        domain = eval.domain,
        steps = eval.pgd_steps,
        n = eval.n,
        clean = 100.0 * eval.clean_acc,
        vra = 100.0 * eval.vra,
        pgd = percent(eval.pgd_acc),
        epochs = config.epochs,
        batch = config.batch_size,
        policy = config.policy().name(),
        k = if config.method == Method::Mixtrain {
            format!(", k = {}", config.k)
        } else {
            String::new()
        },
        vs = eval.verify_seconds,
        ps = eval.pgd_seconds,
        bounded = eval.bounded,
        step = eval.pgd_step_size,
    );
    let md_path = out.join("report.md");
    write_atomic(&md_path, report.as_bytes()).map_err(TrainError::io(&md_path))
}
