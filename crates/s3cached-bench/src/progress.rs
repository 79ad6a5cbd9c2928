//! The progress line on stderr: a bar with the current phase, drawn only when stderr is a
//! terminal (pipes and CI logs get nothing).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One bar reused by every phase.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar on stderr, hidden when stderr is not a terminal.
    pub fn new() -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        if let Ok(style) = ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Self { bar }
    }

    /// Starts a phase of `len` units.
    pub fn phase(&self, msg: impl Into<String>, len: u64) {
        self.bar.set_length(len);
        self.bar.set_position(0);
        self.bar.set_message(msg.into());
    }

    /// Advances by `n` units.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Replaces the message.
    pub fn message(&self, msg: impl Into<String>) {
        self.bar.set_message(msg.into());
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
