//! Shipping addresses; at most one is the default.

use crate::auth::{Auth, Operate, Read};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::routes::created;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use cartwright_core::address::{Address, AddressPatch, NewAddress};
use cartwright_core::ids::AddressId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
}

/// All addresses, the default first.
#[utoipa::path(get, path = "/addresses", tag = "addresses",
    responses((status = 200, body = Vec<Address>)), security(("bearer" = [])))]
async fn list(State(state): State<AppState>, _: Auth<Read>) -> ApiResult<axum::Json<Vec<Address>>> {
    Ok(axum::Json(state.store.addresses().await?))
}

/// Adds an address. The first one, or one sent with `is_default: true`, becomes the default.
#[utoipa::path(post, path = "/addresses", tag = "addresses", request_body = NewAddress,
    responses((status = 201, body = Address), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Json(body): Json<NewAddress>,
) -> ApiResult<Response> {
    let address = state.store.create_address(&body).await?;
    Ok(created(
        format!("/api/v1/addresses/{}", address.id),
        address,
    ))
}

/// One address.
#[utoipa::path(get, path = "/addresses/{id}", tag = "addresses", params(("id" = i64, Path)),
    responses((status = 200, body = Address), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_one(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<AddressId>,
) -> ApiResult<axum::Json<Address>> {
    Ok(axum::Json(state.store.address(id).await?))
}

/// Changes an address; `is_default: true` moves the default here.
#[utoipa::path(patch, path = "/addresses/{id}", tag = "addresses", params(("id" = i64, Path)),
    request_body = AddressPatch,
    responses((status = 200, body = Address), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<AddressId>,
    Json(body): Json<AddressPatch>,
) -> ApiResult<axum::Json<Address>> {
    Ok(axum::Json(state.store.update_address(id, &body).await?))
}

/// Deletes an address.
#[utoipa::path(delete, path = "/addresses/{id}", tag = "addresses", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<AddressId>,
) -> ApiResult<StatusCode> {
    state.store.delete_address(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
