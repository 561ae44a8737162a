//! API tokens for machines (the extension, webhook senders, scripts), managed by admins.
//! The secret is shown once, in the creation answer; the store keeps only its SHA-256.

use crate::auth::{Administer, Auth, TOKEN_PREFIX, token_hash};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::routes::created;
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use cartwright_core::ids::TokenId;
use cartwright_core::operator::{ApiToken, NewToken};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

/// A new token with its secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    token: ApiToken,
    /// Send as `Authorization: Bearer SECRET`. Not retrievable later.
    secret: String,
}

/// All tokens, newest first, without secrets.
#[utoipa::path(get, path = "/tokens", tag = "tokens",
    responses((status = 200, body = Vec<ApiToken>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    _: Auth<Administer>,
) -> ApiResult<axum::Json<Vec<ApiToken>>> {
    Ok(axum::Json(state.store.tokens().await?))
}

/// Creates a token. Scopes: `read`, `operate` (includes read), `extension`, `webhook`.
#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    Auth(who, ..): Auth<Administer>,
    Json(body): Json<NewToken>,
) -> ApiResult<Response> {
    body.check()?;
    let creator = who
        .operator()
        .ok_or_else(|| ApiError::forbidden("tokens cannot create tokens"))?;
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|e| ApiError::internal(&e))?;
    let secret = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    );
    let prefix: String = secret.chars().take(TOKEN_PREFIX.len() + 6).collect();
    let token = state
        .store
        .create_token(&body, creator, &token_hash(&secret), &prefix)
        .await?;
    Ok(created(
        format!("/api/v1/tokens/{}", token.id),
        CreatedToken { token, secret },
    ))
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens", params(("id" = i64, Path)),
    responses((status = 200, body = ApiToken), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn revoke(
    State(state): State<AppState>,
    _: Auth<Administer>,
    Path(id): Path<TokenId>,
) -> ApiResult<axum::Json<ApiToken>> {
    Ok(axum::Json(state.store.revoke_token(id).await?))
}
