//! `mixtrain attack`: FGSM, PGD or the interval attack on a test split, and the attack
//! settings `eval` and `verify` share.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use mixtrain_attack::{Attack, AttackLoss, IntervalAttack, Pgd};
use mixtrain_bounds::InputDomain;
use mixtrain_train::{Examples, protocol};

use crate::{TestArgs, extend};

/// How an attack runs. Defaults are the evaluation protocol's (`mixtrain_train::protocol`): on
/// MNIST 40 steps of 0.01, elsewhere 20 steps of eps / 4; one random start.
#[derive(Args)]
pub(crate) struct AttackOpts {
    /// PGD steps (after each interval step, for the interval attack); FGSM takes one.
    #[arg(long)]
    steps: Option<usize>,
    /// PGD step size (pixel units).
    #[arg(long)]
    step_size: Option<f64>,
    /// Runs per point from fresh random starts; the first adversarial example found counts.
    #[arg(long, default_value_t = 1)]
    restarts: usize,
    /// The loss the attack ascends: ce (cross-entropy) or margin (max_j z_j - z_y).
    #[arg(long, default_value = "ce")]
    loss: AttackLoss,
    /// Interval attack: rounds of one interval step then the PGD steps.
    #[arg(long, default_value_t = 3)]
    interval_steps: usize,
    /// Interval attack: half-width of the first box bounded around the point.
    #[arg(long, default_value_t = 0.01)]
    estep: f64,
    /// Seed of the random starts.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
}

impl AttackOpts {
    /// The attack `name` at `eps` on `dataset`, with the PGD settings it runs (FGSM's own, the
    /// interval attack's inner PGD) for reports.
    pub(crate) fn build(
        &self,
        name: &str,
        eps: f64,
        dataset: &str,
        domain: InputDomain,
    ) -> Result<(Box<dyn Attack>, Pgd)> {
        let steps = self.steps.unwrap_or_else(|| protocol::pgd_steps(dataset));
        let step_size = self
            .step_size
            .unwrap_or_else(|| protocol::pgd_step_size(dataset, eps));
        let pgd = Pgd {
            restarts: self.restarts,
            loss: self.loss,
            domain,
            ..Pgd::new(eps as f32, step_size as f32, steps)
        };
        Ok(match name {
            // FGSM keeps the loss and the input domain asked for; steps and restarts are its own
            "fgsm" => {
                let fgsm = Pgd {
                    loss: pgd.loss,
                    domain,
                    ..Pgd::fgsm(eps as f32)
                };
                (Box::new(fgsm), fgsm)
            }
            "pgd" => (Box::new(pgd), pgd),
            "interval" => (
                Box::new(IntervalAttack {
                    estep: self.estep as f32,
                    interval_steps: self.interval_steps,
                    ..IntervalAttack::new(pgd)
                }),
                pgd,
            ),
            _ => bail!("unknown attack {name:?}: expected fgsm, pgd or interval"),
        })
    }
}

#[derive(Args)]
pub(crate) struct AttackArgs {
    #[command(flatten)]
    test: TestArgs,
    /// L_inf radius of the attack (pixel units).
    #[arg(long)]
    eps: f64,
    /// fgsm, pgd or interval.
    #[arg(long, default_value = "pgd")]
    attack: String,
    #[command(flatten)]
    attack_opts: AttackOpts,
    /// The box inputs stay in: unit ([0,1]) or image (each image's own min and max pixel).
    #[arg(long, default_value = "unit")]
    input_domain: InputDomain,
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Save the adversarial examples found (safetensors: images, indices, labels,
    /// predictions).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn attack(args: AttackArgs) -> Result<()> {
    let (backend, device, net, set) = args.test.load()?;
    let test = &args.test;
    let input_domain = args.input_domain;
    let opts = &args.attack_opts;
    // `settings`: the (inner) PGD the attack runs, as reported
    let (attack, settings) = opts.build(&args.attack, args.eps, &test.dataset, input_domain)?;
    device.seed(opts.seed);
    let mut examples = args.save.as_ref().map(|_| Examples::default());
    let result = mixtrain_train::attack(
        &net,
        &set,
        &*attack,
        args.batch_size,
        &device,
        examples.as_mut(),
    )?;
    if let (Some(path), Some(examples)) = (&args.save, &examples) {
        let meta = [
            ("model", test.model_name()),
            ("dataset", test.dataset.clone()),
            ("attack", args.attack.clone()),
            ("eps", args.eps.to_string()),
        ];
        examples.save(
            path,
            meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        )?;
    }
    if args.json {
        let mut obj = serde_json::to_value(&result)?;
        extend(
            &mut obj,
            serde_json::json!({
                "attack": args.attack,
                "eps": args.eps,
                "steps": settings.steps,
                // f32 inside: rounded back to what was asked for
                "step_size": (f64::from(settings.step_size) * 1e6).round() / 1e6,
                "restarts": settings.restarts,
                "loss": settings.loss.name(),
                "input_domain": input_domain.name(),
            }),
        );
        extend(&mut obj, test.describe(backend, &device));
        if let (Some(path), Some(examples)) = (&args.save, &examples) {
            extend(
                &mut obj,
                serde_json::json!({ "examples": examples.len(), "saved": path }),
            );
        }
        println!("{obj}");
    } else {
        println!(
            "{} on {} ({} test images), {} at eps {}: clean accuracy {:.2}%, robust accuracy {:.2}% in {:.2} s",
            test.model_name(),
            test.dataset,
            result.n,
            args.attack,
            args.eps,
            100.0 * result.clean_acc,
            100.0 * result.robust_acc,
            result.seconds
        );
        if let (Some(path), Some(examples)) = (&args.save, &examples) {
            println!(
                "{} adversarial examples saved to {}",
                examples.len(),
                path.display()
            );
        }
    }
    Ok(())
}
