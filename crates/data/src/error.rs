use std::path::PathBuf;

/// Everything that can go wrong reading, fetching or checking a dataset. Every variant names the
/// file (or manifest, or URL) it is about.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Reading or writing a file failed (other than the file not existing).
    #[error("{path}: {source}")]
    Io {
        /// The file that could not be read or written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file does not exist.
    #[error("{path}: file not found")]
    Missing {
        /// The missing file.
        path: PathBuf,
    },
    /// A dataset's files are not in the data directory and no mirror was given to copy them
    /// from.
    #[error(
        "dataset {dataset} is not in {dir}: run `cargo xtask fetch {dataset}` (or set MIXTRAIN_MIRROR to an offline copy)"
    )]
    NotFetched {
        /// The dataset's name.
        dataset: String,
        /// The dataset directory that lacks them.
        dir: PathBuf,
    },
    /// A dataset is neither in the data directory nor obtainable from the mirror or by
    /// download; `reasons` says what each source answered.
    #[error(
        "dataset {dataset} is not in {dir} and could not be obtained ({reasons}): run `cargo xtask fetch {dataset}` with network access, or set MIXTRAIN_MIRROR to an offline copy"
    )]
    Unobtainable {
        /// The dataset's name.
        dataset: String,
        /// The dataset directory that lacks it.
        dir: PathBuf,
        /// What the mirror and the download answered.
        reasons: String,
    },
    /// An IDX file starts with the wrong magic number (wrong file, or images and labels
    /// swapped).
    #[error("{path}: wrong magic number {found:#010x}, expected {expected:#010x} ({what})")]
    BadMagic {
        /// The file read.
        path: PathBuf,
        /// What the file should hold (images or labels).
        what: &'static str,
        /// The magic number of that content.
        expected: u32,
        /// The number the file starts with.
        found: u32,
    },
    /// A file is shorter than its header or record layout requires.
    #[error("{path}: truncated: {what} needs {expected} bytes, the file has {found}")]
    Truncated {
        /// The file read.
        path: PathBuf,
        /// The part that does not fit (header, record, array of a shape).
        what: String,
        /// Bytes that part needs.
        expected: u64,
        /// Bytes the file has.
        found: u64,
    },
    /// A file's contents are unusable (trailing bytes, a label out of range, an image or
    /// archive that does not decode, ...).
    #[error("{path}: corrupt: {message}")]
    Corrupt {
        /// The file read.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A fetched file's digest differs from the manifest's; the download was deleted.
    #[error(
        "{path}: checksum mismatch: expected {algorithm} {expected}, got {found}; the file was deleted"
    )]
    Checksum {
        /// The file the download was meant to become.
        path: PathBuf,
        /// The digest algorithm, as the manifest names it.
        algorithm: &'static str,
        /// The manifest's digest, in hex.
        expected: String,
        /// The digest of the bytes received, in hex.
        found: String,
    },
    /// A manifest does not parse or is inconsistent, or lacks a file it is asked for.
    #[error("manifest {manifest}: {message}")]
    Manifest {
        /// The manifest's name or file path.
        manifest: String,
        /// What is wrong.
        message: String,
    },
    /// No built-in manifest has this name.
    #[error("unknown dataset {name:?}; known datasets: {known}")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The built-in names, comma-separated.
        known: String,
    },
    /// Every URL of a file failed, or the file has none.
    #[error("download of {file} failed: {message}")]
    Download {
        /// The file's name in the manifest.
        file: String,
        /// Each URL with its failure, `; `-separated, or why there was no URL.
        message: String,
    },
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
