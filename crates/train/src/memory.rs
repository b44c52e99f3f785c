//! The memory budget: a run whose bounds would not fit is refused before it starts, with what
//! to change, rather than killed by the system half-way through an epoch.

use burn::tensor::Tensor;
use mixtrain_bounds::{DomainKind, Footprint, InputSet, Probe, footprint};
use mixtrain_nn::Network;

use crate::{TrainConfig, TrainError};

/// A field of a Linux `/proc` file whose value is in kB (`MemTotal:`, `VmHWM:`), in bytes;
/// `None` off Linux.
fn proc_bytes(file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// The peak resident memory of this process so far, in MiB (Linux `VmHWM`; `None` elsewhere).
pub(crate) fn peak_memory_mib() -> Option<f64> {
    proc_bytes("/proc/self/status", "VmHWM:").map(|b| b as f64 / (1u64 << 20) as f64)
}

/// `VmRSS` and `VmHWM` of this process in bytes; resetting the peak first (Linux `clear_refs`
/// 5) makes `VmHWM - VmRSS` the peak of what runs after. `None` off Linux.
pub(crate) fn resident(reset_peak: bool) -> Option<(u64, u64)> {
    if reset_peak {
        std::fs::write("/proc/self/clear_refs", "5").ok()?;
    }
    Some((
        proc_bytes("/proc/self/status", "VmRSS:")?,
        proc_bytes("/proc/self/status", "VmHWM:")?,
    ))
}

/// The budget in bytes: `memory_budget_mib`, or 80% of the machine's memory (Linux
/// `MemTotal`); `None` when neither is known.
pub(crate) fn budget(config: &TrainConfig) -> Option<u64> {
    config
        .memory_budget_mib
        .map(|m| m << 20)
        .or_else(|| Some(proc_bytes("/proc/meminfo", "MemTotal:")? / 10 * 8))
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Checks every bounding the run will do (the training step's robust loss, the validation VRA,
/// the final verification) against the budget, with the unstable ReLUs counted on `probe`
/// (a few training images) at the target eps: by an interval pass, and where that over-count
/// does not fit, by a symbolic pass over the first image (when one point's interval estimate
/// fits).
pub(crate) fn check(
    config: &TrainConfig,
    net: &Network,
    probe: Tensor<4>,
) -> Result<(), TrainError> {
    let Some(budget) = budget(config) else {
        return Ok(());
    };
    // the larger of the radii trained and verified: the one with more unstable neurons
    let eps = config.eps.max(config.train_eps());
    let set = InputSet::linf(probe, eps as f32, config.input_domain)?;
    // (what, domain, points, training step?, what to change)
    let mut uses: Vec<(String, DomainKind, usize, bool, String)> = Vec::new();
    if let Some(step) = config.method.rule().bounded_points(config) {
        uses.push((
            step.what,
            config.train_domain(),
            step.points,
            true,
            step.change.into(),
        ));
    }
    if config.val_size > 0 && config.method.certified() {
        uses.push((
            "the validation VRA".into(),
            config.val_domain(),
            config.bound_batch_size(config.val_domain()),
            false,
            "a smaller final_eval.bound_batch_size, val_domain = \"crown\" or \"interval\"".into(),
        ));
    }
    uses.push((
        "the final verification".into(),
        config.final_eval.domain,
        config.bound_batch_size(config.final_eval.domain),
        false,
        "a smaller final_eval.bound_batch_size, final_eval.domain = \"crown\" or \"interval\""
            .into(),
    ));
    // the symbolic probe bounds one image, once its own (interval) estimate fits
    let first = InputSet::new(
        set.lower.clone().narrow(0, 0, 1),
        set.upper.clone().narrow(0, 0, 1),
    )?;
    for (what, domain, points, training, change) in uses {
        let pick = |f: Footprint| {
            if training {
                f.train_bytes
            } else {
                f.eval_bytes
            }
        };
        let mut per_point = pick(footprint(net, &set, domain, Probe::Interval)?);
        let mut counted = "an interval pass over the probe images";
        if per_point.saturating_mul(points as u64) > budget
            && domain != DomainKind::Interval
            && footprint(net, &first, DomainKind::Symbolic, Probe::Interval)?.eval_bytes <= budget
        {
            per_point = pick(footprint(net, &first, domain, Probe::Symbolic)?);
            counted = "a symbolic pass over the first image";
        }
        let total = per_point.saturating_mul(points as u64);
        if total > budget {
            let fits = budget / per_point.max(1);
            return Err(TrainError::Memory {
                message: format!(
                    "{what} bounds {points} point(s) of {} in the {} domain: an estimated {} \
                     ({} per point, unstable ReLUs counted by {counted} at eps {}) exceeds \
                     the memory budget of {} (memory_budget_mib). Use {change} ({} point(s) \
                     fit), or raise memory_budget_mib",
                    config.model,
                    domain.name(),
                    gib(total),
                    gib(per_point),
                    eps,
                    gib(budget),
                    fits
                ),
            });
        }
    }
    Ok(())
}
