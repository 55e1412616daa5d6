//! The job series a worker exports: attempts finished per kind and outcome, and run times.

use std::time::Duration;

use crate::registry;

/// The job series' handles, one per kind and outcome, made once at start: recording through
/// them is an atomic add, where the `counter!` macro per job hashed its labels each time
/// (about a tenth of the engine's throughput, measured with the burst bench).
pub struct JobMetrics {
    finished: std::collections::HashMap<(&'static str, &'static str), metrics::Counter>,
    run_time: std::collections::HashMap<&'static str, metrics::Histogram>,
}

impl JobMetrics {
    /// The outcomes an attempt is counted under.
    const OUTCOMES: [&'static str; 6] = ["done", "retry", "dead", "killed", "cancelled", "held"];

    /// Handles for every kind of the registry (the recorder must be installed first).
    pub fn new() -> Self {
        let mut finished = std::collections::HashMap::new();
        let mut run_time = std::collections::HashMap::new();
        for kind in registry::KINDS {
            for outcome in Self::OUTCOMES {
                finished.insert(
                    (kind.name, outcome),
                    metrics::counter!("tend_jobs_finished_total", "kind" => kind.name, "outcome" => outcome),
                );
            }
            run_time.insert(
                kind.name,
                metrics::histogram!("tend_job_run_duration_seconds", "kind" => kind.name),
            );
        }
        Self { finished, run_time }
    }

    /// Counts a finished attempt (`outcome`: done, retry, dead, killed, cancelled, held) and
    /// its run time.
    pub(crate) fn count(&self, kind: &str, outcome: &'static str, elapsed: Option<Duration>) {
        if let Some(counter) = self.finished.get(&(kind, outcome)) {
            counter.increment(1);
        }
        if let (Some(elapsed), Some(histogram)) = (elapsed, self.run_time.get(kind)) {
            histogram.record(elapsed.as_secs_f64());
        }
    }
}

impl Default for JobMetrics {
    fn default() -> Self {
        Self::new()
    }
}
