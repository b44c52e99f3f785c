//! Every training method end to end on a few batches of real data: the run completes, logs
//! what its method and policy decided each epoch, and writes the final evaluation. Also the
//! `cifar` preset's fallback to the CIFAR-10 sample.

mod common;

use std::path::Path;

use mixtrain::bounds::DomainKind;
use mixtrain::data::DataDir;
use mixtrain::train::{Method, RunOptions, TrainConfig};
use serde_json::Value;

fn tiny(method: Method) -> TrainConfig {
    let mut c = TrainConfig::preset("mnist-mixtrain").unwrap();
    c.method = method;
    c.dmt.policy = None;
    c.epochs = 2;
    c.batch_size = 25;
    c.train_limit = Some(250);
    c.val_size = 50;
    c.test_limit = Some(50);
    c.k = 3;
    c.eps_schedule.ramp_epochs = 1.0;
    c.pgd.steps = 3;
    c.final_eval.domain = DomainKind::Interval;
    c.final_eval.pgd_steps = Some(3);
    c
}

fn options(out: &Path, data: &DataDir) -> RunOptions {
    RunOptions {
        out: out.into(),
        resume: false,
        data: data.clone(),
        mirror: None,
        quiet: true,
        validation_only: false,
    }
}

fn metrics(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_method_trains_and_reports() {
    for method in Method::ALL {
        let dir = tempfile::tempdir().unwrap();
        let summary =
            mixtrain::train::run(&tiny(method), &options(dir.path(), common::mnist_dir()))
                .unwrap_or_else(|e| panic!("{}: {e}", method.name()));
        assert_eq!(summary.method, method.name());
        assert_eq!((summary.train_n, summary.val_n), (200, 50));
        let f = summary.final_eval.as_ref().unwrap();
        for v in [f.clean_acc, f.vra, f.pgd_acc.unwrap()] {
            assert!((0.0..=1.0).contains(&v), "{}: {f:?}", method.name());
        }
        assert!(
            f.vra <= f.clean_acc && f.pgd_acc.unwrap() <= f.clean_acc,
            "verified and attacked points are a subset of the correct ones: {f:?}"
        );
        let lines = metrics(dir.path());
        assert_eq!(lines.len(), 2);
        // the ramp: 8 steps per epoch, eps reaches 0.1 at the end of the first epoch
        assert!((lines[0]["eps"].as_f64().unwrap() - 0.1).abs() < 1e-9);
        for line in &lines {
            assert!(line["val_acc"].is_f64());
            // only certified methods bound the validation split: their policy reads the VRA
            assert_eq!(line["val_vra"].is_f64(), method.certified(), "{line}");
            assert!(line["seconds"].as_f64().unwrap() > 0.0);
        }
        let robust = lines[0].get("robust_loss").and_then(Value::as_f64);
        let natural = lines[0].get("natural_loss").and_then(Value::as_f64);
        match method {
            Method::Natural => assert!(robust.is_none() && natural.is_some()),
            Method::Pgd => assert!(robust.is_some() && natural.is_none()),
            _ => {
                assert!(robust.is_some() && natural.is_some());
                assert!(lines[0]["alpha"].is_f64(), "{:?}", lines[0]);
            }
        }
        let policy = lines[0]["policy"].as_str().unwrap();
        let expected = if method == Method::Mixtrain {
            "adaptive"
        } else {
            "fixed"
        };
        assert_eq!(policy, expected);
        let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(report.contains(method.name()) && report.contains("verified (interval)"));
    }
}

#[test]
fn schedule_policy_logs_its_weight_and_probability() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = tiny(Method::Mixtrain);
    c.set("dmt.policy", "schedule").unwrap();
    c.set("dmt.every_epochs", "1").unwrap();
    mixtrain::train::run(&c, &options(dir.path(), common::mnist_dir())).unwrap();
    let lines = metrics(dir.path());
    let weights: Vec<f64> = lines
        .iter()
        .map(|l| l["robust_weight"].as_f64().unwrap())
        .collect();
    assert_eq!(weights, vec![0.1, 0.25]);
    assert_eq!(lines[0]["robust_probability"], 0.8);
    assert!(lines[0].get("alpha").is_none());
}

#[test]
fn adaptive_alpha_changes_are_logged_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = tiny(Method::Ibp);
    c.set("dmt.policy", "adaptive").unwrap();
    c.epochs = 3;
    mixtrain::train::run(&c, &options(dir.path(), common::mnist_dir())).unwrap();
    let lines = metrics(dir.path());
    assert!(
        lines[0].get("alpha_change").is_none(),
        "nothing to compare with after epoch 1"
    );
    // every later epoch either changes alpha with a reason or improves both figures
    for pair in lines.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let improved = after["val_vra"].as_f64() > before["val_vra"].as_f64();
        match after.get("alpha_change") {
            Some(change) => assert!(change["reason"].as_str().unwrap().len() > 10),
            None => assert!(improved, "{after}"),
        }
    }
}

#[test]
fn cifar_preset_falls_back_to_the_sample() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = TrainConfig::preset("cifar").unwrap();
    c.epochs = 1;
    c.train_limit = Some(150);
    c.val_size = 50;
    c.test_limit = Some(20);
    c.k = 2;
    c.eps_schedule.warmup_epochs = 0;
    c.final_eval.domain = DomainKind::Interval;
    c.final_eval.pgd_steps = Some(2);
    let opts = RunOptions {
        mirror: Some(common::sample_mirror()),
        ..options(dir.path(), &DataDir::new(data.path()))
    };
    let summary = mixtrain::train::run(&c, &opts).unwrap();
    assert_eq!(summary.dataset, "cifar10-sample");
    assert_eq!((summary.train_n, summary.test_n), (100, 20));
}
