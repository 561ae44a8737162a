//! Who is calling and what they may do. A handler states its need in its signature —
//! `Auth<Operate>` — and the extractor checks the bearer credential (an operator's sign-in
//! token or a machine's API token) against the store on every request, so that revoking a
//! token or disabling an operator takes effect at once.

pub mod jwt;
pub mod password;
pub mod throttle;

use crate::error::ApiError;
use crate::state::{AppState, Use};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use cartwright_core::ids::{OperatorId, TokenId};
use cartwright_core::operator::{Permission, Role, Scope};
use sha2::{Digest, Sha256};
use std::marker::PhantomData;
use time::OffsetDateTime;

/// API token secrets start with this, so they are told apart from sign-in tokens (and found
/// by secret scanners).
pub const TOKEN_PREFIX: &str = "cwt_";

/// The SHA-256 of an API token secret: what the store keeps.
pub fn token_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The caller behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in operator.
    Operator {
        /// Who.
        id: OperatorId,
        /// Their current role.
        role: Role,
        /// The sign-in the token belongs to.
        sign_in: i64,
    },
    /// A machine with an API token.
    Token {
        /// Which token.
        id: TokenId,
        /// What it may do.
        scopes: Vec<Scope>,
    },
}

impl Principal {
    /// Whether the caller may do `permission`.
    pub fn allows(&self, permission: Permission) -> bool {
        match self {
            Principal::Operator { role, .. } => role.allows(permission),
            Principal::Token { scopes, .. } => scopes.iter().any(|s| s.allows(permission)),
        }
    }

    /// The operator, when the caller is one.
    pub fn operator(&self) -> Option<OperatorId> {
        match self {
            Principal::Operator { id, .. } => Some(*id),
            Principal::Token { .. } => None,
        }
    }
}

/// Who the caller is, for the audit log: the operator by name, or the API token.
pub async fn actor(
    state: &AppState,
    principal: &Principal,
) -> Result<cartwright_store::Actor, ApiError> {
    Ok(match principal {
        Principal::Operator { id, .. } => cartwright_store::Actor {
            id: Some(*id),
            name: state
                .store
                .operator(*id)
                .await?
                .username
                .as_str()
                .to_owned(),
        },
        Principal::Token { id, .. } => cartwright_store::Actor {
            id: None,
            name: format!("API token {id}"),
        },
    })
}

/// A permission a route needs, as a type.
pub trait Need: Send + Sync + 'static {
    /// The permission.
    const PERMISSION: Permission;
    /// What it is called in a refusal.
    const NAME: &'static str;
}

macro_rules! needs {
    ($($(#[$doc:meta])* $name:ident => $perm:ident, $label:literal;)+) => {$(
        $(#[$doc])*
        pub enum $name {}
        impl Need for $name {
            const PERMISSION: Permission = Permission::$perm;
            const NAME: &'static str = $label;
        }
    )+};
}

needs! {
    /// Reading: every role.
    Read => Read, "read access";
    /// Changing data and running things: operators and admins.
    Operate => Operate, "the operator role";
    /// Managing operators and tokens: admins.
    Administer => Administer, "the admin role";
    /// Pushing marketplace orders in: extension and webhook tokens.
    Ingest => Ingest, "an ingest token";
}

/// An authenticated caller holding the permission `P`.
pub struct Auth<P: Need>(pub Principal, pub PhantomData<P>);

impl<P: Need> FromRequestParts<AppState> for Auth<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = authenticate(&bearer(parts, false)?, state).await?;
        if !principal.allows(P::PERMISSION) {
            return Err(ApiError::forbidden(format!("this needs {}", P::NAME)));
        }
        Ok(Auth(principal, PhantomData))
    }
}

/// The bearer token of a request: the `Authorization` header, or, when `query` allows it, an
/// `access_token` query parameter (only the live streams do: a browser's EventSource and
/// WebSocket cannot set headers, and a token in a URL ends up in logs and histories).
pub(crate) fn bearer(parts: &Parts, query: bool) -> Result<String, ApiError> {
    if let Some(header) = parts.headers.get(AUTHORIZATION) {
        return header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be Bearer TOKEN")
            });
    }
    let from_query = parts.uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    });
    match from_query {
        Some(token) if query && !token.is_empty() => Ok(token),
        Some(_) if !query => Err(ApiError::unauthorized(
            "access_token in the URL is accepted only by the event streams; send Authorization: Bearer TOKEN",
        )),
        _ => Err(ApiError::unauthorized(
            "sign in: send Authorization: Bearer TOKEN",
        )),
    }
}

/// Writes a credential's use in the background, at most once a minute per credential and
/// node ([`AppState::note_use`]): a busy token must not turn every read into a write.
fn record_use(
    state: &AppState,
    key: Use,
    write: impl Future<Output = Result<(), cartwright_store::StoreError>> + Send + 'static,
) {
    if state.note_use(key) {
        tokio::spawn(async move {
            if let Err(e) = write.await {
                tracing::warn!(error = %e, credential = ?key, "could not record a credential's use");
            }
        });
    }
}

/// Who `token` belongs to, checked against the store now: an API token that is unknown,
/// revoked or expired, or a sign-in that was ended, expired or whose operator was disabled or
/// changed since, is refused.
pub(crate) async fn authenticate(token: &str, state: &AppState) -> Result<Principal, ApiError> {
    if token.starts_with(TOKEN_PREFIX) {
        let auth = state
            .store
            .token_auth(&token_hash(token))
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown API token"))?;
        let now = OffsetDateTime::now_utc();
        if auth.revoked {
            return Err(ApiError::unauthorized("this API token was revoked"));
        }
        if auth.expires_at.is_some_and(|t| t <= now) {
            return Err(ApiError::unauthorized("this API token has expired"));
        }
        if auth
            .last_used_at
            .is_none_or(|t| now - t > time::Duration::MINUTE)
        {
            let (store, id) = (state.store.clone(), auth.id);
            record_use(
                state,
                Use::Token(id),
                async move { store.touch_token(id).await },
            );
        }
        return Ok(Principal::Token {
            id: auth.id,
            scopes: auth.scopes,
        });
    }

    let claims = state.jwt.verify(token)?;
    let ended = || ApiError::unauthorized("this sign-in has ended; sign in again");
    let id = claims
        .operator()
        .ok_or_else(|| ApiError::unauthorized("invalid token"))?;
    let sign_in = claims.sid.ok_or_else(ended)?;
    let auth = state
        .store
        .sign_in_auth(sign_in)
        .await?
        .filter(|a| a.operator == id && !a.revoked && !a.disabled && a.auth_version == claims.ver)
        .ok_or_else(ended)?;
    if OffsetDateTime::now_utc() - auth.last_seen_at > time::Duration::MINUTE {
        let store = state.store.clone();
        record_use(state, Use::SignIn(sign_in), async move {
            store.touch_sign_in(sign_in).await
        });
    }
    Ok(Principal::Operator {
        id,
        role: auth.role,
        sign_in,
    })
}
