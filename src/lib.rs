//! MixTrain-rs: verifiably robust training of neural networks on burn.
//!
//! This facade re-exports the workspace's crates, each of which can also be used alone:
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`kernels`] | `mixtrain-kernels` | CPU kernels (the convolution on flex) |
//! | [`nn`] | `mixtrain-nn` | networks, the model zoo, weights I/O, backends |
//! | [`bounds`] | `mixtrain-bounds` | sound bound propagation |
//! | [`loss`] | `mixtrain-loss` | losses and schedules |
//! | [`attack`] | `mixtrain-attack` | adversarial attacks |
//! | [`data`] | `mixtrain-data` | dataset manifests, fetching, readers, batching |
//! | [`train`] | `mixtrain-train` | the trainer |
//! | [`interop`] | `mixtrain-interop` | ONNX export, VNN-LIB properties |
//! | [`plot`] | `mixtrain-plot` | SVG charts of curves and sweeps |
//! Verifying a network with the authors' weights takes a handful of lines (here a seeded
//! `mnist_small`, since weight files live outside the repository):
//!
//! ```
//! use mixtrain::bounds::{DomainKind, InputDomain, InputSet};
//! use mixtrain::nn::{Backend, Network, zoo};
//!
//! let device = Backend::Flex.device(None)?;
//! let net = Network::init(&zoo::architecture("mnist_small")?, 0, &device)?;
//! // or, trained: Network::load_safetensors(&arch, "net.safetensors".as_ref(), &device)?
//! let x = burn::tensor::Tensor::<4>::full([1, 1, 28, 28], 0.2, &device);
//! let labels = net.forward(x.clone()).argmax(1).squeeze_dim::<1>(1);
//! let set = InputSet::linf(x, 0.01, InputDomain::Unit)?;
//! let verified = DomainKind::Best.margins(&net, &set, labels)?.verified();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub use mixtrain_attack as attack;
pub use mixtrain_bounds as bounds;
pub use mixtrain_data as data;
pub use mixtrain_interop as interop;
pub use mixtrain_kernels as kernels;
pub use mixtrain_loss as loss;
pub use mixtrain_nn as nn;
pub use mixtrain_plot as plot;
pub use mixtrain_train as train;
