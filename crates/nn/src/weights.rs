//! Weights I/O: safetensors in PyTorch's layout, and the project's own checkpoints (burn
//! records, which keep parameter ids so that optimiser state can be restored with them).

use std::collections::HashMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::pytorch::Named;
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

/// Every parameter tensor in PyTorch's layout, in [`Architecture::tensors`] order.
fn pytorch_values(layers: &[Layer], out: &mut Vec<burn::tensor::TensorData>) {
    for layer in layers {
        match layer {
            Layer::Conv2d(c) => {
                out.push(c.weight.val().into_data());
                out.push(c.bias.val().into_data());
            }
            // burn keeps [in, out]; PyTorch's layout is [out, in]
            Layer::Linear(l) => {
                out.push(l.weight.val().transpose().into_data());
                out.push(l.bias.val().into_data());
            }
            Layer::BatchNorm2d(b) => {
                for t in [&b.weight, &b.bias, &b.running_mean, &b.running_var] {
                    out.push(t.val().into_data());
                }
            }
            Layer::Residual(r) => {
                pytorch_values(&r.path, out);
                if let Some(c) = &r.skip {
                    out.push(c.weight.val().into_data());
                    out.push(c.bias.val().into_data());
                }
            }
            Layer::Normalize(_) | Layer::Relu(_) | Layer::Flatten(_) | Layer::AvgPool2d(_) => {}
        }
    }
}

/// Builds `arch` from stored PyTorch-layout tensors, matched by layer name, else by
/// `nn.Sequential` index (normalisation counted or not). On any mismatch the error lists the
/// expected and the found tensor names and shapes.
fn assign(
    arch: &Architecture,
    path: &Path,
    stored: Vec<Named>,
    device: &Device,
) -> Result<Network, NnError> {
    let params = arch.tensors();
    let mut stored: HashMap<String, (Vec<usize>, Vec<f32>)> = stored
        .into_iter()
        .map(|(name, shape, values)| (name, (shape, values)))
        .collect();
    let by_layer: Vec<String> = params.iter().map(|(n, _)| n.clone()).collect();
    let names = [
        Some(by_layer.clone()),
        arch.sequential_names(true),
        arch.sequential_names(false),
    ]
    .into_iter()
    .flatten()
    .find(|names| names.iter().all(|n| stored.contains_key(n)))
    .unwrap_or(by_layer);
    let expected = || {
        let sequential = arch
            .sequential_names(false)
            .map(|s| format!(" (or by nn.Sequential index: {})", s.join(", ")))
            .unwrap_or_default();
        format!("{}{sequential}", listing(params.iter().cloned()))
    };
    let found = listing(stored.iter().map(|(n, (s, _))| (n.clone(), s.clone())));
    let mismatch = |message: String| NnError::Mismatch {
        path: path.into(),
        model: arch.name.clone(),
        message,
        expected: expected(),
        found: found.clone(),
    };
    let mut tensors = HashMap::with_capacity(params.len());
    for (name_stored, (name, shape)) in names.iter().zip(&params) {
        let (stored_shape, values) = stored
            .remove(name_stored)
            .ok_or_else(|| mismatch(format!("tensor {name_stored} is missing")))?;
        if &stored_shape != shape {
            return Err(mismatch(format!(
                "tensor {name_stored} has shape {stored_shape:?}, expected {shape:?}"
            )));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(mismatch(format!(
                "tensor {name_stored} contains NaN or infinite values"
            )));
        }
        tensors.insert(name.clone(), values);
    }
    let mut extra: Vec<&String> = stored.keys().collect();
    extra.sort();
    if let Some(extra) = extra.first() {
        return Err(mismatch(format!("unexpected tensor {extra}")));
    }
    Network::from_pytorch(arch, tensors, device)
}

impl Network {
    /// Every parameter and running statistic as `(name, shape, values)` in PyTorch's layout
    /// ([`Architecture::tensors`]'s names, order and shapes): what safetensors and ONNX exports
    /// write.
    pub fn pytorch_tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut values = Vec::new();
        pytorch_values(&self.layers, &mut values);
        self.architecture()
            .tensors()
            .into_iter()
            .zip(values)
            .map(|((name, shape), data)| {
                let values = data
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("converted to float32");
                (name, shape, values)
            })
            .collect()
    }

    /// Builds `arch` from PyTorch-layout tensors `(name, shape, values)` that came from
    /// `source` (a converted ONNX model, say): the checks and errors of
    /// [`Network::load_safetensors`], with `source` named in them.
    pub fn from_tensors(
        arch: &Architecture,
        source: &Path,
        tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
        device: &Device,
    ) -> Result<Self, NnError> {
        assign(arch, source, tensors, device)
    }

    /// Loads PyTorch-layout weights, safetensors or a legacy `.pth` state dict, told apart by
    /// their first bytes (see [`Network::load_safetensors`] and [`Network::load_pytorch`]).
    pub fn load_weights(
        arch: &Architecture,
        path: &Path,
        device: &Device,
    ) -> Result<Self, NnError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        // a pickle starts with its PROTO opcode, PyTorch's zip format with "PK"
        if bytes.first() == Some(&0x80) || bytes.starts_with(b"PK") {
            Self::from_pytorch_bytes(arch, path, &bytes, device)
        } else {
            Self::from_safetensors_bytes(arch, path, &bytes, device)
        }
    }

    /// Loads PyTorch-layout safetensors (`<layer>.weight`, `<layer>.bias`, float32). On any
    /// mismatch the error lists the expected and the found tensor names and shapes.
    pub fn load_safetensors(
        arch: &Architecture,
        path: &Path,
        device: &Device,
    ) -> Result<Self, NnError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        Self::from_safetensors_bytes(arch, path, &bytes, device)
    }

    /// Loads a state dict saved by PyTorch's legacy `torch.save` (before 1.6, the format of the
    /// MixTrain authors' `.pth` files): float32 tensors named as in `load_safetensors`. Only
    /// the tensors are read; a pickled module or any other object is refused, never run.
    pub fn load_pytorch(
        arch: &Architecture,
        path: &Path,
        device: &Device,
    ) -> Result<Self, NnError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        Self::from_pytorch_bytes(arch, path, &bytes, device)
    }

    fn from_pytorch_bytes(
        arch: &Architecture,
        path: &Path,
        bytes: &[u8],
        device: &Device,
    ) -> Result<Self, NnError> {
        let stored = crate::pytorch::read_state_dict(bytes).map_err(|message| NnError::Format {
            path: path.into(),
            message,
        })?;
        assign(arch, path, stored, device)
    }

    fn from_safetensors_bytes(
        arch: &Architecture,
        path: &Path,
        bytes: &[u8],
        device: &Device,
    ) -> Result<Self, NnError> {
        let format = |message: String| NnError::Format {
            path: path.into(),
            message,
        };
        let st = SafeTensors::deserialize(bytes).map_err(|e| format(e.to_string()))?;
        let mut stored = Vec::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(format(format!(
                    "tensor {name} is {:?}, expected F32",
                    view.dtype()
                )));
            }
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            stored.push((name, view.shape().to_vec(), values));
        }
        assign(arch, path, stored, device)
    }

    /// Writes PyTorch-layout safetensors (atomically), loadable by [`Network::load_safetensors`]
    /// and by `safetensors.torch.load_file` into a module with the same layer names. The model
    /// name is stored in the header metadata (`mixtrain.model`).
    pub fn save_safetensors(&self, path: &Path) -> Result<(), NnError> {
        let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .pytorch_tensors()
            .into_iter()
            .map(|(name, shape, values)| {
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                (name, shape, bytes)
            })
            .collect();
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
        let [c, h, w] = net.architecture().input;
        let x = Tensor::<4>::from_data(
            burn::tensor::TensorData::new(
                (0..c * h * w)
                    .map(|i| (i % 17) as f32 / 17.0)
                    .collect::<Vec<f32>>(),
                [1, c, h, w],
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

    /// Writes `net`'s tensors under `names` (Architecture::tensors order).
    fn save_renamed(net: &Network, names: &[String], path: &Path) {
        let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = net
            .pytorch_tensors()
            .into_iter()
            .zip(names)
            .map(|((_, shape, v), name)| {
                (
                    name.clone(),
                    shape,
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )
            })
            .collect();
        let views = tensors.iter().map(|(n, s, d)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), d).unwrap(),
            )
        });
        std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
    }

    #[test]
    fn sequential_indices_load_with_or_without_the_normalisation_counted() {
        let device = Backend::Flex.device(None).unwrap();
        // cifar_small: Normalize, Conv2d, ReLU, Conv2d, ReLU, Flatten, Linear, ReLU, Linear
        let arch = zoo::architecture("cifar_small").unwrap();
        let net = Network::init(&arch, 5, &device).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seq.safetensors");
        for (count_normalize, first) in [(true, "1.weight"), (false, "0.weight")] {
            let names = arch.sequential_names(count_normalize).unwrap();
            assert_eq!(names[0], first);
            save_renamed(&net, &names, &path);
            let back = Network::load_safetensors(&arch, &path, &device).unwrap();
            assert_same(&net, &back, &device);
        }
        let mut names = arch.sequential_names(false).unwrap();
        names[0] = "9.weight".into();
        save_renamed(&net, &names, &path);
        let e = Network::load_safetensors(&arch, &path, &device)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("conv1.weight is missing") && e.contains("nn.Sequential index: 0.weight"),
            "{e}"
        );
        assert!(
            zoo::architecture("cifar_resnet")
                .unwrap()
                .sequential_names(true)
                .is_none()
        );
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

    #[test]
    fn blocks_and_batch_norm_statistics_round_trip() {
        let device = Backend::Flex.device(None).unwrap();
        let arch = crate::network::tests::block_arch();
        let x = Tensor::<4>::random([5, 2, 6, 6], burn::tensor::Distribution::Default, &device);
        let net = Network::init(&arch, 4, &device)
            .unwrap()
            .refresh_statistics(x.clone());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("block.safetensors");
        net.save_safetensors(&path).unwrap();
        let st_bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&st_bytes).unwrap();
        assert_eq!(st.tensor("bn.running_var").unwrap().shape(), [3]);
        assert_eq!(st.tensor("skip.weight").unwrap().shape(), [4, 2, 2, 2]);
        let back = Network::load_safetensors(&arch, &path, &device).unwrap();
        let (a, b): (Vec<f32>, Vec<f32>) = (
            net.forward(x.clone()).into_data().try_to_vec().unwrap(),
            back.forward(x.clone()).into_data().try_to_vec().unwrap(),
        );
        assert_eq!(a, b, "running statistics survive");
        let path = dir.path().join("block.bpk");
        net.save_checkpoint(&path).unwrap();
        let back = Network::load_checkpoint(&arch, &path, &device).unwrap();
        let c: Vec<f32> = back.forward(x).into_data().try_to_vec().unwrap();
        assert_eq!(a, c);
    }
}
