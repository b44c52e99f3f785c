use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use mixtrain_nn::{Architecture, Layer, LayerSpec, Network};

use super::patches::conv_adjoint_at;
use super::sources::{chain_forward, sparse_columns_pay};
use super::*;
use crate::numeric::conv_adjoint;

/// Two convolutions with awkward geometry (padding, a stride that drops a row) and their
/// shapes: `[2, 9, 9] -> [3, 5, 5] -> [4, 2, 2]`.
fn two_convs(device: &Device) -> (Op, Op) {
    let conv = LayerSpec::conv2d;
    let arch = Architecture {
        name: "two-convs".into(),
        input: [2, 9, 9],
        classes: 2,
        layers: vec![
            conv("a", 2, 3, 3, 2, 1),
            LayerSpec::Relu,
            conv("b", 3, 4, 2, 2, 0),
            LayerSpec::Flatten,
            LayerSpec::Linear {
                name: "out".into(),
                in_features: 16,
                out_features: 2,
            },
        ],
    };
    let net = Network::init(&arch, 7, device).unwrap();
    let (Layer::Conv2d(a), Layer::Conv2d(b)) = (net.layers[0].clone(), net.layers[2].clone())
    else {
        unreachable!()
    };
    let conv = |conv, input, output| Op::Conv {
        conv,
        input,
        output,
    };
    (conv(a, [2, 9, 9], [3, 5, 5]), conv(b, [3, 5, 5], [4, 2, 2]))
}

/// A state whose only source is `radius`'s symbols through `ops`: lazily (pushed step by
/// step, as the domain's rules do), or as dense rows.
fn state(radius: &Tensor<2>, ops: &[Op], d: usize, lazy: bool) -> Symbolic {
    let [n, d_s] = radius.dims();
    let device = radius.device();
    let centre = Tensor::zeros([n, d], &device);
    if lazy {
        let input = Symbolic {
            centre: centre.clone(),
            ops: Vec::new(),
            sources: vec![Source::chain(radius.clone(), 0)],
            drift: None,
        };
        return ops
            .iter()
            .fold(input, |state, op| state.append(centre.clone(), op.clone()));
    }
    let identity = Tensor::<2>::eye(d_s, &device).unsqueeze_dim(0);
    Symbolic {
        centre,
        ops: Vec::new(),
        sources: vec![Source {
            radius: radius.clone(),
            coeffs: Coeffs::Dense(chain_forward(identity, ops)),
            symbols: None,
        }],
        drift: None,
    }
}

/// The convolution of a step and its input and output shapes.
fn conv_of(op: &Op) -> (&Conv2d, [usize; 3], [usize; 3]) {
    match op {
        Op::Conv {
            conv,
            input,
            output,
        } => (conv, *input, *output),
        Op::Scale(_) => panic!("not a convolution"),
    }
}

fn assert_close(a: Tensor<2>, b: Tensor<2>) {
    let gap: f32 = (a.clone() - b).abs().max().into_scalar();
    let scale: f32 = a.abs().max().into_scalar();
    assert!(gap <= 1e-5 * (1.0 + scale), "gap {gap} at scale {scale}");
}

#[test]
fn patches_and_back_substituted_rows_equal_the_dense_coefficients() {
    let device = Device::flex();
    let (a, b) = two_convs(&device);
    let n = 3;
    let radius = Tensor::<2>::random([n, 162], Distribution::Uniform(0.0, 1.0), &device);
    let slopes = Tensor::<2>::random([n, 75], Distribution::Uniform(0.0, 1.0), &device);
    let ops = vec![a, Op::Scale(slopes), b];
    for (ops, d) in [(&ops[..1], 75), (&ops[..], 16)] {
        let (_, spread) = state(&radius, ops, d, true).concretize();
        let (_, expected) = state(&radius, ops, d, false).concretize();
        assert_close(spread, expected);
    }

    let rows = Tensor::<3>::random([n, 5, 16], Distribution::Uniform(-1.0, 1.0), &device);
    let lazy = state(&radius, &ops, 16, true)
        .back_substitute(rows.clone())
        .remove(0);
    let expected = state(&radius, &ops, 16, false)
        .back_substitute(rows)
        .remove(0);
    assert_close(
        lazy.rows.reshape([n * 5, 162]),
        expected.rows.reshape([n * 5, 162]),
    );
}

#[test]
fn columns_of_a_few_neurons_equal_the_transposed_convolution() {
    let device = Device::flex();
    let (a, b) = two_convs(&device);
    for op in [&a, &b] {
        let (conv, input, output) = conv_of(op);
        let d_out = output.iter().product::<usize>();
        let d_in = input.iter().product::<usize>();
        for b in [1, 3] {
            let rows =
                Tensor::<3>::random([b, 4, d_out], Distribution::Uniform(-1.0, 1.0), &device);
            // every neuron once, in a different order per point, then a repeat
            let neurons = Tensor::<2, Int>::from_data(
                TensorData::new(
                    (0..3)
                        .flat_map(|i| (0..d_in).map(move |j| ((j * 7 + i) % d_in) as i64))
                        .collect::<Vec<_>>(),
                    [3, d_in],
                ),
                &device,
            );
            let columns = conv_adjoint_at(rows.clone(), conv, input, output, neurons.clone());
            let dense = conv_adjoint(rows, conv, input, output)
                .expand([3, 4, d_in])
                .gather(2, neurons.unsqueeze_dim::<3>(1).expand([3, 4, d_in]));
            assert_close(columns.reshape([12, d_in]), dense.reshape([12, d_in]));
        }
    }
}

#[test]
fn a_few_live_error_symbols_back_substitute_exactly() {
    let device = Device::flex();
    let (_, b) = two_convs(&device);
    let n = 2;
    // two live symbols per point: the sparse columns are used
    let mut radius = vec![0.0f32; n * 75];
    for (i, j) in [(0, 3), (0, 40), (1, 74), (1, 12)] {
        radius[i * 75 + j] = 0.5 + j as f32 / 100.0;
    }
    let radius = Tensor::<2>::from_data(TensorData::new(radius, [n, 75]), &device);
    let (conv, input, _) = conv_of(&b);
    assert!(sparse_columns_pay(conv, input, 2));
    let ops = vec![b];
    let rows = Tensor::<3>::random([n, 5, 16], Distribution::Uniform(-1.0, 1.0), &device);
    let sparse = state(&radius, &ops, 16, true)
        .back_substitute(rows.clone())
        .remove(0);
    let expected = state(&radius, &ops, 16, false)
        .back_substitute(rows)
        .remove(0);
    let symbols = sparse.symbols.expect("compacted");
    let expected = expected
        .rows
        .gather(2, symbols.unsqueeze_dim::<3>(1).expand([n, 5, 2]));
    assert_close(
        sparse.rows.reshape([n * 5, 2]),
        expected.reshape([n * 5, 2]),
    );
}

#[test]
fn columns_of_a_few_neurons_have_the_transposed_convolutions_gradients() {
    let device = Device::flex().autodiff();
    let (_, b) = two_convs(&device);
    let (conv, input, output) = conv_of(&b);
    let n = 2;
    let rows =
        Tensor::<3>::random([n, 4, 16], Distribution::Uniform(-1.0, 1.0), &device).require_grad();
    let neurons = Tensor::<2, Int>::from_data(
        TensorData::new(vec![3i64, 40, 41, 74, 12, 0], [n, 3]),
        &device,
    );
    let probe = Tensor::<3>::random([n, 4, 3], Distribution::Uniform(-1.0, 1.0), &device);
    let columns = conv_adjoint_at(rows.clone(), conv, input, output, neurons.clone());
    let dense = conv_adjoint(rows.clone(), conv, input, output)
        .gather(2, neurons.unsqueeze_dim::<3>(1).expand([n, 4, 3]));
    let gradients = |values: Tensor<3>| {
        let grads = (values * probe.clone()).sum().backward();
        let weight = conv.weight.val().grad(&grads).unwrap().reshape([4, 12]);
        (rows.grad(&grads).unwrap().reshape([n * 4, 16]), weight)
    };
    let ((rows_a, weight_a), (rows_b, weight_b)) = (gradients(columns), gradients(dense));
    assert_close(rows_a, rows_b);
    assert_close(weight_a, weight_b);
}
