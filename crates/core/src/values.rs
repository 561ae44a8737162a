//! Validated values. Each can only be built through `parse`, which normalises and checks it,
//! so the rest of Cartwright never re-checks an email or a tag.
//!
//! Every type deserialises through `parse`: a bad value in a JSON body is rejected by serde
//! with the field's path and the message below.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

macro_rules! string_value {
    ($(#[$doc:meta])* $name:ident, $example:literal $(, $($schema:tt)+)?) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(try_from = "String", into = "String")]
        #[schema(value_type = String, example = $example $(, $($schema)+)?)]
        pub struct $name(String);

        impl $name {
            /// The normalised text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The normalised text, owned.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// Control characters, and the invisible formatting characters that reorder or hide text
/// (bidirectional overrides, zero-width joiners): in a name they only ever mislead.
fn has_control(s: &str) -> bool {
    s.chars().any(|c| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    })
}

string_value! {
    /// A short free text (a name, a label, a city): trimmed, 1–200 characters, one line.
    Text, "Riya Sharma", min_length = 1, max_length = 200
}

impl Text {
    /// Longest accepted text, in characters.
    pub const MAX: usize = 200;

    /// Trims `s` and checks it is a non-empty single line of at most [`Text::MAX`] characters.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.chars().count() > Self::MAX {
            return Err(format!("must be at most {} characters", Self::MAX));
        }
        if has_control(s) {
            return Err("must be a single line without control characters".into());
        }
        Ok(Self(s.to_owned()))
    }
}

string_value! {
    /// An email address, lower-cased so that lookups by email are exact.
    Email, "riya@example.com"
}

impl Email {
    /// Checks the shape `local@domain.tld` (no quoted local parts, no IP literals).
    pub fn parse(s: &str) -> Result<Self, String> {
        const BAD: &str = "must be an email address like name@example.com";
        let s = s.trim().to_ascii_lowercase();
        if s.len() > 254 {
            return Err("must be at most 254 characters".into());
        }
        let (local, domain) = s.split_once('@').ok_or(BAD)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(s))
        } else {
            Err(BAD.into())
        }
    }
}

string_value! {
    /// A phone number: digits with an optional leading `+`, 7–15 digits, separators removed.
    Phone, "+919876543210"
}

impl Phone {
    /// Drops spaces, dashes, dots and parentheses, then checks what is left.
    pub fn parse(s: &str) -> Result<Self, String> {
        const BAD: &str = "must be a phone number of 7 to 15 digits, optionally starting with +";
        let s = s.trim();
        let (plus, rest) = match s.strip_prefix('+') {
            Some(rest) => ("+", rest),
            None => ("", s),
        };
        let mut digits = String::with_capacity(rest.len() + 1);
        digits.push_str(plus);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(BAD.into()),
            }
        }
        let n = digits.len() - plus.len();
        if (7..=15).contains(&n) {
            Ok(Self(digits))
        } else {
            Err(BAD.into())
        }
    }
}

string_value! {
    /// A postal code: letters, digits, spaces and dashes, 3–10 characters, upper-cased.
    Postcode, "400001"
}

impl Postcode {
    /// Trims, upper-cases and checks the characters and length.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_uppercase();
        let ok = (3..=10).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-');
        if ok {
            Ok(Self(s))
        } else {
            Err("must be 3 to 10 letters, digits, spaces or dashes".into())
        }
    }
}

string_value! {
    /// A tag on accounts (`vip`, `batch-7`, `north:mumbai`): lower case, 1–32 characters of
    /// letters, digits, `-`, `_`, `:` and `.`.
    Tag, "vip", pattern = "^[A-Za-z0-9_:.-]{1,32}$"
}

impl Tag {
    /// Trims, lower-cases and checks the characters and length.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_lowercase();
        let ok = (1..=32).contains(&s.chars().count())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c));
        if ok {
            Ok(Self(s))
        } else {
            Err("must be 1 to 32 characters of letters, digits, '-', '_', ':' or '.'".into())
        }
    }
}

string_value! {
    /// A short machine name (a storefront's `demo`, `tira`): lower case letters, digits and
    /// dashes, 1–40 characters, starting with a letter or digit.
    Slug, "demo"
}

impl Slug {
    /// Checks the characters and length; does not change case, so `Demo` is rejected.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (1..=40).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err("must be 1 to 40 lower-case letters, digits or dashes, starting with a letter or digit".into())
        }
    }
}

string_value! {
    /// An operator's sign-in name: 3–32 characters of letters, digits, `.`, `_`, `-`, lower-cased.
    Username, "admin", pattern = "^[A-Za-z0-9._-]{3,32}$"
}

impl Username {
    /// Trims, lower-cases and checks the characters and length.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        let ok = (3..=32).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if ok {
            Ok(Self(s))
        } else {
            Err("must be 3 to 32 letters, digits, '.', '_' or '-'".into())
        }
    }
}

string_value! {
    /// An absolute `http` or `https` URL with a host.
    HttpUrl, "https://shop.example.com/p/lipstick-123"
}

impl HttpUrl {
    /// Parses with the WHATWG rules and keeps the normalised form.
    pub fn parse(s: &str) -> Result<Self, String> {
        const BAD: &str = "must be an absolute http:// or https:// URL";
        let url = url::Url::parse(s.trim()).map_err(|_| BAD)?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(BAD.into());
        }
        if url.as_str().len() > 2048 {
            return Err("must be at most 2048 characters".into());
        }
        Ok(Self(url.into()))
    }

    /// The host name, e.g. `www.tirabeauty.com`.
    pub fn host(&self) -> String {
        url::Url::parse(&self.0)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

string_value! {
    /// A FAQ answer: trimmed, 1–4,000 characters, several lines allowed.
    Answer, "Codes arrive in the chat within five minutes of payment.", min_length = 1, max_length = 4000
}

impl Answer {
    /// Longest answer, in characters.
    pub const MAX: usize = 4000;

    /// Trims and checks the length; line breaks are kept (normalised to `\n`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.replace("\r\n", "\n");
        let s = s.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.chars().count() > Self::MAX {
            return Err(format!("must be at most {} characters", Self::MAX));
        }
        if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err("must not hold control characters".into());
        }
        Ok(Self(s.to_owned()))
    }
}

string_value! {
    /// A language code (`en`, `id`): two or three lower-case letters; `en` when not given.
    Lang, "en", pattern = "^[a-z]{2,3}$"
}

impl Lang {
    /// Lower-cases and checks the shape.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        if (2..=3).contains(&s.len()) && s.chars().all(|c| c.is_ascii_lowercase()) {
            Ok(Self(s))
        } else {
            Err("must be a two- or three-letter language code such as en or id".into())
        }
    }
}

impl Default for Lang {
    fn default() -> Self {
        Self("en".into())
    }
}

/// An account's tags: deduplicated and sorted, at most 20.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[schema(value_type = Vec<String>, example = json!(["vip", "north"]))]
pub struct Tags(Vec<Tag>);

impl Tags {
    /// Most tags one account may carry.
    pub const MAX: usize = 20;

    /// Builds the set from parsed tags, deduplicating.
    pub fn new(mut tags: Vec<Tag>) -> Result<Self, String> {
        tags.sort();
        tags.dedup();
        if tags.len() > Self::MAX {
            return Err(format!("at most {} tags", Self::MAX));
        }
        Ok(Self(tags))
    }

    /// Parses a list written by a person: `vip, north; batch-7 | x`.
    pub fn parse_list(s: &str) -> Result<Self, String> {
        let tags = s
            .split([',', ';', '|'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Tag::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(tags)
    }

    /// The stored form: tags joined by commas (`north,vip`), empty when there are none.
    pub fn to_stored(&self) -> String {
        self.0.iter().map(Tag::as_str).collect::<Vec<_>>().join(",")
    }

    /// Reads the stored form back; anything unparseable is dropped rather than failing a read.
    pub fn from_stored(s: &str) -> Self {
        Self(s.split(',').filter_map(|t| Tag::parse(t).ok()).collect())
    }

    /// The tags, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &Tag> {
        self.0.iter()
    }

    /// True when there are no tags.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let tags = Vec::<Tag>::deserialize(d)?;
        Tags::new(tags).map_err(serde::de::Error::custom)
    }
}

/// A password on its way to being hashed. Its `Debug` hides it and it cannot be serialised.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(try_from = "String")]
#[schema(value_type = String, format = Password, min_length = 8)]
pub struct Password(String);

impl Password {
    /// Accepts 8–256 characters that are not all whitespace.
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        if n < 8 {
            return Err("must be at least 8 characters".into());
        }
        if n > 256 {
            return Err("must be at most 256 characters".into());
        }
        if s.trim().is_empty() {
            return Err("must not be only whitespace".into());
        }
        Ok(Self(s.to_owned()))
    }

    /// The clear text, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Password {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" Riya@Example.COM ").unwrap().as_str(),
            "riya@example.com"
        );
        for bad in [
            "",
            "riya",
            "riya@",
            "@x.com",
            "riya@localhost",
            "a b@x.com",
            "a@-x.com",
            "a..b@x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn phones_lose_separators() {
        assert_eq!(
            Phone::parse("+91 98765-43210").unwrap().as_str(),
            "+919876543210"
        );
        assert_eq!(
            Phone::parse("(022) 2345 6789").unwrap().as_str(),
            "02223456789"
        );
        assert!(Phone::parse("12345").is_err());
        assert!(Phone::parse("98765x43210").is_err());
        assert!(Phone::parse("++9198765432").is_err());
    }

    #[test]
    fn tags_parse_from_people_lists() {
        let tags = Tags::parse_list("VIP, north; vip | batch-7").unwrap();
        assert_eq!(tags.to_stored(), "batch-7,north,vip");
        assert_eq!(Tags::from_stored("batch-7,north,vip"), tags);
        assert!(Tags::parse_list("has space").is_err());
        assert_eq!(Tags::from_stored(""), Tags::default());
    }

    #[test]
    fn text_is_one_trimmed_line() {
        assert_eq!(Text::parse("  Riya ").unwrap().as_str(), "Riya");
        assert!(Text::parse("   ").is_err());
        assert!(Text::parse("a\nb").is_err());
        assert!(Text::parse("evil\u{202E}txt.exe").is_err());
        assert!(Text::parse(&"x".repeat(201)).is_err());
    }

    #[test]
    fn urls_must_be_http() {
        assert_eq!(
            HttpUrl::parse("https://Shop.Example.com/p?x=1")
                .unwrap()
                .host(),
            "shop.example.com"
        );
        assert!(HttpUrl::parse("ftp://x.com/").is_err());
        assert!(HttpUrl::parse("/relative").is_err());
        assert!(HttpUrl::parse("javascript:alert(1)").is_err());
    }

    #[test]
    fn deserialising_validates() {
        let err = serde_json::from_str::<Email>(r#""nope""#).unwrap_err();
        assert!(err.to_string().contains("email address"));
        let pw: Result<Password, _> = serde_json::from_str(r#""short""#);
        assert!(pw.is_err());
        assert_eq!(
            format!("{:?}", Password::parse("long enough").unwrap()),
            "Password(***)"
        );
    }

    #[test]
    fn slugs_and_usernames() {
        assert!(Slug::parse("demo-2").is_ok());
        assert!(Slug::parse("Demo").is_err());
        assert!(Slug::parse("-x").is_err());
        assert_eq!(Username::parse("Admin").unwrap().as_str(), "admin");
        assert!(Username::parse("ab").is_err());
    }
}
