//! Per-domain rate limits shared by every browser context and HTTP client of this process: a
//! token bucket per host, and a pause when the site answers 429 with `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    updated: Instant,
    paused_until: Option<Instant>,
}

/// The limiter. Hosts without a rate pass freely.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter with no limits yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Limits `host` (and its sub-domains) to `rate` requests per second, in bursts of at most
    /// one request: the site sees an even pace, never more than `rate` in any second.
    pub fn limit(&self, host: &str, rate: f64) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        buckets
            .entry(host.to_ascii_lowercase())
            .and_modify(|b| b.rate = rate)
            .or_insert(Bucket {
                rate,
                tokens: 1.0,
                updated: now,
                paused_until: None,
            });
    }

    fn key_for(buckets: &HashMap<String, Bucket>, host: &str) -> Option<String> {
        let host = host.to_ascii_lowercase();
        buckets
            .keys()
            .filter(|k| host == **k || host.ends_with(&format!(".{k}")))
            .max_by_key(|k| k.len())
            .cloned()
    }

    /// Waits until a request to `host` may go.
    pub async fn acquire(&self, host: &str) {
        loop {
            let wait = {
                let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
                let Some(key) = Self::key_for(&buckets, host) else {
                    return;
                };
                let Some(b) = buckets.get_mut(&key) else {
                    return;
                };
                let now = Instant::now();
                if let Some(until) = b.paused_until.filter(|u| *u > now) {
                    until - now
                } else {
                    b.tokens =
                        (b.tokens + now.duration_since(b.updated).as_secs_f64() * b.rate).min(1.0);
                    b.updated = now;
                    if b.tokens >= 1.0 {
                        b.tokens -= 1.0;
                        return;
                    }
                    Duration::from_secs_f64((1.0 - b.tokens) / b.rate)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The site asked us to wait (429 `Retry-After`): nobody sends to `host` until then.
    pub fn pause(&self, host: &str, wait: Duration) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let key = Self::key_for(&buckets, host).unwrap_or_else(|| host.to_ascii_lowercase());
        let until = Instant::now() + wait;
        let b = buckets.entry(key).or_insert(Bucket {
            rate: 1000.0,
            tokens: 0.0,
            updated: Instant::now(),
            paused_until: None,
        });
        b.paused_until = Some(b.paused_until.map_or(until, |u| u.max(until)));
        b.tokens = 0.0;
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
