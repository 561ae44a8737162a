//! Slows down password guessing: after too many failed sign-ins for one username, or from one
//! client address, within a window, further attempts are refused until the window ends.
//! Kept in memory: each server node counts its own attempts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Window {
    started: Instant,
    failures: u32,
}

/// Counts failed sign-ins per username and per client address.
pub struct LoginThrottle {
    windows: Mutex<HashMap<String, Window>>,
    max_per_user: u32,
    max_per_ip: u32,
    window: Duration,
}

impl LoginThrottle {
    /// A throttle allowing `max_per_user` and `max_per_ip` failures per `window`.
    pub fn new(max_per_user: u32, max_per_ip: u32, window: Duration) -> Self {
        Self {
            windows: Mutex::new(HashMap::new()),
            max_per_user,
            max_per_ip,
            window,
        }
    }

    fn keys(username: &str, ip: &str) -> [(String, u32); 2] {
        [
            (format!("user:{}", username.to_lowercase()), 0),
            (format!("ip:{ip}"), 1),
        ]
    }

    /// `Err(wait)` when either the username or the address is locked.
    pub fn check(&self, username: &str, ip: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = Duration::ZERO;
        for (key, kind) in Self::keys(username, ip) {
            let max = if kind == 0 {
                self.max_per_user
            } else {
                self.max_per_ip
            };
            if let Some(w) = windows.get(&key) {
                let elapsed = now.duration_since(w.started);
                if w.failures >= max && elapsed < self.window {
                    wait = wait.max(self.window - elapsed);
                }
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    /// Counts a failed attempt against both the username and the address.
    pub fn failed(&self, username: &str, ip: &str) {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 10_000 {
            let window = self.window;
            windows.retain(|_, w| now.duration_since(w.started) < window);
        }
        for (key, _) in Self::keys(username, ip) {
            let w = windows.entry(key).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now.duration_since(w.started) >= self.window {
                *w = Window {
                    started: now,
                    failures: 0,
                };
            }
            w.failures += 1;
        }
    }

    /// Clears the username's count after a successful sign-in.
    pub fn succeeded(&self, username: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.remove(&format!("user:{}", username.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_then_success_clears_user() {
        let t = LoginThrottle::new(2, 3, Duration::from_secs(60));
        assert!(t.check("a", "1.1.1.1").is_ok());
        t.failed("a", "1.1.1.1");
        t.failed("A", "1.1.1.1");
        let wait = t.check("a", "2.2.2.2").unwrap_err();
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        assert!(t.check("b", "1.1.1.1").is_ok());
        t.failed("b", "1.1.1.1");
        assert!(
            t.check("c", "1.1.1.1").is_err(),
            "address locked after 3 failures"
        );
        t.succeeded("a");
        assert!(t.check("a", "9.9.9.9").is_ok());
    }
}
