//! Agreement with the MixTrain authors' implementation (`symbolic_interval`): their network
//! `mnist_small` trained with MixTrain at eps 0.3, the first 10 MNIST test images, eps 0.3 and
//! 0.1, input box clipped to each image's own min and max pixel (their evaluator's choice).
//!
//! The golden values (`tests/data/*.golden.json`, computed with the authors' library at commit
//! a008fbb) are committed; the weights and MNIST come from the offline mirror
//! (`MIXTRAIN_MIRROR`, default `../shared/datasets`) or are downloaded, checksum-verified.

use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use mixtrain_bounds::{Domain, InputDomain, InputSet, Interval, Symbolic, margins};
use mixtrain_data::{DataDir, Split};
use mixtrain_nn::{Backend, Network, zoo};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The mirror when it exists.
fn mirror() -> Option<PathBuf> {
    DataDir::mirror_from_env()
        .unwrap_or_else(|| manifest_dir().join("../../../shared/datasets"))
        .canonicalize()
        .ok()
}

fn data_dir() -> DataDir {
    DataDir::new(manifest_dir().join("../../target/test-data"))
}

/// Worst-case logits and verified flags of the first 10 test images in domain `D`.
fn bounds<D: Domain>(eps: f32) -> (Vec<f32>, Vec<bool>) {
    let device = Backend::Flex.device(None).unwrap();
    let arch = zoo::architecture("mnist_small").unwrap();
    let weights =
        mixtrain_data::reference_weights("mixtrain-eps0.3", &data_dir(), mirror().as_deref())
            .unwrap_or_else(|e| panic!("the golden test reads the authors' network: {e}"));
    let net = Network::load_weights(&arch, &weights, &device).unwrap();
    let dir = data_dir();
    if let Err(e) = mixtrain_data::obtain("mnist", &dir, mirror().as_deref()) {
        panic!("the golden test reads real MNIST: {e}");
    }
    let test = mixtrain_data::load("mnist", Split::Test, &dir)
        .unwrap()
        .take(10);
    let batch = test.batches(10, None).next().unwrap();
    let x = Tensor::<4>::from_data(TensorData::new(batch.pixels.clone(), batch.dims()), &device);
    let y = Tensor::<1, Int>::from_data(TensorData::new(batch.labels.clone(), [10]), &device);
    let set = InputSet::linf(x, eps, InputDomain::Image).unwrap();
    let m = margins::<D>(&net, &set, y).unwrap();
    let wc = m
        .worst_case_logits()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let verified = m.verified().into_data().try_to_vec::<bool>().unwrap();
    (wc, verified)
}

fn golden(eps: &str, key: &str) -> (Vec<f32>, Vec<bool>) {
    let path = manifest_dir().join("tests/data/mnist_small_mixtrain_eps0.3.golden.json");
    let text = std::fs::read_to_string(path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let points = json[eps].as_array().unwrap();
    let wc = points
        .iter()
        .flat_map(|p| {
            p[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    let verified = points
        .iter()
        .map(|p| p["sym_verified"].as_bool().unwrap())
        .collect();
    (wc, verified)
}

fn assert_close(ours: &[f32], theirs: &[f32], what: &str) {
    assert_eq!(ours.len(), theirs.len());
    let worst = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 1e-3,
        "{what}: worst-case logits differ by up to {worst}\nours   {ours:?}\ntheirs {theirs:?}"
    );
}

#[test]
fn symbolic_matches_the_authors_symbolic_interval() {
    for (eps, key) in [(0.3, "0.3"), (0.1, "0.1")] {
        let (wc, verified) = bounds::<Symbolic>(eps);
        let (gold, gold_verified) = golden(key, "sym_wc");
        assert_close(&wc, &gold, &format!("symbolic eps {eps}"));
        assert_eq!(
            verified, gold_verified,
            "symbolic eps {eps}: verified flags"
        );
    }
}

#[test]
fn interval_matches_the_authors_naive_interval() {
    for (eps, key) in [(0.3, "0.3"), (0.1, "0.1")] {
        let (wc, _) = bounds::<Interval>(eps);
        let (gold, _) = golden(key, "naive_wc");
        assert_close(&wc, &gold, &format!("interval eps {eps}"));
    }
}
