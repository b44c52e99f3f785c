//! Each training method's loss against the losses it is made of, on a seeded `mnist_small` and
//! a batch of synthetic images: the expressive losses at `alpha` 0 and 1 are the pure
//! adversarial and IBP losses and in between combine them as their papers say; SABR with a box
//! as large as the ball is IBP; the warm-up regularisers add what `Warmup` computes, weighted
//! as the ramp says; MixTrain's small boxes are SABR's.

use burn::tensor::{Device, Int, Tensor, TensorData};
use mixtrain_bounds::{InputDomain, InputSet, Interval, margins_recording};
use mixtrain_loss::Warmup;
use mixtrain_nn::{Backend, Network, zoo};
use mixtrain_train::{Method, RobustSet, TrainConfig, step_loss};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const EPS: f64 = 0.1;

fn device() -> Device {
    Backend::Flex.device(None).unwrap().autodiff()
}

/// A seeded `mnist_small` and 6 images (uniform pixels, drawn on the host so that tests on
/// other threads cannot move the device's generator) with labels.
fn setup(device: &Device) -> (Network, Tensor<4>, Tensor<1, Int>) {
    let net = Network::init(&zoo::architecture("mnist_small").unwrap(), 5, device).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let pixels: Vec<f32> = (0..6 * 28 * 28).map(|_| rng.random()).collect();
    let x = Tensor::<4>::from_data(TensorData::new(pixels, [6, 1, 28, 28]), device);
    let y = Tensor::from_data(TensorData::new(vec![0i64, 3, 5, 7, 9, 1], [6]), device);
    (net, x, y)
}

/// A config of `method` whose PGD starts from the clean point, so that every loss is a
/// function of the weights and the batch alone.
fn config(method: Method) -> TrainConfig {
    let mut config = TrainConfig {
        method,
        eps: EPS,
        ..TrainConfig::default()
    };
    config.pgd.random_start = false;
    config.pgd.steps = 3;
    config
}

/// The loss of `config` at radius `eps` with robust weight `alpha`.
fn loss(config: &TrainConfig, eps: f64, alpha: f64) -> f64 {
    let device = device();
    let (net, x, y) = setup(&device);
    let mut rng = StdRng::seed_from_u64(0);
    let loss = step_loss(&net, x, y, config, eps, alpha, &mut rng).unwrap();
    loss.into_scalar::<f32>() as f64
}

fn assert_close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
        "{what}: {a} vs {b}"
    );
}

#[test]
fn expressive_losses_run_from_the_adversarial_to_the_ibp_loss() {
    let adversarial = loss(&config(Method::Pgd), EPS, 0.0);
    let ibp = loss(&config(Method::Ibp), EPS, 1.0);
    assert!(ibp > adversarial, "IBP's bound lies above PGD's loss");
    for method in [Method::MtlIbp, Method::CcIbp, Method::ExpIbp] {
        let name = method.name();
        assert_close(loss(&config(method), EPS, 0.0), adversarial, name);
        assert_close(loss(&config(method), EPS, 1.0), ibp, name);
    }
    let a = 0.3;
    let mtl = loss(&config(Method::MtlIbp), EPS, a);
    assert_close(mtl, (1.0 - a) * adversarial + a * ibp, "mtl-ibp at 0.3");
    let exp = loss(&config(Method::ExpIbp), EPS, a);
    assert_close(
        exp,
        adversarial.powf(1.0 - a) * ibp.powf(a),
        "exp-ibp at 0.3",
    );
    // a cross-entropy is convex in the logits: CC-IBP lies between the pure losses, below MTL-IBP
    let cc = loss(&config(Method::CcIbp), EPS, a);
    assert!(
        adversarial < cc && cc <= mtl + 1e-6,
        "cc-ibp {cc}, mtl-ibp {mtl}"
    );
}

#[test]
fn sabr_bounds_a_small_box_and_with_lambda_1_the_whole_ball() {
    let ibp = loss(&config(Method::Ibp), EPS, 1.0);
    let mut sabr = config(Method::Sabr);
    sabr.sabr.lambda = 1.0;
    assert_close(loss(&sabr, EPS, 1.0), ibp, "sabr, lambda 1");
    // IBP is monotone in the box: a smaller box, a smaller bound
    sabr.sabr.lambda = 0.4;
    let small = loss(&sabr, EPS, 1.0);
    assert!(small < ibp, "{small} vs {ibp}");
}

#[test]
fn warmup_regularisers_add_their_weighted_value_and_vanish_at_the_ramps_end() {
    let mut regularised = config(Method::Ibp);
    regularised.warmup_reg.lambda = 0.5;
    let eps = 0.25 * EPS;
    let plain = loss(&config(Method::Ibp), eps, 1.0);
    let device = device();
    let (net, x, y) = setup(&device);
    let set = InputSet::linf(x, eps as f32, InputDomain::Unit).unwrap();
    let (_, pre_relu) = margins_recording::<Interval>(&net, &set, y).unwrap();
    let warmup = Warmup::new(&set, &pre_relu, 0.5).unwrap().total();
    let warmup = warmup.into_scalar::<f32>() as f64;
    assert!(
        warmup > 0.0,
        "a seeded network's bounds are loose at the start"
    );
    // weight 0.5 (1 - eps_t / eps) = 0.375
    assert_close(loss(&regularised, eps, 1.0), plain + 0.375 * warmup, "ibp");
    let end = loss(&config(Method::Ibp), EPS, 1.0);
    assert_close(
        loss(&regularised, EPS, 1.0),
        end,
        "ibp at the end of the ramp",
    );
}

#[test]
fn mixtrain_bounds_the_small_boxes_of_its_k_points() {
    let mut ball = config(Method::Mixtrain);
    ball.domain = Some(mixtrain_bounds::DomainKind::Interval);
    ball.k = 3;
    let mut small = ball.clone();
    small.robust_set = RobustSet::SmallBox;
    small.sabr.lambda = 1.0;
    // the same k points (the same seed): a small box as large as the ball is the ball
    assert_close(loss(&small, EPS, 1.0), loss(&ball, EPS, 1.0), "lambda 1");
    small.sabr.lambda = 0.4;
    assert!(loss(&small, EPS, 1.0) < loss(&ball, EPS, 1.0));
}
