//! Progress of long operations (`store copy`, a large import, `secrets rotate-key
//! --wait`), drawn on stderr only when stderr is a terminal: a script or a log file gets
//! the command's output and nothing else.

use std::future::Future;
use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a running operation's progress is read and drawn.
const EVERY: Duration = Duration::from_millis(100);

/// A progress display, or nothing when stderr is not a terminal.
pub(super) struct Progress(Option<ProgressBar>);

impl Progress {
    /// A spinner saying `message`, with the time taken so far.
    pub(super) fn spinner(message: impl Into<String>) -> Self {
        Progress(shown().map(|target| {
            let bar = ProgressBar::with_draw_target(None, target);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(message.into());
            bar.enable_steady_tick(EVERY);
            bar
        }))
    }

    /// Turns the display into a bar of `total` steps of `unit` (a plural noun), saying
    /// `message`.
    pub(super) fn to_bar(&self, message: impl Into<String>, total: u64, unit: &str) {
        if let Some(bar) = &self.0 {
            bar.disable_steady_tick();
            let template = format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{elapsed}})");
            bar.set_style(
                ProgressStyle::with_template(&template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_length(total);
            bar.set_message(message.into());
        }
    }

    /// Whether the display is a bar (see [`Progress::to_bar`]).
    pub(super) fn is_bar(&self) -> bool {
        self.0.as_ref().is_some_and(|b| b.length().is_some())
    }

    /// Whether anything is drawn.
    pub(super) fn is_shown(&self) -> bool {
        self.0.is_some()
    }

    /// Says `message` from now on.
    pub(super) fn say(&self, message: impl Into<String>) {
        if let Some(bar) = &self.0 {
            bar.set_message(message.into());
        }
    }

    /// Moves the bar to `done` steps.
    pub(super) fn at(&self, done: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(done);
        }
    }

    /// Leaves the display as its last line, saying `message`.
    pub(super) fn done(self, message: impl Into<String>) {
        if let Some(bar) = &self.0 {
            bar.finish_with_message(message.into());
        }
    }

    /// Takes the display away (the command's own output follows).
    pub(super) fn clear(self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }

    /// Runs `work`, calling `each` every [`EVERY`] while it runs (when anything is drawn),
    /// so the display follows what `work` reports on the side.
    pub(super) async fn follow<T>(
        &self,
        work: impl Future<Output = T>,
        mut each: impl FnMut(&Self),
    ) -> T {
        tokio::pin!(work);
        if !self.is_shown() {
            return work.await;
        }
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = tick.tick() => each(self),
            }
        }
    }
}

/// stderr as a draw target, when it is a terminal.
fn shown() -> Option<ProgressDrawTarget> {
    std::io::stderr()
        .is_terminal()
        .then(ProgressDrawTarget::stderr)
}
