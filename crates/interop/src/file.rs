//! What the ONNX and VNN-LIB readers share: files plain or gzipped (as VNN-COMP ships them),
//! and their names without those suffixes.

use std::io::Read;
use std::path::Path;

/// The bytes of `path`, decompressed when it is gzip (magic `1f 8b`).
pub(crate) fn read_maybe_gz(path: &Path) -> std::io::Result<Vec<u8>> {
    let raw = std::fs::read(path)?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw.as_slice()).read_to_end(&mut out)?;
    Ok(out)
}

/// The file name of `path` without `.gz`, then `.onnx` or `.vnnlib`: a network's or a
/// property's name (`mnist-net_256x2`, `prop_0_0.03`).
pub fn stem(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.trim_end_matches(".gz")
        .trim_end_matches(".onnx")
        .trim_end_matches(".vnnlib")
        .to_string()
}
