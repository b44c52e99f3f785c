//! Natural training end to end on real MNIST (small subsets, so that the suite stays fast):
//! it learns, a resumed run equals an uninterrupted one, a diverging loss stops the run
//! with an error that names where, and a run trained at a larger radius than it verifies
//! ramps to the one and is evaluated at the other.

mod common;

use std::path::Path;

use mixtrain::bounds::DomainKind;
use mixtrain::nn::{Backend, Network, zoo};
use mixtrain::train::{Method, RunOptions, TrainConfig, TrainError};

/// Natural training of the `mnist-mixtrain` preset on a subset, with a cheap final evaluation.
fn config(epochs: usize) -> TrainConfig {
    let mut c = TrainConfig::preset("mnist-mixtrain").unwrap();
    c.method = Method::Natural;
    c.dmt.policy = None;
    c.lr_schedule = mixtrain::loss::LrSchedule::Constant;
    c.epochs = epochs;
    c.train_limit = Some(2200);
    c.val_size = 200;
    c.test_limit = Some(500);
    c.final_eval.domain = DomainKind::Interval;
    c.final_eval.pgd_steps = Some(5);
    c
}

fn options(out: &Path) -> RunOptions {
    RunOptions {
        out: out.into(),
        resume: false,
        data: common::mnist_dir().clone(),
        mirror: None,
        quiet: true,
        validation_only: false,
    }
}

fn weights(path: &Path) -> Vec<f32> {
    let device = Backend::Flex.device(None).unwrap();
    let net = Network::load_safetensors(&zoo::architecture("mnist_small").unwrap(), path, &device)
        .unwrap();
    net.layers
        .iter()
        .filter_map(|l| match l {
            mixtrain::nn::Layer::Linear(l) => {
                Some(l.weight.val().into_data().try_to_vec::<f32>().unwrap())
            }
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn natural_training_learns_mnist() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(1);
    c.train_limit = Some(6200);
    let summary = mixtrain::train::run(&c, &options(dir.path())).unwrap();
    assert_eq!(
        (summary.train_n, summary.val_n, summary.test_n),
        (6000, 200, 500)
    );
    // 120 Adam steps on 6000 images; chance is 10%.
    assert!(
        summary.test_acc.unwrap() > 0.85,
        "test accuracy {:?}",
        summary.test_acc
    );
    for file in [
        "config.toml",
        "metrics.jsonl",
        "model.safetensors",
        "summary.json",
        "final.json",
        "report.md",
        "checkpoints/latest",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} missing");
    }
    let metrics = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert_eq!(line["epoch"], 1);
    assert!(
        line["loss"].as_f64().unwrap() < 2.3,
        "below chance-level loss ln(10)"
    );
    let saved = TrainConfig::from_file(&dir.path().join("config.toml")).unwrap();
    assert_eq!(saved, c, "the effective config is saved with the run");
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let straight = tempfile::tempdir().unwrap();
    mixtrain::train::run(&config(2), &options(straight.path())).unwrap();

    let split = tempfile::tempdir().unwrap();
    mixtrain::train::run(&config(1), &options(split.path())).unwrap();
    let resumed = RunOptions {
        resume: true,
        ..options(split.path())
    };
    let summary = mixtrain::train::run(&config(2), &resumed).unwrap();
    assert_eq!(
        summary.epoch_seconds.len(),
        1,
        "only the second epoch is trained again"
    );

    let (a, b) = (
        weights(&straight.path().join("model.safetensors")),
        weights(&split.path().join("model.safetensors")),
    );
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "weights differ by up to {worst}");
    let lines = std::fs::read_to_string(split.path().join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2, "one metrics line per epoch");

    let fresh_into_used = mixtrain::train::run(&config(2), &options(split.path())).unwrap_err();
    assert!(
        fresh_into_used.to_string().contains("--resume"),
        "{fresh_into_used}"
    );
    let mut changed = config(3);
    changed.batch_size = 10;
    let e = mixtrain::train::run(&changed, &resumed)
        .unwrap_err()
        .to_string();
    assert!(e.contains("only `epochs` may change"), "{e}");
}

#[test]
fn diverging_loss_stops_with_epoch_batch_and_term() {
    for method in [Method::Natural, Method::Mixtrain] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(1);
        c.method = method;
        c.eps_schedule.ramp_epochs = 0.0;
        c.optimizer.lr = 1e30;
        let e = mixtrain::train::run(&c, &options(dir.path())).unwrap_err();
        match &e {
            TrainError::NonFinite {
                epoch, batch, term, ..
            } => {
                assert_eq!(*epoch, 1);
                assert!(*batch >= 2, "the first batch is computed before any step");
                assert!(term.contains("cross-entropy"), "{term}");
            }
            other => panic!("expected a non-finite loss error, got {other}"),
        }
        assert!(
            !dir.path().join("model.safetensors").exists(),
            "no weights from a diverged run"
        );
    }
}

#[test]
fn sgd_with_weight_decay_follows_its_lr_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(2);
    c.set("optimizer.kind", "sgd").unwrap();
    c.set("optimizer.lr", "0.05").unwrap();
    c.set("optimizer.weight_decay", "0.0005").unwrap();
    c.set(
        "lr_schedule",
        "{ kind = \"step\", every_epochs = 1, gamma = 0.1 }",
    )
    .unwrap();
    let summary = mixtrain::train::run(&c, &options(dir.path())).unwrap();
    let metrics = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let lrs: Vec<f64> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(lrs.len(), 2);
    assert!(
        (lrs[0] - 0.05).abs() < 1e-12 && (lrs[1] - 0.005).abs() < 1e-12,
        "{lrs:?}"
    );
    assert!(
        summary.test_acc.unwrap() > 0.5,
        "SGD with momentum learns: {:?}",
        summary.test_acc
    );
}

#[test]
fn a_run_whose_bounds_would_not_fit_is_refused_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut c = config(1);
    c.method = Method::Mixtrain;
    c.memory_budget_mib = Some(1);
    let e = mixtrain::train::run(&c, &options(&out)).unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, TrainError::Memory { .. }), "{message}");
    assert!(
        message.contains("k = 5")
            && message.contains("symbolic")
            && message.contains("a smaller k")
            && message.contains("memory_budget_mib"),
        "{message}"
    );
    assert!(!out.exists(), "nothing is written for a refused run");
}

/// `cifar_resnet` trains (a warm-up epoch, then MixTrain with CROWN-IBP's bound on k = 1
/// point, with CIFAR augmentation) and verifies on the CIFAR-10 sample, end to end.
#[test]
fn cifar_resnet_trains_and_verifies_on_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = TrainConfig::preset("cifar-resnet").unwrap();
    c.dataset = "cifar10-sample".into();
    c.domain = Some(DomainKind::Crown);
    c.epochs = 2;
    c.train_limit = Some(110);
    c.val_size = 10;
    c.test_limit = Some(4);
    c.eps_schedule.ramp_epochs = 1.0;
    c.final_eval.domain = DomainKind::Crown;
    c.final_eval.pgd_steps = Some(2);
    let opts = RunOptions {
        mirror: Some(common::sample_mirror()),
        ..options(dir.path())
    };
    let summary = mixtrain::train::run(&c, &opts).unwrap();
    assert_eq!((summary.train_n, summary.test_n), (100, 4));
    let back = Network::load_safetensors(
        &zoo::architecture("cifar_resnet").unwrap(),
        &dir.path().join("model.safetensors"),
        &Backend::Flex.device(None).unwrap(),
    );
    assert!(back.is_ok(), "the trained ResNet's weights load");
    let f = summary.final_eval.as_ref().unwrap();
    assert_eq!(f.n, 4);
    assert!(
        (0.0..=f.clean_acc).contains(&f.vra),
        "{} {}",
        f.vra,
        f.clean_acc
    );
}

#[test]
fn a_run_trains_at_train_eps_and_verifies_at_eps() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(2);
    c.method = Method::Ibp;
    c.train_limit = Some(700);
    c.val_size = 100;
    c.test_limit = Some(100);
    c.eps_schedule.ramp_epochs = 1.0;
    c.train_eps = Some(0.15);
    let summary = mixtrain::train::run(&c, &options(dir.path())).unwrap();
    let metrics = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let eps: Vec<f64> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["eps"]
                .as_f64()
                .unwrap()
        })
        .collect();
    // the ramp ends at train_eps (after the first epoch), the evaluation is at eps
    assert_eq!(eps.len(), 2);
    assert!((eps[1] - 0.15).abs() < 1e-9, "{eps:?}");
    let final_eval = summary.final_eval.unwrap();
    assert_eq!(final_eval.eps, 0.1);
    let saved = TrainConfig::from_file(&dir.path().join("config.toml")).unwrap();
    assert_eq!(saved.train_eps, Some(0.15));
}
