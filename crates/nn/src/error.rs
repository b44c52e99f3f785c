use std::path::PathBuf;

/// Errors of network construction, weights I/O and device selection. Each names the layer,
/// tensor, file or backend it is about.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// The zoo has no model of this name.
    #[error("unknown model {name:?}; known models: {known}")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The zoo's names, comma-separated, with the ResNet naming scheme.
        known: String,
    },
    /// An [`Architecture`](crate::Architecture) fails its shape check.
    #[error("architecture {model}, layer {layer}: {message}")]
    Architecture {
        /// The architecture's name.
        model: String,
        /// The innermost failing layer: its name, else `#<index> (<kind>)`, blocks joined by
        /// ` > `; or `output` when the logits have the wrong size.
        layer: String,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a weights or checkpoint file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file that could not be read or written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A safetensors file could not be parsed or serialised.
    #[error("{path}: not a valid safetensors file: {message}")]
    Format {
        /// The safetensors file.
        path: PathBuf,
        /// The safetensors library's error.
        message: String,
    },
    /// A safetensors file's tensors do not match the architecture's: a name missing or
    /// unexpected, a shape or dtype wrong, or a non-finite value.
    #[error(
        "{path}: weights do not fit model {model}: {message}\n  expected: {expected}\n  found:    {found}"
    )]
    Mismatch {
        /// The safetensors file.
        path: PathBuf,
        /// The architecture's name.
        model: String,
        /// The first mismatch found.
        message: String,
        /// The tensors the architecture needs, `name [shape]` each, PyTorch layout.
        expected: String,
        /// The tensors the file holds, `name [shape]` each.
        found: String,
    },
    /// A burn-record checkpoint could not be encoded, decoded or loaded into the network.
    #[error("{path}: checkpoint does not load into model {model}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// The architecture's name.
        model: String,
        /// burn's error.
        message: String,
    },
    /// The backend asked for needs a cargo feature this build lacks.
    #[error("backend {backend} is not compiled into this build: {hint}")]
    BackendMissing {
        /// The backend's name (`wgpu`, `cuda`).
        backend: String,
        /// How to rebuild with it.
        hint: String,
    },
    /// wgpu is compiled in but no usable adapter opens (no GPU or no Vulkan/Metal/DX12 driver).
    #[error(
        "wgpu: cannot open {device}: {reason} (a GPU driver with Vulkan, Metal or DX12 is needed; \
         on a machine without a GPU, Mesa's software Vulkan driver: `apt-get install \
         mesa-vulkan-drivers`)"
    )]
    NoAdapter {
        /// The adapter asked for: `discrete GPU <i>` or `the default adapter`.
        device: String,
        /// cubecl's panic message.
        reason: String,
    },
    /// CUDA is compiled in but no device opens (no NVIDIA GPU, or its driver or NVRTC is not
    /// found at run time).
    #[error(
        "no CUDA device: cannot open {device}: {reason} (the NVIDIA driver's libcuda and NVRTC's \
         libnvrtc are loaded at run time: an NVIDIA GPU with its driver, and libnvrtc on the \
         library path, e.g. from the nvidia-cuda-nvrtc wheel PyTorch installs)"
    )]
    NoCudaDevice {
        /// The device asked for: `CUDA device <i>` or `the default CUDA device`.
        device: String,
        /// cubecl's (or cudarc's) panic message.
        reason: String,
    },
    /// A backend name that is not `flex`, `ndarray`, `wgpu` or `cuda` (the string given).
    #[error("unknown backend {0:?}: expected flex, ndarray, wgpu or cuda")]
    UnknownBackend(String),
}
