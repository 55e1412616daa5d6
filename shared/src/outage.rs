//! Quiet, honest logs of an outage. While the database or the queue is away, every loop that
//! uses it fails each pass; logging each failure wrote about 1,200 lines a minute per worker.
//! An [`Outage`] says it once when it starts, then at most one reminder per
//! [`REMINDER_EVERY`], and once when the dependency answers again, with how long it was away.

use std::{
    fmt::Display,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Longest silence while an outage lasts.
pub const REMINDER_EVERY: Duration = Duration::from_secs(30);

/// The outage state of one dependency as one loop sees it. Shared by reference (interior
/// mutability), so the loops of a task can report through one value.
#[derive(Debug)]
pub struct Outage {
    /// What is away, as the log names it ("database", "queue").
    what: &'static str,
    /// Who sees it ("relay", "lease keeper"), so two loops' lines can be told apart.
    by: &'static str,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the current outage began (`None`: the dependency answers).
    since: Option<Instant>,
    /// When the last line about it was written.
    said_at: Option<Instant>,
    /// Failures since that line.
    failures: u64,
}

impl Outage {
    /// No outage yet.
    pub fn new(what: &'static str, by: &'static str) -> Self {
        Self {
            what,
            by,
            state: Mutex::default(),
        }
    }

    /// Reports a failed call. Logs when it begins an outage or a reminder is due.
    pub fn failed(&self, error: &dyn Display) {
        let mut state = self.state.lock().expect("outage lock");
        let now = Instant::now();
        state.failures += 1;
        match (state.since, state.said_at) {
            (None, _) => {
                state.since = Some(now);
                state.said_at = Some(now);
                state.failures = 0;
                tracing::error!(what = self.what, by = self.by, %error, "{} unreachable", self.what);
            }
            (Some(since), Some(said)) if now - said >= REMINDER_EVERY => {
                tracing::warn!(
                    what = self.what,
                    by = self.by,
                    %error,
                    down_s = (now - since).as_secs(),
                    failures = state.failures,
                    "{} still unreachable",
                    self.what
                );
                state.said_at = Some(now);
                state.failures = 0;
            }
            _ => {}
        }
    }

    /// Reports a call that went through; returns how long the outage it ended lasted.
    pub fn recovered(&self) -> Option<Duration> {
        let mut state = self.state.lock().expect("outage lock");
        let since = state.since.take()?;
        state.said_at = None;
        let down = since.elapsed();
        tracing::info!(
            what = self.what,
            by = self.by,
            down_ms = down.as_millis() as u64,
            "{} reachable again",
            self.what
        );
        Some(down)
    }

    /// True while an outage lasts.
    pub fn is_down(&self) -> bool {
        self.state.lock().expect("outage lock").since.is_some()
    }

    /// Reports `result` (failure or success) and hands it back.
    pub fn observe<T, E: Display>(&self, result: Result<T, E>) -> Result<T, E> {
        match &result {
            Ok(_) => {
                self.recovered();
            }
            Err(err) => self.failed(err),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_reported_once_until_it_ends() {
        let outage = Outage::new("database", "test");
        assert!(!outage.is_down());
        outage.failed(&"refused");
        outage.failed(&"refused");
        assert!(outage.is_down());
        let down = outage.recovered().expect("it was down");
        assert!(down < Duration::from_secs(5));
        assert!(!outage.is_down());
        assert!(
            outage.recovered().is_none(),
            "a second success ends nothing"
        );
    }
}
