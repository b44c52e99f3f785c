use std::path::PathBuf;

/// Errors of a training run; each names the file, field, epoch or batch it is about.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration does not parse, fails validation, or does not fit the data or model.
    #[error("config {origin}: {message}")]
    Config {
        /// Where it came from: a file, a preset, an override or the run.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// No preset has this name.
    #[error("unknown preset {name:?}; presets: {known}")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// The preset names, comma-separated.
        known: String,
    },
    /// Reading or fetching a dataset failed.
    #[error(transparent)]
    Data(#[from] mixtrain_data::DataError),
    /// The model zoo, the backend's device or a weights file failed.
    #[error(transparent)]
    Nn(#[from] mixtrain_nn::NnError),
    /// A bound computation or an attack failed.
    #[error(transparent)]
    Bounds(#[from] mixtrain_bounds::BoundsError),
    /// An ONNX network could not be read (boxed: its error names a file, a node and more).
    #[error(transparent)]
    Onnx(Box<mixtrain_interop::OnnxError>),
    /// A VNN-LIB property could not be read.
    #[error(transparent)]
    Vnnlib(Box<mixtrain_interop::VnnlibError>),
    /// Reading or writing a file of the run failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint (or a safetensors file of examples) cannot be written or read back.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A loss term became NaN or infinite; training stopped.
    #[error(
        "epoch {epoch}, batch {batch}: loss term {term} is {value}; the run stopped and its last good checkpoint is kept"
    )]
    NonFinite {
        /// The epoch, from 1.
        epoch: usize,
        /// The batch within the epoch, from 1.
        batch: usize,
        /// Which term: `natural cross-entropy`, `robust cross-entropy` or
        /// `adversarial cross-entropy`.
        term: &'static str,
        /// The value read back.
        value: f32,
    },
    /// The estimated bounding memory exceeds the memory budget; the run was refused.
    #[error("memory: {message}")]
    Memory {
        /// The estimate, the budget and what to change.
        message: String,
    },
    /// The run directory cannot be used: it holds another run, or a resume does not match it.
    #[error("run directory {dir}: {message}")]
    RunDir {
        /// The run directory.
        dir: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { path, source }
    }
}

impl From<mixtrain_interop::OnnxError> for TrainError {
    fn from(e: mixtrain_interop::OnnxError) -> Self {
        TrainError::Onnx(Box::new(e))
    }
}

impl From<mixtrain_interop::VnnlibError> for TrainError {
    fn from(e: mixtrain_interop::VnnlibError) -> Self {
        TrainError::Vnnlib(Box::new(e))
    }
}
