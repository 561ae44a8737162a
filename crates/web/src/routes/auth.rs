//! Signing in and out, who am I, one's own sign-ins, changing one's own password.

use crate::auth::password::{hash_password, verify_password};
use crate::auth::{Auth, Principal, Read};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::header::USER_AGENT;
use axum::http::{HeaderMap, StatusCode};
use cartwright_core::ids::OperatorId;
use cartwright_core::operator::{Operator, OperatorPatch, Scope, SignIn};
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
        .routes(routes!(logout))
        .routes(routes!(sign_ins, end_other_sign_ins))
        .routes(routes!(end_sign_in))
}

/// Counts a password attempt by `user` from `ip`: holds it back as long as the throttle says,
/// or refuses it (429, `too_many` and when to try again).
async fn throttled(
    state: &AppState,
    user: &str,
    ip: std::net::IpAddr,
    too_many: &str,
) -> Result<(), ApiError> {
    match state.throttle.attempt(user, ip) {
        Err(wait) => Err(ApiError::too_many(
            format!("{too_many}; wait before trying again"),
            wait.as_secs() + 1,
        )),
        Ok(delay) => {
            tokio::time::sleep(delay).await;
            Ok(())
        }
    }
}

/// Records a sign-in of `operator` from the request's client and issues its token.
async fn sign_in(
    state: &AppState,
    operator: OperatorId,
    auth_version: i64,
    peer: &SocketAddr,
    headers: &HeaderMap,
) -> ApiResult<(String, OffsetDateTime)> {
    let expires = state.jwt.expiry();
    let client = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let sid = state
        .store
        .start_sign_in(operator, expires, &peer.ip().to_string(), client)
        .await?;
    Ok((
        state.jwt.issue(operator, auth_version, sid, expires)?,
        expires,
    ))
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
    headers: HeaderMap,
    Json(body): Json<LoginRequest>,
) -> ApiResult<axum::Json<LoginResponse>> {
    let username = Username::parse(&body.username).ok();
    // Names that cannot exist share one throttle key, so they cannot multiply attempts.
    let user_key = username.as_ref().map_or("<invalid>", Username::as_str);
    throttled(&state, user_key, peer.ip(), "too many failed sign-ins").await?;
    let record = match &username {
        Some(username) => state.store.login_record(username).await?,
        None => None,
    };
    let hash = record.as_ref().map(|r| r.password_hash.clone());
    // One answer for every refusal: a disabled operator's answer must not confirm that the
    // password was right.
    let refused =
        || ApiError::unauthorized("wrong username or password, or the operator is disabled");
    if !verify_password(body.password, hash).await? {
        return Err(refused());
    }
    let Some(record) = record.filter(|r| !r.operator.disabled) else {
        return Err(refused());
    };
    state.throttle.succeeded(user_key, peer.ip());
    let (token, expires_at) = sign_in(
        &state,
        record.operator.id,
        record.auth_version,
        &peer,
        &headers,
    )
    .await?;
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

/// Changes the caller's own password. Every sign-in of theirs ends, this one too; the answer
/// carries the token of a new one.
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
    headers: HeaderMap,
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
    throttled(
        &state,
        operator.username.as_str(),
        peer.ip(),
        "too many wrong passwords",
    )
    .await?;
    if !verify_password(body.current_password, Some(record.password_hash)).await? {
        return Err(ApiError::invalid(
            "current_password",
            "is not the password in use",
        ));
    }
    state
        .throttle
        .succeeded(operator.username.as_str(), peer.ip());
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
    let (token, expires_at) = sign_in(&state, id, version, &peer, &headers).await?;
    Ok(axum::Json(LoginResponse {
        token,
        expires_at,
        operator,
    }))
}

/// The caller's sign-in, or a refusal for an API token.
fn own_sign_in(who: &Principal) -> ApiResult<(OperatorId, i64)> {
    match who {
        Principal::Operator { id, sign_in, .. } => Ok((*id, *sign_in)),
        Principal::Token { .. } => Err(ApiError::forbidden(
            "API tokens are not sign-ins; an admin revokes them under /tokens",
        )),
    }
}

/// Ends the sign-in making this request: its token stops working at once.
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth",
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "An API token is not a sign-in", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn logout(State(state): State<AppState>, Auth(who, ..): Auth<Read>) -> ApiResult<StatusCode> {
    let (operator, current) = own_sign_in(&who)?;
    state
        .store
        .end_sign_ins(operator, Some(current), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's sign-ins that still work, newest first; `current` marks this one.
#[utoipa::path(
    get, path = "/auth/sessions", tag = "auth",
    responses(
        (status = 200, body = Vec<SignIn>),
        (status = 401, body = ErrorBody),
        (status = 403, description = "An API token is not a sign-in", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn sign_ins(
    State(state): State<AppState>,
    Auth(who, ..): Auth<Read>,
) -> ApiResult<axum::Json<Vec<SignIn>>> {
    let (operator, current) = own_sign_in(&who)?;
    let mut list = state.store.sign_ins(operator).await?;
    for s in &mut list {
        s.current = s.id == current;
    }
    Ok(axum::Json(list))
}

/// How many sign-ins were ended.
#[derive(Serialize, ToSchema)]
pub struct Ended {
    /// Sign-ins ended.
    pub ended: u64,
}

/// Ends every sign-in of the caller except this one ("sign out everywhere else").
#[utoipa::path(
    delete, path = "/auth/sessions", tag = "auth",
    responses(
        (status = 200, body = Ended),
        (status = 401, body = ErrorBody),
        (status = 403, description = "An API token is not a sign-in", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn end_other_sign_ins(
    State(state): State<AppState>,
    Auth(who, ..): Auth<Read>,
) -> ApiResult<axum::Json<Ended>> {
    let (operator, current) = own_sign_in(&who)?;
    let ended = state
        .store
        .end_sign_ins(operator, None, Some(current))
        .await?;
    Ok(axum::Json(Ended { ended }))
}

/// Ends one of the caller's sign-ins (this one too, if named).
#[utoipa::path(
    delete, path = "/auth/sessions/{id}", tag = "auth",
    params(("id" = i64, Path, description = "The sign-in")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "An API token is not a sign-in", body = ErrorBody),
        (status = 404, description = "No sign-in of yours that still works has this id", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn end_sign_in(
    State(state): State<AppState>,
    Auth(who, ..): Auth<Read>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let (operator, _) = own_sign_in(&who)?;
    match state.store.end_sign_ins(operator, Some(id), None).await? {
        0 => Err(ApiError::not_found(format!(
            "no sign-in of yours that still works has id {id}"
        ))),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}
