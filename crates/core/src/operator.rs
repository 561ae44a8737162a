//! Who may do what: operator roles and the permissions routes ask for.

use crate::Invalid;
use crate::ids::{OperatorId, TokenId};
use crate::patch::Patch;
use crate::values::{Email, Password, Text, Username};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// An operator's role. Each role can do everything the one below it can.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Changes data and runs batches and checks.
    Operator,
    /// Also manages operators and API tokens.
    Admin,
}

/// What a route needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read data.
    Read,
    /// Change data, run things.
    Operate,
    /// Manage operators and tokens.
    Administer,
    /// Push marketplace orders in (the extension and webhook senders).
    Ingest,
}

impl Role {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role grants `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        match permission {
            Permission::Read => true,
            Permission::Operate | Permission::Ingest => self >= Role::Operator,
            Permission::Administer => self == Role::Admin,
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => Err(format!(
                "unknown role {s:?}: expected admin, operator or viewer"
            )),
        }
    }
}

/// What an API token may do. Tokens never administer: managing people stays with people.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read data.
    Read,
    /// Change data and run things (implies `read`).
    Operate,
    /// Push marketplace orders in: the browser extension.
    Extension,
    /// Push marketplace orders in: webhook senders.
    Webhook,
}

impl Scope {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Operate => "operate",
            Scope::Extension => "extension",
            Scope::Webhook => "webhook",
        }
    }

    /// Whether a token holding this scope may do `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        match self {
            Scope::Read => permission == Permission::Read,
            Scope::Operate => matches!(permission, Permission::Read | Permission::Operate),
            Scope::Extension | Scope::Webhook => permission == Permission::Ingest,
        }
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Scope::Read),
            "operate" => Ok(Scope::Operate),
            "extension" => Ok(Scope::Extension),
            "webhook" => Ok(Scope::Webhook),
            _ => Err(format!(
                "unknown scope {s:?}: expected read, operate, extension or webhook"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest() {
        assert!(Role::Viewer.allows(Permission::Read));
        assert!(!Role::Viewer.allows(Permission::Operate));
        assert!(Role::Operator.allows(Permission::Operate));
        assert!(!Role::Operator.allows(Permission::Administer));
        assert!(Role::Admin.allows(Permission::Administer));
    }

    #[test]
    fn scopes_never_administer() {
        for s in [
            Scope::Read,
            Scope::Operate,
            Scope::Extension,
            Scope::Webhook,
        ] {
            assert!(!s.allows(Permission::Administer));
            assert_eq!(s.as_str().parse::<Scope>().unwrap(), s);
        }
        assert!(Scope::Extension.allows(Permission::Ingest));
        assert!(!Scope::Extension.allows(Permission::Read));
    }
}

/// An operator as submitted by an admin.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOperator {
    /// Sign-in name; unique.
    pub username: Username,
    /// Contact email; unique when given.
    #[serde(default)]
    pub email: Option<Email>,
    /// Initial password.
    pub password: Password,
    /// Role.
    pub role: Role,
}

/// A partial update of an operator by an admin.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorPatch {
    /// New email, or `null`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub email: Patch<Email>,
    /// New password; signs the operator out everywhere.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub password: Option<Password>,
    /// New role; signs the operator out everywhere.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub role: Option<Role>,
    /// Disables or re-enables sign-in; disabling signs the operator out everywhere.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub disabled: Option<bool>,
}

/// An operator as the API shows it. The password hash never leaves the store.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Operator {
    /// Identifier.
    pub id: OperatorId,
    /// Sign-in name.
    pub username: Username,
    /// Contact email.
    pub email: Option<Email>,
    /// Role.
    pub role: Role,
    /// Whether sign-in is refused.
    pub disabled: bool,
    /// When the operator was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last successful sign-in.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
}

/// An API token as submitted by an admin.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for (`extension on laptop 2`).
    pub name: Text,
    /// What it may do; at least one.
    pub scopes: Vec<Scope>,
    /// Days until it stops working; never expires when absent.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

impl NewToken {
    /// Checks the scopes and lifetime.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.scopes.is_empty() {
            return Err(Invalid::new("scopes", "must list at least one scope"));
        }
        if matches!(self.expires_in_days, Some(d) if d == 0 || d > 3650) {
            return Err(Invalid::new(
                "expires_in_days",
                "must be between 1 and 3650",
            ));
        }
        Ok(())
    }
}

/// An API token as the API shows it; the secret is shown once, at creation, never again.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ApiToken {
    /// Identifier.
    pub id: TokenId,
    /// What it is for.
    pub name: Text,
    /// The secret's first characters, to recognise it.
    pub prefix: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Admin who created it.
    pub created_by: Option<OperatorId>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Last time it was used (updated at most once a minute).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// One of an operator's sign-ins that still works: where it came from and when it was last
/// used, so they can recognise it and end it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SignIn {
    /// Identifier.
    pub id: i64,
    /// When it began.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it ends by itself.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Its last request (recorded at most once a minute).
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// The client address it signed in from.
    pub address: String,
    /// The browser or program that signed in (its user agent).
    pub client: String,
    /// Whether it is the sign-in making this request.
    pub current: bool,
}
