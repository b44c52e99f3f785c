//! `mixtrain verify`: a verdict per test point, a JSON line each, resumable.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use mixtrain_bounds::{BranchAndBound, DomainKind, InputDomain, Intermediate, Verdict, Verifier};
use mixtrain_train::{Examples, PointProgress, VerifyLog, VerifySettings, protocol, verify_points};

use crate::attack::AttackOpts;
use crate::{TestArgs, extend};

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    test: TestArgs,
    /// The L_inf radius, pixel units.
    #[arg(long)]
    eps: f64,
    /// interval, symbolic, crown, crown-symbolic, alpha-crown or best [default: the evaluation
    /// protocol's, best].
    #[arg(long)]
    domain: Option<DomainKind>,
    /// The box inputs stay in: unit ([0,1]) or image (each image's own min and max pixel).
    #[arg(long, default_value = "unit")]
    input_domain: InputDomain,
    /// Points per bound computation [default: 5 for the domains with symbolic bounds or
    /// alpha-CROWN, 50 for interval and crown].
    #[arg(long)]
    bound_batch_size: Option<usize>,
    /// alpha-CROWN's gradient steps on the slopes (alpha-crown and best).
    #[arg(long)]
    alpha_iterations: Option<usize>,
    /// alpha-CROWN's Adam step on the slopes.
    #[arg(long)]
    alpha_step: Option<f32>,
    /// alpha-CROWN's intermediate bounds: forward (the forward domains'), crown (tightened by
    /// CROWN once) or optimised (their slopes optimised with the margins').
    #[arg(long)]
    alpha_intermediate: Option<Intermediate>,
    /// alpha-CROWN's time per point, seconds, after which its slopes stop climbing (the bound
    /// met so far is kept); 0: no limit, every --alpha-iterations [default: 0.5].
    #[arg(long)]
    alpha_time_limit: Option<f64>,
    /// Bounds in float32 as computed, without widening them by a bound of their rounding (by
    /// default every bound does, so that a verified point is verified for exact arithmetic).
    #[arg(long)]
    no_float_sound: bool,
    /// Bound every point: no PGD attack first (by default one runs, with the evaluation
    /// protocol's settings or the flags below, and a point it breaks is `falsified`).
    #[arg(long)]
    no_attack: bool,
    #[command(flatten)]
    attack_opts: AttackOpts,
    /// Complete verification: branch and bound on every point the bounds leave undecided,
    /// until it is verified, falsified (a counterexample checked by a forward pass) or out of
    /// time. Points are then bounded one at a time.
    #[arg(long)]
    complete: bool,
    /// Branch and bound's time limit per point, seconds.
    #[arg(long, default_value_t = BranchAndBound::default().timeout)]
    timeout: f64,
    /// Subproblems branch and bound bounds at once.
    #[arg(long, default_value_t = BranchAndBound::default().batch)]
    bab_batch: usize,
    /// Branch and bound's gradient steps per batch on the slopes and the splits' multipliers.
    #[arg(long, default_value_t = BranchAndBound::default().iterations)]
    bab_iterations: usize,
    /// Branch and bound keeps the bounds in front of every ReLU from its root instead of
    /// recomputing those behind each split (faster subproblems, looser bounds).
    #[arg(long)]
    bab_fixed_intermediate: bool,
    /// Write every falsified point's counterexample (from the log, so a resumed run's too) as
    /// safetensors, like `attack --save`.
    #[arg(long)]
    save: Option<PathBuf>,
    /// The JSON-lines log, one line per point; a run killed earlier resumes from it.
    #[arg(long)]
    out: PathBuf,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn verify(args: VerifyArgs) -> Result<()> {
    let (backend, device, net, set) = args.test.load()?;
    let mut verifier = Verifier::new(args.domain.unwrap_or(protocol::VERIFY_DOMAIN));
    if let Some(b) = args.bound_batch_size {
        verifier.batch_size = b;
    }
    if let Some(i) = args.alpha_iterations {
        verifier.alpha.iterations = i;
    }
    if let Some(s) = args.alpha_step {
        verifier.alpha.step = s;
    }
    if let Some(i) = args.alpha_intermediate {
        verifier.alpha.intermediate = i;
    }
    if let Some(limit) = args.alpha_time_limit {
        if !(limit >= 0.0 && limit.is_finite()) {
            bail!("--alpha-time-limit must be 0 (no limit) or a number of seconds, not {limit}");
        }
        verifier.alpha.time_limit = (limit > 0.0).then_some(limit);
    }
    verifier.float_sound = !args.no_float_sound;
    if args.complete {
        verifier.complete = Some(BranchAndBound {
            timeout: args.timeout,
            batch: args.bab_batch,
            iterations: args.bab_iterations,
            intermediate: !args.bab_fixed_intermediate,
            ..BranchAndBound::default()
        });
        verifier.batch_size = 1;
    }
    let mut progress = PointProgress::new("verify", set.len(), args.complete, false);
    let attack = (!args.no_attack)
        .then(|| {
            args.attack_opts
                .build("pgd", args.eps, &args.test.dataset, args.input_domain)
        })
        .transpose()?;
    let settings = VerifySettings {
        eps: args.eps,
        input_domain: args.input_domain,
        verifier,
        attack: attack.as_ref().map(|(attack, _)| &**attack),
        seed: args.attack_opts.seed,
    };
    let summary = verify_points(
        &net,
        &set,
        &settings,
        VerifyLog {
            path: &args.out,
            progress: &mut |tally| progress.update(tally),
        },
        &device,
    )?;
    progress.finish();
    if let Some(path) = &args.save {
        save_counterexamples(&args.out, path, &net, &device)?;
    }
    if args.json {
        let mut obj = serde_json::to_value(&summary)?;
        extend(&mut obj, args.test.describe(backend, &device));
        println!("{obj}");
    } else {
        println!(
            "{} on {} ({} test images, eps {}, {}, {} box, {}): verified {} ({:.2}% verified \
             accuracy), falsified {}, {} unknown; {:.1} s, median {:.1} ms, 90th percentile \
             {:.1} ms per point{}; log {}",
            args.test.model_name(),
            args.test.dataset,
            summary.n,
            summary.eps,
            summary.domain,
            summary.input_domain,
            if summary.float_sound {
                "float sound"
            } else {
                "float32 as computed"
            },
            summary.verified,
            100.0 * summary.verified_acc,
            summary.falsified,
            summary.unknown,
            summary.seconds,
            summary.median_ms,
            summary.p90_ms,
            if summary.complete {
                format!(
                    " (branch and bound; decided points: median {:.2} s, 90th percentile {:.2} s)",
                    summary.median_decided_s, summary.p90_decided_s
                )
            } else {
                String::new()
            },
            summary.log.display()
        );
    }
    Ok(())
}

/// The counterexamples of the log `log` (every falsified point's, checked again when the log
/// was read) written to `path` as safetensors.
fn save_counterexamples(
    log: &std::path::Path,
    path: &std::path::Path,
    net: &mixtrain_nn::Network,
    device: &burn::tensor::Device,
) -> Result<()> {
    let mut examples = Examples {
        shape: net.architecture().input,
        ..Examples::default()
    };
    let text = std::fs::read_to_string(log)?;
    for line in text.lines() {
        let record: mixtrain_train::PointRecord = serde_json::from_str(line)?;
        if let (Verdict::Falsified, Some(x)) = (record.verdict, record.counterexample) {
            let logits = net.forward(burn::tensor::Tensor::<4>::from_data(
                burn::tensor::TensorData::new(
                    x.clone(),
                    [1, examples.shape[0], examples.shape[1], examples.shape[2]],
                ),
                device,
            ));
            let prediction: i64 = logits.argmax(1).into_scalar();
            examples.indices.push(record.index as i64);
            examples.labels.push(record.label);
            examples.predictions.push(prediction);
            examples.images.extend(x);
        }
    }
    let meta = [
        ("source", "mixtrain verify".to_string()),
        ("log", log.display().to_string()),
    ];
    examples.save(
        path,
        meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    )?;
    eprintln!(
        "{} counterexamples saved to {}",
        examples.len(),
        path.display()
    );
    Ok(())
}
