//! Weights I/O: safetensors in PyTorch's layout, and the project's own checkpoints (burn
//! records, which keep parameter ids so that optimiser state can be restored with them).

use std::collections::HashMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::{Architecture, Layer, Network, NnError};

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced, then
/// renamed over `path`. A reader (or a run killed half-way) sees the old file or the new one,
/// never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NnError + '_ {
    move |source| NnError::Io {
        path: path.into(),
        source,
    }
}

fn listing(items: impl IntoIterator<Item = (String, Vec<usize>)>) -> String {
    let mut items: Vec<String> = items
        .into_iter()
        .map(|(n, s)| format!("{n} {s:?}"))
        .collect();
    items.sort();
    items.join(", ")
}

impl Network {
    /// Loads PyTorch-layout safetensors (`<layer>.weight`, `<layer>.bias`, float32). On any
    /// mismatch the error lists the expected and the found tensor names and shapes.
    pub fn load_safetensors(
        arch: &Architecture,
        path: &Path,
        device: &Device,
    ) -> Result<Self, NnError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| NnError::Format {
            path: path.into(),
            message: e.to_string(),
        })?;
        let params = arch.parameters();
        let expected = || {
            listing(params.iter().flat_map(|(n, w, b)| {
                [
                    (format!("{n}.weight"), w.clone()),
                    (format!("{n}.bias"), vec![*b]),
                ]
            }))
        };
        let found = || {
            listing(
                st.tensors()
                    .into_iter()
                    .map(|(n, v)| (n, v.shape().to_vec())),
            )
        };
        let mismatch = |message: String| NnError::Mismatch {
            path: path.into(),
            model: arch.name.clone(),
            message,
            expected: expected(),
            found: found(),
        };
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>, NnError> {
            let view = st
                .tensor(name)
                .map_err(|_| mismatch(format!("tensor {name} is missing")))?;
            if view.dtype() != Dtype::F32 {
                return Err(mismatch(format!(
                    "tensor {name} is {:?}, expected F32",
                    view.dtype()
                )));
            }
            if view.shape() != shape {
                return Err(mismatch(format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    view.shape()
                )));
            }
            Ok(view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let mut triples = Vec::with_capacity(params.len());
        for (name, wshape, blen) in &params {
            let w = read(&format!("{name}.weight"), wshape)?;
            let b = read(&format!("{name}.bias"), &[*blen])?;
            triples.push((w, wshape.clone(), b));
        }
        let known: std::collections::HashSet<String> = params
            .iter()
            .flat_map(|(n, _, _)| [format!("{n}.weight"), format!("{n}.bias")])
            .collect();
        if let Some(extra) = st.names().into_iter().find(|n| !known.contains(*n)) {
            return Err(mismatch(format!("unexpected tensor {extra}")));
        }
        for (w, _, b) in &triples {
            if w.iter().chain(b).any(|v| !v.is_finite()) {
                return Err(mismatch("weights contain NaN or infinite values".into()));
            }
        }
        Network::from_pytorch(arch, triples.into_iter(), device)
    }

    /// Writes PyTorch-layout safetensors (atomically), loadable by [`Network::load_safetensors`]
    /// and by `safetensors.torch.load_file` into a module with the same layer names. The model
    /// name is stored in the header metadata (`mixtrain.model`).
    pub fn save_safetensors(&self, path: &Path) -> Result<(), NnError> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let to_bytes = |data: burn::tensor::TensorData| -> Vec<u8> {
            data.try_to_vec::<f32>()
                .expect("network parameters are float32")
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect()
        };
        let names = self.architecture().parameters();
        let affine = self
            .layers
            .iter()
            .filter(|l| matches!(l, Layer::Conv2d(_) | Layer::Linear(_)));
        for ((name, wshape, blen), layer) in names.iter().zip(affine) {
            let (w, b) = match layer {
                Layer::Conv2d(c) => (c.weight.val().into_data(), c.bias.val()),
                // burn keeps [in, out]; PyTorch's layout is [out, in]
                Layer::Linear(l) => (l.weight.val().transpose().into_data(), l.bias.val()),
                _ => unreachable!("filtered to affine layers"),
            };
            tensors.push((format!("{name}.weight"), wshape.clone(), to_bytes(w)));
            tensors.push((format!("{name}.bias"), vec![*blen], to_bytes(b.into_data())));
        }
        let views = tensors
            .iter()
            .map(|(n, s, d)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), d)?)))
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
            .map_err(|e| NnError::Format {
                path: path.into(),
                message: e.to_string(),
            })?;
        let meta = HashMap::from([(
            "mixtrain.model".to_string(),
            self.architecture().name.clone(),
        )]);
        let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| NnError::Format {
            path: path.into(),
            message: e.to_string(),
        })?;
        write_atomic(path, &bytes).map_err(io(path))
    }

    /// Writes a checkpoint of the parameters (burn record, keeping parameter ids), atomically.
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), NnError> {
        let bytes = self
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| NnError::Checkpoint {
                path: path.into(),
                model: self.architecture().name.clone(),
                message: e.to_string(),
            })?;
        write_atomic(path, &bytes).map_err(io(path))
    }

    /// Loads a checkpoint written by [`Network::save_checkpoint`] for the same architecture.
    pub fn load_checkpoint(
        arch: &Architecture,
        path: &Path,
        device: &Device,
    ) -> Result<Self, NnError> {
        let err = |message: String| NnError::Checkpoint {
            path: path.into(),
            model: arch.name.clone(),
            message,
        };
        let bytes = std::fs::read(path).map_err(io(path))?;
        let record =
            burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
                .map_err(|e| err(e.to_string()))?;
        Network::init(arch, 0, device)?
            .try_load_record(record)
            .map_err(|e| err(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, zoo};
    use burn::tensor::Tensor;

    fn params(net: &Network) -> Vec<f32> {
        let mut all = Vec::new();
        for layer in &net.layers {
            let (w, b) = match layer {
                Layer::Conv2d(c) => (c.weight.val().into_data(), c.bias.val().into_data()),
                Layer::Linear(l) => (l.weight.val().into_data(), l.bias.val().into_data()),
                _ => continue,
            };
            all.extend(w.try_to_vec::<f32>().unwrap());
            all.extend(b.try_to_vec::<f32>().unwrap());
        }
        all
    }

    fn assert_same(a: &Network, b: &Network, device: &Device) {
        assert_eq!(params(a), params(b), "parameters survive bit for bit");
        let (la, lb) = (logits(a, device), logits(b, device));
        let worst = la
            .iter()
            .zip(&lb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "logits differ by {worst}");
    }

    fn logits(net: &Network, device: &Device) -> Vec<f32> {
        let x = Tensor::<4>::from_data(
            burn::tensor::TensorData::new(
                (0..784)
                    .map(|i| (i % 17) as f32 / 17.0)
                    .collect::<Vec<f32>>(),
                [1, 1, 28, 28],
            ),
            device,
        );
        net.forward(x).into_data().try_to_vec().unwrap()
    }

    #[test]
    fn safetensors_round_trip_in_pytorch_layout() {
        let device = Backend::Flex.device(None).unwrap();
        let arch = zoo::architecture("mnist_small").unwrap();
        let net = Network::init(&arch, 3, &device).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        net.save_safetensors(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(
            st.tensor("fc1.weight").unwrap().shape(),
            [100, 1568],
            "PyTorch [out, in]"
        );
        assert_eq!(st.tensor("conv1.weight").unwrap().shape(), [16, 1, 4, 4]);
        let back = Network::load_safetensors(&arch, &path, &device).unwrap();
        assert_same(&net, &back, &device);
    }

    #[test]
    fn checkpoint_round_trip() {
        let device = Backend::Flex.device(None).unwrap();
        let arch = zoo::architecture("mnist_small").unwrap();
        let net = Network::init(&arch, 5, &device).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bpk");
        net.save_checkpoint(&path).unwrap();
        let back = Network::load_checkpoint(&arch, &path, &device).unwrap();
        assert_same(&net, &back, &device);
        std::fs::write(&path, b"garbage").unwrap();
        let e = Network::load_checkpoint(&arch, &path, &device)
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.bpk"), "{e}");
    }

    #[test]
    fn mismatched_weights_list_expected_and_found() {
        let device = Backend::Flex.device(None).unwrap();
        let small = zoo::architecture("mnist_small").unwrap();
        let large = zoo::architecture("mnist_large").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.safetensors");
        Network::init(&small, 1, &device)
            .unwrap()
            .save_safetensors(&path)
            .unwrap();
        let e = Network::load_safetensors(&large, &path, &device)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("small.safetensors") && e.contains("mnist_large"),
            "{e}"
        );
        assert!(
            e.contains("expected:") && e.contains("fc3.weight [10, 512]"),
            "{e}"
        );
        assert!(
            e.contains("found:") && e.contains("fc2.weight [10, 100]"),
            "{e}"
        );

        std::fs::write(&path, b"\x08\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
        assert!(Network::load_safetensors(&small, &path, &device).is_err());
        std::fs::write(&path, b"not safetensors").unwrap();
        let e = Network::load_safetensors(&small, &path, &device)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid safetensors"), "{e}");
    }
}
