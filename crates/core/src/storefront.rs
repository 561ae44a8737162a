//! Storefronts: the sites whose customer accounts Cartwright operates, each driven by a profile.

use crate::Invalid;
use crate::ids::StorefrontId;
use crate::values::{HttpUrl, Slug, Text};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A storefront as submitted.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStorefront {
    /// Short unique name (`demo`, `tira`).
    pub slug: Slug,
    /// Display name.
    pub name: Text,
    /// Name of the profile that drives it (a file in `profiles/`).
    pub profile: Slug,
    /// Where the site lives; cookies without a domain are bound to its host.
    pub base_url: HttpUrl,
    /// ISO 4217 currency of its prices, `INR` by default.
    #[serde(default = "default_currency")]
    #[schema(example = "INR")]
    pub currency: Currency,
}

/// A partial update of a storefront.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StorefrontPatch {
    /// New display name.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub name: Option<Text>,
    /// New profile name.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub profile: Option<Slug>,
    /// New base URL.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub base_url: Option<HttpUrl>,
    /// New currency.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub currency: Option<Currency>,
}

/// A storefront as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Storefront {
    /// Identifier.
    pub id: StorefrontId,
    /// Short unique name.
    pub slug: Slug,
    /// Display name.
    pub name: Text,
    /// Profile that drives it.
    pub profile: Slug,
    /// Where the site lives.
    pub base_url: HttpUrl,
    /// Currency of its prices.
    pub currency: Currency,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Storefront {
    /// The host cookies are bound to when they name none.
    pub fn host(&self) -> String {
        self.base_url.host()
    }

    /// Whether `url` is on this storefront (its host or a sub-domain of it), so products
    /// pointing at another site are caught when they are entered, not during a run.
    pub fn check_owns(&self, field: &str, url: &HttpUrl) -> Result<(), Invalid> {
        let own = self.host();
        let own = own.strip_prefix("www.").unwrap_or(&own);
        let host = url.host();
        if host == own || host.ends_with(&format!(".{own}")) {
            Ok(())
        } else {
            Err(Invalid::new(
                field,
                format!("is on {host}, not on the storefront's site {own}"),
            ))
        }
    }
}

fn default_currency() -> Currency {
    Currency("INR".into())
}

/// An ISO 4217 currency code: three upper-case letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "INR")]
pub struct Currency(String);

impl Currency {
    /// Upper-cases and checks three letters.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_uppercase();
        if s.len() == 3 && s.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(Self(s))
        } else {
            Err("must be a three-letter currency code like INR".into())
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owns_its_host_and_subdomains() {
        let s = Storefront {
            id: StorefrontId(1),
            slug: Slug::parse("tira").unwrap(),
            name: Text::parse("Tira").unwrap(),
            profile: Slug::parse("tira").unwrap(),
            base_url: HttpUrl::parse("https://www.tirabeauty.com/").unwrap(),
            currency: Currency::parse("inr").unwrap(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        let url = |u: &str| HttpUrl::parse(u).unwrap();
        assert!(
            s.check_owns("url", &url("https://www.tirabeauty.com/p/x"))
                .is_ok()
        );
        assert!(
            s.check_owns("url", &url("https://cdn.tirabeauty.com/i.png"))
                .is_ok()
        );
        assert!(
            s.check_owns("url", &url("https://eviltirabeauty.com/p"))
                .is_err()
        );
        assert_eq!(s.currency.as_str(), "INR");
    }
}
