//! Networks and properties that travel to other tools.
//!
//! - [`to_onnx`]: a `mixtrain-nn` [`Network`](mixtrain_nn::Network) as a standard ONNX model
//!   (opset 13), normalisation, batch norm and residual blocks included, for onnxruntime,
//!   PyTorch and the verifiers of VNN-COMP (alpha-beta-CROWN reads ONNX networks);
//! - [`Robustness`]: the L_inf robustness property of one point in VNN-LIB, and
//!   [`instances_csv`], VNN-COMP's instance list, so that a network trained here can be checked
//!   by the strongest complete verifiers of the field.
//!
//! The ONNX writer encodes the protobuf messages itself (a few dozen lines): no protobuf
//! compiler, no C++ library.
//!
//! ```
//! use mixtrain_interop::{Robustness, to_onnx};
//! use mixtrain_nn::{Backend, Network, zoo};
//!
//! let device = Backend::Flex.device(None)?;
//! let net = Network::init(&zoo::architecture("mnist_small")?, 0, &device)?;
//! let onnx: Vec<u8> = to_onnx(&net); // write it to `net.onnx`
//!
//! let image = vec![0.5f32; 28 * 28];
//! let property = Robustness { x: &image, eps: 0.1, clip: (0.0, 1.0), label: 7, classes: 10 };
//! let vnnlib = property.to_vnnlib("test image 0");
//! assert!(vnnlib.contains("(assert (<= X_0 0.6))"));
//! # Ok::<(), mixtrain_nn::NnError>(())
//! ```

#![warn(missing_docs)]

mod file;
mod onnx;
mod onnx_import;
mod protobuf;
mod vnnlib;
mod vnnlib_read;

pub use file::stem;
pub use onnx::{OPSET, to_onnx};
pub use onnx_import::{OnnxError, onnx_network, read_onnx};
pub use vnnlib::{Instance, Robustness, instances_csv};
pub use vnnlib_read::{Constraint, Property, Region, VnnlibError, parse_vnnlib, read_vnnlib};
