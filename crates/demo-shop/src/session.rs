//! Customer sessions, the way Express-based shops keep them: one signed cookie, `f.session`,
//! whose value (`s%3A<id>.<signature>`) the shop replaces every few responses. The replaced
//! value keeps working for a grace period, then signs nobody in: a client must keep the
//! refreshed value.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::Sha256;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The session cookie's name.
pub const COOKIE: &str = "f.session";

#[derive(Debug, Clone)]
struct Session {
    customer: u32,
    /// Unix seconds.
    expires_at: u64,
    /// When a newer value replaced this one.
    replaced_at: Option<Instant>,
    /// Responses served on this value since it was issued.
    uses: u32,
    expired: bool,
}

/// What a request's cookie says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visit {
    /// No session cookie.
    Anonymous,
    /// A cookie that no longer signs anyone in (expired, replaced too long ago, forged).
    Expired,
    /// A signed-in customer, by the session id on the cookie.
    Customer {
        /// Who.
        customer: u32,
        /// The session id the cookie carried.
        sid: String,
    },
}

/// All sessions.
pub struct Sessions {
    by_id: HashMap<String, Session>,
    rng: StdRng,
    secret: Vec<u8>,
    ttl: Duration,
    grace: Duration,
    rotate_every: u32,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Sessions {
    /// Sessions lasting `ttl`; a value is replaced every `rotate_every` responses (0: never)
    /// and the replaced one honoured for `grace`.
    pub fn new(seed: u64, ttl: Duration, rotate_every: u32, grace: Duration) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5e55_1015);
        let secret: Vec<u8> = (0..32).map(|_| rng.random()).collect();
        Self {
            by_id: HashMap::new(),
            rng,
            secret,
            ttl,
            grace,
            rotate_every,
        }
    }

    fn sign(&self, sid: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .expect("HMAC accepts any key length");
        mac.update(sid.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Starts a session for `customer` and returns the cookie value.
    pub fn issue(&mut self, customer: u32) -> String {
        let sid: String = (0..24)
            .map(|_| {
                const CHARS: &[u8] =
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                CHARS[self.rng.random_range(0..CHARS.len())] as char
            })
            .collect();
        let expires_at = now_unix() + self.ttl.as_secs();
        self.by_id.insert(
            sid.clone(),
            Session {
                customer,
                expires_at,
                replaced_at: None,
                uses: 0,
                expired: false,
            },
        );
        format!("s%3A{sid}.{}", self.sign(&sid))
    }

    /// Reads a cookie value.
    pub fn visit(&self, cookie: Option<&str>) -> Visit {
        let Some(value) = cookie else {
            return Visit::Anonymous;
        };
        let raw = value
            .strip_prefix("s%3A")
            .or_else(|| value.strip_prefix("s:"))
            .unwrap_or(value);
        let Some((sid, sig)) = raw.rsplit_once('.') else {
            return Visit::Expired;
        };
        if sig != self.sign(sid) {
            return Visit::Expired;
        }
        match self.by_id.get(sid) {
            Some(s)
                if !s.expired
                    && s.expires_at > now_unix()
                    && s.replaced_at.is_none_or(|at| at.elapsed() < self.grace) =>
            {
                Visit::Customer {
                    customer: s.customer,
                    sid: sid.to_owned(),
                }
            }
            _ => Visit::Expired,
        }
    }

    /// Whether `value` signs someone in and has not been replaced by a newer value: what a
    /// client that keeps refreshed cookies holds.
    pub fn is_current(&self, value: &str) -> bool {
        match self.visit(Some(value)) {
            Visit::Customer { sid, .. } => self
                .by_id
                .get(&sid)
                .is_some_and(|s| s.replaced_at.is_none()),
            _ => false,
        }
    }

    /// Counts a response served on `sid`; every `rotate_every`th returns a new cookie value
    /// that replaces it.
    pub fn served(&mut self, sid: &str) -> Option<String> {
        let every = self.rotate_every;
        let session = self.by_id.get_mut(sid)?;
        if session.replaced_at.is_some() || every == 0 {
            return None;
        }
        session.uses += 1;
        if session.uses % every != 0 {
            return None;
        }
        session.replaced_at = Some(Instant::now());
        let customer = session.customer;
        Some(self.issue(customer))
    }

    /// Ends every session of these customers (all of them when `None`).
    pub fn expire(&mut self, customers: Option<&[u32]>) -> usize {
        let mut n = 0;
        for s in self.by_id.values_mut() {
            if customers.is_none_or(|c| c.contains(&s.customer)) && !s.expired {
                s.expired = true;
                n += 1;
            }
        }
        n
    }

    /// Ends the session behind `sid` (logging out).
    pub fn end(&mut self, sid: &str) {
        if let Some(s) = self.by_id.get_mut(sid) {
            s.expired = true;
        }
    }

    /// The `Set-Cookie` header for a value.
    pub fn set_cookie(&self, value: &str) -> String {
        format!(
            "{COOKIE}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax",
            self.ttl.as_secs()
        )
    }
}

/// The `f.session` value in a `Cookie` header.
pub fn cookie_value(header: Option<&str>) -> Option<&str> {
    header?
        .split(';')
        .map(str::trim)
        .find_map(|pair| pair.strip_prefix(COOKIE)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_rotate_and_old_ones_fade() {
        let mut s = Sessions::new(1, Duration::from_secs(3600), 2, Duration::ZERO);
        let first = s.issue(7);
        let Visit::Customer { customer: 7, sid } = s.visit(Some(&first)) else {
            panic!("signed in")
        };
        assert_eq!(s.served(&sid), None);
        let second = s.served(&sid).expect("rotated on the second response");
        assert_ne!(first, second);
        assert_eq!(
            s.visit(Some(&first)),
            Visit::Expired,
            "no grace: the old value is dead"
        );
        assert!(matches!(
            s.visit(Some(&second)),
            Visit::Customer { customer: 7, .. }
        ));
        assert_eq!(s.visit(Some("s%3Aforged.sig")), Visit::Expired);
        assert_eq!(s.visit(None), Visit::Anonymous);
        assert_eq!(s.expire(Some(&[7])), 2);
        assert_eq!(s.visit(Some(&second)), Visit::Expired);
        assert_eq!(
            cookie_value(Some("a=1; f.session=s%3Ax.y; b=2")),
            Some("s%3Ax.y")
        );
    }
}
