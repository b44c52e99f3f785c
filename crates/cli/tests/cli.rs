//! The `mixtrain` binary end to end: train then eval on real MNIST, a run killed mid-way that
//! resumes, and bad input that gets a clear error rather than a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mixtrain_data::DataDir;

fn mirror() -> PathBuf {
    std::env::var_os("MIXTRAIN_MIRROR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets"))
}

fn data_dir() -> DataDir {
    DataDir::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-data"))
}

/// The mirror when it exists: the tests copy from it and download only what it lacks.
fn mirror_if_present() -> Option<PathBuf> {
    Some(mirror()).filter(|m| m.is_dir())
}

/// The MixTrain authors' network `role` (`mixtrain-eps0.3` or `baseline`), from the mirror or
/// downloaded into the test data directory.
fn reference(role: &str) -> PathBuf {
    mixtrain_data::reference_weights(role, &data_dir(), mirror_if_present().as_deref())
        .unwrap_or_else(|e| panic!("these tests read the MixTrain authors' weights: {e}"))
}

/// The binary with its data directory (under `target/`, MNIST obtained there first) and the
/// mirror set.
fn mixtrain() -> Command {
    static MNIST: OnceLock<()> = OnceLock::new();
    MNIST.get_or_init(|| {
        if let Err(e) = mixtrain_data::obtain("mnist", &data_dir(), mirror_if_present().as_deref())
        {
            panic!("these tests read real MNIST: {e}");
        }
    });
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mixtrain"));
    cmd.env("MIXTRAIN_DATA", data_dir().root())
        .env("MIXTRAIN_MIRROR", mirror())
        .stdin(Stdio::null());
    cmd
}

fn ok(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "failed: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

/// Fails, with a message containing `needle`, and without a panic.
fn fails_with(args: &[&str], needle: &str) {
    let out = mixtrain().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
}

/// Natural training of the `mnist-mixtrain` preset with a small validation split and a cheap
/// final evaluation: these tests are about the CLI, not about robustness.
const SMALL: &[&str] = &[
    "--preset",
    "mnist-mixtrain",
    "--method",
    "natural",
    "--val-size",
    "100",
    "--test-limit",
    "300",
    "--set",
    "final_eval.domain=interval",
    "--set",
    "final_eval.pgd_steps=2",
    "--quiet",
];

#[test]
fn train_then_eval_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let stdout = ok(mixtrain()
        .args(["train", "--epochs", "1", "--train-limit", "4100", "--out"])
        .arg(&out)
        .args(SMALL)
        .output()
        .unwrap());
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let weights = out.join("model.safetensors");
    let stdout = ok(mixtrain()
        .args([
            "eval",
            "--model",
            "mnist_small",
            "--dataset",
            "mnist",
            "--limit",
            "300",
            "--json",
            // the run's final evaluation (SMALL): interval bounds, PGD-2, the protocol's step
            "--eps",
            "0.1",
            "--domain",
            "interval",
            "--attack",
            "pgd",
            "--steps",
            "2",
            "--weights",
        ])
        .arg(&weights)
        .output()
        .unwrap());
    let eval: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(eval["n"], 300);
    assert!(
        eval["seconds"].is_f64(),
        "the evaluation reports its time: {eval}"
    );
    assert!(eval["clean_acc"].as_f64().unwrap() > 0.7);
    // the same weights get the same verifier and the same (seeded) attack from either command
    let run = &summary["final_eval"];
    for (ours, theirs) in [
        ("clean_acc", "clean_acc"),
        ("verified_acc", "vra"),
        ("pgd_acc", "pgd_acc"),
    ] {
        assert_eq!(
            eval[ours], run[theirs],
            "{ours}: eval {eval} vs the run's {run}"
        );
    }
}

#[test]
fn every_method_trains_a_few_batches_from_its_preset() {
    let runs: [(&str, &[&str]); 6] = [
        ("ibp", &["--preset", "mnist"]),
        ("sabr", &["--preset", "mnist-sabr"]),
        ("mtl-ibp", &["--preset", "mnist-mtl-ibp"]),
        ("cc-ibp", &["--preset", "mnist-cc-ibp"]),
        ("exp-ibp", &["--preset", "mnist-exp-ibp"]),
        (
            "mixtrain",
            &[
                "--preset",
                "mnist-mixtrain",
                "--set",
                "robust_set=small-box",
                "--set",
                "domain=interval",
                "--set",
                "init=ibp",
                "--set",
                "warmup_reg.lambda=0.5",
            ],
        ),
    ];
    for (method, preset) in runs {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let stdout = ok(mixtrain()
            .args(["train", "--epochs", "1", "--train-limit", "600", "--out"])
            .arg(&out)
            .args(preset)
            .args(["--val-size", "100", "--test-limit", "100", "--quiet"])
            .args(["--set", "final_eval.domain=interval"])
            .args(["--set", "final_eval.pgd_steps=2"])
            .args(["--set", "pgd.steps=2"])
            .output()
            .unwrap());
        let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(summary["method"], method);
        let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        let epoch: serde_json::Value = serde_json::from_str(metrics.trim()).unwrap();
        // the eps ramp has begun: the robust term and the warm-up regularisers were computed
        for field in ["loss", "robust_loss", "regularizer_loss", "val_vra"] {
            let v = epoch[field].as_f64();
            assert!(
                v.is_some_and(f64::is_finite),
                "{method}: {field} in {epoch}"
            );
        }
        assert!(
            epoch["regularizer_loss"].as_f64().unwrap() > 0.0,
            "{method}"
        );
    }
}

#[test]
fn sweep_chooses_on_validation_and_evaluates_the_chosen_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("sweep.toml");
    std::fs::write(
        &spec,
        r#"
preset = "mnist-mtl-ibp"
search = "random"
trials = 2
budget_minutes = 30
[set]
epochs = 1
train_limit = 600
val_size = 100
test_limit = 100
"pgd.steps" = 2
"final_eval.domain" = "interval"
"final_eval.pgd_steps" = 2
[grid]
"dmt.alpha" = [0.2, 0.5, 0.8]
"#,
    )
    .unwrap();
    let out = dir.path().join("sweep");
    let stdout = ok(mixtrain()
        .arg("sweep")
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .args(["--quiet", "--evaluate"])
        .output()
        .unwrap());
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["trials"].as_array().unwrap().len(), 2, "{summary}");
    let chosen = summary["chosen"].as_u64().unwrap();
    assert_eq!(summary["final_eval"]["n"], 100, "{summary}");
    let trial = out.join(format!("trials/{chosen:03}"));
    assert!(trial.join("final.json").is_file() && trial.join("curves.svg").is_file());
    for file in [
        "trials.csv",
        "trials.md",
        "pareto.svg",
        "time.svg",
        "report.md",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    fails_with(
        &[
            "sweep",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        "already holds a sweep",
    );
}

#[test]
fn a_killed_run_resumes_from_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let epochs = "30";
    let mut child = mixtrain()
        .args([
            "train",
            "--epochs",
            epochs,
            "--train-limit",
            "1100",
            "--out",
        ])
        .arg(&out)
        .args(SMALL)
        .spawn()
        .unwrap();
    let latest = out.join("checkpoints/latest");
    let start = Instant::now();
    while !latest.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first checkpoint"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint after 300 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let done = metrics.lines().count();
    assert!(done < 30, "killed before the end ({done} epochs logged)");

    ok(mixtrain()
        .args(["train", "--resume", "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap());
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let epochs_logged: Vec<u64> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        epochs_logged,
        (1..=30).collect::<Vec<u64>>(),
        "every epoch logged exactly once"
    );
    assert!(out.join("model.safetensors").is_file());
    let kept = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("epoch-")
        })
        .count();
    assert_eq!(kept, 2, "keep_checkpoints = 2");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "epochs = \"ten\"\n").unwrap();
    fails_with(&["train", "--config", cfg.to_str().unwrap()], "bad.toml");
    fails_with(&["train", "--preset", "imagenet"], "mnist");
    fails_with(&["train", "--backend", "rocm"], "rocm");
    fails_with(&["train", "--set", "optimizer.lr=-1"], "optimizer.lr");
    // the mnist preset's warm-up regularisers need bounds that natural training has not
    fails_with(
        &["train", "--preset", "mnist", "--method", "natural"],
        "warmup_reg",
    );
    fails_with(&["train", "--method", "magic"], "magic");
    fails_with(&["fetch", "svhn"], "svhn");

    let eval = |model: &str, weights: &str, backend: &str, needle: &str| {
        let args = [
            "eval",
            "--model",
            model,
            "--dataset",
            "mnist",
            "--backend",
            backend,
            "--weights",
            weights,
        ];
        fails_with(&args, needle);
    };
    #[cfg(not(feature = "wgpu"))]
    eval("mnist_small", "x", "wgpu", "--features wgpu");
    #[cfg(not(feature = "cuda"))]
    eval("mnist_small", "x", "cuda", "--features cuda");
    eval(
        "mnist_small",
        "/nonexistent.safetensors",
        "flex",
        "/nonexistent.safetensors",
    );
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"\x00\x01garbage").unwrap();
    eval(
        "mnist_small",
        garbage.to_str().unwrap(),
        "flex",
        "garbage.safetensors",
    );
    let reference = reference("baseline");
    eval(
        "mnist_large",
        reference.to_str().unwrap(),
        "ndarray",
        "expected:",
    );
}

#[test]
fn eval_reports_verified_accuracy_with_domain_and_eps() {
    let weights = reference("mixtrain-eps0.3");
    let run = |domain: &str, flags: &[&str]| -> serde_json::Value {
        let output = mixtrain()
            .args([
                "eval",
                "--model",
                "mnist_small",
                "--dataset",
                "mnist",
                "--limit",
                "40",
                "--eps",
                "0.1",
                "--input-domain",
                "image",
                "--json",
                "--domain",
                domain,
                "--weights",
            ])
            .arg(&weights)
            .args(flags)
            .output()
            .unwrap();
        // a long evaluation shows its progress on stderr, also with --json
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(stderr.contains("eval 0/40 points"), "{stderr}");
        serde_json::from_str(ok(output).trim()).unwrap()
    };
    let (interval, symbolic) = (run("interval", &[]), run("symbolic", &[]));
    assert_eq!(interval["float_sound"], true);
    assert_eq!(interval["split"], "test");
    // settings are chosen on the training images
    let train = run("interval", &["--split", "train"]);
    assert_eq!(
        (&train["split"], &train["n"]),
        (&"train".into(), &40.into())
    );
    // without the rounding bound, never fewer points verified
    let plain = run("symbolic", &["--no-float-sound"]);
    assert_eq!(plain["float_sound"], false);
    assert!(plain["verified_acc"].as_f64() >= symbolic["verified_acc"].as_f64());
    for (v, name) in [(&interval, "interval"), (&symbolic, "symbolic")] {
        assert_eq!(v["domain"], name);
        assert_eq!(v["eps"], 0.1);
        assert_eq!(v["input_domain"], "image");
        let acc = v["verified_acc"].as_f64().unwrap();
        assert!(
            acc <= v["clean_acc"].as_f64().unwrap(),
            "verified points are correct points"
        );
    }
    // On this MixTrain-trained network symbolic bounds are far tighter (89.5% vs 15.7% on the
    // first 1000 images).
    assert!(
        symbolic["verified_acc"].as_f64().unwrap()
            > interval["verified_acc"].as_f64().unwrap() + 0.3
    );
    let refused = [
        (&["--eps", "0.1", "--domain", "octagon"][..], "octagon"),
        (
            &["--split", "validation"][..],
            "unknown split \"validation\"",
        ),
    ];
    for (flags, expected) in refused {
        let mut args = vec!["eval", "--model", "mnist_small", "--dataset", "mnist"];
        args.extend_from_slice(flags);
        args.extend(["--weights", weights.to_str().unwrap()]);
        fails_with(&args, expected);
    }
}

/// The three attacks from the command line; PGD's saved adversarial examples are inside the
/// eps-ball of the test image they came from and really fool the network; `eval --attack`
/// reports `pgd_acc` between the verified and the clean accuracy.
#[test]
fn attacks_report_json_and_save_examples_that_fool_the_network() {
    let weights = reference("baseline");
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("adv.safetensors");
    let attack = |name: &str, extra: &[&str]| -> serde_json::Value {
        let out = ok(mixtrain()
            .args([
                "attack",
                "--model",
                "mnist_small",
                "--dataset",
                "mnist",
                "--eps",
                "0.15",
                "--limit",
                "30",
                "--steps",
                "10",
                "--step-size",
                "0.03",
                "--json",
                "--attack",
                name,
                "--weights",
            ])
            .arg(&weights)
            .args(extra)
            .output()
            .unwrap());
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["attack"], name);
        assert_eq!(v["n"], 30);
        assert!(v["robust_acc"].as_f64().unwrap() <= v["clean_acc"].as_f64().unwrap());
        assert!(v["seconds"].as_f64().unwrap() > 0.0);
        v
    };
    let fgsm = attack("fgsm", &["--restarts", "3", "--loss", "margin"]);
    // FGSM is one step of eps from the clean point, whatever PGD's flags say; the loss is kept
    assert_eq!(
        (
            &fgsm["steps"],
            &fgsm["restarts"],
            &fgsm["step_size"],
            &fgsm["loss"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(0.15),
            &serde_json::json!("margin")
        )
    );
    attack("interval", &["--interval-steps", "1"]);
    let pgd = attack("pgd", &["--save", saved.to_str().unwrap()]);
    let (clean, robust) = (
        pgd["clean_acc"].as_f64().unwrap(),
        pgd["robust_acc"].as_f64().unwrap(),
    );
    assert!(
        robust < clean,
        "PGD at eps 0.15 breaks a naturally trained net"
    );

    // the saved examples: as many as correct-then-broken points, each a real adversarial
    let bytes = std::fs::read(&saved).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let ints = |name: &str| -> Vec<i64> {
        file.tensor(name)
            .unwrap()
            .data()
            .chunks(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let (indices, labels, predictions) = (ints("indices"), ints("labels"), ints("predictions"));
    let images: Vec<f32> = file
        .tensor("images")
        .unwrap()
        .data()
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(pgd["examples"], indices.len());
    assert_eq!(indices.len(), ((clean - robust) * 30.0).round() as usize);
    let device = mixtrain_nn::Backend::Flex.device(None).unwrap();
    let arch = mixtrain_nn::zoo::architecture("mnist_small").unwrap();
    let net = mixtrain_nn::Network::load_safetensors(&arch, &weights, &device).unwrap();
    let data = mixtrain_data::DataDir::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-data"),
    );
    let test = mixtrain_data::load("mnist", mixtrain_data::Split::Test, &data).unwrap();
    for (k, &index) in indices.iter().enumerate() {
        let image = &images[k * 784..(k + 1) * 784];
        let batch = test.batches(1, None).nth(index as usize).unwrap();
        assert_eq!(batch.labels[0], labels[k]);
        for (a, x) in image.iter().zip(&batch.pixels) {
            assert!((a - x).abs() <= 0.15 + 1e-6 && (0.0..=1.0).contains(a));
        }
        let x = burn::tensor::Tensor::<4>::from_data(
            burn::tensor::TensorData::new(image.to_vec(), [1, 1, 28, 28]),
            &device,
        );
        let predicted: i64 = net.forward(x).argmax(1).into_scalar();
        assert_eq!(predicted, predictions[k]);
        assert_ne!(
            predicted, labels[k],
            "example {k} (test image {index}) is not adversarial"
        );
    }

    let eval = ok(mixtrain()
        .args([
            "eval",
            "--model",
            "mnist_small",
            "--dataset",
            "mnist",
            "--limit",
            "30",
            "--eps",
            "0.05",
            "--domain",
            "crown",
            "--attack",
            "pgd",
            "--json",
            "--weights",
        ])
        .arg(&weights)
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_str(eval.trim()).unwrap();
    let pgd_acc = v["pgd_acc"].as_f64().unwrap();
    assert!(pgd_acc <= v["clean_acc"].as_f64().unwrap());
    assert!(pgd_acc >= v["verified_acc"].as_f64().unwrap());

    for (flag, bad) in [("--attack", "cw"), ("--loss", "hinge")] {
        let base = [
            "attack",
            "--model",
            "mnist_small",
            "--dataset",
            "mnist",
            "--eps",
            "0.1",
        ];
        let mut args = base.to_vec();
        args.extend([flag, bad, "--weights", weights.to_str().unwrap()]);
        fails_with(&args, bad);
    }
}

/// `export` writes PyTorch-layout weights that equal the ones read and an ONNX model;
/// `export-spec` writes a VNN-COMP benchmark directory whose instances name existing files.
#[test]
fn export_writes_weights_onnx_and_a_vnncomp_benchmark() {
    let weights = reference("mixtrain-eps0.3");
    let dir = tempfile::tempdir().unwrap();
    let export = |format: &str, out: &Path| {
        ok(mixtrain()
            .args(["export", "--model", "mnist_small", "--format", format])
            .arg("--weights")
            .arg(&weights)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap())
    };
    let torch = dir.path().join("torch.safetensors");
    export("safetensors-torch", &torch);
    let (a, b) = (
        std::fs::read(&weights).unwrap(),
        std::fs::read(&torch).unwrap(),
    );
    let (a, b) = (
        safetensors::SafeTensors::deserialize(&a).unwrap(),
        safetensors::SafeTensors::deserialize(&b).unwrap(),
    );
    let mut names = a.names();
    names.sort();
    let mut exported = b.names();
    exported.sort();
    assert_eq!(names, exported);
    for name in names {
        let (x, y) = (a.tensor(name).unwrap(), b.tensor(name).unwrap());
        assert_eq!((x.shape(), x.data()), (y.shape(), y.data()), "{name}");
    }
    let onnx = dir.path().join("net.onnx");
    export("onnx", &onnx);
    // ModelProto field 1 (ir_version) = 7 comes first
    assert_eq!(std::fs::read(&onnx).unwrap()[..2], [0x08, 0x07]);
    fails_with(
        &[
            "export",
            "--model",
            "mnist_small",
            "--format",
            "tflite",
            "--out",
            "x",
            "--weights",
            weights.to_str().unwrap(),
        ],
        "tflite",
    );

    let bench = dir.path().join("bench");
    let said = ok(mixtrain()
        .args([
            "export-spec",
            "--model",
            "mnist_small",
            "--dataset",
            "mnist",
        ])
        .args(["--eps", "0.1", "--limit", "4", "--timeout", "30"])
        .arg("--weights")
        .arg(&weights)
        .arg("--out")
        .arg(&bench)
        .output()
        .unwrap());
    assert!(said.contains("4 properties"), "{said}");
    let csv = std::fs::read_to_string(bench.join("instances.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    for line in csv.lines() {
        let [model, property, timeout] = line.split(',').collect::<Vec<_>>()[..] else {
            panic!("{line}: onnx,vnnlib,timeout");
        };
        assert_eq!((model, timeout), ("onnx/mnist_small.onnx", "30"));
        assert!(bench.join(model).is_file());
        let text = std::fs::read_to_string(bench.join(property)).unwrap();
        assert!(
            text.contains("(declare-const X_783 Real)")
                && text.contains("(declare-const Y_9 Real)")
        );
        // nine alternatives: every class but the label
        assert_eq!(text.matches("(and (>= Y_").count(), 9, "{property}");
    }
}

#[test]
fn verify_writes_a_line_per_point_and_resumes_a_killed_run() {
    let weights = reference("mixtrain-eps0.3");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("verify.jsonl");
    let run = |eps: &str| {
        mixtrain()
            .args([
                "verify",
                "--model",
                "mnist_small",
                "--dataset",
                "mnist",
                "--limit",
                "20",
                "--eps",
                eps,
                "--domain",
                "alpha-crown",
                "--alpha-iterations",
                "3",
                // no time limit: the resumed run must bound as the first did, however slow
                "--alpha-time-limit",
                "0",
                "--json",
                "--weights",
            ])
            .arg(&weights)
            .arg("--out")
            .arg(&log)
            .output()
            .unwrap()
    };
    let summary =
        |out: Output| -> serde_json::Value { serde_json::from_str(ok(out).trim()).unwrap() };
    let first = summary(run("0.3"));
    let whole = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = whole.lines().collect();
    assert_eq!(lines.len(), 20);
    assert_eq!(first["n"], 20);
    assert_eq!(first["resumed"], 0);
    assert_eq!(first["domain"], "alpha-crown");
    let verified = first["verified"].as_u64().unwrap();
    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["index"], i);
        let margin = r["margin"].as_f64().unwrap();
        let margins = r["margins"].as_array().unwrap().len();
        if r["verdict"] == "falsified" {
            // a counterexample's margin, checked by a forward pass; not bounded
            assert!(margin < 0.0 && margins == 0, "line {i}: {r}");
        } else {
            let expected = if margin > 0.0 { "verified" } else { "unknown" };
            assert_eq!(r["verdict"], expected, "line {i}: {r}");
            assert_eq!(margins, 10);
        }
    }
    let count = |verdict: &str| records.iter().filter(|r| r["verdict"] == verdict).count() as u64;
    assert_eq!(count("verified"), verified);
    assert_eq!(count("falsified"), first["falsified"].as_u64().unwrap());
    assert!(
        count("falsified") > 0,
        "test image 18 is misclassified: a counterexample in itself"
    );
    // killed after five points, in the middle of writing the sixth line
    let torn = format!("{}\n{}", lines[..5].join("\n"), &lines[5][..20]);
    std::fs::write(&log, torn).unwrap();
    let resumed = summary(run("0.3"));
    assert_eq!(resumed["resumed"], 5);
    assert_eq!(resumed["n"], 20);
    assert_eq!(resumed["verified"], verified);
    assert_eq!(resumed["falsified"], first["falsified"]);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 20);
    // a log of another radius is refused, not mixed in
    let other = run("0.1");
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success());
    assert!(
        stderr.contains("verify.jsonl") && stderr.contains("eps 0.3"),
        "{stderr}"
    );
    let weights = weights.to_str().unwrap();
    for limit in ["--alpha-time-limit=-1", "--alpha-time-limit=inf"] {
        fails_with(
            &[
                "verify",
                "--model",
                "mnist_small",
                "--dataset",
                "mnist",
                "--eps",
                "0.1",
                "--weights",
                weights,
                limit,
            ],
            "--alpha-time-limit",
        );
    }
}

#[test]
fn complete_verification_decides_with_checked_counterexamples_and_resumes() {
    let weights = reference("mixtrain-eps0.3");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("complete.jsonl");
    let saved = dir.path().join("counterexamples.safetensors");
    let run = || {
        mixtrain()
            .args(["verify", "--model", "mnist_small", "--dataset", "mnist"])
            .args([
                "--limit",
                "10",
                "--eps",
                "0.3",
                "--complete",
                "--timeout",
                "20",
            ])
            .args(["--json", "--weights"])
            .arg(&weights)
            .arg("--out")
            .arg(&log)
            .arg("--save")
            .arg(&saved)
            .output()
            .unwrap()
    };
    let summary =
        |out: Output| -> serde_json::Value { serde_json::from_str(ok(out).trim()).unwrap() };
    let first = summary(run());
    assert_eq!(first["complete"], true);
    assert_eq!(first["n"], 10);
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // test image 8: PGD misses it, branch and bound's first relaxation minimiser does not
    let eight = &records[8];
    assert_eq!(eight["verdict"], "falsified", "{eight}");
    assert!(eight["subproblems"].as_u64().unwrap() >= 1, "{eight}");
    for r in &records {
        let falsified = r["verdict"] == "falsified";
        assert_eq!(r["counterexample"].is_array(), falsified, "{r}");
        if falsified {
            assert!(r["margin"].as_f64().unwrap() < 0.0, "{r}");
        }
    }
    let falsified = first["falsified"].as_u64().unwrap();
    let bytes = std::fs::read(&saved).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        tensors.tensor("images").unwrap().shape(),
        [falsified as usize, 1, 28, 28]
    );
    // resumed: the same verdicts, every counterexample checked again on the way in
    let again = summary(run());
    assert_eq!(again["resumed"], 10);
    assert_eq!(again["verified"], first["verified"]);
    assert_eq!(again["falsified"], first["falsified"]);
    // a counterexample that is not one is refused
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // (all black: outside the ball of image 8)
    lines[8]["counterexample"] = serde_json::json!(vec![0.0f32; 784]);
    let tampered: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, tampered).unwrap();
    let refused = run();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("point 8") && stderr.contains("cannot be trusted"),
        "{stderr}"
    );
}

/// `eval` of a network given as ONNX: the same figures as the zoo model it was exported from,
/// and a VNN-COMP network (gzipped, input `[1, 784, 1]`) on MNIST's `[1, 28, 28]` images.
#[test]
fn onnx_networks_evaluate_like_zoo_models() {
    let weights = reference("mixtrain-eps0.3");
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("authors.onnx");
    ok(mixtrain()
        .args(["export", "--model", "mnist_small", "--format", "onnx"])
        .arg("--weights")
        .arg(&weights)
        .arg("--out")
        .arg(&onnx)
        .output()
        .unwrap());
    let eval = |network: &[&std::ffi::OsStr]| -> serde_json::Value {
        let out = ok(mixtrain()
            .args(["eval", "--dataset", "mnist", "--limit", "60", "--json"])
            .args(["--eps", "0.1", "--domain", "crown"])
            .args(network)
            .output()
            .unwrap());
        serde_json::from_str(&out).unwrap()
    };
    let zoo = eval(&[
        "--model".as_ref(),
        "mnist_small".as_ref(),
        "--weights".as_ref(),
        weights.as_os_str(),
    ]);
    let read = eval(&["--onnx".as_ref(), onnx.as_os_str()]);
    assert_eq!(read["model"], "authors");
    assert_eq!(read["onnx"], onnx.to_str().unwrap());
    for key in ["n", "clean_acc", "verified_acc"] {
        assert_eq!(read[key], zoo[key], "{key}: {read} vs {zoo}");
    }

    let vnncomp = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/benchmarks/vnncomp2022/mnist_fc/onnx/mnist-net_256x2.onnx.gz");
    let fc = eval(&["--onnx".as_ref(), vnncomp.as_os_str()]);
    assert_eq!(fc["model"], "mnist-net_256x2");
    assert!(fc["clean_acc"].as_f64().unwrap() >= 0.9, "{fc}");

    fails_with(
        &[
            "eval",
            "--dataset",
            "mnist",
            "--model",
            "mnist_small",
            "--onnx",
            "x.onnx",
        ],
        "cannot be used with",
    );
    fails_with(
        &["eval", "--dataset", "mnist", "--onnx", "/no/such/net.onnx"],
        "/no/such/net.onnx",
    );
}

/// `vnncomp instance` writes the result file of `run_instance.sh`; `vnncomp run` then
/// `compare` puts a benchmark's results beside the entrants'.
#[test]
fn vnncomp_decides_instances_and_compares_with_the_entrants() {
    let b = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/benchmarks/vnncomp2022/mnist_fc");
    let dir = tempfile::tempdir().unwrap();
    let result = dir.path().join("result.txt");
    ok(mixtrain()
        .args(["vnncomp", "instance", "--timeout", "60"])
        .arg("--onnx")
        .arg(b.join("onnx/mnist-net_256x2.onnx.gz"))
        .arg("--vnnlib")
        .arg(b.join("vnnlib/prop_1_0.03.vnnlib.gz"))
        .arg("--result")
        .arg(&result)
        .output()
        .unwrap());
    let text = std::fs::read_to_string(&result).unwrap();
    assert!(
        text.starts_with("sat\n((X_0 ") && text.trim_end().ends_with("))"),
        "{text}"
    );
    assert_eq!(text.matches("(X_").count(), 784);

    let csv = dir.path().join("instances.csv");
    std::fs::write(
        &csv,
        format!(
            "{},{},60\n",
            b.join("onnx/mnist-net_256x2.onnx").display(),
            b.join("vnnlib/prop_0_0.03.vnnlib").display()
        ),
    )
    .unwrap();
    let out = dir.path().join("results.csv");
    let said = ok(mixtrain()
        .args(["vnncomp", "run", "--benchmark", "mnist_fc"])
        .arg("--instances")
        .arg(&csv)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    assert!(
        said.contains("1 instances run now") && said.contains("1 unsat"),
        "{said}"
    );
    let table = ok(mixtrain()
        .args(["vnncomp", "compare"])
        .arg("--ours")
        .arg(&out)
        .arg("--tools")
        .arg(b.join("results"))
        .arg("--instances")
        .arg(&csv)
        .output()
        .unwrap());
    assert!(
        table.contains("| mnist-net_256x2 | prop_0_0.03 | unsat |") && table.contains("| agrees |"),
        "{table}"
    );
    fails_with(
        &[
            "vnncomp",
            "instance",
            "--onnx",
            "x.onnx",
            "--vnnlib",
            "x.vnnlib",
            "--timeout",
            "0",
        ],
        "--timeout must be a positive number",
    );
}
