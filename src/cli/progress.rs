//! Progress bars for calibration (drawn only on a terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use litequant::engine::Progress;
use std::sync::Mutex;

/// One bar per job being calibrated.
pub struct Bars {
    current: Mutex<Option<(String, ProgressBar)>>,
}

impl Bars {
    pub fn new() -> Bars {
        Bars {
            current: Mutex::new(None),
        }
    }

    /// Clears the bar of `job`, if it had one.
    pub fn finish(&self, job: &str) {
        if let Ok(mut cur) = self.current.lock() {
            if cur.as_ref().is_some_and(|(j, _)| j == job) {
                if let Some((_, bar)) = cur.take() {
                    bar.finish_and_clear();
                }
            }
        }
    }
}

impl Progress for Bars {
    fn calibration(&self, job: &str, done: usize, total: usize) {
        let Ok(mut cur) = self.current.lock() else {
            return;
        };
        if cur.as_ref().is_none_or(|(j, _)| j != job) {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix:>24} calibrating [{bar:30}] {pos}/{len} samples {per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(job.to_string());
            *cur = Some((job.to_string(), bar));
        }
        if let Some((_, bar)) = cur.as_ref() {
            bar.set_position(done as u64);
        }
    }
}
