//! Slows down password guessing without letting a guesser lock the real operator out. Every
//! sign-in attempt counts as soon as it starts (so parallel guesses cannot slip through)
//! against three keys:
//! - the username from this address: past `max_per_user` failures within the window, each
//!   further attempt waits twice as long as the one before (1 s, 2 s, 4 s … up to the window);
//! - the username from anywhere: past four times that, attempts are held back 1 s, 2 s … up to
//!   5 s before the password is checked — delayed, never refused, so guesses spread over many
//!   addresses stay slow and still cannot shut the operator out;
//! - the address (any username): past `max_per_ip` failures, it waits for the window to end.
//!
//! An IPv6 client counts by its /64, the block one host is usually given.
//!
//! A success clears the username's counts and gives the address its attempt back; an admin can
//! clear a username's counts. Kept in memory: each server node counts its own attempts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Count {
    first: Instant,
    last: Instant,
    attempts: u32,
}

/// Longest delay the username-from-anywhere key imposes.
const SPREAD_MAX_DELAY: Duration = Duration::from_secs(5);

/// The address as the throttle counts it: an IPv4 address, or an IPv6 /64.
fn client(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

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

    fn keys(user: &str, ip: IpAddr) -> [String; 3] {
        let ip = client(ip);
        [
            format!("user:{user}\n{ip}"),
            format!("user:{user}"),
            format!("ip:{ip}"),
        ]
    }

    /// Counts an attempt by `user` (a normalised username) from `ip`: `Ok` with how long to
    /// hold it back before checking the password, or a refusal with the time to wait.
    pub fn attempt(&self, user: &str, ip: IpAddr) -> Result<Duration, Duration> {
        let now = Instant::now();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() > 10_000 {
            let window = self.window;
            counts.retain(|_, c| now.duration_since(c.first) < window);
        }
        let keys = Self::keys(user, ip);
        let spread_max = self.max_per_user.saturating_mul(4);
        let mut wait = Duration::ZERO;
        let mut delay = Duration::ZERO;
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
                1 if c.attempts >= spread_max => {
                    delay = doubling(c.attempts - spread_max, SPREAD_MAX_DELAY);
                    continue;
                }
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
        Ok(delay)
    }

    /// Clears `user`'s counts from `ip` and from anywhere after a successful sign-in, and gives
    /// `ip` its attempt back. Counts of the username from other addresses stay.
    pub fn succeeded(&self, user: &str, ip: IpAddr) {
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn guesses_from_one_address_wait_longer_each_time_and_others_are_not_locked_out() {
        let t = LoginThrottle::new(2, 30, Duration::from_secs(900));
        assert!(t.attempt("admin", ip("6.6.6.6")).is_ok());
        assert!(t.attempt("admin", ip("6.6.6.6")).is_ok());
        let wait = t.attempt("admin", ip("6.6.6.6")).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        // The operator at their own address is not locked out by the guesser.
        assert!(t.attempt("admin", ip("10.0.0.5")).is_ok());
        t.succeeded("admin", ip("10.0.0.5"));
        assert!(
            t.attempt("admin", ip("6.6.6.6")).is_err(),
            "their success does not clear the guesser's count"
        );
        t.succeeded("admin", ip("6.6.6.6"));
        assert!(
            t.attempt("admin", ip("6.6.6.6")).is_ok(),
            "a success from there does"
        );
    }

    #[test]
    fn the_wait_doubles_and_an_address_has_its_own_limit() {
        let t = LoginThrottle::new(1, 3, Duration::from_secs(900));
        {
            // Pretend the second failure was long enough after the first.
            t.attempt("a", ip("1.1.1.1")).unwrap();
            let mut counts = t.counts.lock().unwrap();
            let c = counts.get_mut("user:a\n1.1.1.1").unwrap();
            c.attempts = 4;
            c.last = Instant::now() - Duration::from_secs(5);
        }
        let wait = t.attempt("a", ip("1.1.1.1")).unwrap_err();
        assert!(
            wait > Duration::from_secs(2) && wait <= Duration::from_secs(3),
            "8 s after the 4th failure, 5 s have passed: {wait:?}"
        );
        assert!(t.attempt("b", ip("1.1.1.1")).is_ok());
        assert!(t.attempt("c", ip("1.1.1.1")).is_ok());
        let wait = t.attempt("d", ip("1.1.1.1")).unwrap_err();
        assert!(
            wait > Duration::from_secs(800),
            "the address used its 3: {wait:?}"
        );
        t.unlock("a");
        assert!(t.attempt("a", ip("2.2.2.2")).is_ok());
    }

    #[test]
    fn guesses_spread_over_addresses_are_slowed_but_not_locked() {
        let t = LoginThrottle::new(2, 30, Duration::from_secs(900));
        for i in 0..8 {
            assert!(t.attempt("admin", ip(&format!("10.0.0.{i}"))).is_ok());
        }
        let delay = t.attempt("admin", ip("10.0.1.1")).unwrap();
        assert_eq!(delay, Duration::from_secs(1), "held back, not refused");
        let delay = t.attempt("admin", ip("10.0.1.2")).unwrap();
        assert_eq!(delay, Duration::from_secs(2));
        t.unlock("admin");
        assert_eq!(t.attempt("admin", ip("10.0.1.1")), Ok(Duration::ZERO));
        // One IPv6 host's /64 is one address.
        for i in 0..2 {
            assert!(t.attempt("bob", ip(&format!("2001:db8:1:2::{i}"))).is_ok());
        }
        assert!(t.attempt("bob", ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(t.attempt("bob", ip("2001:db8:1:3::1")).is_ok());
    }
}
