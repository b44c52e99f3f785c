//! Attacks on the MixTrain authors' networks and real MNIST: no attack breaks a point the
//! bounds engine verified, PGD breaks a naturally trained network at a large radius, and an
//! evaluation that bounds only the points PGD leaves gets the figures of one that bounds all.

mod common;

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use mixtrain::attack::{Attack, IntervalAttack, Pgd};
use mixtrain::bounds::{DomainKind, InputDomain, InputSet, Verifier};
use mixtrain::data::{ImageSet, Split};
use mixtrain::nn::{Backend, Network, zoo};
use mixtrain::train::{Robustness, robustness};

/// The authors' network `name` (a role of `mixtrain-reference`) and the first `n` MNIST test
/// images.
fn reference_and_test(name: &str, n: usize, device: &Device) -> (Network, ImageSet) {
    let arch = zoo::architecture("mnist_small").unwrap();
    let net = Network::load_weights(&arch, &common::reference(name), device).unwrap();
    let test = mixtrain::data::load("mnist", Split::Test, common::mnist_dir())
        .unwrap()
        .take(n);
    (net, test)
}

/// [`reference_and_test`]'s images and labels as tensors.
fn setup(name: &str, n: usize, device: &Device) -> (Network, Tensor<4>, Tensor<1, Int>) {
    let (net, test) = reference_and_test(name, n, device);
    let batch = test.batches(n, None).next().unwrap();
    let dims = batch.dims();
    let x = Tensor::from_data(TensorData::new(batch.pixels, dims), device);
    let y = Tensor::from_data(TensorData::new(batch.labels, [n]), device);
    (net, x, y)
}

fn count(t: Tensor<1, Bool>) -> i64 {
    t.int().sum().into_scalar()
}

#[test]
fn no_attack_breaks_a_point_verified_on_the_authors_network() {
    let device = Backend::Flex.device(None).unwrap();
    device.seed(1);
    let (net, x, y) = setup("mixtrain-eps0.3", 100, &device);
    let eps = 0.3;
    let set = InputSet::linf(x.clone(), eps, InputDomain::Unit).unwrap();
    let verified = DomainKind::Best
        .margins(&net, &set, y.clone())
        .unwrap()
        .verified();
    let pgd = Pgd::new(eps, 0.01, 40);
    let attacks: [(&str, Box<dyn Attack>); 3] = [
        ("fgsm", Box::new(Pgd::fgsm(eps))),
        ("pgd", Box::new(pgd)),
        (
            "interval",
            Box::new(IntervalAttack::new(Pgd { steps: 10, ..pgd })),
        ),
    ];
    for (name, attack) in attacks {
        let found = attack.run(&net, x.clone(), y.clone()).unwrap();
        let wrong = net
            .forward(found.points)
            .argmax(1)
            .squeeze_dim::<1>(1)
            .not_equal(y.clone());
        assert_eq!(
            count(wrong.clone().equal(found.broken.clone())),
            100,
            "{name}: broken means misclassified"
        );
        let both = count(verified.clone().bool_and(found.broken.clone()));
        assert_eq!(both, 0, "{name} broke {both} verified points");
        // not vacuous: some points are verified, and the attack breaks others
        assert!(count(found.broken) > 0, "{name} broke nothing");
    }
    assert!(count(verified) > 30);
}

#[test]
fn pgd_breaks_a_naturally_trained_network_at_eps_0_3() {
    let device = Backend::Flex.device(None).unwrap();
    device.seed(2);
    let (net, x, y) = setup("baseline", 200, &device);
    let clean = count(
        net.forward(x.clone())
            .argmax(1)
            .squeeze_dim::<1>(1)
            .equal(y.clone()),
    );
    let found = Pgd::new(0.3, 0.03, 20).run(&net, x, y).unwrap();
    let robust = 200 - count(found.broken);
    // Measured: 200 of 200 correct, none survives PGD-20.
    assert!(clean >= 190, "clean {clean} of 200");
    assert!(robust <= 10, "{robust} of 200 survive PGD at eps 0.3");
}

#[test]
fn bounding_only_what_pgd_leaves_changes_no_figure() {
    let device = Backend::Flex.device(None).unwrap();
    let (net, test) = reference_and_test("mixtrain-eps0.3", 200, &device);
    let verifier = Verifier::new(DomainKind::Crown);
    let pgd = Pgd::new(0.3, 0.05, 10);
    let evaluate = |bound_all| {
        let spec = Robustness {
            eps: 0.3,
            input_domain: InputDomain::Unit,
            verifier: Some(&verifier),
            attack: Some(&pgd),
            bound_all,
        };
        let mut tallies = Vec::new();
        device.seed(7);
        let result =
            robustness(&net, &test, &spec, 80, &device, &mut |t| tallies.push(*t)).unwrap();
        (result, tallies)
    };
    let (skipping, tallies) = evaluate(false);
    let (all, _) = evaluate(true);
    assert_eq!(skipping.verified_acc, all.verified_acc);
    assert_eq!(skipping.attack_acc, all.attack_acc);
    assert_eq!(skipping.clean_acc, all.clean_acc);
    assert_eq!(all.bounded, 200);
    let robust = skipping.attack_acc.unwrap();
    assert_eq!(skipping.bounded as f64, (robust * 200.0).round());
    // not vacuous: PGD broke correctly classified points, which were then not bounded, and
    // some were verified
    assert!(robust < skipping.clean_acc, "{skipping:?}");
    let verified = skipping.verified_acc.unwrap();
    assert!(verified > 0.3 && verified <= robust, "{skipping:?}");
    // progress: counts that only grow, ending with every point decided
    assert!(tallies.windows(2).all(|w| w[0].done <= w[1].done));
    let last = tallies.last().unwrap();
    assert_eq!(last.done, 200);
    assert_eq!(last.verified + last.falsified + last.unknown, 200);
    assert_eq!(last.verified as f64, (verified * 200.0).round());
}
