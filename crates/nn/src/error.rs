use std::path::PathBuf;

/// Errors of network construction, weights I/O and device selection. Each names the layer,
/// tensor, file or backend it is about.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    #[error("unknown model {name:?}; known models: {known}")]
    UnknownModel { name: String, known: String },
    #[error("architecture {model}, layer {layer}: {message}")]
    Architecture {
        model: String,
        layer: String,
        message: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file: {message}")]
    Format { path: PathBuf, message: String },
    #[error(
        "{path}: weights do not fit model {model}: {message}\n  expected: {expected}\n  found:    {found}"
    )]
    Mismatch {
        path: PathBuf,
        model: String,
        message: String,
        expected: String,
        found: String,
    },
    #[error("{path}: checkpoint does not load into model {model}: {message}")]
    Checkpoint {
        path: PathBuf,
        model: String,
        message: String,
    },
    #[error("backend {backend} is not compiled into this build: {hint}")]
    BackendMissing { backend: String, hint: String },
    #[error(
        "wgpu: cannot open {device}: {reason} (a GPU driver with Vulkan, Metal or DX12 is needed; \
         on a machine without a GPU, Mesa's software Vulkan driver: `apt-get install \
         mesa-vulkan-drivers`)"
    )]
    NoAdapter { device: String, reason: String },
    #[error("unknown backend {0:?}: expected flex, ndarray or wgpu")]
    UnknownBackend(String),
}
