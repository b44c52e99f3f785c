//! Datasets for verifiable training: manifests, checksummed downloads, readers and batching.
//!
//! Everything here is host-side and backend-free: images are kept as the raw bytes of the
//! files (`u8` pixels) and turned into `f32` values in `[0, 1]` only when a batch is built. The
//! network's own input-normalisation layer maps them further, so that an L_inf radius `eps` is
//! always given in pixel units (see `MIXTRAIN.md`).
//!
//! - [`Manifest`]: one TOML file per dataset (`datasets/*.toml`, embedded in the binary):
//!   official URLs, file names, checksums and format.
//! - [`fetch`]: download over HTTPS (resumable, verified) or copy from a local mirror laid out as
//!   `shared/datasets`; a file whose checksum does not match is deleted and reported.
//! - [`load`]: read a split of a fetched dataset into an [`ImageSet`] with the IDX (MNIST),
//!   CIFAR-10 binary or image-folder (Tiny-ImageNet-200: `train/<wnid>/images/*.JPEG`,
//!   `val/images` + `val_annotations.txt`; its validation set is the test split) readers, each
//!   of which reports wrong magic numbers, wrong sizes, truncation, undecodable images and
//!   missing files as typed [`DataError`]s naming the file.
//! - [`Augment`]: CIFAR's training augmentation (random crop with zero padding, horizontal
//!   flip), seeded per batch.
//! - [`Batches`]: seeded shuffling and fixed-size batches as `f32` pixels and class labels.
//!
//! A set in memory, shuffled into batches (a seed gives the same order on every run):
//!
//! ```
//! use mixtrain_data::ImageSet;
//!
//! let set = ImageSet::new(vec![255u8; 5 * 28 * 28], vec![0, 1, 2, 3, 4], [1, 28, 28], 10);
//! let batches: Vec<_> = set.batches(2, Some(7)).collect();
//! assert_eq!(batches.iter().map(|b| b.len()).collect::<Vec<_>>(), [2, 2, 1]);
//! assert_eq!(batches[0].dims(), [2, 1, 28, 28]);
//! assert!(batches[0].pixels.iter().all(|&p| p == 1.0)); // pixels in [0, 1]
//! ```
//!
//! A real dataset, fetched into the data directory first (`cargo xtask fetch mnist`):
//!
//! ```no_run
//! use mixtrain_data::{DataDir, Split};
//!
//! let test = mixtrain_data::load("mnist", Split::Test, &DataDir::from_env())?;
//! assert_eq!((test.len(), test.shape()), (10_000, [1, 28, 28]));
//! # Ok::<(), mixtrain_data::DataError>(())
//! ```

#![warn(missing_docs)]

mod augment;
mod batch;
mod cifar;
mod error;
mod fetch;
mod idx;
mod image_folder;
mod image_set;
mod manifest;

pub use augment::Augment;
pub use batch::{Batch, Batches};
pub use error::DataError;
pub use fetch::{FetchReport, Source, fetch};
pub use image_set::ImageSet;
pub use manifest::{Checksum, FileEntry, Format, Manifest, Unpack, split_loads};

use std::path::{Path, PathBuf};

/// Which part of a dataset to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training images (validation sets are split off them by the trainer).
    Train,
    /// The held-out test images (for Tiny-ImageNet-200, its official validation set).
    Test,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// Where fetched datasets live: `<root>/<dataset name>/<file>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The variable that names the data directory.
    pub const ENV: &'static str = "MIXTRAIN_DATA";
    /// The variable that names an offline mirror laid out as `shared/datasets`.
    pub const MIRROR_ENV: &'static str = "MIXTRAIN_MIRROR";
    /// The default data directory, relative to the working directory (git-ignored in the
    /// repository).
    pub const DEFAULT: &'static str = "datasets/cache";

    /// A data directory at `root` (created when a dataset is first fetched into it).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `MIXTRAIN_DATA` if set and not empty, else [`DataDir::DEFAULT`].
    pub fn from_env() -> Self {
        match std::env::var_os(Self::ENV) {
            Some(dir) if !dir.is_empty() => Self::new(dir),
            _ => Self::new(Self::DEFAULT),
        }
    }

    /// The offline mirror named by `MIXTRAIN_MIRROR`, if any.
    pub fn mirror_from_env() -> Option<PathBuf> {
        std::env::var_os(Self::MIRROR_ENV)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
    }

    /// The directory that holds one sub-directory per dataset.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one dataset.
    pub fn dataset(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// Reads one split of a fetched dataset, by manifest name.
pub fn load(name: &str, split: Split, dir: &DataDir) -> Result<ImageSet, DataError> {
    Manifest::builtin(name)?.load(split, dir)
}

/// The smaller dataset that stands in for `name` when the full one cannot be had (offline, a
/// mirror holding only the sample): `cifar10-sample` for `cifar10`.
pub fn sample_of(name: &str) -> Option<&'static str> {
    (name == "cifar10").then_some("cifar10-sample")
}

/// Makes sure a dataset is present in `dir`: files already there are kept (their checksums were
/// checked when they were fetched), missing ones are copied from `mirror` when one is given.
/// With no mirror and missing files this is an error that says how to fetch them.
pub fn ensure(name: &str, dir: &DataDir, mirror: Option<&Path>) -> Result<Manifest, DataError> {
    let manifest = Manifest::builtin(name)?;
    if !manifest.is_present(dir) {
        match mirror {
            Some(mirror) => {
                fetch(&manifest, dir, &Source::Mirror(mirror.to_path_buf()))?;
            }
            None => {
                return Err(DataError::NotFetched {
                    dataset: name.to_string(),
                    dir: dir.dataset(name),
                });
            }
        }
    }
    Ok(manifest)
}

/// Like [`ensure`], then by download where the mirror does not have the dataset (or there is
/// none): what a fresh clone's tests use, so that they run with network access and, without,
/// fail naming what to fetch.
pub fn obtain(name: &str, dir: &DataDir, mirror: Option<&Path>) -> Result<Manifest, DataError> {
    let manifest = Manifest::builtin(name)?;
    if manifest.is_present(dir) {
        return Ok(manifest);
    }
    let mut reasons = Vec::new();
    let sources = mirror
        .map(|m| Source::Mirror(m.to_path_buf()))
        .into_iter()
        .chain([Source::Download]);
    for source in sources {
        match fetch(&manifest, dir, &source) {
            Ok(_) => return Ok(manifest),
            Err(e) => reasons.push(match source {
                Source::Mirror(m) => format!("mirror {}: {e}", m.display()),
                Source::Download => format!("download: {e}"),
            }),
        }
    }
    Err(DataError::Unobtainable {
        dataset: name.to_string(),
        dir: dir.dataset(name),
        reasons: reasons.join("; "),
    })
}

/// The weights file of the MixTrain authors' network `role` (`mixtrain-eps0.3` or `baseline`,
/// see `datasets/mixtrain-reference.toml`), obtained as [`obtain`] does: a path that
/// `Network::load_weights` reads, whichever form (`.pth` or safetensors) was obtained.
pub fn reference_weights(
    role: &str,
    dir: &DataDir,
    mirror: Option<&Path>,
) -> Result<PathBuf, DataError> {
    let manifest = obtain("mixtrain-reference", dir, mirror)?;
    manifest
        .weights(role, dir)
        .ok_or_else(|| DataError::Manifest {
            manifest: manifest.name.clone(),
            message: format!(
                "no network with role {role:?}; roles: {}",
                manifest.roles().collect::<Vec<_>>().join(", ")
            ),
        })
}

/// Reads a whole file, decompressing it when it is gzip (magic `1f 8b`), so that every reader
/// takes raw or `.gz` files alike. A damaged or cut gzip stream is reported as corrupt.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    use std::io::Read;
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::corrupt(path, format!("gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}
