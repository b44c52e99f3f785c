//! MixTrain-rs: verifiably robust training of neural networks on burn.
//!
//! This facade re-exports the workspace's crates, each of which can also be used alone:
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`nn`] | `mixtrain-nn` | networks, the model zoo, weights I/O, backends |
//! | [`bounds`] | `mixtrain-bounds` | sound bound propagation |
//! | [`loss`] | `mixtrain-loss` | losses and schedules |
//! | [`attack`] | `mixtrain-attack` | adversarial attacks |
//! | [`data`] | `mixtrain-data` | dataset manifests, fetching, readers, batching |
//! | [`train`] | `mixtrain-train` | the trainer |
//! | [`interop`] | `mixtrain-interop` | ONNX export, VNN-LIB properties |

pub use mixtrain_attack as attack;
pub use mixtrain_bounds as bounds;
pub use mixtrain_data as data;
pub use mixtrain_interop as interop;
pub use mixtrain_loss as loss;
pub use mixtrain_nn as nn;
pub use mixtrain_train as train;
