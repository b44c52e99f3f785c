//! Training-time augmentation of CIFAR-style batches, on the host before the batch reaches the
//! device (a few hundred kilobytes per batch; nothing to gain from a kernel).

use rand::{Rng, SeedableRng};

use crate::Batch;

/// Random crop of the original size from the image zero-padded by `crop_padding` on every side,
/// then a horizontal flip with probability one half when `flip` (torchvision's
/// `RandomCrop(32, padding=4)` + `RandomHorizontalFlip()`, the MixTrain authors' CIFAR
/// augmentation). Both are seeded per batch, so an epoch's augmentation is reproducible and a
/// resumed run sees the same images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Augment {
    /// Zero padding added on every side before the random crop, in pixels (0: no shift).
    pub crop_padding: usize,
    /// Flip each image horizontally with probability one half.
    pub flip: bool,
}

impl Augment {
    /// The paper's CIFAR-10 augmentation.
    pub const CIFAR: Augment = Augment {
        crop_padding: 4,
        flip: true,
    };

    /// Augments every image of `batch` in place, drawing from `seed`.
    pub fn apply(&self, batch: &mut Batch, seed: u64) {
        let [c, h, w] = batch.shape;
        let p = self.crop_padding;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut out = vec![0.0f32; c * h * w];
        for image in batch.pixels.chunks_exact_mut(c * h * w) {
            let dy = rng.random_range(0..=2 * p) as isize - p as isize;
            let dx = rng.random_range(0..=2 * p) as isize - p as isize;
            let flip = self.flip && rng.random_bool(0.5);
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        let xc = if flip { w - 1 - x } else { x };
                        let (sy, sx) = (y as isize + dy, xc as isize + dx);
                        out[(ch * h + y) * w + x] =
                            if (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx) {
                                image[(ch * h + sy as usize) * w + sx as usize]
                            } else {
                                0.0
                            };
                    }
                }
            }
            image.copy_from_slice(&out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Images whose pixels are all distinct and nonzero, so a shift is recognisable.
    fn batch(n: usize, [c, h, w]: [usize; 3]) -> Batch {
        let len = c * h * w;
        Batch {
            pixels: (0..n * len).map(|i| 1.0 + (i % len) as f32).collect(),
            labels: vec![0; n],
            shape: [c, h, w],
            indices: (0..n).collect(),
        }
    }

    /// The `(dy, dx, flip)` that explain `out` as a crop of `input`, if any.
    fn explain(
        input: &[f32],
        out: &[f32],
        [c, h, w]: [usize; 3],
        p: isize,
    ) -> Option<(isize, isize, bool)> {
        for flip in [false, true] {
            for dy in -p..=p {
                for dx in -p..=p {
                    let ok = (0..c * h * w).all(|i| {
                        let (ch, y, x) = (i / (h * w), i / w % h, i % w);
                        let xc = if flip { w - 1 - x } else { x };
                        let (sy, sx) = (y as isize + dy, xc as isize + dx);
                        let want = if (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx)
                        {
                            input[(ch * h + sy as usize) * w + sx as usize]
                        } else {
                            0.0
                        };
                        out[i] == want
                    });
                    if ok {
                        return Some((dy, dx, flip));
                    }
                }
            }
        }
        None
    }

    #[test]
    fn every_image_is_a_padded_crop_possibly_flipped() {
        let shape = [2, 6, 5];
        let original = batch(64, shape);
        let mut b = original.clone();
        Augment {
            crop_padding: 2,
            flip: true,
        }
        .apply(&mut b, 7);
        let len = 60;
        let mut seen = std::collections::HashSet::new();
        for (i, o) in original.pixels.chunks(len).zip(b.pixels.chunks(len)) {
            let found = explain(i, o, shape, 2);
            assert!(found.is_some(), "not a crop of the padded image");
            seen.insert(found.unwrap());
        }
        assert!(
            seen.iter().any(|s| s.2) && seen.iter().any(|s| !s.2),
            "flips both ways"
        );
        assert!(seen.len() > 10, "shifts vary: {seen:?}");

        let mut again = original.clone();
        Augment {
            crop_padding: 2,
            flip: true,
        }
        .apply(&mut again, 7);
        assert_eq!(again, b, "seeded");
        let mut none = original.clone();
        Augment {
            crop_padding: 0,
            flip: false,
        }
        .apply(&mut none, 7);
        assert_eq!(none, original, "no padding, no flip: the identity");
    }
}
