use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

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
