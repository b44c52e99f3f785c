//! Shared set-up of the end-to-end tests: real MNIST and the MixTrain authors' networks, from
//! the offline mirror or downloaded.
// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mixtrain::data::DataDir;

pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The mirror: `MIXTRAIN_MIRROR`, else `../shared/datasets` beside the checkout.
pub fn mirror() -> PathBuf {
    DataDir::mirror_from_env().unwrap_or_else(|| workspace_root().join("../shared/datasets"))
}

/// The mirror when it exists: tests copy from it and download only what it lacks.
fn mirror_if_present() -> Option<PathBuf> {
    Some(mirror()).filter(|m| m.is_dir())
}

/// A data directory under `target/` holding MNIST, copied (and verified) once from the mirror,
/// or downloaded (checksum-verified) without one.
pub fn mnist_dir() -> &'static DataDir {
    static DIR: OnceLock<DataDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = DataDir::new(workspace_root().join("target/test-data"));
        if let Err(e) = mixtrain::data::obtain("mnist", &dir, mirror_if_present().as_deref()) {
            panic!("these tests read real MNIST: {e}");
        }
        dir
    })
}

/// The MixTrain authors' network `role` (`mixtrain-eps0.3` or `baseline`): the mirror's copy,
/// or their published `.pth` downloaded (sha256-checked) into the test data directory.
pub fn reference(role: &str) -> PathBuf {
    let dir = DataDir::new(workspace_root().join("target/test-data"));
    mixtrain::data::reference_weights(role, &dir, mirror_if_present().as_deref())
        .unwrap_or_else(|e| panic!("these tests read the MixTrain authors' weights: {e}"))
}

/// The mirror, which must hold the CIFAR-10 sample: its bit-exact prefixes of the official
/// batches have no public download, so these tests need the offline copy.
pub fn sample_mirror() -> PathBuf {
    let mirror = mirror();
    assert!(
        mirror.join("cifar10").is_dir(),
        "this test trains on the CIFAR-10 sample (cifar10-sample), which only the offline mirror \
         holds: set MIXTRAIN_MIRROR to a directory laid out as shared/datasets (looked in {})",
        mirror.display()
    );
    mirror
}
