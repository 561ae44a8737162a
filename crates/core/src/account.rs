//! Storefront customer accounts: what an operator enters and what Cartwright shows back.

use crate::Invalid;
use crate::cookies::CookieInfo;
use crate::ids::{AccountId, StorefrontId};
use crate::patch::Patch;
use crate::values::{Email, Phone, Tags, Text};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Whether an account's stored cookies still sign it in, as last observed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Not checked since the cookies last changed.
    #[default]
    Unknown,
    /// The last check or run was signed in.
    Ok,
    /// The storefront treated the account as signed out: new cookies are needed.
    LoggedOut,
}

impl SessionStatus {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Unknown => "unknown",
            SessionStatus::Ok => "ok",
            SessionStatus::LoggedOut => "logged_out",
        }
    }
}

impl FromStr for SessionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "unknown" => Ok(SessionStatus::Unknown),
            "ok" => Ok(SessionStatus::Ok),
            "logged_out" => Ok(SessionStatus::LoggedOut),
            _ => Err(format!(
                "unknown session status {s:?}: expected unknown, ok or logged_out"
            )),
        }
    }
}

/// An account must be reachable by email or phone: that is how the storefront and the CSV
/// import recognise it.
pub fn require_contact(email: Option<&Email>, phone: Option<&Phone>) -> Result<(), Invalid> {
    if email.is_none() && phone.is_none() {
        return Err(Invalid::new(
            "email",
            "an account needs an email or a phone",
        ));
    }
    Ok(())
}

/// A new account as submitted.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// The storefront the account belongs to.
    pub storefront_id: StorefrontId,
    /// A short name for operators (e.g. `acct-017`).
    #[serde(default)]
    pub label: Option<Text>,
    /// The customer's name on the storefront.
    #[serde(default)]
    pub name: Option<Text>,
    /// Sign-in email; unique per storefront.
    #[serde(default)]
    pub email: Option<Email>,
    /// Sign-in phone; unique per storefront.
    #[serde(default)]
    pub phone: Option<Phone>,
    /// Tags for selecting groups of accounts.
    #[serde(default)]
    pub tags: Tags,
    /// Inactive accounts are never selected for runs.
    #[serde(default = "active_by_default")]
    pub active: bool,
}

fn active_by_default() -> bool {
    true
}

impl NewAccount {
    /// Checks the rules that involve more than one field.
    pub fn check(&self) -> Result<(), Invalid> {
        require_contact(self.email.as_ref(), self.phone.as_ref())
    }
}

/// A partial update of an account. Absent fields are kept; `null` clears an optional one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AccountPatch {
    /// New label, or `null` to clear.
    #[schema(value_type = Option<String>)]
    pub label: Patch<Text>,
    /// New name, or `null` to clear.
    #[schema(value_type = Option<String>)]
    pub name: Patch<Text>,
    /// New email, or `null` to clear.
    #[schema(value_type = Option<String>)]
    pub email: Patch<Email>,
    /// New phone, or `null` to clear.
    #[schema(value_type = Option<String>)]
    pub phone: Patch<Phone>,
    /// Replaces all tags.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub tags: Option<Tags>,
    /// Turns the account on or off for runs.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub active: Option<bool>,
}

/// What Cartwright knows about an account's session. Cookie values are never included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    /// Last observed state.
    pub status: SessionStatus,
    /// Whether cookies are stored.
    pub has_cookies: bool,
    /// The stored cookies without their values.
    pub cookies: Vec<CookieInfo>,
}

/// An account as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Account {
    /// Identifier.
    pub id: AccountId,
    /// Storefront it belongs to.
    pub storefront_id: StorefrontId,
    /// Short name for operators.
    pub label: Option<Text>,
    /// Customer's name.
    pub name: Option<Text>,
    /// Sign-in email.
    pub email: Option<Email>,
    /// Sign-in phone.
    pub phone: Option<Phone>,
    /// Tags.
    pub tags: Tags,
    /// Selected for runs.
    pub active: bool,
    /// Session state and cookie names.
    pub session: SessionInfo,
    /// Reward points at the last check.
    pub points: Option<i64>,
    /// Reward tier at the last check.
    pub tier: Option<String>,
    /// When points were last checked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_checked_at: Option<OffsetDateTime>,
    /// When the account was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}
