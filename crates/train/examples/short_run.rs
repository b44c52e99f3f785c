//! A short MixTrain run on a slice of MNIST through the library: the `mnist-mixtrain` preset
//! with a few fields overridden, exactly as `mixtrain train --preset mnist-mixtrain --set
//! KEY=VALUE` would.
//!
//! ```text
//! cargo run --release -p mixtrain-train --example short_run -- [OUT]
//! ```
//!
//! Trains `mnist_small` for 2 epochs on 1,000 training images (eps ramping to 0.1 in the first
//! epoch), then evaluates clean accuracy, verified robust accuracy and PGD accuracy on 200 test
//! images. The run directory `OUT` (default `runs/short-run`) receives the configuration,
//! per-epoch metrics, checkpoints, the weights and a report; run the same command again after
//! killing it and it resumes. MNIST is read from `MIXTRAIN_DATA` (default `datasets/cache`),
//! copied there from the offline mirror `MIXTRAIN_MIRROR` when missing.

use mixtrain_train::{RunOptions, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "runs/short-run".into());
    let mut config = TrainConfig::preset("mnist-mixtrain")?;
    for (key, value) in [
        ("epochs", "2"),
        ("train_limit", "1100"),
        ("val_size", "100"),
        ("test_limit", "200"),
        ("eps_schedule.ramp_epochs", "1"),
        ("final_eval.pgd_steps", "10"),
    ] {
        config.set(key, value)?;
    }
    let options = RunOptions {
        resume: std::path::Path::new(&out).join("checkpoints").exists(),
        ..RunOptions::new(&out)
    };
    let summary = mixtrain_train::run(&config, &options)?;
    let f = summary
        .final_eval
        .as_ref()
        .expect("a run that is not validation only evaluates on the test split");
    println!(
        "{} on {} test images at eps {}: clean {:.1}%, verified ({}) {:.1}%, PGD {:.1}%",
        summary.model,
        f.n,
        f.eps,
        100.0 * f.clean_acc,
        f.domain,
        100.0 * f.vra,
        100.0 * f.pgd_acc.unwrap_or(f.clean_acc),
    );
    println!("weights: {}", summary.weights.display());
    Ok(())
}
