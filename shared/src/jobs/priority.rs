//! How soon a job goes, among the waiting work of its queue: a leaf of the ledger's
//! vocabulary, like [`super::queues`].

use std::fmt;

/// A job's priority: 0 goes first, 9 last (Oban's scale). Within one priority, tenants take
/// turns (the fair key); between priorities, the lower number always goes first, except that
/// a job waiting longer than `JOB_PRIORITY_AGING` is raised to [`Priority::INTERACTIVE`], so
/// batch work is never starved for longer than that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    /// Above everything a kind declares: for an admin who needs one job to go next.
    pub const URGENT: Priority = Priority(0);
    /// Work somebody waits for: a draft, an export, a verification mail, a session just
    /// uploaded.
    pub const INTERACTIVE: Priority = Priority(1);
    /// Work nobody watches but that should not wait behind housekeeping.
    pub const NORMAL: Priority = Priority(5);
    /// Housekeeping and bulk work: statistics, snapshots, backups, cleanup.
    pub const BATCH: Priority = Priority(8);
    /// The largest value.
    pub const LOWEST: Priority = Priority(9);

    /// The priority `value`, if it is on the scale (0 to 9).
    pub const fn new(value: u8) -> Option<Self> {
        if value <= Self::LOWEST.0 {
            Some(Self(value))
        } else {
            None
        }
    }

    /// The number stored in `jobs.priority`.
    pub const fn value(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<i64> for Priority {
    type Error = String;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        u8::try_from(value)
            .ok()
            .and_then(Priority::new)
            .ok_or_else(|| format!("priority {value} is outside 0..=9"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_is_zero_to_nine() {
        assert_eq!(Priority::new(0), Some(Priority::URGENT));
        assert_eq!(Priority::new(9), Some(Priority::LOWEST));
        assert_eq!(Priority::new(10), None);
        assert!(Priority::try_from(-1).is_err());
        assert!(Priority::INTERACTIVE < Priority::NORMAL && Priority::NORMAL < Priority::BATCH);
    }
}
