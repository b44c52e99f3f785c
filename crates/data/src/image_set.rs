use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::Batches;

/// A labelled set of images held as raw `u8` pixels in `[c, h, w]` (NCHW) order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSet {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    shape: [usize; 3],
    classes: usize,
}

impl ImageSet {
    /// A set from raw parts; `pixels.len()` must be `labels.len() * c * h * w`.
    pub fn new(pixels: Vec<u8>, labels: Vec<u8>, shape: [usize; 3], classes: usize) -> Self {
        assert_eq!(
            pixels.len(),
            labels.len() * shape.iter().product::<usize>(),
            "ImageSet::new: pixel count does not match labels x shape"
        );
        Self {
            pixels,
            labels,
            shape,
            classes,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set has no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[channels, height, width]` of one image.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Number of classes of the dataset; labels are in `0..classes`.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The raw pixels (0 to 255, `[c, h, w]` order) of image `i`; panics when out of range.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The class of image `i`; panics when out of range.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// The class of every image, in order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The first `n` images (all of them when `n >= len`).
    pub fn take(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.pixels.truncate(n * self.image_len());
        self.labels.truncate(n);
        self
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Self {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Self::new(pixels, labels, self.shape, self.classes)
    }

    /// Splits off `n` images drawn at random (seeded) as a held-out set: `(rest, held_out)`.
    pub fn split_off_random(&self, n: usize, seed: u64) -> (Self, Self) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let n = n.min(self.len());
        let (held, rest) = order.split_at(n);
        let mut rest = rest.to_vec();
        rest.sort_unstable();
        let mut held = held.to_vec();
        held.sort_unstable();
        (self.select(&rest), self.select(&held))
    }

    /// Batches in storage order (`seed: None`) or shuffled by a seeded permutation.
    pub fn batches(&self, batch_size: usize, seed: Option<u64>) -> Batches<'_> {
        Batches::new(self, batch_size, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> ImageSet {
        ImageSet::new(
            (0..n * 4).map(|v| v as u8).collect(),
            (0..n as u8).collect(),
            [1, 2, 2],
            256,
        )
    }

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let s = set(50);
        let (a, b) = s.split_off_random(10, 7);
        assert_eq!((a.len(), b.len()), (40, 10));
        let mut all: Vec<u8> = a.labels().iter().chain(b.labels()).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<u8>>());
        assert_eq!(s.split_off_random(10, 7).1, b);
        assert_ne!(s.split_off_random(10, 8).1, b);
        assert_eq!(
            b.image(0)[0],
            b.label(0) * 4,
            "pixels travel with their label"
        );
    }
}
