//! What the shop saw: every request (who, what, when, answer) for inspection, and the rate
//! limits that answer 429 when a client goes too fast.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Most requests kept in the log.
const LOG_CAPACITY: usize = 200_000;

/// One request as the shop saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    /// Customer email, when signed in.
    pub account: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Status answered.
    pub status: u16,
    /// Milliseconds since the shop started.
    pub at_ms: u64,
}

/// A token bucket: `rate` requests per second, bursts up to one second's worth.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// Takes a token, or says how long until one is free.
    fn take(&mut self, rate: f64, now: Instant) -> Result<(), Duration> {
        let capacity = rate.max(1.0);
        self.tokens =
            (self.tokens + now.duration_since(self.updated).as_secs_f64() * rate).min(capacity);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// The request log and the rate-limit buckets.
pub struct Traffic {
    started: Instant,
    log: VecDeque<Seen>,
    shop_bucket: Option<Bucket>,
    account_buckets: HashMap<String, Bucket>,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            log: VecDeque::new(),
            shop_bucket: None,
            account_buckets: HashMap::new(),
        }
    }
}

impl Traffic {
    /// Milliseconds since the shop started.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Records a request.
    pub fn record(&mut self, seen: Seen) {
        if self.log.len() >= LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(seen);
    }

    /// Applies the shop-wide and per-account limits; `Err(wait)` means answer 429.
    pub fn admit(
        &mut self,
        account: Option<&str>,
        shop_rate: Option<f64>,
        account_rate: Option<f64>,
    ) -> Result<(), Duration> {
        let now = Instant::now();
        if let Some(rate) = shop_rate.filter(|r| *r > 0.0) {
            let bucket = self.shop_bucket.get_or_insert(Bucket {
                tokens: rate.max(1.0),
                updated: now,
            });
            bucket.take(rate, now)?;
        }
        if let (Some(rate), Some(account)) = (account_rate.filter(|r| *r > 0.0), account) {
            let bucket = self
                .account_buckets
                .entry(account.to_owned())
                .or_insert(Bucket {
                    tokens: rate.max(1.0),
                    updated: now,
                });
            bucket.take(rate, now)?;
        }
        Ok(())
    }

    /// The log, optionally for one account.
    pub fn requests(&self, account: Option<&str>) -> Vec<Seen> {
        self.log
            .iter()
            .filter(|s| account.is_none_or(|a| s.account.as_deref() == Some(a)))
            .cloned()
            .collect()
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        self.log.clear();
        self.shop_bucket = None;
        self.account_buckets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refuse_above_the_rate() {
        let mut t = Traffic::default();
        for _ in 0..3 {
            assert!(t.admit(Some("a"), None, Some(3.0)).is_ok());
        }
        let wait = t.admit(Some("a"), None, Some(3.0)).unwrap_err();
        assert!(wait <= Duration::from_millis(340));
        assert!(
            t.admit(Some("b"), None, Some(3.0)).is_ok(),
            "another account has its own bucket"
        );
    }
}
