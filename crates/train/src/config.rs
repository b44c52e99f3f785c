use std::path::Path;

use mixtrain_bounds::{DomainKind, InputDomain, Verifier};
use mixtrain_loss::{DmtConfig, EpsSchedule, LrSchedule, Policy};
use mixtrain_nn::{Backend, Init};
use serde::{Deserialize, Serialize};

use crate::{Method, TrainError, protocol};

/// The presets shipped with the crate (`presets/*.toml`).
const PRESETS: &[(&str, &str)] = &[
    ("mnist", include_str!("../presets/mnist.toml")),
    ("mnist-paper", include_str!("../presets/mnist-paper.toml")),
    (
        "mnist-mixtrain",
        include_str!("../presets/mnist-mixtrain.toml"),
    ),
    ("mnist-0.3", include_str!("../presets/mnist-0.3.toml")),
    (
        "mnist-0.3-mixtrain",
        include_str!("../presets/mnist-0.3-mixtrain.toml"),
    ),
    ("mnist-large", include_str!("../presets/mnist-large.toml")),
    ("mnist-sabr", include_str!("../presets/mnist-sabr.toml")),
    (
        "mnist-mtl-ibp",
        include_str!("../presets/mnist-mtl-ibp.toml"),
    ),
    ("mnist-cc-ibp", include_str!("../presets/mnist-cc-ibp.toml")),
    (
        "mnist-exp-ibp",
        include_str!("../presets/mnist-exp-ibp.toml"),
    ),
    ("cifar", include_str!("../presets/cifar.toml")),
    ("cifar-large", include_str!("../presets/cifar-large.toml")),
    ("cifar-resnet", include_str!("../presets/cifar-resnet.toml")),
    ("imagenet200", include_str!("../presets/imagenet200.toml")),
];

/// The inner attack of `pgd` training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PgdConfig {
    /// Attack steps per training batch; at least 1 for `pgd` training, default 10.
    pub steps: usize,
    /// Step size in pixel units. Default: `2.5 eps / steps` with the step's (ramped) eps
    /// (Madry et al.).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_size: Option<f64>,
    /// Start from a uniform random point of the eps-ball instead of the clean image; default
    /// true.
    pub random_start: bool,
}

impl Default for PgdConfig {
    fn default() -> Self {
        Self {
            steps: 10,
            step_size: None,
            random_start: true,
        }
    }
}

/// SABR's small boxes (`sabr`, and `mixtrain` with `robust_set = "small-box"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SabrConfig {
    /// The small box's radius as a fraction of eps; in `(0, 1]`, default 0.4 (Mueller et al.'s
    /// choice for MNIST at eps 0.1).
    pub lambda: f64,
}

impl Default for SabrConfig {
    fn default() -> Self {
        Self { lambda: 0.4 }
    }
}

/// Shi et al.'s warm-up regularisers on the interval bounds (bound tightness and ReLU
/// balance), for any method that bounds with IBP (`ibp`, `crown-ibp`, `sabr`, `mtl-ibp`,
/// `cc-ibp`, `exp-ibp`, `mixtrain` with `domain = "interval"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarmupRegConfig {
    /// The regularisers' weight at the start of the eps ramp, falling linearly to 0 at its
    /// end; `>= 0`, default 0 (off). Shi et al. use 0.5 (with `init = "ibp"`).
    pub lambda: f64,
    /// The tolerance `tau` below which a ratio is penalised; in `(0, 1]`, default 0.5.
    pub tol: f64,
}

impl Default for WarmupRegConfig {
    fn default() -> Self {
        Self {
            lambda: 0.0,
            tol: 0.5,
        }
    }
}

/// The set `mixtrain` bounds on each of its `k` points. Written `ball` or `small-box`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RobustSet {
    /// The eps-ball (clipped to the input domain): MixTrain's.
    #[default]
    Ball,
    /// SABR's small box around a PGD point (see [`SabrConfig`]).
    SmallBox,
}

/// The evaluation on the test set at the end of a run. Every field left out takes the
/// evaluation protocol's default ([`protocol`](crate::protocol)), the same `mixtrain eval` and
/// `mixtrain attack` use, so that the same weights get the same figures whichever runs them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinalEvalConfig {
    /// The domain of the verified robust accuracy (default `symbolic`; the presets say
    /// `best`).
    pub domain: DomainKind,
    /// PGD steps of the attack (0: no attack); one random start. Default: the protocol's for
    /// the dataset (40 on MNIST, 20 elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgd_steps: Option<usize>,
    /// The attack's step size in pixel units. Default: the protocol's (0.01 on MNIST, eps / 4
    /// elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgd_step_size: Option<f64>,
    /// Points per bound computation. Default: the protocol's for the domain (5 for the
    /// symbolic domains, 50 for interval and crown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound_batch_size: Option<usize>,
    /// Whether the verified accuracy accounts for float32 rounding (see
    /// `mixtrain_bounds::InputSet::into_float_sound`); default on.
    pub float_sound: bool,
}

impl Default for FinalEvalConfig {
    fn default() -> Self {
        Self {
            domain: DomainKind::default(),
            pgd_steps: None,
            pgd_step_size: None,
            bound_batch_size: None,
            float_sound: true,
        }
    }
}

/// Which optimiser updates the weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam with burn's default betas and epsilon; the default.
    #[default]
    Adam,
    /// Stochastic gradient descent, with `momentum`.
    Sgd,
}

/// The optimiser. Weight decay is an L2 penalty added to the gradient (PyTorch's
/// `weight_decay`), for Adam and SGD alike.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    /// `adam` (default) or `sgd`.
    pub kind: OptimizerKind,
    /// The base learning rate, which `lr_schedule` scales; positive, default 1e-3.
    pub lr: f64,
    /// The L2 penalty coefficient; `>= 0`, default 0 (none).
    pub weight_decay: f64,
    /// SGD only (no dampening, as PyTorch's default); in `[0, 1)`, 0 turns momentum off,
    /// default 0.9.
    pub momentum: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            weight_decay: 0.0,
            momentum: 0.9,
        }
    }
}

/// Everything a training run needs. Plain values come before the tables so that the struct
/// serialises to valid TOML.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// A model of the zoo (`mnist_small`, ...).
    pub model: String,
    /// A dataset manifest name (`mnist`, `cifar10`, `cifar10-sample`).
    pub dataset: String,
    /// How the network is trained; default `natural`.
    pub method: Method,
    /// The L_inf radius verified (in validation and the final evaluation), pixel units; also
    /// the one trained for unless `train_eps` says otherwise.
    pub eps: f64,
    /// The L_inf radius the training ramps to, pixel units (default: `eps`). Training at a
    /// larger radius than the one verified is how IBP-family methods reach their best
    /// verified accuracy (CROWN-IBP trains MNIST's 0.1 at 0.2): bounds loose at `train_eps`
    /// are tighter at `eps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_eps: Option<f64>,
    /// `mixtrain`: points per batch that get the sound bound (SRA's `k`); at least 1, default 5.
    pub k: usize,
    /// `mixtrain`: draw the `k` points with replacement (the authors' choice); default true.
    pub replacement: bool,
    /// `mixtrain`: the robust loss's domain (default `symbolic`, MixTrain's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<DomainKind>,
    /// `mixtrain`: the set bounded on each of the `k` points, `ball` (default) or `small-box`.
    pub robust_set: RobustSet,
    /// How the weights are drawn at the start: `default` (PyTorch's) or `ibp` (Shi et al.'s).
    pub init: Init,
    /// The box the training and validation balls are clipped to: `unit` (`[0, 1]`, default) or
    /// `image` (each image's own pixel range, the MixTrain authors' evaluation box).
    pub input_domain: InputDomain,
    /// Training images held out (seeded) to validate each epoch: clean accuracy and VRA, which
    /// drive the `adaptive` policy.
    pub val_size: usize,
    /// The domain of the validation VRA (default: the method's training domain). Only
    /// certified methods validate VRA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_domain: Option<DomainKind>,
    /// Epochs of the whole run, warm-up included; at least 1, default 1. A resumed run may
    /// raise it (the only field a resume may change).
    pub epochs: usize,
    /// Training images per optimiser step; at least 1, default 50.
    pub batch_size: usize,
    /// Seeds the initial weights and the order of batches (epoch `e` shuffles with `seed + e`).
    pub seed: u64,
    /// The tensor backend; default `flex` (CPU).
    pub backend: Backend,
    /// GPU index for `wgpu` (default: its preferred adapter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_index: Option<usize>,
    /// Train on the first N training images only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
    /// Evaluate on the first N test images only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_limit: Option<usize>,
    /// Images per batch of the clean and PGD evaluations (bound computations use
    /// `final_eval.bound_batch_size`); at least 1, default 500.
    pub eval_batch_size: usize,
    /// Training augmentation: random crop from the image zero-padded by 4, horizontal flip
    /// (CIFAR's; the MixTrain authors' CIFAR runs use it).
    #[serde(default)]
    pub augment: bool,
    /// The memory the run may use, in MiB (default: 80% of the machine's memory). A run whose
    /// estimated bounding memory exceeds it is refused before it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_budget_mib: Option<u64>,
    /// Checkpoints kept (the most recent ones).
    pub keep_checkpoints: usize,
    /// The optimiser and its base learning rate.
    pub optimizer: OptimizerConfig,
    /// How the learning rate changes over the run (per step); default constant.
    pub lr_schedule: LrSchedule,
    /// The natural warm-up and the eps ramp.
    pub eps_schedule: EpsSchedule,
    /// Dynamic mixed training: the weights of the natural and robust losses (`ibp`,
    /// `crown-ibp`, `mixtrain`; unused by `natural` and `pgd`).
    pub dmt: DmtConfig,
    /// The attack of the methods that train on PGD points (`pgd`, `sabr`, `mtl-ibp`, `cc-ibp`,
    /// `exp-ibp`, `mixtrain` with small boxes).
    pub pgd: PgdConfig,
    /// SABR's small boxes.
    pub sabr: SabrConfig,
    /// Shi et al.'s warm-up regularisers.
    pub warmup_reg: WarmupRegConfig,
    /// The evaluation on the test set at the end of the run.
    pub final_eval: FinalEvalConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: "mnist_small".into(),
            dataset: "mnist".into(),
            method: Method::Natural,
            eps: 0.1,
            train_eps: None,
            k: 5,
            replacement: true,
            domain: None,
            robust_set: RobustSet::Ball,
            init: Init::Default,
            input_domain: InputDomain::Unit,
            val_size: 1000,
            val_domain: None,
            epochs: 1,
            batch_size: 50,
            seed: 0,
            backend: Backend::default(),
            device_index: None,
            train_limit: None,
            test_limit: None,
            eval_batch_size: 500,
            augment: false,
            memory_budget_mib: None,
            keep_checkpoints: 2,
            optimizer: OptimizerConfig::default(),
            lr_schedule: LrSchedule::Constant,
            eps_schedule: EpsSchedule::default(),
            dmt: DmtConfig::default(),
            pgd: PgdConfig::default(),
            sabr: SabrConfig::default(),
            warmup_reg: WarmupRegConfig::default(),
            final_eval: FinalEvalConfig::default(),
        }
    }
}

impl TrainConfig {
    /// The names of the shipped presets (`mnist`, `cifar`, ...).
    pub fn preset_names() -> impl Iterator<Item = &'static str> {
        PRESETS.iter().map(|(n, _)| *n)
    }

    /// A preset shipped with the crate.
    pub fn preset(name: &str) -> Result<Self, TrainError> {
        let (_, text) =
            PRESETS
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| TrainError::UnknownPreset {
                    name: name.into(),
                    known: Self::preset_names().collect::<Vec<_>>().join(", "),
                })?;
        Self::parse(&format!("preset {name}"), text)
    }

    /// A config from a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(TrainError::io(path))?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses and validates TOML; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Self, TrainError> {
        let config: Self = toml::from_str(text).map_err(|e| TrainError::Config {
            origin: origin.into(),
            message: e.message().to_string() + &span_hint(text, e.span()),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// The DMT policy in effect.
    pub fn policy(&self) -> Policy {
        self.dmt
            .policy
            .unwrap_or_else(|| self.method.default_policy())
    }

    /// The robust loss's domain.
    pub fn train_domain(&self) -> DomainKind {
        self.domain.unwrap_or_else(|| self.method.default_domain())
    }

    /// Whether a training step runs PGD.
    pub fn attacks(&self) -> bool {
        self.method.attacks()
            || (self.method == Method::Mixtrain && self.robust_set == RobustSet::SmallBox)
    }

    /// The validation VRA's domain.
    pub fn val_domain(&self) -> DomainKind {
        self.val_domain.unwrap_or_else(|| self.train_domain())
    }

    /// Points per bound computation in `domain`, for validation and the final evaluation:
    /// `final_eval.bound_batch_size`, else the protocol's for the domain.
    pub fn bound_batch_size(&self, domain: DomainKind) -> usize {
        self.final_eval
            .bound_batch_size
            .unwrap_or_else(|| protocol::bound_batch_size(domain))
    }

    /// The verifier for validation in `domain`, with [`TrainConfig::bound_batch_size`] points
    /// at a time; not float sound (training needs speed, and a validation figure off by a
    /// rounding's worth decides nothing).
    pub fn verifier(&self, domain: DomainKind) -> Verifier {
        Verifier {
            batch_size: self.bound_batch_size(domain),
            float_sound: false,
            ..Verifier::new(domain)
        }
    }

    /// The verifier of the final evaluation: [`TrainConfig::verifier`] in `final_eval.domain`,
    /// float sound as `final_eval.float_sound` says.
    pub fn final_verifier(&self) -> Verifier {
        let domain = self.final_eval.domain;
        Verifier {
            float_sound: self.final_eval.float_sound,
            ..self.verifier(domain)
        }
    }

    /// The radius the training ramps to: `train_eps`, else `eps`.
    pub fn train_eps(&self) -> f64 {
        self.train_eps.unwrap_or(self.eps)
    }

    /// The final evaluation's PGD steps.
    pub fn pgd_steps(&self) -> usize {
        self.final_eval
            .pgd_steps
            .unwrap_or_else(|| protocol::pgd_steps(&self.dataset))
    }

    /// The final evaluation's PGD step size, pixel units.
    pub fn pgd_step_size(&self) -> f64 {
        self.final_eval
            .pgd_step_size
            .unwrap_or_else(|| protocol::pgd_step_size(&self.dataset, self.eps))
    }

    /// The config as TOML, as saved to `config.toml` in the run directory.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("TrainConfig serialises to TOML")
    }

    /// Overrides one field by its dotted path (`epochs`, `optimizer.lr`, `lr_schedule.kind`),
    /// with the value written as in TOML (`3`, `0.01`, `"sgd"` or plain `sgd`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), TrainError> {
        self.set_all([(key, value)])
    }

    /// Overrides several fields as [`TrainConfig::set`] does, and checks the config once, after
    /// the last: fields that constrain each other (`method` and `warmup_reg.lambda`, say) may
    /// then come in any order. Nothing changes unless all apply.
    pub fn set_all<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        overrides: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), TrainError> {
        let mut next = self.clone();
        let mut applied = Vec::new();
        for (key, value) in overrides {
            let (key, value) = (key.as_ref(), value.as_ref());
            next.apply(key, value)?;
            applied.push(format!("{key}={value}"));
        }
        next.validate(&format!("override {}", applied.join(" ")))?;
        *self = next;
        Ok(())
    }

    /// One override, its type checked by serde; [`TrainConfig::validate`] is the caller's.
    fn apply(&mut self, key: &str, value: &str) -> Result<(), TrainError> {
        let origin = format!("override {key}={value}");
        let err = |message: String| TrainError::Config {
            origin: origin.clone(),
            message,
        };
        let mut doc = toml::Table::try_from(&*self).map_err(|e| err(e.to_string()))?;
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts
            .pop()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| err("empty key".into()))?;
        let mut table = &mut doc;
        for part in parts {
            table = table
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| err(format!("{part} is not a table")))?;
        }
        table.insert(last.to_string(), override_value(value));
        *self = toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| err(e.message().to_string()))?;
        Ok(())
    }

    /// Checks ranges and names that serde cannot.
    pub fn validate(&self, origin: &str) -> Result<(), TrainError> {
        let err = |message: String| {
            Err(TrainError::Config {
                origin: origin.into(),
                message,
            })
        };
        if self.epochs == 0 {
            return err("epochs must be at least 1".into());
        }
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return err("batch_size and eval_batch_size must be at least 1".into());
        }
        if !(self.optimizer.lr > 0.0 && self.optimizer.lr.is_finite()) {
            return err(format!(
                "optimizer.lr {} must be positive and finite",
                self.optimizer.lr
            ));
        }
        if !(self.optimizer.weight_decay >= 0.0 && self.optimizer.weight_decay.is_finite()) {
            return err(format!(
                "optimizer.weight_decay {} must be >= 0",
                self.optimizer.weight_decay
            ));
        }
        if !(0.0..1.0).contains(&self.optimizer.momentum) {
            return err(format!(
                "optimizer.momentum {} must be in [0, 1)",
                self.optimizer.momentum
            ));
        }
        if self.keep_checkpoints == 0 {
            return err("keep_checkpoints must be at least 1 (resuming needs one)".into());
        }
        if let Some(problem) = self.lr_schedule.problem() {
            return err(format!("lr_schedule: {problem}"));
        }
        if let Some(problem) = self.eps_schedule.problem() {
            return err(format!("eps_schedule: {problem}"));
        }
        if let Some(problem) = self.dmt.problem() {
            return err(format!("dmt: {problem}"));
        }
        if !(self.eps >= 0.0 && self.eps.is_finite()) {
            return err(format!("eps {} must be finite and >= 0", self.eps));
        }
        if let Some(eps) = self.train_eps
            && !(eps >= 0.0 && eps.is_finite())
        {
            return err(format!("train_eps {eps} must be finite and >= 0"));
        }
        if self.k == 0 {
            return err("k must be at least 1".into());
        }
        if self.domain.is_some() && self.method != Method::Mixtrain {
            return err(format!(
                "domain is the mixtrain method's choice; {} trains with {}",
                self.method.name(),
                self.method.default_domain().name()
            ));
        }
        if self.policy() == Policy::Adaptive && self.val_size == 0 {
            return err("the adaptive DMT policy needs a validation split: val_size >= 1".into());
        }
        if self.final_eval.bound_batch_size == Some(0) {
            return err("final_eval.bound_batch_size must be at least 1".into());
        }
        if self.robust_set != RobustSet::Ball && self.method != Method::Mixtrain {
            return err(format!(
                "robust_set is the mixtrain method's choice; {} sets its own",
                self.method.name()
            ));
        }
        if self.attacks() && self.pgd.steps == 0 {
            return err(format!(
                "pgd.steps must be at least 1: {} trains on PGD points",
                self.method.name()
            ));
        }
        if !(self.sabr.lambda > 0.0 && self.sabr.lambda <= 1.0) {
            return err(format!(
                "sabr.lambda {} must be in (0, 1]",
                self.sabr.lambda
            ));
        }
        let reg = &self.warmup_reg;
        if !(reg.lambda >= 0.0 && reg.lambda.is_finite()) {
            return err(format!("warmup_reg.lambda {} must be >= 0", reg.lambda));
        }
        if !(reg.tol > 0.0 && reg.tol <= 1.0) {
            return err(format!("warmup_reg.tol {} must be in (0, 1]", reg.tol));
        }
        let interval =
            self.train_domain() == DomainKind::Interval || self.method == Method::CrownIbp;
        if reg.lambda > 0.0 && !(self.method.certified() && interval) {
            return err(format!(
                "warmup_reg regularises interval bounds; {} trains with {}",
                self.method.name(),
                self.train_domain().name()
            ));
        }
        if let Err(e) = mixtrain_nn::zoo::architecture(&self.model) {
            return err(format!("model: {e}"));
        }
        if let Err(e) = mixtrain_data::Manifest::builtin(&self.dataset) {
            return err(format!("dataset: {e}"));
        }
        Ok(())
    }
}

/// ` (line L)` for a parse error with a known position.
fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| {
        format!(
            " (line {})",
            text[..s.start.min(text.len())].lines().count().max(1)
        )
    })
    .unwrap_or_default()
}

/// An override's value as written: TOML (`3`, `0.01`, `"sgd"`, `[5]`), or else a bare word
/// taken as a string (`sgd`).
pub(crate) fn override_value(value: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_round_trip() {
        for name in TrainConfig::preset_names() {
            let c = TrainConfig::preset(name).unwrap();
            assert_eq!(TrainConfig::parse("again", &c.to_toml()).unwrap(), c);
        }
        assert!(
            TrainConfig::preset("nope")
                .unwrap_err()
                .to_string()
                .contains("mnist")
        );
    }

    #[test]
    fn overrides_reach_every_field() {
        let mut c = TrainConfig::default();
        c.set("epochs", "3").unwrap();
        c.set("optimizer.lr", "0.01").unwrap();
        c.set("optimizer.kind", "sgd").unwrap();
        c.set("lr_schedule.kind", "cosine").unwrap();
        c.set("train_limit", "100").unwrap();
        c.set("backend", "ndarray").unwrap();
        assert_eq!(c.epochs, 3);
        assert_eq!(c.optimizer.lr, 0.01);
        assert_eq!(c.optimizer.kind, OptimizerKind::Sgd);
        assert_eq!(c.lr_schedule, LrSchedule::Cosine { min_lr: 0.0 });
        assert_eq!(c.train_limit, Some(100));
        assert_eq!(c.backend, Backend::Ndarray);
    }

    #[test]
    fn overrides_that_constrain_each_other_apply_in_any_order() {
        let mnist = TrainConfig::preset("mnist").unwrap();
        // one at a time, natural training meets the preset's warm-up regularisers first
        let e = mnist.clone().set("method", "natural").unwrap_err();
        assert!(e.to_string().contains("warmup_reg"), "{e}");
        for overrides in [
            [("method", "natural"), ("warmup_reg.lambda", "0")],
            [("warmup_reg.lambda", "0"), ("method", "natural")],
        ] {
            let mut c = mnist.clone();
            c.set_all(overrides).unwrap();
            assert_eq!((c.method, c.warmup_reg.lambda), (Method::Natural, 0.0));
        }
        let mut c = mnist.clone();
        let e = c
            .set_all([("method", "natural"), ("epochs", "0")])
            .unwrap_err();
        assert!(e.to_string().contains("epochs"), "{e}");
        assert_eq!(c, mnist, "a failed set changes nothing");
    }

    #[test]
    fn bad_configs_name_the_field() {
        let mut c = TrainConfig::default();
        let cases = [
            ("epochs", "0", "epochs"),
            ("epochs", "many", "epochs"),
            ("optimizer.lr", "-1", "optimizer.lr"),
            ("method", "fgsm", "fgsm"),
            ("dmt.alpha", "1.5", "alpha"),
            ("domain", "\"zonotope\"", "zonotope"),
            ("k", "0", "k must"),
            ("train_eps", "-0.1", "train_eps"),
            ("model", "resnet9000", "resnet9000"),
            ("dataset", "svhn", "svhn"),
            ("colour", "1", "colour"),
            ("optimizer.speed", "1", "speed"),
            ("lr_schedule.kind", "step", "every_epochs"),
            ("init", "xavier", "xavier"),
            ("sabr.lambda", "0", "sabr.lambda"),
            ("warmup_reg.tol", "0", "warmup_reg.tol"),
            // the default method is natural: no bounds to regularise, no boxes to choose
            ("warmup_reg.lambda", "0.5", "regularises interval bounds"),
            ("robust_set", "small-box", "robust_set is the mixtrain"),
        ];
        for (k, v, needle) in cases {
            let e = c.set(k, v).unwrap_err().to_string();
            assert!(e.contains(needle), "{k}={v}: {e}");
        }
        assert_eq!(
            c,
            TrainConfig::default(),
            "a failed override changes nothing"
        );
        let e = TrainConfig::parse("f.toml", "method = \"sabr\"\n[pgd]\nsteps = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sabr trains on PGD points"), "{e}");
        let e = TrainConfig::parse(
            "f.toml",
            "method = \"mixtrain\"\n[warmup_reg]\nlambda = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("mixtrain trains with symbolic"), "{e}");
        let e = TrainConfig::parse("f.toml", "epochs = 2\nbatch_size = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.toml") && e.contains("line 2"), "{e}");
    }
}
