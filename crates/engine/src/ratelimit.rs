//! Per-domain rate limits shared by every browser context and HTTP client of this process: each
//! request reserves the next free slot of its host's schedule (slots `1/rate` apart, no burst),
//! and a pause when the site answers 429 with `Retry-After` moves the schedule past it.
//! Reserving slots, rather than refilling tokens and sleeping until one is due, keeps the pace
//! exact at high rates: a waiter woken a millisecond late does not cost the schedule a slot.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
struct Bucket {
    /// Seconds between two requests.
    interval: Duration,
    /// The first free slot.
    next: Instant,
}

/// The limiter. Hosts without a rate pass freely.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Limits `host` (and its sub-domains) to `rate` requests per second. The schedule runs 1%
    /// under the rate, so that a waiter woken late followed by one on time never takes a
    /// one-second window above it.
    pub fn limit(&self, host: &str, rate: f64) {
        let interval = Duration::from_secs_f64(1.0 / (rate.max(1e-6) * 0.99));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .entry(host.to_ascii_lowercase())
            .and_modify(|b| b.interval = interval)
            .or_insert(Bucket {
                interval,
                next: Instant::now(),
            });
    }

    /// The bucket that governs `host`: its own, or the closest parent domain's.
    fn key_for(buckets: &HashMap<String, Bucket>, host: &str) -> Option<String> {
        let host = host.to_ascii_lowercase();
        buckets
            .keys()
            .filter(|k| host == **k || host.ends_with(&format!(".{k}")))
            .max_by_key(|k| k.len())
            .cloned()
    }

    /// Waits for this request's slot to `host`.
    pub async fn acquire(&self, host: &str) {
        let slot = {
            let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            let Some(key) = Self::key_for(&buckets, host) else {
                return;
            };
            let Some(b) = buckets.get_mut(&key) else {
                return;
            };
            let slot = b.next.max(Instant::now());
            b.next = slot + b.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Holds every request to `host` for `wait` (a 429's `Retry-After`).
    pub fn pause(&self, host: &str, wait: Duration) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let key = Self::key_for(&buckets, host).unwrap_or_else(|| host.to_ascii_lowercase());
        let until = Instant::now() + wait;
        let b = buckets.entry(key).or_insert(Bucket {
            interval: Duration::from_millis(1),
            next: until,
        });
        b.next = b.next.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_requests_and_honours_pauses() {
        let limiter = RateLimiter::new();
        limiter.limit("shop.test", 10.0);
        let started = Instant::now();
        for _ in 0..11 {
            limiter.acquire("www.shop.test").await;
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(1000),
            "11 requests at 10/s take a second: {elapsed:?}"
        );
        limiter.acquire("other.test").await;
        assert_eq!(started.elapsed(), elapsed, "other hosts pass freely");
        limiter.pause("shop.test", Duration::from_secs(5));
        let before = Instant::now();
        limiter.acquire("shop.test").await;
        assert!(before.elapsed() >= Duration::from_secs(5));
    }
}
