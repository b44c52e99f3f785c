//! Tiny-ImageNet-200's official folder layout:
//!
//! ```text
//! <root>/train/<wnid>/images/*.JPEG         training images of class <wnid>
//! <root>/val/images/*.JPEG                  validation images
//! <root>/val/val_annotations.txt            <file>\t<wnid>\t<box...> per validation image
//! ```
//!
//! The classes are the `train/` folders in sorted order (torchvision's `ImageFolder`
//! convention), so class indices do not depend on the order of `wnids.txt`. The validation set
//! (the test set has no public labels) is the `Test` split. Grayscale images are expanded to
//! RGB; every image must have the size of the first.

use std::path::{Path, PathBuf};

use crate::{DataError, ImageSet, Split};

/// The tree's root under a dataset directory: the archive unpacks to `tiny-imagenet-200/`,
/// a tree copied by hand may sit directly in it.
pub(crate) fn root(base: &Path) -> PathBuf {
    let nested = base.join("tiny-imagenet-200");
    if nested.join("train").is_dir() {
        nested
    } else {
        base.to_path_buf()
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| DataError::io(dir, e)))
        .collect::<Result<_, _>>()?;
    entries.sort();
    Ok(entries)
}

fn is_jpeg(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jpeg") || e.eq_ignore_ascii_case("jpg"))
}

/// Reads one split of the tree at `root`.
pub(crate) fn read(root: &Path, split: Split) -> Result<ImageSet, DataError> {
    let train = root.join("train");
    let wnids: Vec<String> = sorted_entries(&train)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    if wnids.is_empty() || wnids.len() > 256 {
        return Err(DataError::corrupt(
            &train,
            format!(
                "expected 1 to 256 class folders, found {} (labels are stored as bytes)",
                wnids.len()
            ),
        ));
    }
    let files: Vec<(PathBuf, u8)> = match split {
        Split::Train => {
            let mut files = Vec::new();
            for (class, wnid) in wnids.iter().enumerate() {
                let images = train.join(wnid).join("images");
                for p in sorted_entries(&images)?.into_iter().filter(|p| is_jpeg(p)) {
                    files.push((p, class as u8));
                }
            }
            files
        }
        Split::Test => {
            let val = root.join("val");
            let annotations = val.join("val_annotations.txt");
            let text = std::fs::read_to_string(&annotations)
                .map_err(|e| DataError::io(&annotations, e))?;
            let mut files = Vec::new();
            for (line, row) in text
                .lines()
                .enumerate()
                .filter(|(_, r)| !r.trim().is_empty())
            {
                let mut fields = row.split('\t');
                let (Some(file), Some(wnid)) = (fields.next(), fields.next()) else {
                    return Err(DataError::corrupt(
                        &annotations,
                        format!("line {}: expected <file>\\t<wnid>\\t...", line + 1),
                    ));
                };
                let class = wnids.iter().position(|w| w == wnid).ok_or_else(|| {
                    DataError::corrupt(
                        &annotations,
                        format!(
                            "line {}: class {wnid} has no folder under {}",
                            line + 1,
                            train.display()
                        ),
                    )
                })?;
                files.push((val.join("images").join(file), class as u8));
            }
            files
        }
    };
    if files.is_empty() {
        return Err(DataError::corrupt(root, format!("no {split} images")));
    }
    decode_all(files, wnids.len())
}

/// Decodes every file to RGB bytes (CHW), on all cores.
fn decode_all(files: Vec<(PathBuf, u8)>, classes: usize) -> Result<ImageSet, DataError> {
    let (w, h) = decode(&files[0].0)?.dimensions();
    let shape = [3, h as usize, w as usize];
    let len = 3 * (w * h) as usize;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = files.len().div_ceil(threads);
    let parts: Vec<Result<Vec<u8>, DataError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut pixels = Vec::with_capacity(part.len() * len);
                    for (path, _) in part {
                        let image = decode(path)?;
                        if image.dimensions() != (w, h) {
                            return Err(DataError::corrupt(
                                path,
                                format!(
                                    "image is {}x{}, the dataset's images are {w}x{h}",
                                    image.width(),
                                    image.height()
                                ),
                            ));
                        }
                        // HWC to CHW
                        let raw = image.as_raw();
                        for c in 0..3 {
                            pixels.extend(raw.iter().skip(c).step_by(3));
                        }
                    }
                    Ok(pixels)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a decoding thread panicked"))
            .collect()
    });
    let mut pixels = Vec::with_capacity(files.len() * len);
    for part in parts {
        pixels.extend(part?);
    }
    let labels = files.iter().map(|(_, l)| *l).collect();
    Ok(ImageSet::new(pixels, labels, shape, classes))
}

fn decode(path: &Path) -> Result<image::RgbImage, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
        .map(|i| i.to_rgb8())
        .map_err(|e| DataError::corrupt(path, format!("not a readable JPEG: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a flat-colour JPEG (JPEG is lossy; flat colours survive within a few levels).
    fn jpeg(path: &Path, side: u32, rgb: [u8; 3], gray: bool) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        if gray {
            image::GrayImage::from_pixel(side, side, image::Luma([rgb[0]]))
                .save_with_format(path, image::ImageFormat::Jpeg)
                .unwrap();
        } else {
            image::RgbImage::from_pixel(side, side, image::Rgb(rgb))
                .save_with_format(path, image::ImageFormat::Jpeg)
                .unwrap();
        }
    }

    /// Three classes listed out of order in `wnids.txt`, two training images each (one of them
    /// grayscale), three validation images.
    fn tree(root: &Path) {
        std::fs::create_dir_all(root).unwrap();
        std::fs::write(root.join("wnids.txt"), "n03\nn01\nn02\n").unwrap();
        for (c, wnid) in ["n01", "n02", "n03"].iter().enumerate() {
            for i in 0..2 {
                let file = root.join(format!("train/{wnid}/images/{wnid}_{i}.JPEG"));
                let v = 40 * c as u8 + 20 * i as u8;
                jpeg(&file, 8, [v, 100, 200], c == 1 && i == 1);
            }
            std::fs::write(root.join(format!("train/{wnid}/{wnid}_boxes.txt")), "").unwrap();
        }
        let mut annotations = String::new();
        for (i, wnid) in ["n03", "n01", "n03"].iter().enumerate() {
            jpeg(
                &root.join(format!("val/images/val_{i}.JPEG")),
                8,
                [10, 250, 30],
                false,
            );
            annotations.push_str(&format!("val_{i}.JPEG\t{wnid}\t0\t0\t7\t7\n"));
        }
        std::fs::write(root.join("val/val_annotations.txt"), annotations).unwrap();
    }

    fn near(a: u8, b: u8) -> bool {
        a.abs_diff(b) <= 4
    }

    #[test]
    fn reads_the_official_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tiny-imagenet-200");
        tree(&root);
        assert_eq!(super::root(dir.path()), root);

        let train = read(&root, Split::Train).unwrap();
        assert_eq!(
            (train.len(), train.shape(), train.classes()),
            (6, [3, 8, 8], 3)
        );
        assert_eq!(
            train.labels(),
            [0, 0, 1, 1, 2, 2],
            "sorted folder names, not wnids.txt"
        );
        let img = train.image(4); // n03_0: [80, 100, 200] in CHW planes
        assert!(
            near(img[0], 80) && near(img[64], 100) && near(img[128], 200),
            "{:?}",
            &img[..3]
        );
        let gray = train.image(3); // n02_1 grayscale 60: every channel 60
        assert!(
            [0, 64, 128].iter().all(|&c| near(gray[c], 60)),
            "{}",
            gray[0]
        );

        let val = read(&root, Split::Test).unwrap();
        assert_eq!(val.labels(), [2, 0, 2]);
        let img = val.image(1);
        assert!(near(img[0], 10) && near(img[64], 250) && near(img[128], 30));
    }

    #[test]
    fn bad_trees_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        tree(root);
        std::fs::write(root.join("val/val_annotations.txt"), "val_0.JPEG\tn99\t0\n").unwrap();
        let e = read(root, Split::Test).unwrap_err().to_string();
        assert!(
            e.contains("val_annotations.txt") && e.contains("line 1") && e.contains("n99"),
            "{e}"
        );
        std::fs::write(root.join("val/val_annotations.txt"), "val_0.JPEG\n").unwrap();
        let e = read(root, Split::Test).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");

        let bad = root.join("train/n02/images/n02_0.JPEG");
        std::fs::write(&bad, b"\xff\xd8 truncated").unwrap();
        let e = read(root, Split::Train).unwrap_err().to_string();
        assert!(e.contains("n02_0.JPEG") && e.contains("JPEG"), "{e}");

        jpeg(&bad, 16, [1, 2, 3], false);
        let e = read(root, Split::Train).unwrap_err().to_string();
        assert!(e.contains("n02_0.JPEG") && e.contains("16x16"), "{e}");

        std::fs::remove_dir_all(root.join("val")).unwrap();
        let e = read(root, Split::Test).unwrap_err().to_string();
        assert!(
            e.contains("val_annotations.txt") && e.contains("not found"),
            "{e}"
        );
    }
}
