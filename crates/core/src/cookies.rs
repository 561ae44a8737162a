//! Session cookies as operators bring them: the JSON arrays that browser cookie-export
//! extensions produce, or a `name=value; …` header copied from developer tools. Both are
//! normalised into one [`CookieJar`] that a browser context or an HTTP client can load.

use crate::Invalid;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Most cookies one account may hold.
pub const MAX_COOKIES: usize = 300;

/// The `SameSite` attribute after normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum SameSite {
    /// Sent only to the same site.
    Strict,
    /// Sent on top-level navigations too; what browsers assume when nothing is said.
    Lax,
    /// Sent everywhere; browsers require `Secure` with it.
    None,
}

/// One cookie, normalised. Its `Debug` hides the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cookie {
    /// Cookie name.
    pub name: String,
    /// Cookie value: a secret, never logged nor returned by the API.
    pub value: String,
    /// Domain, lower case; a leading dot means sub-domains too.
    pub domain: String,
    /// Path, starting with `/`.
    pub path: String,
    /// Expiry as Unix seconds; `None` for a session cookie.
    pub expires: Option<i64>,
    /// Hidden from page scripts.
    pub http_only: bool,
    /// Sent over HTTPS only.
    pub secure: bool,
    /// Cross-site policy.
    pub same_site: SameSite,
}

impl std::fmt::Debug for Cookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cookie")
            .field("name", &self.name)
            .field("value", &"***")
            .field("domain", &self.domain)
            .field("path", &self.path)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// What the API may show about a cookie: everything but its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CookieInfo {
    /// Cookie name.
    pub name: String,
    /// Domain it is sent to.
    pub domain: String,
    /// Path it is sent to.
    pub path: String,
    /// When it expires; absent for a session cookie.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    /// Hidden from page scripts.
    pub http_only: bool,
    /// Sent over HTTPS only.
    pub secure: bool,
}

/// An account's cookies, normalised and deduplicated by (name, domain, path). Deserialising
/// one (from a backup, say) checks every cookie again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CookieJar(#[serde(deserialize_with = "checked_cookies")] Vec<Cookie>);

fn checked_cookies<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Cookie>, D::Error> {
    let cookies = Vec::<Cookie>::deserialize(d)?;
    for c in &cookies {
        check_name(&c.name).map_err(serde::de::Error::custom)?;
        check_value(&c.value).map_err(serde::de::Error::custom)?;
        normalise_domain(&c.domain).map_err(serde::de::Error::custom)?;
    }
    CookieJar::from_cookies(cookies)
        .map(|jar| jar.0)
        .map_err(serde::de::Error::custom)
}

impl CookieJar {
    /// Parses what an operator pasted: a JSON array of cookie objects, `{"cookies": [...]}`, a
    /// JSON object of `name: value`, or a header string `a=1; b=2`. Cookies without a domain
    /// get `default_domain` (the storefront's host).
    pub fn parse(input: &str, default_domain: &str) -> Result<Self, Invalid> {
        let input = input.trim();
        if input.starts_with('[') || input.starts_with('{') {
            let value: Value = serde_json::from_str(input)
                .map_err(|e| Invalid::new("", format!("is not valid JSON: {e}")))?;
            Self::from_json(&value, default_domain)
        } else {
            Self::from_header(input, default_domain)
        }
    }

    /// Reads the JSON forms accepted by [`CookieJar::parse`].
    pub fn from_json(value: &Value, default_domain: &str) -> Result<Self, Invalid> {
        let default_domain = normalise_domain(default_domain)
            .map_err(|m| Invalid::new("domain", format!("storefront host {m}")))?;
        let mut cookies = Vec::new();
        match value {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let cookie = cookie_from_json(item, &default_domain)
                        .map_err(|e| e.within(&format!("[{i}]")))?;
                    cookies.push(cookie);
                }
            }
            Value::Object(map) => match map.get("cookies") {
                Some(inner @ Value::Array(_)) => {
                    return Self::from_json(inner, &default_domain)
                        .map_err(|e| e.within("cookies"));
                }
                _ => {
                    for (name, v) in map {
                        let value = v.as_str().ok_or_else(|| {
                            Invalid::new(name.as_str(), "must be a string cookie value")
                        })?;
                        cookies.push(plain_cookie(name, value, &default_domain)?);
                    }
                }
            },
            _ => return Err(Invalid::new("", "must be a JSON array of cookies")),
        }
        Self::from_cookies(cookies)
    }

    /// Reads a `Cookie:` header value (`name=value; name2=value2`).
    pub fn from_header(header: &str, default_domain: &str) -> Result<Self, Invalid> {
        let default_domain = normalise_domain(default_domain)
            .map_err(|m| Invalid::new("domain", format!("storefront host {m}")))?;
        let header = header.trim();
        let header = header
            .strip_prefix("Cookie:")
            .or_else(|| header.strip_prefix("cookie:"))
            .unwrap_or(header);
        let mut cookies = Vec::new();
        for (i, pair) in header
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            let (name, value) = pair.split_once('=').ok_or_else(|| {
                Invalid::new(
                    format!("[{i}]"),
                    format!("{pair:?} is not of the form name=value"),
                )
            })?;
            let value = value.trim().trim_matches('"');
            cookies.push(
                plain_cookie(name.trim(), value, &default_domain)
                    .map_err(|e| e.within(&format!("[{i}]")))?,
            );
        }
        Self::from_cookies(cookies)
    }

    /// Builds a jar from cookies that are already normalised, keeping the last of duplicates.
    pub fn from_cookies(cookies: Vec<Cookie>) -> Result<Self, Invalid> {
        if cookies.is_empty() {
            return Err(Invalid::new("", "contains no cookies"));
        }
        let mut jar = CookieJar(Vec::with_capacity(cookies.len()));
        for c in cookies {
            jar.upsert(c);
        }
        if jar.0.len() > MAX_COOKIES {
            return Err(Invalid::new(
                "",
                format!("has more than {MAX_COOKIES} cookies"),
            ));
        }
        Ok(jar)
    }

    /// The cookies a browser holds for a site, as a jar: each is checked as an imported one
    /// is, and one that fails is left out rather than losing the rest. Returns the jar (none
    /// when nothing is left) and what was left out, by name and reason, never by value.
    pub fn from_browser(cookies: Vec<Cookie>) -> (Option<Self>, Vec<String>) {
        let mut dropped = Vec::new();
        let mut kept = Vec::with_capacity(cookies.len());
        for c in cookies {
            let checked = check_name(&c.name)
                .and_then(|_| check_value(&c.value))
                .map_err(|e| format!("{} {}", e.field, e.message))
                .and_then(|_| normalise_domain(&c.domain).map(drop));
            match checked {
                Ok(()) if kept.len() < MAX_COOKIES => kept.push(c),
                Ok(()) => dropped.push(format!(
                    "{:?}: beyond the {MAX_COOKIES} cookies a jar keeps",
                    c.name
                )),
                Err(why) => dropped.push(format!("{:?}: {why}", c.name)),
            }
        }
        (Self::from_cookies(kept).ok(), dropped)
    }

    /// Adds a cookie, replacing one with the same name, domain and path: how a browser
    /// applies a refreshed session cookie.
    pub fn upsert(&mut self, cookie: Cookie) {
        match self
            .0
            .iter_mut()
            .find(|c| c.name == cookie.name && c.domain == cookie.domain && c.path == cookie.path)
        {
            Some(existing) => *existing = cookie,
            None => self.0.push(cookie),
        }
    }

    /// The cookies.
    pub fn cookies(&self) -> &[Cookie] {
        &self.0
    }

    /// True when the jar holds no cookie.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Everything but the values, for the API and logs.
    pub fn info(&self) -> Vec<CookieInfo> {
        self.0
            .iter()
            .map(|c| CookieInfo {
                name: c.name.clone(),
                domain: c.domain.clone(),
                path: c.path.clone(),
                expires_at: c
                    .expires
                    .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok()),
                http_only: c.http_only,
                secure: c.secure,
            })
            .collect()
    }
}

fn plain_cookie(name: &str, value: &str, domain: &str) -> Result<Cookie, Invalid> {
    Ok(Cookie {
        name: check_name(name)?,
        value: check_value(value)?,
        domain: domain.to_owned(),
        path: "/".into(),
        expires: None,
        http_only: false,
        secure: false,
        same_site: SameSite::Lax,
    })
}

fn cookie_from_json(item: &Value, default_domain: &str) -> Result<Cookie, Invalid> {
    let obj = item
        .as_object()
        .ok_or_else(|| Invalid::new("", "must be a cookie object"))?;
    let string = |key: &str| -> Result<Option<&str>, Invalid> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Invalid::new(key, "must be a string")),
        }
    };
    let flag = |key: &str| -> Result<bool, Invalid> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Invalid::new(key, "must be true or false")),
        }
    };

    let name = check_name(string("name")?.ok_or_else(|| Invalid::new("name", "is required"))?)?;
    let value = check_value(string("value")?.unwrap_or(""))?;
    let domain = match string("domain")? {
        Some(d) if !d.trim().is_empty() => {
            normalise_domain(d).map_err(|m| Invalid::new("domain", m))?
        }
        _ => default_domain.to_owned(),
    };
    let path = match string("path")? {
        Some(p) if p.starts_with('/') && !p.chars().any(|c| c.is_control() || c == ';') => {
            p.to_owned()
        }
        Some(_) => return Err(Invalid::new("path", "must start with / and be one line")),
        None => "/".into(),
    };
    // Cookie-Editor and EditThisCookie write `expirationDate`; Playwright and CDP write
    // `expires`; some tools write `expiry`. Zero or negative means a session cookie.
    let mut expires = None;
    for key in ["expirationDate", "expires", "expiry"] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => {
                let secs = n
                    .as_f64()
                    .filter(|s| s.is_finite())
                    .ok_or_else(|| Invalid::new(key, "must be a number of seconds"))?;
                if secs > 0.0 {
                    if secs > 253_402_300_799.0 {
                        return Err(Invalid::new(key, "is after the year 9999"));
                    }
                    expires = Some(secs.floor() as i64);
                }
                break;
            }
            Some(_) => return Err(Invalid::new(key, "must be a number of seconds since 1970")),
        }
    }
    if flag("session")? {
        expires = None;
    }
    let secure = flag("secure")?;
    let same_site = match string("sameSite")?.map(|s| s.trim().to_ascii_lowercase()) {
        None => SameSite::Lax,
        Some(s) => match s.as_str() {
            "strict" => SameSite::Strict,
            "lax" | "unspecified" | "" => SameSite::Lax,
            "no_restriction" | "none" => SameSite::None,
            other => {
                return Err(Invalid::new(
                    "sameSite",
                    format!(
                        "{other:?} is not one of no_restriction, lax, strict, unspecified, none"
                    ),
                ));
            }
        },
    };
    // Browsers drop `SameSite=None` without `Secure`; keep the cookie usable instead.
    let same_site = if same_site == SameSite::None && !secure {
        SameSite::Lax
    } else {
        same_site
    };
    Ok(Cookie {
        name,
        value,
        domain,
        path,
        expires,
        http_only: flag("httpOnly")?,
        secure,
        same_site,
    })
}

fn check_name(name: &str) -> Result<String, Invalid> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(Invalid::new(
            "name",
            "must be a non-empty cookie name without spaces or separators",
        ))
    }
}

fn check_value(value: &str) -> Result<String, Invalid> {
    if value.len() > 8192 {
        return Err(Invalid::new("value", "must be at most 8192 bytes"));
    }
    if value.chars().any(|c| c.is_control() || c == ';') {
        return Err(Invalid::new(
            "value",
            "must not contain ';' or control characters",
        ));
    }
    Ok(value.to_owned())
}

fn normalise_domain(domain: &str) -> Result<String, String> {
    let d = domain.trim().to_ascii_lowercase();
    let host = d.strip_prefix('.').unwrap_or(&d);
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| !l.is_empty())
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if ok {
        Ok(d)
    } else {
        Err(format!("{domain:?} is not a domain name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str = r#"[
      {"domain": ".www.tirabeauty.com", "expirationDate": 1798000000.5, "hostOnly": false,
       "httpOnly": true, "name": "f.session", "path": "/", "sameSite": "no_restriction",
       "secure": true, "session": false, "storeId": "0", "value": "s%3Aabc.def", "id": 1},
      {"domain": "www.tirabeauty.com", "name": "pref", "value": "x", "sameSite": "unspecified",
       "session": true, "expirationDate": null}
    ]"#;

    #[test]
    fn a_browsers_cookies_keep_what_is_valid_and_name_what_is_not() {
        let cookie = |name: &str, value: &str| Cookie {
            name: name.into(),
            value: value.into(),
            domain: "shop.example".into(),
            path: "/".into(),
            expires: None,
            http_only: false,
            secure: false,
            same_site: SameSite::Lax,
        };
        let (jar, dropped) = CookieJar::from_browser(vec![
            cookie("f.session", "fresh"),
            cookie("recent[42]", "1"),
            cookie("note", "a\u{7}b"),
        ]);
        let jar = jar.unwrap();
        assert_eq!(jar.cookies().len(), 1);
        assert_eq!(jar.cookies()[0].value, "fresh");
        assert_eq!(dropped.len(), 2, "{dropped:?}");
        assert!(dropped[0].starts_with("\"recent[42]\""), "{dropped:?}");
        assert!(
            !dropped.iter().any(|d| d.contains("a\u{7}b")),
            "values are never named"
        );
        // What is kept reads back: a jar stored from it can be used again.
        let json = serde_json::to_string(&jar).unwrap();
        assert_eq!(serde_json::from_str::<CookieJar>(&json).unwrap(), jar);
        assert!(
            CookieJar::from_browser(vec![cookie("x y", "1")])
                .0
                .is_none()
        );
    }

    #[test]
    fn reads_extension_exports() {
        let jar = CookieJar::parse(EXPORT, "shop.test").unwrap();
        let [session, pref] = jar.cookies() else {
            panic!("two cookies expected")
        };
        assert_eq!(session.name, "f.session");
        assert_eq!(session.domain, ".www.tirabeauty.com");
        assert_eq!(session.expires, Some(1_798_000_000));
        assert_eq!(session.same_site, SameSite::None);
        assert!(session.http_only && session.secure);
        assert_eq!(pref.same_site, SameSite::Lax);
        assert_eq!(pref.expires, None);
        let info = jar.info();
        assert_eq!(info[0].name, "f.session");
        assert!(!serde_json::to_string(&info).unwrap().contains("abc.def"));
    }

    #[test]
    fn reads_headers_and_objects() {
        let jar = CookieJar::parse("Cookie: a=1; b=\"two\";c=", "Shop.Test").unwrap();
        let names: Vec<_> = jar
            .cookies()
            .iter()
            .map(|c| (&*c.name, &*c.value, &*c.domain))
            .collect();
        assert_eq!(
            names,
            [
                ("a", "1", "shop.test"),
                ("b", "two", "shop.test"),
                ("c", "", "shop.test")
            ]
        );
        let jar =
            CookieJar::parse(r#"{"cookies":[{"name":"a","value":"1"}]}"#, "shop.test").unwrap();
        assert_eq!(jar.cookies()[0].domain, "shop.test");
        let jar = CookieJar::parse(r#"{"a":"1","b":"2"}"#, "shop.test").unwrap();
        assert_eq!(jar.cookies().len(), 2);
    }

    #[test]
    fn duplicates_keep_the_last() {
        let jar = CookieJar::parse("a=1; a=2", "shop.test").unwrap();
        assert_eq!(jar.cookies().len(), 1);
        assert_eq!(jar.cookies()[0].value, "2");
    }

    #[test]
    fn errors_name_the_cookie_and_field() {
        let err = CookieJar::parse(
            r#"[{"name":"a","value":"1"},{"name":"b","sameSite":"sideways"}]"#,
            "x.test",
        )
        .unwrap_err();
        assert_eq!(err.field, "[1].sameSite");
        let err = CookieJar::parse(r#"[{"value":"1"}]"#, "x.test").unwrap_err();
        assert_eq!(err.field, "[0].name");
        let err =
            CookieJar::parse(r#"[{"name":"a","expirationDate":"soon"}]"#, "x.test").unwrap_err();
        assert_eq!(err.field, "[0].expirationDate");
        assert!(CookieJar::parse("novalue", "x.test").is_err());
        assert!(CookieJar::parse("", "x.test").is_err());
        assert!(CookieJar::parse("[", "x.test").is_err());
        assert!(CookieJar::parse(r#"[{"name":"a","domain":"bad domain"}]"#, "x.test").is_err());
        assert!(CookieJar::parse("a=1", "not a host").is_err());
    }

    #[test]
    fn none_without_secure_becomes_lax() {
        let jar =
            CookieJar::parse(r#"[{"name":"a","value":"1","sameSite":"None"}]"#, "x.test").unwrap();
        assert_eq!(jar.cookies()[0].same_site, SameSite::Lax);
    }
}
