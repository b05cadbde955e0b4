//! The progress display on stderr for runs longer than a second. It reads the wall clock only
//! to decide when to draw; nothing it does feeds back into the simulation.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::{Duration, Instant};

/// A spinner showing virtual time, phase and bytes received, drawn after one second of wall
/// time (never for short runs, never when disabled).
pub struct Progress {
    enabled: bool,
    started: Instant,
    bar: Option<ProgressBar>,
    calls: u64,
}

impl Progress {
    /// A display that draws only when `enabled`.
    pub fn new(enabled: bool) -> Self {
        Self { enabled, started: Instant::now(), bar: None, calls: 0 }
    }

    /// Updates the display (cheap: draws at most every few hundred calls).
    pub fn tick(&mut self, virtual_ms: u64, phase: &str, bytes_in: u64) {
        if !self.enabled {
            return;
        }
        self.calls += 1;
        if !self.calls.is_multiple_of(512) {
            return;
        }
        if self.bar.is_none() {
            if self.started.elapsed() < Duration::from_secs(1) {
                return;
            }
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "virtual {:.1}s  phase {phase}  received {:.1} MiB",
                virtual_ms as f64 / 1000.0,
                bytes_in as f64 / (1 << 20) as f64
            ));
            bar.tick();
        }
    }

    /// Clears the display.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
