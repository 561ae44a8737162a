//! Storefronts.

use crate::auth::{Administer, Auth, Read};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::routes::created;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use cartwright_core::ids::StorefrontId;
use cartwright_core::storefront::{NewStorefront, Storefront, StorefrontPatch};
use cartwright_core::values::{HttpUrl, Slug};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
}

/// All storefronts.
#[utoipa::path(get, path = "/storefronts", tag = "storefronts",
    responses((status = 200, body = Vec<Storefront>)), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    _: Auth<Read>,
) -> ApiResult<axum::Json<Vec<Storefront>>> {
    Ok(axum::Json(state.store.storefronts().await?))
}

/// Adds a storefront.
#[utoipa::path(post, path = "/storefronts", tag = "storefronts", request_body = NewStorefront,
    responses((status = 201, body = Storefront), (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    _: Auth<Administer>,
    Json(body): Json<NewStorefront>,
) -> ApiResult<Response> {
    usable_profile(&state, &body.profile)?;
    reachable(&state, &body.base_url).await?;
    let storefront = state.store.create_storefront(&body).await?;
    Ok(created(
        format!("/api/v1/storefronts/{}", storefront.id),
        storefront,
    ))
}

/// Refuses a profile the engine cannot load (no such file or built-in one, or one with
/// errors): a storefront that names it could never place an order.
fn usable_profile(state: &AppState, profile: &Slug) -> Result<(), ApiError> {
    state
        .engine
        .profiles()
        .get(profile.as_str())
        .map(|_| ())
        .map_err(|e| ApiError::invalid("profile", e.to_string()))
}

/// Refuses a base URL on this machine or a private network unless the install allows those
/// (see `cartwright_engine::net`). A name that does not resolve now is accepted: each run
/// checks again before it starts.
async fn reachable(state: &AppState, url: &HttpUrl) -> Result<(), ApiError> {
    let Ok(parsed) = url::Url::parse(url.as_str()) else {
        return Err(ApiError::invalid("base_url", "is not a URL"));
    };
    match cartwright_engine::net::ensure_public(&parsed, state.engine.allows_internal()).await {
        Err(cartwright_engine::net::Unreachable::Internal(e)) => {
            Err(ApiError::invalid("base_url", e.to_string()))
        }
        _ => Ok(()),
    }
}

/// One storefront.
#[utoipa::path(get, path = "/storefronts/{id}", tag = "storefronts", params(("id" = i64, Path)),
    responses((status = 200, body = Storefront), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_one(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<StorefrontId>,
) -> ApiResult<axum::Json<Storefront>> {
    Ok(axum::Json(state.store.storefront(id).await?))
}

/// Changes a storefront.
#[utoipa::path(patch, path = "/storefronts/{id}", tag = "storefronts", params(("id" = i64, Path)),
    request_body = StorefrontPatch,
    responses((status = 200, body = Storefront), (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    _: Auth<Administer>,
    Path(id): Path<StorefrontId>,
    Json(body): Json<StorefrontPatch>,
) -> ApiResult<axum::Json<Storefront>> {
    if let Some(profile) = &body.profile {
        usable_profile(&state, profile)?;
    }
    if let Some(url) = &body.base_url {
        reachable(&state, url).await?;
    }
    Ok(axum::Json(state.store.update_storefront(id, &body).await?))
}

/// Deletes a storefront without accounts or products.
#[utoipa::path(delete, path = "/storefronts/{id}", tag = "storefronts", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, description = "Not an admin", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Still has accounts or products", body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    _: Auth<Administer>,
    Path(id): Path<StorefrontId>,
) -> ApiResult<StatusCode> {
    state.store.delete_storefront(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
