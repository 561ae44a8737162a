//! Products. A product's page must be on its storefront's site.

use crate::auth::{Auth, Operate, Read};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::routes::{created, page_request};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use cartwright_core::catalog::{NewProduct, Product, ProductPatch};
use cartwright_core::ids::{ProductId, StorefrontId};
use cartwright_core::storefront::Storefront;
use cartwright_store::{Page, ProductFilter, StoreError};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
}

/// Filters for product lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ProductQuery {
    /// Page number, from 1.
    page: Option<u32>,
    /// Rows per page, 1 to 500, default 50.
    per_page: Option<u32>,
    /// Only this storefront's products.
    storefront_id: Option<StorefrontId>,
    /// Only products in (or out of) stock.
    in_stock: Option<bool>,
    /// Text in name, SKU, brand or category.
    q: Option<String>,
}

/// A page of products, by name.
#[utoipa::path(get, path = "/products", tag = "products", params(ProductQuery),
    responses((status = 200, body = Page<Product>), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    _: Auth<Read>,
    Query(query): Query<ProductQuery>,
) -> ApiResult<axum::Json<Page<Product>>> {
    let page = page_request(query.page, query.per_page, None)?;
    let filter = ProductFilter {
        storefront_id: query.storefront_id,
        in_stock: query.in_stock,
        text: query.q,
    };
    Ok(axum::Json(state.store.products(&filter, page).await?))
}

async fn storefront_of(state: &AppState, id: StorefrontId) -> Result<Storefront, ApiError> {
    state.store.storefront(id).await.map_err(|e| match e {
        StoreError::NotFound { .. } => {
            ApiError::invalid("storefront_id", "no storefront has this id")
        }
        e => e.into(),
    })
}

/// Adds a product.
#[utoipa::path(post, path = "/products", tag = "products", request_body = NewProduct,
    responses((status = 201, body = Product), (status = 409, description = "URL or SKU taken", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Json(body): Json<NewProduct>,
) -> ApiResult<Response> {
    let storefront = storefront_of(&state, body.storefront_id).await?;
    storefront.check_owns("url", &body.url)?;
    let product = state.store.create_product(&body).await?;
    Ok(created(format!("/api/v1/products/{}", product.id), product))
}

/// One product.
#[utoipa::path(get, path = "/products/{id}", tag = "products", params(("id" = i64, Path)),
    responses((status = 200, body = Product), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_one(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<ProductId>,
) -> ApiResult<axum::Json<Product>> {
    Ok(axum::Json(state.store.product(id).await?))
}

/// Changes a product.
#[utoipa::path(patch, path = "/products/{id}", tag = "products", params(("id" = i64, Path)),
    request_body = ProductPatch,
    responses((status = 200, body = Product), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<ProductId>,
    Json(body): Json<ProductPatch>,
) -> ApiResult<axum::Json<Product>> {
    if let Some(url) = &body.url {
        let product = state.store.product(id).await?;
        storefront_of(&state, product.storefront_id)
            .await?
            .check_owns("url", url)?;
    }
    Ok(axum::Json(state.store.update_product(id, &body).await?))
}

/// Deletes a product.
#[utoipa::path(delete, path = "/products/{id}", tag = "products", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<ProductId>,
) -> ApiResult<StatusCode> {
    state.store.delete_product(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
