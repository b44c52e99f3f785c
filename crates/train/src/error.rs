use std::path::PathBuf;

/// Errors of a training run; each names the file, field, epoch or batch it is about.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("config {origin}: {message}")]
    Config { origin: String, message: String },
    #[error("unknown preset {name:?}; presets: {known}")]
    UnknownPreset { name: String, known: String },
    #[error(transparent)]
    Data(#[from] mixtrain_data::DataError),
    #[error(transparent)]
    Nn(#[from] mixtrain_nn::NnError),
    #[error(transparent)]
    Bounds(#[from] mixtrain_bounds::BoundsError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error(
        "epoch {epoch}, batch {batch}: loss term {term} is {value}; the run stopped and its last good checkpoint is kept"
    )]
    NonFinite {
        epoch: usize,
        batch: usize,
        term: &'static str,
        value: f32,
    },
    #[error("memory: {message}")]
    Memory { message: String },
    #[error("run directory {dir}: {message}")]
    RunDir { dir: PathBuf, message: String },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { path, source }
    }
}
