//! Slows down password guessing: every sign-in attempt counts against its username and its
//! client address as soon as it starts (so parallel guesses cannot slip through), and past the
//! limit within a window further attempts are refused until the window ends. A success clears
//! the username and gives the address its attempt back. Kept in memory: each server node
//! counts its own attempts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Window {
    started: Instant,
    attempts: u32,
}

/// Counts sign-in attempts per username and per client address.
pub struct LoginThrottle {
    windows: Mutex<HashMap<String, Window>>,
    max_per_user: u32,
    max_per_ip: u32,
    window: Duration,
}

impl LoginThrottle {
    /// A throttle allowing `max_per_user` and `max_per_ip` failed attempts per `window`.
    pub fn new(max_per_user: u32, max_per_ip: u32, window: Duration) -> Self {
        Self {
            windows: Mutex::new(HashMap::new()),
            max_per_user,
            max_per_ip,
            window,
        }
    }

    /// Counts an attempt by `user` (a normalised username) from `ip`, or refuses it with the
    /// time to wait when either is over its limit.
    pub fn attempt(&self, user: &str, ip: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 10_000 {
            let window = self.window;
            windows.retain(|_, w| now.duration_since(w.started) < window);
        }
        let keys = [
            (format!("user:{user}"), self.max_per_user),
            (format!("ip:{ip}"), self.max_per_ip),
        ];
        let mut wait = Duration::ZERO;
        for (key, max) in &keys {
            if let Some(w) = windows.get(key) {
                let elapsed = now.duration_since(w.started);
                if w.attempts >= *max && elapsed < self.window {
                    wait = wait.max(self.window - elapsed);
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for (key, _) in keys {
            let w = windows.entry(key).or_insert(Window {
                started: now,
                attempts: 0,
            });
            if now.duration_since(w.started) >= self.window {
                *w = Window {
                    started: now,
                    attempts: 0,
                };
            }
            w.attempts += 1;
        }
        Ok(())
    }

    /// Clears `user`'s count after a successful sign-in and gives `ip` its attempt back.
    pub fn succeeded(&self, user: &str, ip: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.remove(&format!("user:{user}"));
        if let Some(w) = windows.get_mut(&format!("ip:{ip}")) {
            w.attempts = w.attempts.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_attempts_up_front_and_success_clears_the_user() {
        let t = LoginThrottle::new(2, 3, Duration::from_secs(60));
        assert!(t.attempt("a", "1.1.1.1").is_ok());
        assert!(t.attempt("a", "1.1.1.1").is_ok());
        let wait = t.attempt("a", "2.2.2.2").unwrap_err();
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        assert!(t.attempt("b", "1.1.1.1").is_ok());
        assert!(
            t.attempt("c", "1.1.1.1").is_err(),
            "address has used its 3 attempts"
        );
        t.succeeded("b", "1.1.1.1");
        assert!(
            t.attempt("c", "1.1.1.1").is_ok(),
            "a success gives the address its attempt back"
        );
        t.succeeded("a", "9.9.9.9");
        assert!(t.attempt("a", "9.9.9.9").is_ok());
    }
}
