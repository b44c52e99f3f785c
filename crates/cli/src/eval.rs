//! `mixtrain eval`: clean accuracy on a test split, and with `--eps` verified and attacked
//! accuracy.

use anyhow::Result;
use clap::Args;
use mixtrain_bounds::{DomainKind, InputDomain, Verifier};
use mixtrain_train::{PointProgress, Robustness, protocol};

use crate::attack::AttackOpts;
use crate::{TestArgs, extend};

#[derive(Args)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    test: TestArgs,
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Also verify robustness in an L_inf ball of this radius (pixel units) and report
    /// `verified_acc`.
    #[arg(long)]
    eps: Option<f64>,
    /// Bound domain for --eps: interval, symbolic, crown (CROWN-IBP), crown-symbolic,
    /// alpha-crown (optimised slopes) or best
    /// [default: the evaluation protocol's, best].
    #[arg(long, requires = "eps")]
    domain: Option<DomainKind>,
    /// The box inputs stay in: unit ([0,1]) or image (each image's own min and max pixel).
    #[arg(long, default_value = "unit", requires = "eps")]
    input_domain: InputDomain,
    /// Points per bound computation [default: the evaluation protocol's, 5 for the domains with
    /// symbolic bounds, 50 for interval and crown].
    #[arg(long)]
    bound_batch_size: Option<usize>,
    /// Bounds in float32 as computed, without widening them by a bound of their rounding (by
    /// default every bound does, so that a verified point is verified for exact arithmetic).
    #[arg(long, requires = "eps")]
    no_float_sound: bool,
    /// Bound every point, also those misclassified or broken by --attack, which no sound
    /// verifier can verify (by default they are left out): for a throughput comparison with a
    /// tool that bounds them all.
    #[arg(long, requires = "eps")]
    bound_all: bool,
    /// Also attack every point in the --eps ball and report `<attack>_acc` (e.g. `pgd_acc`):
    /// fgsm, pgd or interval.
    #[arg(long, requires = "eps")]
    attack: Option<String>,
    #[command(flatten)]
    attack_opts: AttackOpts,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn eval(args: EvalArgs) -> Result<()> {
    let (backend, device, net, set) = args.test.load()?;
    let input_domain = args.input_domain;
    let result = mixtrain_train::evaluate(&net, &set, args.batch_size, &device)?;
    let verifier = args.eps.map(|_| {
        let mut verifier = Verifier::new(args.domain.unwrap_or(protocol::VERIFY_DOMAIN));
        if let Some(b) = args.bound_batch_size {
            verifier.batch_size = b;
        }
        verifier.float_sound = !args.no_float_sound;
        verifier
    });
    let attack = match (&args.attack, args.eps) {
        (Some(name), Some(eps)) => Some(
            args.attack_opts
                .build(name, eps, &args.test.dataset, input_domain)?
                .0,
        ),
        _ => None,
    };
    let robust = match args.eps {
        Some(eps) => {
            device.seed(args.attack_opts.seed);
            let spec = Robustness {
                eps,
                input_domain,
                verifier: verifier.as_ref(),
                attack: attack.as_deref(),
                bound_all: args.bound_all,
            };
            // progress goes to stderr, so `--json` keeps stdout one object and still shows it
            let mut progress = PointProgress::new("eval", set.len(), false, false);
            let robust = mixtrain_train::robustness(
                &net,
                &set,
                &spec,
                args.batch_size,
                &device,
                &mut |tally| progress.update(tally),
            )?;
            progress.finish();
            Some(robust)
        }
        None => None,
    };
    let verified = robust.as_ref().filter(|r| r.verified_acc.is_some());
    let attacked = robust
        .as_ref()
        .zip(args.attack.as_ref())
        .filter(|(r, _)| r.attack_acc.is_some());
    if args.json {
        let mut obj = serde_json::to_value(&result)?;
        if let Some(v) = verified {
            extend(
                &mut obj,
                serde_json::json!({
                    "eps": v.eps,
                    "domain": v.domain,
                    "input_domain": v.input_domain,
                    "verified_acc": v.verified_acc,
                    "float_sound": v.float_sound,
                    "bounded": v.bounded,
                    "verify_seconds": v.verify_seconds,
                }),
            );
        }
        if let Some((a, name)) = attacked {
            extend(
                &mut obj,
                serde_json::json!({
                    "attack": name,
                    format!("{name}_acc"): a.attack_acc,
                    "attack_seconds": a.attack_seconds,
                }),
            );
        }
        extend(&mut obj, args.test.describe(backend, &device));
        println!("{obj}");
    } else {
        println!(
            "{} on {} ({} test images): clean accuracy {:.2}% in {:.2} s",
            args.test.model_name(),
            args.test.dataset,
            result.n,
            100.0 * result.clean_acc,
            result.seconds
        );
        if let Some((a, name)) = attacked {
            println!(
                "accuracy under {name} {:.2}% in {:.2} s (clean pass included)",
                100.0 * a.attack_acc.unwrap_or(0.0),
                a.attack_seconds
            );
        }
        if let Some(v) = verified {
            println!(
                "verified accuracy {:.2}% at eps {} ({} domain, {} inputs{}) in {:.2} s, {} points bounded",
                100.0 * v.verified_acc.unwrap_or(0.0),
                v.eps,
                v.domain.unwrap_or_default(),
                v.input_domain,
                if v.float_sound { ", float sound" } else { "" },
                v.verify_seconds,
                v.bounded
            );
        }
    }
    Ok(())
}
