//! CIFAR-10's binary version: records of 1 label byte followed by 3072 pixel bytes (the R plane,
//! then G, then B, each 32x32 row-major), any number of files, raw or gzipped.

use std::path::Path;

use crate::{DataError, ImageSet, read_bytes};

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;
const RECORD: usize = 1 + PIXELS;

/// Reads and concatenates CIFAR-10 binary record files.
pub(crate) fn read_cifar10(paths: &[impl AsRef<Path>]) -> Result<ImageSet, DataError> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let bytes = read_bytes(path)?;
        if bytes.is_empty() {
            return Err(DataError::corrupt(path, "no records"));
        }
        if bytes.len() % RECORD != 0 {
            let records = bytes.len() / RECORD;
            return Err(DataError::Truncated {
                path: path.into(),
                what: format!("record {records} (records are {RECORD} bytes)"),
                expected: ((records + 1) * RECORD) as u64,
                found: bytes.len() as u64,
            });
        }
        pixels.reserve(bytes.len());
        for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
            if record[0] > 9 {
                return Err(DataError::corrupt(
                    path,
                    format!(
                        "label {} of record {i} is not a class of CIFAR-10",
                        record[0]
                    ),
                ));
            }
            labels.push(record[0]);
            pixels.extend_from_slice(&record[1..]);
        }
    }
    Ok(ImageSet::new(pixels, labels, [3, SIDE, SIDE], 10))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn records(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                std::iter::once((i % 10) as u8)
                    .chain((0..PIXELS).map(move |p| ((p + i) % 256) as u8))
            })
            .collect()
    }

    #[test]
    fn reads_several_raw_and_gz_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.bin");
        std::fs::write(&a, records(3)).unwrap();
        let b = dir.path().join("b.bin.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&b).unwrap(),
            flate2::Compression::fast(),
        );
        enc.write_all(&records(2)).unwrap();
        enc.finish().unwrap();
        let set = read_cifar10(&[&a, &b]).unwrap();
        assert_eq!(set.len(), 5);
        assert_eq!(set.shape(), [3, 32, 32]);
        assert_eq!(set.label(4), 1);
        assert_eq!(
            set.image(4)[0],
            1,
            "pixels of the second file's second record"
        );
    }

    #[test]
    fn truncated_record_bad_label_empty_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.bin");
        let mut bytes = records(2);
        bytes.truncate(RECORD + 100);
        std::fs::write(&a, &bytes).unwrap();
        let e = read_cifar10(&[&a]).unwrap_err();
        assert!(
            matches!(e, DataError::Truncated { .. }) && e.to_string().contains("record 1"),
            "{e}"
        );

        let mut bytes = records(2);
        bytes[RECORD] = 200;
        std::fs::write(&a, &bytes).unwrap();
        let e = read_cifar10(&[&a]).unwrap_err().to_string();
        assert!(e.contains("label 200 of record 1"), "{e}");

        std::fs::write(&a, b"").unwrap();
        assert!(
            read_cifar10(&[&a])
                .unwrap_err()
                .to_string()
                .contains("no records")
        );
        let e = read_cifar10(&[dir.path().join("missing.bin")]).unwrap_err();
        assert!(matches!(e, DataError::Missing { .. }));
    }
}
