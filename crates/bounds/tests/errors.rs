//! Bad input gets a clear error, never a panic or silently unsound bounds: boxes with
//! `lower > upper` or NaNs, input sets that do not fit the network, networks assembled by hand
//! with layers that cannot take their input, and domains without a layer's rule.

use burn::tensor::{Device, Int, Tensor, TensorData};
use mixtrain_bounds::{BoundsError, Domain, DomainKind, InputDomain, InputSet};
use mixtrain_nn::{Backend, Layer, Linear, Network, zoo};

fn device() -> Device {
    Backend::Flex.device(None).unwrap()
}

fn mnist_small() -> Network {
    Network::init(&zoo::architecture("mnist_small").unwrap(), 0, &device()).unwrap()
}

fn labels(values: Vec<i64>) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), &device())
}

#[test]
fn a_box_with_lower_above_upper_or_a_nan_is_refused() {
    let dev = device();
    let x = Tensor::<4>::full([2, 1, 28, 28], 0.5, &dev);
    assert!(InputSet::new(x.clone() - 0.1, x.clone() + 0.1).is_ok());
    assert!(
        InputSet::new(x.clone(), x.clone()).is_ok(),
        "a point is a box"
    );

    let e = InputSet::new(x.clone() + 0.1, x.clone())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("1568 coordinates") && e.contains("lower > upper"),
        "{e}"
    );

    let mut values = vec![0.5f32; 2 * 784];
    values[3] = f32::NAN;
    let nan = Tensor::<4>::from_data(TensorData::new(values, [2, 1, 28, 28]), &dev);
    let e = InputSet::new(nan, x.clone() + 0.1).unwrap_err().to_string();
    assert!(e.contains("1 coordinates") && e.contains("NaN"), "{e}");

    let e = InputSet::new(x.clone(), Tensor::zeros([2, 1, 28, 27], &dev))
        .unwrap_err()
        .to_string();
    assert!(e.contains("differ in shape"), "{e}");
}

#[test]
fn an_input_set_of_the_wrong_shape_or_label_count_is_an_error() {
    let net = mnist_small();
    let set = InputSet::linf(
        Tensor::zeros([2, 3, 28, 28], &device()),
        0.1,
        InputDomain::Unit,
    )
    .unwrap();
    for domain in DomainKind::ALL {
        let e = domain.margins(&net, &set, labels(vec![0, 1])).unwrap_err();
        assert!(
            e.to_string().contains("[1, 28, 28]") && e.to_string().contains("[3, 28, 28]"),
            "{domain}: {e}"
        );
    }
    let set = InputSet::linf(
        Tensor::zeros([2, 1, 28, 28], &device()),
        0.1,
        InputDomain::Unit,
    )
    .unwrap();
    let e = DomainKind::Symbolic
        .margins(&net, &set, labels(vec![0]))
        .unwrap_err();
    assert!(e.to_string().contains("1 labels for 2 boxes"), "{e}");
}

#[test]
fn a_hand_assembled_network_whose_layer_cannot_take_its_input_is_an_error() {
    let mut net = mnist_small();
    // without the flatten, the first linear layer receives an image
    let flatten = net
        .layers
        .iter()
        .position(|l| matches!(l, Layer::Flatten(_)))
        .unwrap();
    net.layers.remove(flatten);
    let set = InputSet::linf(
        Tensor::zeros([1, 1, 28, 28], &device()),
        0.1,
        InputDomain::Unit,
    )
    .unwrap();
    for domain in DomainKind::ALL {
        let e = domain.margins(&net, &set, labels(vec![0])).unwrap_err();
        assert!(
            matches!(
                e,
                BoundsError::Shape {
                    layer: "linear",
                    ..
                }
            ),
            "{domain}: {e}"
        );
    }
}

/// A domain with no rules of its own beyond the required ones.
#[derive(Clone)]
struct Bare;

impl Domain for Bare {
    const NAME: &'static str = "bare";
    fn input(set: &InputSet) -> Self {
        let _ = set;
        Bare
    }
    fn margins(self, _last: &Linear, _labels: &Tensor<1, Int>) -> Result<Tensor<2>, BoundsError> {
        unreachable!("the convolution comes first")
    }
    fn concretize(&self) -> (Tensor<2>, Tensor<2>) {
        unreachable!()
    }
    fn device(&self) -> Device {
        device()
    }
}

#[test]
fn a_layer_without_a_rule_is_an_error_naming_layer_and_domain() {
    let net = mnist_small();
    let set = InputSet::linf(
        Tensor::zeros([1, 1, 28, 28], &device()),
        0.1,
        InputDomain::Unit,
    )
    .unwrap();
    let e = mixtrain_bounds::margins::<Bare>(&net, &set, labels(vec![0]))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "layer conv2d has no rule in domain bare");
}
