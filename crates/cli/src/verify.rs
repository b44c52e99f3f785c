//! `mixtrain verify`: a verdict per test point, a JSON line each, resumable.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mixtrain_bounds::{DomainKind, InputDomain, Intermediate, Verifier};
use mixtrain_train::{VerifyLog, VerifySettings, protocol, verify_points};

use crate::{AttackOpts, TestArgs, extend};

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
    verifier.float_sound = !args.no_float_sound;
    let mut progress = Progress::new(set.len());
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
            progress: &mut |done, total, verified| progress.update(done, total, verified),
        },
        &device,
    )?;
    progress.finish();
    if args.json {
        let mut obj = serde_json::to_value(&summary)?;
        extend(&mut obj, args.test.describe(backend, &device));
        println!("{obj}");
    } else {
        println!(
            "{} on {} ({} test images, eps {}, {}, {} box, {}): verified {} ({:.2}% verified \
             accuracy), falsified {}, {} unknown; {:.1} s, median {:.1} ms, 90th percentile \
             {:.1} ms per point; log {}",
            args.test.model,
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
            summary.log.display()
        );
    }
    Ok(())
}

/// Points done, verified so far, elapsed and ETA: a bar on a terminal, a plain line every
/// tenth of the points otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    start: Instant,
    next_line: usize,
}

impl Progress {
    fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "verify {bar:30} {pos}/{len} points, {msg} [{elapsed} < {eta}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Self {
            bar,
            start: Instant::now(),
            next_line: 0,
        }
    }

    fn update(&mut self, done: usize, total: usize, verified: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            bar.set_message(format!("{verified} verified"));
        } else if done >= self.next_line && done < total {
            eprintln!(
                "verify {done}/{total} points, {verified} verified, {:.0} s",
                self.start.elapsed().as_secs_f64()
            );
            self.next_line = done + total.div_ceil(10).max(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
