//! The IDX format of MNIST: a 4-byte magic `00 00 <type> <ndims>`, `ndims` big-endian `u32`
//! dimensions, then the data in row-major order. MNIST uses type `0x08` (unsigned byte).

use std::path::Path;

use crate::{DataError, ImageSet, read_bytes};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Parses an IDX file of unsigned bytes with the given magic; returns its dimensions and data.
fn parse(
    path: &Path,
    bytes: &[u8],
    magic: u32,
    what: &'static str,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.into(),
            what: format!("the IDX magic number of {what}"),
            expected: 4,
            found: bytes.len() as u64,
        });
    }
    let found = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.into(),
            what,
            expected: magic,
            found,
        });
    }
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.into(),
            what: format!("the IDX header of {what}"),
            expected: header as u64,
            found: bytes.len() as u64,
        });
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = header as u64 + dims.iter().map(|&d| d as u64).product::<u64>();
    let found = bytes.len() as u64;
    if found < expected {
        return Err(DataError::Truncated {
            path: path.into(),
            what: format!("{what} of shape {dims:?}"),
            expected,
            found,
        });
    }
    if found > expected {
        return Err(DataError::corrupt(
            path,
            format!(
                "{} bytes after the {what} of shape {dims:?}",
                found - expected
            ),
        ));
    }
    Ok((dims, bytes[header..].to_vec()))
}

/// Reads an MNIST-style pair of IDX files (images `[n, h, w]`, labels `[n]`, classes 0..=9).
pub(crate) fn read_mnist(images: &Path, labels: &Path) -> Result<ImageSet, DataError> {
    let (idims, pixels) = parse(images, &read_bytes(images)?, IMAGES_MAGIC, "images")?;
    let (ldims, labels_data) = parse(labels, &read_bytes(labels)?, LABELS_MAGIC, "labels")?;
    if idims[0] != ldims[0] {
        return Err(DataError::corrupt(
            labels,
            format!(
                "{} labels for {} images in {}",
                ldims[0],
                idims[0],
                images.display()
            ),
        ));
    }
    if let Some((i, l)) = labels_data.iter().enumerate().find(|(_, l)| **l > 9) {
        return Err(DataError::corrupt(
            labels,
            format!("label {l} of image {i} is not a digit"),
        ));
    }
    Ok(ImageSet::new(
        pixels,
        labels_data,
        [1, idims[1], idims[2]],
        10,
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Writes a small MNIST-like pair of IDX files (optionally gzipped) into `dir`.
    pub(crate) fn write_pair(
        dir: &Path,
        n: usize,
        gz: bool,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let mut img = vec![0, 0, 8, 3];
        for d in [n as u32, 28, 28] {
            img.extend(d.to_be_bytes());
        }
        img.extend((0..n * 784).map(|i| (i % 251) as u8));
        let mut lab = vec![0, 0, 8, 1];
        lab.extend((n as u32).to_be_bytes());
        lab.extend((0..n).map(|i| (i % 10) as u8));
        let write = |name: &str, data: &[u8]| {
            let path = dir.join(name);
            if gz {
                let mut enc = flate2::write::GzEncoder::new(
                    std::fs::File::create(&path).unwrap(),
                    flate2::Compression::fast(),
                );
                enc.write_all(data).unwrap();
                enc.finish().unwrap();
            } else {
                std::fs::write(&path, data).unwrap();
            }
            path
        };
        (write("images.idx", &img), write("labels.idx", &lab))
    }

    #[test]
    fn reads_raw_and_gz() {
        for gz in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (i, l) = write_pair(dir.path(), 7, gz);
            let set = read_mnist(&i, &l).unwrap();
            assert_eq!(set.len(), 7);
            assert_eq!(set.shape(), [1, 28, 28]);
            assert_eq!(set.label(3), 3);
            assert_eq!(set.image(1)[0], (784 % 251) as u8);
        }
    }

    #[test]
    fn wrong_magic_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (i, l) = write_pair(dir.path(), 3, false);
        // images and labels swapped
        let e = read_mnist(&l, &i).unwrap_err();
        assert!(matches!(e, DataError::BadMagic { found: 0x801, .. }), "{e}");
        assert!(e.to_string().contains("labels.idx"), "{e}");
    }

    #[test]
    fn truncation_and_trailing_bytes_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (i, l) = write_pair(dir.path(), 3, false);
        let bytes = std::fs::read(&i).unwrap();
        std::fs::write(&i, &bytes[..bytes.len() - 10]).unwrap();
        let e = read_mnist(&i, &l).unwrap_err();
        assert!(
            matches!(e, DataError::Truncated { expected, found, .. } if expected == found + 10),
            "{e}"
        );
        std::fs::write(&i, &bytes[..10]).unwrap();
        assert!(matches!(
            read_mnist(&i, &l).unwrap_err(),
            DataError::Truncated { .. }
        ));
        let mut long = bytes.clone();
        long.push(0);
        std::fs::write(&i, &long).unwrap();
        let e = read_mnist(&i, &l).unwrap_err().to_string();
        assert!(e.contains("1 bytes after"), "{e}");
    }

    #[test]
    fn cut_gzip_is_corrupt_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let (i, l) = write_pair(dir.path(), 5, true);
        let bytes = std::fs::read(&i).unwrap();
        std::fs::write(&i, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_mnist(&i, &l).unwrap_err();
        assert!(matches!(e, DataError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("images.idx") && e.to_string().contains("gzip"));
    }

    #[test]
    fn count_mismatch_bad_labels_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let (i, _) = write_pair(dir.path(), 4, false);
        let other = tempfile::tempdir().unwrap();
        let (_, l3) = write_pair(other.path(), 3, false);
        let e = read_mnist(&i, &l3).unwrap_err().to_string();
        assert!(e.contains("3 labels for 4 images"), "{e}");

        let (i3, l3) = write_pair(other.path(), 3, false);
        let mut lab = std::fs::read(&l3).unwrap();
        *lab.last_mut().unwrap() = 42;
        std::fs::write(&l3, &lab).unwrap();
        let e = read_mnist(&i3, &l3).unwrap_err().to_string();
        assert!(e.contains("label 42"), "{e}");

        let e = read_mnist(&dir.path().join("nope"), &l3).unwrap_err();
        assert!(matches!(e, DataError::Missing { .. }) && e.to_string().contains("nope"));
    }
}
