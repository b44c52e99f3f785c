//! What the criterion benches of the workspace share, so that `cargo xtask bench` can report
//! more than criterion measures:
//!
//! - [`PeakAlloc`]: the binaries' allocator (mimalloc) with a count of live heap bytes, and
//!   [`peak_bytes`], the high-water mark while a closure runs once;
//! - [`Meta`] and [`record`]: per benchmark, its unit, peak heap and FLOP count, written to
//!   `target/bench-meta/` beside criterion's own `target/criterion/` estimates;
//! - [`quick`]: `MIXTRAIN_BENCH_QUICK` set, the few-minutes mode of `cargo xtask bench --quick`;
//! - [`device`]: the backend of `cargo xtask bench --backend B [--device I]`;
//! - where the data is ([`mirror`]) and where benches may cache it ([`data_dir`]).
//!
//! No mixtrain crate depends on this one except as a dev-dependency of its benches. Without
//! its default `device` feature only [`Meta`] and its files remain: burn-free, so that
//! `cargo xtask` reads the report's inputs without compiling burn.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[cfg(feature = "device")]
mod harness;
#[cfg(feature = "device")]
pub use harness::{PeakAlloc, data_dir, device, mirror, peak_bytes, quick, reference, sampling};

/// What `cargo xtask bench` joins to a criterion benchmark (by its full id,
/// `group/function/value`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// criterion's full benchmark id, `group/function/value`: the key the report joins on.
    pub id: String,
    /// What criterion's throughput counts: `images`, `bounds` or `bytes`.
    pub unit: String,
    /// Peak heap bytes of one iteration above the starting level, from [`peak_bytes`].
    pub peak_bytes: usize,
    /// Floating-point operations of one iteration, where a model of them exists (`2 x MAC` of
    /// the affine layers the work runs, see each bench).
    pub flop: Option<f64>,
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where benches write their [`Meta`] records.
pub fn meta_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
        .join("bench-meta")
}

/// Writes `meta` for `cargo xtask bench`. A bench that cannot write it still ran, so this
/// only warns.
pub fn record(meta: &Meta) {
    let dir = meta_dir();
    let name = meta.id.replace(['/', ' '], "__");
    let result = std::fs::create_dir_all(&dir).and_then(|()| {
        let json = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(format!("{name}.json")), json)
    });
    if let Err(e) = result {
        eprintln!("warning: bench metadata for {} not written: {e}", meta.id);
    }
}
