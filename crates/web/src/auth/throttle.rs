//! Slows down password guessing without letting a guesser lock the real operator out. Every
//! sign-in attempt counts as soon as it starts (so parallel guesses cannot slip through)
//! against three keys:
//! - the username from this address: past `max_per_user` failures within the window, each
//!   further attempt waits twice as long as the one before (1 s, 2 s, 4 s … up to the window);
//! - the username from anywhere: past four times that, attempts wait 1 s, 2 s … up to a minute,
//!   so guesses spread over many addresses stay slow, yet the operator is never shut out long;
//! - the address (any username): past `max_per_ip` failures, it waits for the window to end.
//!
//! A success clears the username's counts and gives the address its attempt back; an admin can
//! clear a username's counts. Kept in memory: each server node counts its own attempts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Count {
    first: Instant,
    last: Instant,
    attempts: u32,
}

/// Longest wait the username-from-anywhere key imposes.
const SPREAD_MAX_WAIT: Duration = Duration::from_secs(60);

/// Counts sign-in attempts per username (from one address and from all) and per address.
pub struct LoginThrottle {
    counts: Mutex<HashMap<String, Count>>,
    max_per_user: u32,
    max_per_ip: u32,
    window: Duration,
}

/// 1 s doubled `over` times, at most `cap`.
fn doubling(over: u32, cap: Duration) -> Duration {
    Duration::from_secs(1u64 << over.min(20)).min(cap)
}

impl LoginThrottle {
    /// A throttle allowing `max_per_user` failed attempts per username and address, and
    /// `max_per_ip` per address, within `window`, before attempts must wait.
    pub fn new(max_per_user: u32, max_per_ip: u32, window: Duration) -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
            max_per_user,
            max_per_ip,
            window,
        }
    }

    fn keys(user: &str, ip: &str) -> [String; 3] {
        [
            format!("user:{user}\n{ip}"),
            format!("user:{user}"),
            format!("ip:{ip}"),
        ]
    }

    /// Counts an attempt by `user` (a normalised username) from `ip`, or refuses it with the
    /// time to wait.
    pub fn attempt(&self, user: &str, ip: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() > 10_000 {
            let window = self.window;
            counts.retain(|_, c| now.duration_since(c.first) < window);
        }
        let keys = Self::keys(user, ip);
        let spread_max = self.max_per_user.saturating_mul(4);
        let mut wait = Duration::ZERO;
        for (i, key) in keys.iter().enumerate() {
            let Some(c) = counts.get(key) else { continue };
            if now.duration_since(c.first) >= self.window {
                continue;
            }
            let since_last = now.duration_since(c.last);
            let needed = match i {
                0 if c.attempts >= self.max_per_user => {
                    doubling(c.attempts - self.max_per_user, self.window)
                }
                1 if c.attempts >= spread_max => doubling(c.attempts - spread_max, SPREAD_MAX_WAIT),
                2 if c.attempts >= self.max_per_ip => self.window - now.duration_since(c.first),
                _ => continue,
            };
            if i == 2 {
                wait = wait.max(needed);
            } else {
                wait = wait.max(needed.saturating_sub(since_last));
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for key in keys {
            let c = counts.entry(key).or_insert(Count {
                first: now,
                last: now,
                attempts: 0,
            });
            if now.duration_since(c.first) >= self.window {
                c.first = now;
                c.attempts = 0;
            }
            c.attempts += 1;
            c.last = now;
        }
        Ok(())
    }

    /// Clears `user`'s counts from `ip` and from anywhere after a successful sign-in, and gives
    /// `ip` its attempt back. Counts of the username from other addresses stay.
    pub fn succeeded(&self, user: &str, ip: &str) {
        let [pair, user_key, ip_key] = Self::keys(user, ip);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.remove(&pair);
        counts.remove(&user_key);
        if let Some(c) = counts.get_mut(&ip_key) {
            c.attempts = c.attempts.saturating_sub(1);
        }
    }

    /// Clears every count of `user` (an admin lets them try again at once).
    pub fn unlock(&self, user: &str) {
        let exact = format!("user:{user}");
        let from = format!("user:{user}\n");
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.retain(|k, _| *k != exact && !k.starts_with(&from));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_from_one_address_wait_longer_each_time_and_others_are_not_locked_out() {
        let t = LoginThrottle::new(2, 30, Duration::from_secs(900));
        assert!(t.attempt("admin", "6.6.6.6").is_ok());
        assert!(t.attempt("admin", "6.6.6.6").is_ok());
        let wait = t.attempt("admin", "6.6.6.6").unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        // The operator at their own address is not locked out by the guesser.
        assert!(t.attempt("admin", "10.0.0.5").is_ok());
        t.succeeded("admin", "10.0.0.5");
        assert!(
            t.attempt("admin", "6.6.6.6").is_err(),
            "their success does not clear the guesser's count"
        );
        t.succeeded("admin", "6.6.6.6");
        assert!(
            t.attempt("admin", "6.6.6.6").is_ok(),
            "a success from there does"
        );
    }

    #[test]
    fn the_wait_doubles_and_an_address_has_its_own_limit() {
        let t = LoginThrottle::new(1, 3, Duration::from_secs(900));
        {
            // Pretend the second failure was long enough after the first.
            t.attempt("a", "1.1.1.1").unwrap();
            let mut counts = t.counts.lock().unwrap();
            let c = counts.get_mut("user:a\n1.1.1.1").unwrap();
            c.attempts = 4;
            c.last = Instant::now() - Duration::from_secs(5);
        }
        let wait = t.attempt("a", "1.1.1.1").unwrap_err();
        assert!(
            wait > Duration::from_secs(2) && wait <= Duration::from_secs(3),
            "8 s after the 4th failure, 5 s have passed: {wait:?}"
        );
        assert!(t.attempt("b", "1.1.1.1").is_ok());
        assert!(t.attempt("c", "1.1.1.1").is_ok());
        let wait = t.attempt("d", "1.1.1.1").unwrap_err();
        assert!(
            wait > Duration::from_secs(800),
            "the address used its 3: {wait:?}"
        );
        t.unlock("a");
        assert!(t.attempt("a", "2.2.2.2").is_ok());
    }

    #[test]
    fn guesses_spread_over_addresses_are_slowed_but_not_locked() {
        let t = LoginThrottle::new(2, 30, Duration::from_secs(900));
        for i in 0..8 {
            assert!(t.attempt("admin", &format!("10.0.0.{i}")).is_ok());
        }
        let wait = t.attempt("admin", "10.0.1.1").unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        t.unlock("admin");
        assert!(t.attempt("admin", "10.0.1.1").is_ok());
    }
}
