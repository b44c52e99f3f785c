//! The MixTrain authors' naturally trained `mnist_small` loads from its PyTorch-layout weights
//! and classifies real MNIST as a trained network should.

mod common;

use mixtrain::data::Split;
use mixtrain::nn::{Backend, Network, zoo};

#[test]
fn authors_baseline_is_accurate_on_the_first_1000_test_images() {
    let device = Backend::Flex.device(None).unwrap();
    let arch = zoo::architecture("mnist_small").unwrap();
    let net = Network::load_weights(&arch, &common::reference("baseline"), &device).unwrap();
    let test = mixtrain::data::load("mnist", Split::Test, common::mnist_dir())
        .unwrap()
        .take(1000);
    let result = mixtrain::train::evaluate(&net, &test, 250, &device).unwrap();
    assert_eq!(result.n, 1000);
    // Measured: 98.8% (988 of 1000). A wrong layout (e.g. an untransposed fc weight, or the
    // wrong flatten order) drops this to chance.
    assert!(
        result.clean_acc >= 0.98,
        "clean accuracy {}",
        result.clean_acc
    );
}

#[test]
fn flex_and_ndarray_agree_on_the_reference_network() {
    let arch = zoo::architecture("mnist_small").unwrap();
    let test = mixtrain::data::load("mnist", Split::Test, common::mnist_dir())
        .unwrap()
        .take(200);
    let accs: Vec<f64> = [Backend::Flex, Backend::Ndarray]
        .into_iter()
        .map(|b| {
            let device = b.device(None).unwrap();
            let net = Network::load_weights(&arch, &common::reference("mixtrain-eps0.3"), &device)
                .unwrap();
            mixtrain::train::evaluate(&net, &test, 100, &device)
                .unwrap()
                .clean_acc
        })
        .collect();
    assert_eq!(accs[0], accs[1]);
}
