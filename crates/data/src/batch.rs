use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::ImageSet;

/// One batch: pixels as `f32` in `[0, 1]`, NCHW, and class labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `len() * c * h * w` pixels in `[0, 1]` (not normalised), NCHW, image after image.
    pub pixels: Vec<f32>,
    /// Class index of each image.
    pub labels: Vec<i64>,
    /// `[channels, height, width]` of one image.
    pub shape: [usize; 3],
    /// Positions of these images in the set (for reporting which points failed).
    pub indices: Vec<usize>,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch has no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[n, c, h, w]`.
    pub fn dims(&self) -> [usize; 4] {
        [self.len(), self.shape[0], self.shape[1], self.shape[2]]
    }
}

/// Iterator over the batches of an [`ImageSet`]. The last batch may be smaller.
///
/// Shuffling draws one permutation of all indices from `StdRng::seed_from_u64(seed)`, so a
/// given seed always gives the same order, on every platform and backend; the trainer passes
/// `seed + epoch` so that each epoch has its own order and a resumed run sees the same one.
pub struct Batches<'a> {
    set: &'a ImageSet,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
}

impl<'a> Batches<'a> {
    pub(crate) fn new(set: &'a ImageSet, batch_size: usize, seed: Option<u64>) -> Self {
        assert!(batch_size > 0, "batch size must be positive");
        let mut order: Vec<usize> = (0..set.len()).collect();
        if let Some(seed) = seed {
            order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        }
        Self {
            set,
            order,
            batch_size,
            next: 0,
        }
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let indices = self.order[self.next..end].to_vec();
        self.next = end;
        let mut pixels = Vec::with_capacity(indices.len() * self.set.image_len());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in &indices {
            pixels.extend(self.set.image(i).iter().map(|&p| f32::from(p) / 255.0));
            labels.push(i64::from(self.set.label(i)));
        }
        Some(Batch {
            pixels,
            labels,
            shape: self.set.shape(),
            indices,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.order.len() - self.next).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> ImageSet {
        ImageSet::new(
            (0..n).map(|v| (v * 5) as u8).collect(),
            (0..n).map(|v| (v % 10) as u8).collect(),
            [1, 1, 1],
            10,
        )
    }

    #[test]
    fn covers_every_image_once_with_a_short_last_batch() {
        let s = set(23);
        let batches: Vec<Batch> = s.batches(5, Some(1)).collect();
        assert_eq!(batches.len(), 5);
        assert_eq!(batches[4].len(), 3);
        let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
        for b in &batches {
            for (k, &i) in b.indices.iter().enumerate() {
                assert_eq!(b.labels[k], (i % 10) as i64);
                assert_eq!(b.pixels[k], (i * 5) as f32 / 255.0);
            }
        }
    }

    #[test]
    fn shuffling_is_seeded() {
        let s = set(40);
        let order = |seed| s.batches(40, seed).next().unwrap().indices;
        assert_eq!(order(Some(3)), order(Some(3)));
        assert_ne!(order(Some(3)), order(Some(4)));
        assert_eq!(order(None), (0..40).collect::<Vec<_>>());
    }
}
