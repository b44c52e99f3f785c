//! Dataset manifests: the TOML files under `datasets/`, embedded at build time (through the
//! links in `crates/data/manifests/`, which `cargo package` turns into copies so that the
//! published crate carries them).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{DataDir, DataError, ImageSet, Split, cifar, idx, image_folder};

/// The manifests shipped with the project, by name.
const BUILTIN: &[(&str, &str)] = &[
    ("mnist", include_str!("../manifests/mnist.toml")),
    ("cifar10", include_str!("../manifests/cifar10.toml")),
    (
        "cifar10-sample",
        include_str!("../manifests/cifar10-sample.toml"),
    ),
    (
        "tiny-imagenet-200",
        include_str!("../manifests/tiny-imagenet-200.toml"),
    ),
    (
        "mixtrain-reference",
        include_str!("../manifests/mixtrain-reference.toml"),
    ),
];

/// How a dataset's files are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// IDX files (MNIST): roles `train-images`, `train-labels`, `test-images`, `test-labels`.
    Idx,
    /// CIFAR-10 binary records; the files of each split are listed under `[splits]`.
    CifarBinary,
    /// A folder of images per class (Tiny-ImageNet-200's official layout).
    ImageFolder,
    /// Network weights, one network per role. A role listed twice is the same network in two
    /// forms (the publisher's download and a mirror's converted copy); either one satisfies it.
    Weights,
}

/// An archive that is unpacked into the dataset directory once verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unpack {
    /// A gzip-compressed tar archive (`unpack = "tar.gz"`).
    #[serde(rename = "tar.gz")]
    TarGz,
    /// A zip archive (`unpack = "zip"`).
    Zip,
}

/// The checksum a file must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// A sha256 digest, 64 lower-case hex digits.
    Sha256(String),
    /// An md5 digest, 32 lower-case hex digits. Only for files whose publisher gives no
    /// sha256 (Tiny-ImageNet-200).
    Md5(String),
}

impl Checksum {
    /// The algorithm's name as the manifest spells it: `sha256` or `md5`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Sha256(_) => "sha256",
            Checksum::Md5(_) => "md5",
        }
    }

    /// The expected digest, lower-case hex.
    pub fn hex(&self) -> &str {
        match self {
            Checksum::Sha256(h) | Checksum::Md5(h) => h,
        }
    }
}

/// One file of a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// What the file holds (`train-images`, `archive`, ...).
    pub role: String,
    /// Its name in the dataset directory and in the mirror.
    pub name: String,
    /// Where to download it, tried in order; empty for mirror-only datasets.
    pub urls: Vec<String>,
    /// The digest the file must match (exactly one of `sha256` or `md5` in the TOML).
    pub checksum: Checksum,
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// For an archive: how to unpack it into the dataset directory once verified.
    pub unpack: Option<Unpack>,
}

/// A dataset manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The dataset's name, also its directory under the data directory.
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// How the files are laid out, hence which reader loads them.
    pub format: Format,
    /// The folder of this dataset inside a mirror laid out as `shared/datasets`.
    pub mirror_dir: String,
    /// The files to fetch (at least one).
    pub files: Vec<FileEntry>,
    /// For `cifar-binary`: the record files of each split, relative to the dataset directory.
    pub train_files: Vec<String>,
    /// For `cifar-binary`: the record files of the test split, as `train_files`.
    pub test_files: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    description: String,
    format: Format,
    mirror_dir: String,
    files: Vec<RawFile>,
    #[serde(default)]
    splits: Option<RawSplits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    role: String,
    name: String,
    #[serde(default)]
    urls: Vec<String>,
    sha256: Option<String>,
    md5: Option<String>,
    size: Option<u64>,
    unpack: Option<Unpack>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSplits {
    train: Vec<String>,
    test: Vec<String>,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// How many times this process has loaded each split ([`Split`] as the index).
static SPLIT_LOADS: [std::sync::atomic::AtomicUsize; 2] = [
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
];

/// How many times this process has loaded `split`'s images (of any dataset): what shows that
/// a procedure which must not read the test split (a recipe search) did not.
pub fn split_loads(split: Split) -> usize {
    SPLIT_LOADS[split as usize].load(std::sync::atomic::Ordering::Relaxed)
}

impl Manifest {
    /// The names of the embedded manifests.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(name, _)| *name)
    }

    /// An embedded manifest by name.
    pub fn builtin(name: &str) -> Result<Self, DataError> {
        let (_, text) =
            BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| DataError::UnknownDataset {
                    name: name.to_string(),
                    known: Self::builtin_names().collect::<Vec<_>>().join(", "),
                })?;
        Self::parse(name, text)
    }

    /// A manifest from a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses and checks a manifest; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Self, DataError> {
        let err = |message: String| DataError::Manifest {
            manifest: origin.to_string(),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if raw.files.is_empty() {
            return Err(err("no [[files]]".into()));
        }
        let mut files = Vec::with_capacity(raw.files.len());
        for f in raw.files {
            if f.name.is_empty() || f.name.contains(['/', '\\']) || f.name.starts_with('.') {
                return Err(err(format!("file name {:?} must be a plain name", f.name)));
            }
            let checksum = match (f.sha256, f.md5) {
                (Some(h), None) if is_hex(&h, 64) => Checksum::Sha256(h),
                (None, Some(h)) if is_hex(&h, 32) => Checksum::Md5(h),
                (Some(h), None) => {
                    return Err(err(format!(
                        "file {}: sha256 {h:?} is not 64 lower-case hex digits",
                        f.name
                    )));
                }
                (None, Some(h)) => {
                    return Err(err(format!(
                        "file {}: md5 {h:?} is not 32 lower-case hex digits",
                        f.name
                    )));
                }
                _ => {
                    return Err(err(format!(
                        "file {}: give exactly one of sha256 or md5",
                        f.name
                    )));
                }
            };
            for url in &f.urls {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(err(format!("file {}: url {url:?} is not http(s)", f.name)));
                }
            }
            files.push(FileEntry {
                role: f.role,
                name: f.name,
                urls: f.urls,
                checksum,
                size: f.size,
                unpack: f.unpack,
            });
        }
        let (train_files, test_files) = match (raw.format, raw.splits) {
            (Format::CifarBinary, Some(s)) if !s.train.is_empty() && !s.test.is_empty() => {
                (s.train, s.test)
            }
            (Format::CifarBinary, _) => {
                return Err(err(
                    "format cifar-binary needs [splits] with train and test files".into(),
                ));
            }
            (Format::Idx, _) => {
                for role in ["train-images", "train-labels", "test-images", "test-labels"] {
                    if !files.iter().any(|f| f.role == role) {
                        return Err(err(format!("format idx needs a file with role {role}")));
                    }
                }
                (Vec::new(), Vec::new())
            }
            (Format::ImageFolder | Format::Weights, _) => (Vec::new(), Vec::new()),
        };
        Ok(Manifest {
            name: raw.name,
            description: raw.description,
            format: raw.format,
            mirror_dir: raw.mirror_dir,
            files,
            train_files,
            test_files,
        })
    }

    /// The file with the given role.
    pub fn file(&self, role: &str) -> Result<&FileEntry, DataError> {
        self.files
            .iter()
            .find(|f| f.role == role)
            .ok_or_else(|| DataError::Manifest {
                manifest: self.name.clone(),
                message: format!("no file with role {role}"),
            })
    }

    /// Whether every file the readers need is in the data directory (for weights: one file of
    /// every role).
    pub fn is_present(&self, dir: &DataDir) -> bool {
        match self.format {
            Format::Weights => self.roles().all(|role| self.weights(role, dir).is_some()),
            _ => self.needed_paths(dir).iter().all(|p| p.is_file()),
        }
    }

    /// The roles of the files, each once, in the manifest's order.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.files
            .iter()
            .enumerate()
            .filter(|(i, f)| !self.files[..*i].iter().any(|g| g.role == f.role))
            .map(|(_, f)| f.role.as_str())
    }

    /// The first file of `role` in the data directory, in the manifest's order (not verified
    /// here: [`fetch`](crate::fetch) verifies what it writes).
    pub fn weights(&self, role: &str, dir: &DataDir) -> Option<PathBuf> {
        let base = dir.dataset(&self.name);
        self.files
            .iter()
            .filter(|f| f.role == role)
            .map(|f| base.join(&f.name))
            .find(|p| p.is_file())
    }

    fn needed_paths(&self, dir: &DataDir) -> Vec<PathBuf> {
        let base = dir.dataset(&self.name);
        match self.format {
            Format::Idx => self.files.iter().map(|f| base.join(&f.name)).collect(),
            Format::CifarBinary => self
                .train_files
                .iter()
                .chain(&self.test_files)
                .map(|f| base.join(f))
                .collect(),
            Format::ImageFolder => vec![base.join(&self.files[0].name)],
            Format::Weights => Vec::new(),
        }
    }

    /// Reads one split.
    pub fn load(&self, split: Split, dir: &DataDir) -> Result<ImageSet, DataError> {
        SPLIT_LOADS[split as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = dir.dataset(&self.name);
        match self.format {
            Format::Idx => {
                let prefix = match split {
                    Split::Train => "train",
                    Split::Test => "test",
                };
                let images = base.join(&self.file(&format!("{prefix}-images"))?.name);
                let labels = base.join(&self.file(&format!("{prefix}-labels"))?.name);
                idx::read_mnist(&images, &labels)
            }
            Format::CifarBinary => {
                let files = match split {
                    Split::Train => &self.train_files,
                    Split::Test => &self.test_files,
                };
                let paths: Vec<PathBuf> = files.iter().map(|f| base.join(f)).collect();
                cifar::read_cifar10(&paths)
            }
            Format::ImageFolder => image_folder::read(&image_folder::root(&base), split),
            Format::Weights => Err(DataError::Manifest {
                manifest: self.name.clone(),
                message: "holds network weights, not images (see Manifest::weights)".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_manifest_parses() {
        for name in Manifest::builtin_names() {
            let m = Manifest::builtin(name).unwrap();
            assert_eq!(m.name, name, "manifest file name and `name` field agree");
            assert!(!m.files.is_empty());
        }
    }

    #[test]
    fn official_datasets_have_https_urls_and_sizes() {
        for name in ["mnist", "cifar10"] {
            let m = Manifest::builtin(name).unwrap();
            for f in &m.files {
                assert!(
                    f.urls.iter().all(|u| u.starts_with("https://")),
                    "{}",
                    f.name
                );
                assert!(!f.urls.is_empty() && f.size.is_some(), "{}", f.name);
            }
        }
        assert!(
            Manifest::builtin("cifar10-sample").unwrap().files[0]
                .urls
                .is_empty(),
            "the sample is mirror-only: it has no official download"
        );
    }

    #[test]
    fn unknown_dataset_lists_known_ones() {
        let e = Manifest::builtin("imagenet").unwrap_err().to_string();
        assert!(e.contains("imagenet") && e.contains("mnist") && e.contains("cifar10-sample"));
    }

    const GOOD: &str = r#"
name = "toy"
description = "toy"
format = "idx"
mirror_dir = "toy"
[[files]]
role = "train-images"
name = "a"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[[files]]
role = "train-labels"
name = "b"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[[files]]
role = "test-images"
name = "c"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[[files]]
role = "test-labels"
name = "d"
md5 = "00000000000000000000000000000000"
"#;

    #[test]
    fn bad_manifests_are_rejected_with_the_reason() {
        assert!(Manifest::parse("toy", GOOD).is_ok());
        let cases = [
            (GOOD.replacen("sha256 = \"00", "sha256 = \"zz", 1), "sha256"),
            (GOOD.replacen("md5 = \"00", "md5 = \"0", 1), "md5"),
            (GOOD.replacen("name = \"a\"", "name = \"../a\"", 1), "plain name"),
            (GOOD.replacen("role = \"test-labels\"", "role = \"x\"", 1), "test-labels"),
            (GOOD.replacen("format = \"idx\"", "format = \"cifar-binary\"", 1), "[splits]"),
            (GOOD.replacen("format = \"idx\"", "format = \"jpeg\"", 1), "format"),
            (GOOD.replacen("mirror_dir", "mirror", 1), "mirror"),
            (
                GOOD.replacen("name = \"a\"", "name = \"a\"\nurls = [\"ftp://x\"]", 1),
                "ftp://x",
            ),
            (
                GOOD.replacen(
                    "md5 = \"00000000000000000000000000000000\"",
                    "md5 = \"00000000000000000000000000000000\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"",
                    1,
                ),
                "exactly one",
            ),
        ];
        for (text, needle) in cases {
            let e = Manifest::parse("toy", &text).unwrap_err().to_string();
            assert!(e.starts_with("manifest toy"), "{e}");
            assert!(e.contains(needle), "{e} should mention {needle}");
        }
    }
}
