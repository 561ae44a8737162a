//! Signing in, who am I, changing one's own password.

use crate::auth::password::{hash_password, verify_password};
use crate::auth::{Auth, Principal, Read};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::state::AppState;
use axum::extract::{ConnectInfo, State};
use cartwright_core::operator::{Operator, OperatorPatch, Scope};
use cartwright_core::values::{Password, Username};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(me))
        .routes(routes!(change_password))
}

/// Credentials.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Sign-in name.
    username: String,
    /// Password.
    #[schema(format = Password)]
    password: String,
}

/// A sign-in token.
#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer TOKEN`.
    token: String,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    /// Who signed in.
    operator: Operator,
}

/// Signs an operator in. Failed attempts are counted per username and per address; past the
/// limit, the answer is 429 with `Retry-After`.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 429, description = "Too many failed attempts", body = ErrorBody),
    )
)]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<LoginRequest>,
) -> ApiResult<axum::Json<LoginResponse>> {
    let ip = peer.ip().to_string();
    let username = Username::parse(&body.username).ok();
    // Names that cannot exist share one throttle key, so they cannot multiply attempts.
    let user_key = username.as_ref().map_or("<invalid>", Username::as_str);
    if let Err(wait) = state.throttle.attempt(user_key, &ip) {
        return Err(ApiError::too_many(
            "too many failed sign-ins; wait before trying again",
            wait.as_secs() + 1,
        ));
    }
    let record = match &username {
        Some(username) => state.store.login_record(username).await?,
        None => None,
    };
    let hash = record.as_ref().map(|r| r.password_hash.clone());
    if !verify_password(body.password, hash).await? {
        return Err(ApiError::unauthorized("wrong username or password"));
    }
    let Some(record) = record else {
        return Err(ApiError::unauthorized("wrong username or password"));
    };
    if record.operator.disabled {
        return Err(ApiError::unauthorized("this operator is disabled"));
    }
    state.throttle.succeeded(user_key, &ip);
    state.store.record_login(record.operator.id).await?;
    let (token, expires_at) = state.jwt.issue(record.operator.id, record.auth_version)?;
    let operator = state.store.operator(record.operator.id).await?;
    Ok(axum::Json(LoginResponse {
        token,
        expires_at,
        operator,
    }))
}

/// The caller.
#[derive(Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Me {
    /// A signed-in operator.
    Operator {
        /// Who.
        operator: Operator,
    },
    /// A machine token.
    Token {
        /// Token id.
        id: i64,
        /// What it may do.
        scopes: Vec<Scope>,
    },
}

/// Who the bearer credential belongs to.
#[utoipa::path(
    get, path = "/auth/me", tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn me(State(state): State<AppState>, Auth(who, ..): Auth<Read>) -> ApiResult<axum::Json<Me>> {
    Ok(axum::Json(match who {
        Principal::Operator { id, .. } => Me::Operator {
            operator: state.store.operator(id).await?,
        },
        Principal::Token { id, scopes } => Me::Token {
            id: id.get(),
            scopes,
        },
    }))
}

/// A password change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password in use now.
    #[schema(format = Password)]
    current_password: String,
    /// The new password (8 to 256 characters).
    new_password: Password,
}

/// Changes the caller's own password. Every other sign-in of theirs ends; the answer carries
/// a fresh token.
#[utoipa::path(
    put, path = "/auth/password", tag = "auth",
    request_body = PasswordChange,
    responses(
        (status = 200, body = LoginResponse),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Current password wrong or new one too weak", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Auth(who, ..): Auth<Read>,
    Json(body): Json<PasswordChange>,
) -> ApiResult<axum::Json<LoginResponse>> {
    let id = who
        .operator()
        .ok_or_else(|| ApiError::forbidden("API tokens have no password"))?;
    let operator = state.store.operator(id).await?;
    let record = state
        .store
        .login_record(&operator.username)
        .await?
        .ok_or_else(|| ApiError::unauthorized("this sign-in has ended; sign in again"))?;
    // Guessing the current password with a stolen sign-in token is throttled like signing in.
    let ip = peer.ip().to_string();
    if let Err(wait) = state.throttle.attempt(operator.username.as_str(), &ip) {
        return Err(ApiError::too_many(
            "too many wrong passwords; wait before trying again",
            wait.as_secs() + 1,
        ));
    }
    if !verify_password(body.current_password, Some(record.password_hash)).await? {
        return Err(ApiError::invalid(
            "current_password",
            "is not the password in use",
        ));
    }
    state.throttle.succeeded(operator.username.as_str(), &ip);
    let hash = hash_password(&body.new_password).await?;
    let operator = state
        .store
        .update_operator(id, &OperatorPatch::default(), Some(&hash))
        .await?;
    let version = state
        .store
        .operator_auth(id)
        .await?
        .map(|a| a.auth_version)
        .ok_or_else(|| ApiError::not_found("operator not found"))?;
    let (token, expires_at) = state.jwt.issue(id, version)?;
    Ok(axum::Json(LoginResponse {
        token,
        expires_at,
        operator,
    }))
}
