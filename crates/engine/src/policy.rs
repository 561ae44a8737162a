//! The engine's timing policies. When a failed run is tried again: only a transient failure
//! before the final click, only while the order has runs left, after a backoff that doubles
//! with each run (with jitter, so that orders failed together do not come back together); the
//! store enforces the same number of runs when it picks an order up (a run that crashes its
//! worker every time). And how often the history is looked at while an order whose final
//! click went out is settled (see `order::placing`).

use std::time::Duration;

/// How failed runs are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Runs an order gets before a transient failure becomes final.
    pub max_runs: u32,
    /// Wait before the second run; doubled for each run after.
    pub base: Duration,
    /// Longest wait between runs.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            // A final click the site fails (proven not placed by the history) costs a run:
            // at one request in five failing, five runs leave about one order in 3,000
            // unplaced by that alone.
            max_runs: 5,
            base: Duration::from_secs(2),
            max: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Whether an order that has had `runs` runs may have another.
    pub fn allows_another(&self, runs: u32) -> bool {
        runs < self.max_runs
    }

    /// The wait after run number `run` (from 1) failed: `base × 2^(run − 1)`, at most `max`,
    /// times 0.5–1.5; never shorter than what the site asked for (`at_least`).
    pub fn backoff(&self, run: u32, at_least: Option<Duration>) -> Duration {
        let jitter: f64 = rand::random_range(0.5..1.5);
        self.plain_backoff(run)
            .mul_f64(jitter)
            .max(at_least.unwrap_or_default())
    }

    fn plain_backoff(&self, run: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << run.saturating_sub(1).min(16))
            .min(self.max)
    }
}

/// How often the history is looked at while an order is being settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettleTiming {
    /// The first wait between looks; doubled after each look.
    pub first: Duration,
    /// The longest wait between looks.
    pub max: Duration,
    /// How long a run keeps looking in its own session before handing the order back to
    /// its job (a fresh session later): a browser context is not held for minutes.
    pub in_run: Duration,
}

impl Default for SettleTiming {
    fn default() -> Self {
        SettleTiming {
            first: Duration::from_secs(1),
            max: Duration::from_secs(120),
            in_run: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_counted_and_waits_double_up_to_the_cap() {
        let p = RetryPolicy {
            max_runs: 3,
            base: Duration::from_secs(2),
            max: Duration::from_secs(10),
        };
        assert!(p.allows_another(1) && p.allows_another(2) && !p.allows_another(3));
        assert_eq!(p.plain_backoff(1), Duration::from_secs(2));
        assert_eq!(p.plain_backoff(2), Duration::from_secs(4));
        assert_eq!(p.plain_backoff(3), Duration::from_secs(8));
        assert_eq!(p.plain_backoff(4), Duration::from_secs(10));
        assert_eq!(p.plain_backoff(u32::MAX), Duration::from_secs(10));
        for run in 1..6 {
            let b = p.backoff(run, None);
            let plain = p.plain_backoff(run);
            assert!(b >= plain.mul_f64(0.5) && b <= plain.mul_f64(1.5), "{b:?}");
        }
        assert_eq!(
            p.backoff(1, Some(Duration::from_secs(60))),
            Duration::from_secs(60),
            "a site's Retry-After wins"
        );
    }
}
