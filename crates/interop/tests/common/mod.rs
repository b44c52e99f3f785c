//! What the interop tests share.

use std::path::{Path, PathBuf};

/// VNN-COMP 2022's `mnist_fc` benchmark in `../shared`.
pub fn benchmark() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/benchmarks/vnncomp2022/mnist_fc");
    assert!(
        dir.is_dir(),
        "{}: the VNN-COMP benchmark (../shared beside the repository) is missing",
        dir.display()
    );
    dir
}
