use std::path::PathBuf;

/// Everything that can go wrong reading, fetching or checking a dataset. Every variant names the
/// file (or manifest, or URL) it is about.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: file not found")]
    Missing { path: PathBuf },
    #[error(
        "dataset {dataset} is not in {dir}: run `cargo xtask fetch {dataset}` (or set MIXTRAIN_MIRROR to an offline copy)"
    )]
    NotFetched { dataset: String, dir: PathBuf },
    #[error("{path}: wrong magic number {found:#010x}, expected {expected:#010x} ({what})")]
    BadMagic {
        path: PathBuf,
        what: &'static str,
        expected: u32,
        found: u32,
    },
    #[error("{path}: truncated: {what} needs {expected} bytes, the file has {found}")]
    Truncated {
        path: PathBuf,
        what: String,
        expected: u64,
        found: u64,
    },
    #[error("{path}: corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "{path}: checksum mismatch: expected {algorithm} {expected}, got {found}; the file was deleted"
    )]
    Checksum {
        path: PathBuf,
        algorithm: &'static str,
        expected: String,
        found: String,
    },
    #[error("manifest {manifest}: {message}")]
    Manifest { manifest: String, message: String },
    #[error("unknown dataset {name:?}; known datasets: {known}")]
    UnknownDataset { name: String, known: String },
    #[error("download of {file} failed: {message}")]
    Download { file: String, message: String },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::Missing { path }
        } else {
            DataError::Io { path, source }
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Corrupt {
            path: path.into(),
            message: message.into(),
        }
    }
}
