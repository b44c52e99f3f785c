use rand::Rng;
use rand::seq::index;
use serde::{Deserialize, Serialize};

/// Stochastic robust approximation: the sound bound is computed on `k` points drawn at random
/// from each batch, an unbiased estimate of the batch's robust loss at a fraction of the cost.
/// The authors draw with replacement (`np.random.randint`), which is the default here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sra {
    /// Points per batch that get the sound bound; without replacement, at most the batch
    /// size.
    pub k: usize,
    /// Draw with replacement (the authors' choice), so the `k` points may repeat.
    pub replacement: bool,
}

impl Sra {
    /// `k` indices into a batch of `n` points (without replacement, at most `n` distinct ones).
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Vec<usize> {
        if n == 0 {
            return Vec::new();
        }
        if self.replacement {
            (0..self.k).map(|_| rng.random_range(0..n)).collect()
        } else {
            index::sample(rng, n, self.k.min(n)).into_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// Pearson's chi-square statistic of `counts` against equal expectations.
    fn chi_square(counts: &[usize]) -> f64 {
        let total: usize = counts.iter().sum();
        let expected = total as f64 / counts.len() as f64;
        counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum()
    }

    #[test]
    fn draws_are_uniform_with_and_without_replacement() {
        let mut rng = StdRng::seed_from_u64(3);
        for replacement in [true, false] {
            let sra = Sra { k: 5, replacement };
            let mut counts = [0usize; 50];
            let mut repeats = 0;
            for _ in 0..20_000 {
                let draw = sra.sample(50, &mut rng);
                assert_eq!(draw.len(), 5);
                let mut sorted = draw.clone();
                sorted.sort_unstable();
                sorted.dedup();
                repeats += 5 - sorted.len();
                for i in draw {
                    counts[i] += 1;
                }
            }
            // 49 degrees of freedom: the 99.9% quantile is 85.4
            let chi = chi_square(&counts);
            assert!(chi < 85.4, "replacement {replacement}: chi-square {chi}");
            if replacement {
                // P(some repeat among 5 of 50) = 1 - 50*49*48*47*46/50^5 = 0.1894
                let rate = repeats as f64 / 20_000.0;
                assert!(rate > 0.15 && rate < 0.25, "repeats per draw {rate}");
            } else {
                assert_eq!(repeats, 0, "without replacement the points are distinct");
            }
        }
    }

    #[test]
    fn small_batches() {
        let mut rng = StdRng::seed_from_u64(0);
        let without = Sra {
            k: 8,
            replacement: false,
        };
        let mut all = without.sample(3, &mut rng);
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2]);
        let with = Sra {
            k: 8,
            replacement: true,
        };
        assert_eq!(with.sample(3, &mut rng).len(), 8);
        assert!(with.sample(0, &mut rng).is_empty());
    }
}
