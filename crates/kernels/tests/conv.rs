//! Our convolution and transposed convolution against burn's `module::conv2d` and
//! `module::conv_transpose2d` on random shapes (odd sizes, padding, stride, batch 1 and batches
//! of several chunks, with and without bias): values on a plain flex device, and the gradients
//! of the input, weight and bias on an autodiff one. Both sides run on flex, where `conv2d` takes
//! our kernel (its unit tests check the route); ndarray, where it takes burn's, is the check
//! that the fallback is burn's own.

use burn::tensor::module;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use mixtrain_kernels::{conv_transpose2d, conv2d};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Case {
    n: usize,
    c_in: usize,
    c_out: usize,
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    bias: bool,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        (1usize..13, 1usize..5, 1usize..6),
        (
            [1usize..6, 1usize..6],
            [1usize..4, 1usize..4],
            [0usize..3, 0usize..3],
        ),
        ([0usize..10, 0usize..10], any::<bool>()),
    )
        .prop_map(
            |((n, c_in, c_out), (kernel, stride, padding), (extra, bias))| Case {
                n,
                c_in,
                c_out,
                // at least the kernel less the padding on each side
                input: [0, 1].map(|a| (kernel[a].saturating_sub(2 * padding[a])).max(1) + extra[a]),
                kernel,
                stride,
                padding,
                bias,
            },
        )
}

impl Case {
    fn options(&self) -> ConvOptions<2> {
        ConvOptions::new(self.stride, self.padding, [1, 1], 1)
    }

    /// The transposed convolution that is the adjoint of this case's convolution: from its
    /// output's shape back to its input's (the output padding restores the rows the stride
    /// dropped).
    fn transpose_options(&self) -> ConvTransposeOptions<2> {
        let padding_out =
            [0, 1].map(|a| (self.input[a] + 2 * self.padding[a] - self.kernel[a]) % self.stride[a]);
        ConvTransposeOptions::new(self.stride, self.padding, padding_out, [1, 1], 1)
    }

    /// `(y, weight)` for the transposed convolution, drawn on `device`: `y` has the shape of
    /// the convolution's output.
    fn transpose_tensors(&self, device: &Device) -> (Tensor<4>, Tensor<4>) {
        let (x, w, _) = self.tensors(device);
        let out = module::conv2d(x, w.clone(), None, self.options());
        let y = Tensor::random(out.dims(), Distribution::Uniform(-1.0, 1.0), device);
        (y, w)
    }

    /// `(x, weight, bias)` drawn on `device`.
    fn tensors(&self, device: &Device) -> (Tensor<4>, Tensor<4>, Option<Tensor<1>>) {
        let u = Distribution::Uniform(-1.0, 1.0);
        let [h, w] = self.input;
        let [kh, kw] = self.kernel;
        (
            Tensor::random([self.n, self.c_in, h, w], u, device),
            Tensor::random([self.c_out, self.c_in, kh, kw], u, device),
            self.bias.then(|| Tensor::random([self.c_out], u, device)),
        )
    }
}

fn assert_close<const D: usize>(ours: Tensor<D>, burns: Tensor<D>, what: &str) {
    assert_eq!(ours.dims(), burns.dims(), "{what}: shape");
    let (a, b) = (ours.into_data(), burns.into_data());
    let (a, b): (Vec<f32>, Vec<f32>) = (a.try_to_vec().unwrap(), b.try_to_vec().unwrap());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let tol = 1e-4 * (1.0 + y.abs());
        assert!((x - y).abs() <= tol, "{what}[{i}]: ours {x}, burn's {y}");
    }
}

/// The input, weight and bias gradients of `sum(conv(x) * r)` for a fixed random `r`.
fn grads(
    case: &Case,
    conv: fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvOptions<2>) -> Tensor<4>,
    (x, w, b): &(Tensor<4>, Tensor<4>, Option<Tensor<1>>),
    r: &Tensor<4>,
) -> (Tensor<4>, Tensor<4>, Option<Tensor<1>>) {
    let (x, w) = (x.clone().require_grad(), w.clone().require_grad());
    let b = b.clone().map(Tensor::require_grad);
    let grads = (conv(x.clone(), w.clone(), b.clone(), case.options()) * r.clone())
        .sum()
        .backward();
    (
        x.grad(&grads).expect("x's gradient"),
        w.grad(&grads).expect("weight's gradient"),
        b.map(|b| b.grad(&grads).expect("bias's gradient")),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn values_match_burns(case in cases()) {
        let device = Device::flex();
        let (x, w, b) = case.tensors(&device);
        let ours = conv2d(x.clone(), w.clone(), b.clone(), case.options());
        let burns = module::conv2d(x, w, b, case.options());
        assert_close(ours, burns, "output");
    }

    #[test]
    fn gradients_match_burns(case in cases()) {
        let device = Device::flex().autodiff();
        let inputs = case.tensors(&device);
        let out = module::conv2d(inputs.0.clone(), inputs.1.clone(), None, case.options());
        let r = Tensor::random(out.dims(), Distribution::Uniform(-1.0, 1.0), &device);
        let ours = grads(&case, conv2d, &inputs, &r);
        let burns = grads(&case, module::conv2d, &inputs, &r);
        assert_close(ours.0, burns.0, "input gradient");
        assert_close(ours.1, burns.1, "weight gradient");
        if let (Some(a), Some(b)) = (ours.2, burns.2) {
            assert_close(a, b, "bias gradient");
        }
    }
}

type Transpose = fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvTransposeOptions<2>) -> Tensor<4>;

/// The input and weight gradients of `sum(conv_transpose(y) * r)` for a fixed random `r`.
fn transpose_grads(
    case: &Case,
    transpose: Transpose,
    (y, w): &(Tensor<4>, Tensor<4>),
    r: &Tensor<4>,
) -> (Tensor<4>, Tensor<4>) {
    let (y, w) = (y.clone().require_grad(), w.clone().require_grad());
    let out = transpose(y.clone(), w.clone(), None, case.transpose_options());
    let grads = (out * r.clone()).sum().backward();
    (
        y.grad(&grads).expect("y's gradient"),
        w.grad(&grads).expect("weight's gradient"),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn transpose_values_match_burns(case in cases()) {
        let device = Device::flex();
        let (y, w) = case.transpose_tensors(&device);
        let ours = conv_transpose2d(y.clone(), w.clone(), None, case.transpose_options());
        let burns = module::conv_transpose2d(y, w, None, case.transpose_options());
        let [_, _, h, wd] = ours.dims();
        prop_assert_eq!([h, wd], case.input);
        assert_close(ours, burns, "output");
    }

    #[test]
    fn transpose_gradients_match_burns(case in cases()) {
        let device = Device::flex().autodiff();
        let inputs = case.transpose_tensors(&device);
        let shape = [case.n, case.c_in, case.input[0], case.input[1]];
        let r = Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), &device);
        let ours = transpose_grads(&case, conv_transpose2d, &inputs, &r);
        let burns = transpose_grads(&case, module::conv_transpose2d, &inputs, &r);
        assert_close(ours.0, burns.0, "input gradient");
        assert_close(ours.1, burns.1, "weight gradient");
    }
}

/// The transposed convolution is the convolution's adjoint: `<conv(x), y> = <x, conv^T(y)>`,
/// a check that does not lean on burn's kernel.
#[test]
fn transpose_is_the_adjoint() {
    let device = Device::flex();
    let case = Case {
        n: 3,
        c_in: 2,
        c_out: 5,
        input: [9, 8],
        kernel: [4, 3],
        stride: [2, 3],
        padding: [1, 2],
        bias: false,
    };
    let (x, w, _) = case.tensors(&device);
    let (y, _) = case.transpose_tensors(&device);
    let forward = (conv2d(x.clone(), w.clone(), None, case.options()) * y.clone()).sum();
    let adjoint = (x * conv_transpose2d(y, w, None, case.transpose_options())).sum();
    let (a, b): (f32, f32) = (forward.into_scalar(), adjoint.into_scalar());
    assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{a} against {b}");
}

/// A constant input (`x` without `require_grad`) gets no gradient, and the weight's is still
/// right: the rule registers only the parents that are tracked.
#[test]
fn untracked_input_gets_no_gradient() {
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::from_data(TensorData::new(vec![1.0f32; 2 * 9], [2, 1, 3, 3]), &device);
    let w = Tensor::<4>::from_data(TensorData::new(vec![1.0f32; 4], [1, 1, 2, 2]), &device)
        .require_grad();
    let out = conv2d(
        x.clone(),
        w.clone(),
        None,
        ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
    );
    let grads = out.sum().backward();
    assert!(x.grad(&grads).is_none());
    // 2 images, 4 output positions each, every input 1
    let dw: Vec<f32> = w.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
    assert_eq!(dw, vec![8.0; 4]);
}

/// A frozen network's weights are plain tensors under an input that is tracked: the input's
/// gradient through both kernels still matches burn's.
#[test]
fn frozen_weights_give_the_input_gradient() {
    let case = Case {
        n: 3,
        c_in: 2,
        c_out: 4,
        input: [8, 7],
        kernel: [3, 3],
        stride: [2, 1],
        padding: [1, 1],
        bias: true,
    };
    let plain = Device::flex();
    let (x, w, b) = case.tensors(&plain);
    let (y, _) = case.transpose_tensors(&plain);
    let input_grad = |tracked: Tensor<4>, out: Tensor<4>| {
        let grads = (out.clone() * out).sum().backward();
        tracked.grad(&grads).expect("the input's gradient")
    };
    let x = x.autodiff().require_grad();
    let ours = input_grad(
        x.clone(),
        conv2d(x.clone(), w.clone(), b.clone(), case.options()),
    );
    let burns = input_grad(x.clone(), module::conv2d(x, w.clone(), b, case.options()));
    assert_close(ours, burns, "conv2d input gradient");
    let y = y.autodiff().require_grad();
    let options = case.transpose_options();
    let ours = input_grad(
        y.clone(),
        conv_transpose2d(y.clone(), w.clone(), None, options.clone()),
    );
    let burns = input_grad(y.clone(), module::conv_transpose2d(y, w, None, options));
    assert_close(ours, burns, "conv_transpose2d input gradient");
}

/// On ndarray, `conv2d` is burn's own (the route's fallback) and agrees with it exactly.
#[test]
#[allow(deprecated)]
fn other_backends_run_burns_kernel() {
    let device = Device::ndarray();
    let case = Case {
        n: 2,
        c_in: 3,
        c_out: 4,
        input: [7, 5],
        kernel: [3, 2],
        stride: [2, 1],
        padding: [1, 0],
        bias: true,
    };
    let (x, w, b) = case.tensors(&device);
    let ours = conv2d(x.clone(), w.clone(), b.clone(), case.options());
    let burns = module::conv2d(x, w, b, case.options());
    assert_eq!(ours.into_data(), burns.into_data());
    let (y, w) = case.transpose_tensors(&device);
    let ours = conv_transpose2d(y.clone(), w.clone(), None, case.transpose_options());
    let burns = module::conv_transpose2d(y, w, None, case.transpose_options());
    assert_eq!(ours.into_data(), burns.into_data());
}

/// The gradients are the same to the bit on one thread and on three: chunks depend on the
/// shapes alone, and their parts are summed in order.
#[test]
fn gradients_do_not_depend_on_the_thread_count() {
    use mixtrain_kernels::im2col::{self, Geometry};
    let g = Geometry {
        n: 50,
        c_in: 16,
        input: [14, 14],
        c_out: 32,
        kernel: [4, 4],
        stride: [2, 2],
        padding: [1, 1],
        output: [7, 7],
    };
    let values = |len: usize, seed: u32| -> Vec<f32> {
        (0..len as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    };
    let x = values(50 * 16 * 14 * 14, 1);
    let dy = values(50 * 32 * 7 * 7, 2);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let (mut dw, mut db) = (vec![0.0; 32 * 16 * 16], vec![0.0; 32]);
        pool.install(|| im2col::weight_grad(&g, &x, &dy, &mut dw, Some(&mut db)));
        (dw, db)
    };
    let one = run(1);
    assert!(one.0.iter().any(|v| *v != 0.0));
    assert_eq!(one, run(3));
}
