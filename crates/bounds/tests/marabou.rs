//! Branch and bound against an independent verifier: tiny networks and their robustness
//! properties are exported (ONNX and VNN-LIB, by mixtrain-interop) and decided by Marabou
//! (`marabou_check.py`). Marabou's `unsat` is not trusted (it is unsound on some networks:
//! `../shared/docs/PEERS.md`), its `sat` is, once its input passes our forward pass: no point we
//! verify may have such an input, and every point we falsify has a counterexample in its box
//! that our forward pass misclassifies. Without Python or maraboupy the test says so and
//! passes, unless `MIXTRAIN_REQUIRE_MARABOU` is set.

use std::path::Path;
use std::process::Command;

use burn::tensor::{Distribution, Tensor, TensorData};
use mixtrain_bounds::{AlphaCrown, BranchAndBound, InputDomain, InputSet, Verdict};
use mixtrain_interop::{Robustness, to_onnx};
use mixtrain_nn::{Backend, Network};

mod common;

const INPUTS: usize = 5;
const CLASSES: usize = 3;

fn pixels<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

/// Whether our forward pass gives `x` another class than `label` (a logit at least its own).
fn misclassified(net: &Network, x: &[f32], label: usize) -> bool {
    let device = Backend::Flex.device(None).unwrap();
    let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), [1, 1, 1, INPUTS]), &device);
    let z = pixels(net.forward(x));
    (0..CLASSES).any(|j| j != label && z[j] >= z[label])
}

/// Marabou's answer per property (`None` where it cannot run), one line each.
fn marabou(model: &Path, properties: &[std::path::PathBuf]) -> Option<Vec<String>> {
    let python = std::env::var("MIXTRAIN_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/marabou_check.py");
    let out = match Command::new(&python)
        .arg(script)
        .arg(model)
        .args(properties)
        .output()
    {
        Ok(out) => out,
        Err(e) => return skip(&format!("cannot run {python}: {e}")),
    };
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    match out.status.code() {
        Some(0) => Some(said.lines().map(str::to_owned).collect()),
        Some(3) => skip(said.trim()),
        _ => panic!(
            "Marabou failed:\n{said}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn skip(why: &str) -> Option<Vec<String>> {
    if std::env::var_os("MIXTRAIN_REQUIRE_MARABOU").is_some() {
        panic!("MIXTRAIN_REQUIRE_MARABOU is set, but: {why}");
    }
    println!("SKIPPED the Marabou cross-check: {why} (pip install maraboupy)");
    None
}

#[test]
fn marabou_finds_no_counterexample_to_a_point_we_verify() {
    let device = Backend::Flex.device(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = BranchAndBound {
        timeout: 20.0,
        batch: 8,
        ..BranchAndBound::default()
    };
    let (mut ours, mut marabou_sat, mut ran) = ([0usize; 3], 0, false);
    for seed in 0..10u64 {
        let net = common::mlp(seed, INPUTS, &[10, 8], CLASSES);
        let model = dir.path().join(format!("net{seed}.onnx"));
        std::fs::write(&model, to_onnx(&net)).unwrap();
        device.seed(seed);
        let mut cases = Vec::new();
        for i in 0..6 {
            let x =
                Tensor::<4>::random([1, 1, 1, INPUTS], Distribution::Uniform(0.2, 0.8), &device);
            let label = pixels(net.forward(x.clone()).argmax(1).float())[0] as usize;
            let decide = |eps: f32| {
                let point = InputSet::linf(x.clone(), eps, InputDomain::Unit).unwrap();
                let decision = settings
                    .decide(&net, &point, label as i64, &AlphaCrown::default(), true)
                    .unwrap();
                (point, decision)
            };
            // the tight cases: the radii where our verdict turns from verified to falsified
            let (mut robust, mut not) = (0.0f32, 1.0f32);
            if decide(not).1.verdict != Verdict::Falsified {
                continue;
            }
            for _ in 0..10 {
                let mid = (robust + not) / 2.0;
                match decide(mid).1.verdict {
                    Verdict::Verified => robust = mid,
                    Verdict::Falsified => not = mid,
                    Verdict::Unknown => break,
                }
            }
            for eps in [robust, not].into_iter().filter(|&eps| eps > 0.0) {
                let (point, decision) = decide(eps);
                let centre = pixels(x.clone());
                let property = Robustness {
                    x: &centre,
                    eps,
                    clip: (0.0, 1.0),
                    label,
                    classes: CLASSES,
                };
                let path = dir.path().join(format!("net{seed}_{i}_{eps}.vnnlib"));
                std::fs::write(&path, property.to_vnnlib("mixtrain cross-check")).unwrap();
                cases.push((path, point, label, eps, decision));
            }
        }
        let paths: Vec<_> = cases.iter().map(|c| c.0.clone()).collect();
        // asked once per network while it answers; a missing Marabou is reported once
        let answers = if ran || seed == 0 {
            marabou(&model, &paths)
        } else {
            None
        };
        ran |= answers.is_some();
        for (k, (_, point, label, eps, decision)) in cases.iter().enumerate() {
            let case = format!("net {seed}, point {k}, eps {eps}");
            let (lower, upper) = (pixels(point.lower.clone()), pixels(point.upper.clone()));
            let inside = |x: &[f32]| (0..INPUTS).all(|i| lower[i] <= x[i] && x[i] <= upper[i]);
            match decision.verdict {
                Verdict::Verified => ours[0] += 1,
                Verdict::Falsified => {
                    let x = decision
                        .counterexample
                        .as_ref()
                        .expect("falsified with an input");
                    assert!(inside(x), "{case}: the counterexample {x:?} leaves the box");
                    assert!(
                        misclassified(&net, x, *label),
                        "{case}: {x:?} is classified right"
                    );
                    ours[1] += 1;
                }
                Verdict::Unknown => ours[2] += 1,
            }
            let Some(answer) = answers.as_ref().map(|a| &a[k]) else {
                continue;
            };
            let Some(values) = answer.strip_prefix("sat ") else {
                continue;
            };
            // Marabou solves in doubles: its input may sit a rounding outside the box
            let x: Vec<f32> = values
                .split(' ')
                .zip(lower.iter().zip(&upper))
                .map(|(v, (&lo, &hi))| v.parse::<f32>().unwrap().clamp(lo, hi))
                .collect();
            if misclassified(&net, &x, *label) {
                marabou_sat += 1;
                assert_ne!(
                    decision.verdict,
                    Verdict::Verified,
                    "{case}: verified, but Marabou's {x:?} is misclassified"
                );
            }
        }
    }
    println!("ours: {ours:?} (verified, falsified, unknown); Marabou's checked sat: {marabou_sat}");
    assert!(
        ours[0] >= 5 && ours[1] >= 5,
        "too few of each verdict: {ours:?}"
    );
    // the check has teeth only if Marabou found counterexamples of its own
    assert!(
        !ran || marabou_sat >= 5,
        "Marabou found {marabou_sat} checked counterexamples"
    );
}
