//! Networks for verifiable training.
//!
//! A [`Network`] is a sequence of layers ([`Layer`]: input normalisation, `Conv2d`, `Linear`,
//! `ReLU`, `Flatten`, `AvgPool2d`, `BatchNorm2d`, and residual blocks whose path is again such a
//! sequence) stored as a burn `Module`, so that it trains with burn's
//! optimisers, saves with burn's records, and stays simple enough for the bounds engine to walk
//! layer by layer. Its shape is described by an [`Architecture`] (serialisable, checked once when
//! the network is built), and the paper's models come by name from the [`zoo`].
//!
//! Weights travel as safetensors in PyTorch's layout (`<layer>.weight` / `<layer>.bias`,
//! `Linear` weights as `[out, in]`), the layout of the MixTrain authors' released networks, so
//! that a network trained here opens in PyTorch and theirs open here.
//!
//! ```
//! use burn::tensor::Tensor;
//! use mixtrain_nn::{Backend, Network, zoo};
//!
//! let device = Backend::Flex.device(None)?;
//! let net = Network::init(&zoo::architecture("mnist_small")?, 0, &device)?;
//! let logits = net.forward(Tensor::zeros([1, 1, 28, 28], &device));
//! assert_eq!(logits.dims(), [1, 10]);
//!
//! // out in PyTorch's layout, and back in
//! let path = std::env::temp_dir().join("mixtrain-nn-doctest.safetensors");
//! net.save_safetensors(&path)?;
//! let back = Network::load_safetensors(net.architecture(), &path, &device)?;
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), mixtrain_nn::NnError>(())
//! ```

#![warn(missing_docs)]

mod arch;
mod backend;
mod error;
mod network;
mod pytorch;
mod weights;
pub mod zoo;

pub use arch::{ActShape, Architecture, LayerSpec};
pub use backend::{Backend, adapter_name};
/// burn's run-time device, re-exported so that users need not name burn to pick one.
pub use burn::tensor::Device;
pub use error::NnError;
pub use network::{
    AvgPool2d, BatchNorm2d, Conv2d, Flatten, Init, Layer, Linear, Network, Normalize, Relu,
    Residual, visit_layers,
};
pub use weights::write_atomic;
