//! Reads a dataset through its manifest and prints what is in it: split sizes, image shape,
//! images per class and the mean pixel.
//!
//! ```text
//! cargo run -p mixtrain-data --example inspect -- [DATASET]
//! ```
//!
//! `DATASET` is a manifest name (default `mnist`; see `datasets/*.toml`). Files are read from
//! `MIXTRAIN_DATA` (default `datasets/cache`); missing ones are copied, checksums checked, from
//! the offline mirror `MIXTRAIN_MIRROR` (`cargo xtask fetch NAME` downloads them instead).

use mixtrain_data::{DataDir, Split};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "mnist".into());
    let dir = DataDir::from_env();
    let manifest = mixtrain_data::ensure(&name, &dir, DataDir::mirror_from_env().as_deref())?;
    println!("{name}: {}", manifest.description);
    for split in [Split::Train, Split::Test] {
        let set = manifest.load(split, &dir)?;
        let mut per_class = vec![0usize; set.classes()];
        for &label in set.labels() {
            per_class[label as usize] += 1;
        }
        let pixels: u64 = (0..set.len())
            .flat_map(|i| set.image(i).iter().map(|&p| u64::from(p)))
            .sum();
        let mean = pixels as f64 / (set.len() * set.image_len()) as f64 / 255.0;
        println!(
            "  {split:?}: {} images of {:?}, mean pixel {mean:.4}, per class {per_class:?}",
            set.len(),
            set.shape(),
        );
    }
    Ok(())
}
