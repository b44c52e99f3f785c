use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::Tally;

/// Progress through one epoch: a bar on a terminal, a plain line every tenth of the epoch
/// otherwise (logs, CI).
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    epoch: usize,
    total: usize,
    quiet: bool,
}

impl Progress {
    pub(crate) fn new(epoch: usize, epochs: usize, total: usize, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} {bar:30} {pos}/{len} batches {msg} [{elapsed} < {eta}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(format!("{epoch}/{epochs}"));
            bar
        });
        Self {
            bar,
            epoch,
            total,
            quiet,
        }
    }

    /// After batch `done` (1-based) with the running mean loss.
    pub(crate) fn step(&self, done: usize, loss: f64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            bar.set_message(format!("loss {loss:.4}"));
        } else if !self.quiet
            && self.total >= 10
            && done.is_multiple_of(self.total / 10)
            && done < self.total
        {
            eprintln!(
                "epoch {} {:>3}% loss {loss:.4}",
                self.epoch,
                100 * done / self.total
            );
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Progress through the points of a verification or evaluation: done, verified, falsified and
/// unknown so far, elapsed and ETA; a bar on a terminal, plain lines otherwise (every tenth of
/// the points; every point with branch and bound, whose points are slow). Bounding a test set
/// takes minutes, and a command that prints nothing for minutes looks hung.
pub struct PointProgress {
    bar: Option<ProgressBar>,
    what: &'static str,
    start: Instant,
    next_line: usize,
    /// Points already done at the first update (a resumed log's), which took no time here.
    resumed: Option<usize>,
    every_point: bool,
    quiet: bool,
}

impl PointProgress {
    /// A report of `what` (`verify`, `eval`, `final evaluation`) over `total` points; `quiet`
    /// prints nothing.
    pub fn new(what: &'static str, total: usize, every_point: bool, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{what} {{bar:30}} {{pos}}/{{len}} points, {{msg}} [{{elapsed}} < {{eta}}]"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Self {
            bar,
            what,
            start: Instant::now(),
            next_line: 0,
            resumed: None,
            every_point,
            quiet,
        }
    }

    /// After some points were decided, with the counts so far.
    pub fn update(&mut self, tally: &Tally) {
        let Tally {
            done,
            total,
            verified,
            falsified,
            unknown,
        } = *tally;
        let counts = format!("{verified} verified, {falsified} falsified, {unknown} unknown");
        let resumed = *self.resumed.get_or_insert(done);
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            bar.set_message(counts);
        } else if !self.quiet && done >= self.next_line && done < total {
            let elapsed = self.start.elapsed().as_secs_f64();
            let eta = match done.saturating_sub(resumed) {
                0 => String::new(),
                here => format!(
                    ", about {:.0} s left",
                    elapsed / here as f64 * (total - done) as f64
                ),
            };
            eprintln!(
                "{} {done}/{total} points, {counts}, {elapsed:.0} s{eta}",
                self.what
            );
            let step = if self.every_point {
                1
            } else {
                total.div_ceil(10)
            };
            self.next_line = done + step.max(1);
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
