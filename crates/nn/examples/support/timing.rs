//! What the timing examples share (`#[path]`-included: cargo takes only `examples/*.rs` and
//! `examples/*/main.rs` for examples).

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

/// Runs timed per figure, after 3 untimed.
pub const REPS: usize = 30;

/// The median wall time of `f` on `device` in milliseconds (the device synchronised before the
/// clock stops, for the GPU backends).
pub fn median_ms(device: &Device, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut times: Vec<f64> = (0..REPS)
        .map(|_| {
            let start = Instant::now();
            f();
            device.sync().expect("device sync");
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[REPS / 2]
}

/// Uniform values in `[-1, 1]`.
pub fn rand<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), device)
}
