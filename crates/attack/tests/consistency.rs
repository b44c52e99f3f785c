//! Attacks and the bounds engine agree: on random small networks, every point an attack
//! returns lies in the eps-ball and the input domain, every point it reports broken is really
//! misclassified, and no attack breaks a point the engine verified.

use burn::tensor::{Bool, Device, Distribution, Int, Tensor, TensorData};
use mixtrain_attack::{Adversarial, Attack, AttackLoss, IntervalAttack, Pgd};
use mixtrain_bounds::{DomainKind, InputDomain, InputSet};
use mixtrain_nn::{Architecture, Backend, Layer, LayerSpec, Network};
use proptest::prelude::*;

fn device() -> Device {
    Backend::Flex.device(None).unwrap()
}

/// conv - relu - conv - relu - flatten - linear - relu - linear on `[1, 6, 6]`, 3 classes,
/// every parameter scaled by `scale` (larger scales make more unstable ReLUs).
fn net(seed: u64, scale: f32) -> Network {
    let conv = |name: &str, i, o| LayerSpec::conv2d(name, i, o, 3, 2, 1);
    let linear = LayerSpec::linear;
    let arch = Architecture {
        name: "small".into(),
        input: [1, 6, 6],
        classes: 3,
        layers: vec![
            conv("c1", 1, 3),
            LayerSpec::Relu,
            conv("c2", 3, 4),
            LayerSpec::Relu,
            LayerSpec::Flatten,
            linear("fc", 16, 8),
            LayerSpec::Relu,
            linear("out", 8, 3),
        ],
    };
    let mut net = Network::init(&arch, seed, &device()).unwrap();
    for layer in &mut net.layers {
        match layer {
            Layer::Conv2d(c) => c.weight = c.weight.clone().map(|w| w * scale),
            Layer::Linear(l) => l.weight = l.weight.clone().map(|w| w * scale),
            _ => {}
        }
    }
    net
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec().unwrap()
}

fn bools(t: Tensor<1, Bool>) -> Vec<bool> {
    t.into_data().try_to_vec().unwrap()
}

/// The properties every attack result must have; returns (verified, broken) counts.
fn check(
    net: &Network,
    x: &Tensor<4>,
    y: &Tensor<1, Int>,
    eps: f32,
    domain: InputDomain,
    found: Adversarial,
    name: &str,
) -> Result<(usize, usize), TestCaseError> {
    let ball = InputSet::linf(x.clone(), eps, domain).unwrap();
    let (lo, hi, p) = (
        to_vec(ball.lower),
        to_vec(ball.upper),
        to_vec(found.points.clone()),
    );
    for i in 0..p.len() {
        prop_assert!(
            p[i] >= lo[i] - 1e-6 && p[i] <= hi[i] + 1e-6,
            "{name}: pixel {i} = {} outside [{}, {}]",
            p[i],
            lo[i],
            hi[i]
        );
    }
    let predicted: Vec<i64> = net
        .forward(found.points)
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .try_to_vec()
        .unwrap();
    let labels: Vec<i64> = y.clone().into_data().convert::<i64>().try_to_vec().unwrap();
    let broken = bools(found.broken);
    for i in 0..labels.len() {
        prop_assert_eq!(
            broken[i],
            predicted[i] != labels[i],
            "{}: point {} reported {} but classified {} (label {})",
            name,
            i,
            broken[i],
            predicted[i],
            labels[i]
        );
    }
    let set = InputSet::linf(x.clone(), eps, domain).unwrap();
    let verified = bools(
        DomainKind::Best
            .margins(net, &set, y.clone())
            .unwrap()
            .verified(),
    );
    for i in 0..labels.len() {
        prop_assert!(
            !(verified[i] && broken[i]),
            "{name} broke point {i}, which the bounds engine verified at eps {eps}"
        );
    }
    Ok((
        verified.iter().filter(|v| **v).count(),
        broken.iter().filter(|b| **b).count(),
    ))
}

fn attacks(eps: f32, domain: InputDomain) -> Vec<(&'static str, Box<dyn Attack>)> {
    let pgd = Pgd {
        domain,
        ..Pgd::new(eps, eps / 4.0, 8)
    };
    vec![
        (
            "fgsm",
            Box::new(Pgd {
                domain,
                ..Pgd::fgsm(eps)
            }),
        ),
        ("pgd", Box::new(Pgd { restarts: 2, ..pgd })),
        (
            "pgd-margin",
            Box::new(Pgd {
                loss: AttackLoss::Margin,
                ..pgd
            }),
        ),
        (
            "interval",
            Box::new(IntervalAttack {
                interval_steps: 2,
                ..IntervalAttack::new(Pgd { steps: 3, ..pgd })
            }),
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn attacks_stay_in_the_ball_report_truly_and_never_break_a_verified_point(
        seed in any::<u64>(),
        scale in 0.5f32..3.0,
        eps in 0.0f32..0.4,
        image_domain in any::<bool>(),
    ) {
        let device = device();
        device.seed(seed);
        let net = net(seed, scale);
        let x = Tensor::<4>::random([6, 1, 6, 6], Distribution::Uniform(0.0, 1.0), &device);
        // labels the network gives the clean points, except the last (a misclassified point)
        let mut y: Vec<i64> = net.forward(x.clone()).argmax(1).into_data().convert::<i64>().try_to_vec().unwrap();
        y[5] = (y[5] + 1) % 3;
        let y = Tensor::<1, Int>::from_data(TensorData::new(y, [6]), &device);
        let domain = if image_domain { InputDomain::Image } else { InputDomain::Unit };
        for (name, attack) in attacks(eps, domain) {
            let found = attack.run(&net, x.clone(), y.clone()).unwrap();
            let broken5: bool = found.broken.clone().narrow(0, 5, 1).into_scalar();
            prop_assert!(broken5, "{}: the misclassified point counts as broken", name);
            check(&net, &x, &y, eps, domain, found, name)?;
        }
    }
}

/// The property test above is not vacuous: over a spread of nets and radii, the engine
/// verifies some points and the attacks break others.
#[test]
fn some_points_are_verified_and_some_broken() {
    let device = device();
    let (mut verified, mut broken) = (0, 0);
    for seed in 0..6u64 {
        device.seed(seed);
        let net = net(seed, 1.5);
        let x = Tensor::<4>::random([8, 1, 6, 6], Distribution::Uniform(0.0, 1.0), &device);
        let y = net.forward(x.clone()).argmax(1).squeeze_dim::<1>(1);
        let eps = [0.01f32, 0.3][seed as usize % 2];
        for (name, attack) in attacks(eps, InputDomain::Unit) {
            let found = attack.run(&net, x.clone(), y.clone()).unwrap();
            let (v, b) = check(&net, &x, &y, eps, InputDomain::Unit, found, name).unwrap();
            verified += v;
            broken += b;
        }
    }
    assert!(
        verified > 0 && broken > 0,
        "verified {verified}, broken {broken}"
    );
}
