//! The benches' harness: the counting allocator, the device and the data they run on.

use std::alloc::{GlobalAlloc, Layout};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mixtrain_nn::{Backend, Device, adapter_name};

use crate::workspace;

/// mimalloc (see the CLI for why) with a count of live bytes and their high-water mark.
/// Declare it in each bench: `#[global_allocator] static A: PeakAlloc = PeakAlloc;`.
pub struct PeakAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to mimalloc; only counters are added.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        counted(unsafe { mimalloc::MiMalloc.alloc(layout) }, layout.size())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    // Forwarded rather than left to the trait's defaults (alloc + memset, alloc + copy), so that
    // the benches allocate exactly as the binaries do, which use mimalloc directly: it skips
    // zeroing memory it knows is fresh from the OS and grows blocks in place.
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        counted(
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) },
            layout.size(),
        )
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let new = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        counted(new, new_size)
    }
}

/// Counts `size` fresh live bytes when the allocation `ptr` succeeded.
fn counted(ptr: *mut u8, size: usize) -> *mut u8 {
    if !ptr.is_null() {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
    ptr
}

/// Peak heap bytes above the level at the start while `f` runs once (0 unless the bench's
/// global allocator is [`PeakAlloc`]).
pub fn peak_bytes(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

/// `cargo xtask bench --quick`: fewer configurations and shorter measurements.
pub fn quick() -> bool {
    std::env::var_os("MIXTRAIN_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The device the benches run on: the backend `MIXTRAIN_BENCH_BACKEND` names (`flex` by default;
/// `cargo xtask bench --backend B` sets it, and builds with `--features mixtrain-bench/wgpu`
/// for wgpu) and the GPU index `MIXTRAIN_BENCH_DEVICE`. Said on stderr with its adapter. A
/// bench on wgpu must end each iteration on a read-back or [`Device::sync`], or it times the
/// queueing of kernels rather than their work.
pub fn device() -> Device {
    let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
    let backend: Backend = var("MIXTRAIN_BENCH_BACKEND")
        .unwrap_or_else(|| "flex".into())
        .parse()
        .unwrap_or_else(|e| panic!("MIXTRAIN_BENCH_BACKEND: {e}"));
    let index = var("MIXTRAIN_BENCH_DEVICE").map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("MIXTRAIN_BENCH_DEVICE: {v:?} is not a GPU index"))
    });
    let device = backend
        .device(index)
        .unwrap_or_else(|e| panic!("MIXTRAIN_BENCH_BACKEND={backend}: {e}"));
    eprintln!("benches run on {backend} ({})", adapter_name(&device));
    device
}

/// Criterion's sampling for this mode: (samples, warm-up, measurement time).
pub fn sampling() -> (usize, Duration, Duration) {
    if quick() {
        (10, Duration::from_millis(200), Duration::from_millis(600))
    } else {
        (10, Duration::from_millis(500), Duration::from_secs(2))
    }
}

/// The offline data mirror: `MIXTRAIN_MIRROR`, else `../shared/datasets` beside the checkout.
pub fn mirror() -> PathBuf {
    std::env::var_os("MIXTRAIN_MIRROR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/datasets"))
}

/// The data directory benches fetch into (under `target/`).
pub fn data_dir() -> PathBuf {
    workspace().join("target/bench-data")
}

/// The MixTrain authors' reference weights `<name>` (in `../reference` beside the mirror), or
/// `None`, said on stderr, where they are not there (a hosted CI runner): the bench then runs
/// a seeded initialisation, whose timings differ from the trained network's.
pub fn reference(name: &str) -> Option<PathBuf> {
    let path = mirror().join("../reference").join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "note: {} not found; benchmarking a seeded initialisation instead",
            path.display()
        );
        None
    }
}
