//! Shared set-up of the end-to-end tests: real MNIST from the offline mirror.
// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mixtrain::data::{DataDir, Manifest, Source};

pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The mirror: `MIXTRAIN_MIRROR`, else `../shared/datasets` beside the checkout.
pub fn mirror() -> PathBuf {
    DataDir::mirror_from_env().unwrap_or_else(|| workspace_root().join("../shared/datasets"))
}

/// A data directory under `target/` holding MNIST, copied (and verified) once from the mirror.
pub fn mnist_dir() -> &'static DataDir {
    static DIR: OnceLock<DataDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = DataDir::new(workspace_root().join("target/test-data"));
        let manifest = Manifest::builtin("mnist").unwrap();
        let mirror = mirror();
        assert!(
            mirror.join("mnist").is_dir(),
            "these tests read real MNIST from {} (set MIXTRAIN_MIRROR to a directory laid out as shared/datasets)",
            mirror.display()
        );
        mixtrain::data::fetch(&manifest, &dir, &Source::Mirror(mirror)).unwrap();
        dir
    })
}

/// The reference networks of the MixTrain authors.
pub fn reference(name: &str) -> PathBuf {
    workspace_root().join("../shared/reference").join(name)
}
