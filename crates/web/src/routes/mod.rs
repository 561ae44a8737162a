//! The API's routes, one module per resource. Handlers parse, call the store, and answer.

pub mod accounts;
pub mod addresses;
pub mod assistant;
pub mod auth;
pub mod batches;
pub mod goods;
pub mod operators;
pub mod products;
pub mod rewards;
pub mod storefronts;
pub mod system;
pub mod tokens;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A 201 answer with the new resource and its `Location`.
pub fn created<T: Serialize>(location: String, body: T) -> Response {
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Checks a list's page parameters: `page` from 1 (default 1) or a `cursor` from the previous
/// page (not both), and 1 to 500 rows (default 50).
pub fn page_request(
    page: Option<u32>,
    per_page: Option<u32>,
    cursor: Option<&str>,
) -> Result<cartwright_store::PageRequest, crate::error::ApiError> {
    let per_page = per_page.unwrap_or(50);
    Ok(match (page, cursor) {
        (Some(_), Some(_)) => {
            return Err(crate::error::ApiError::invalid(
                "cursor",
                "give either page or cursor, not both",
            ));
        }
        (_, Some(cursor)) => cartwright_store::PageRequest::after(cursor, per_page)?,
        (page, None) => cartwright_store::PageRequest::number(page.unwrap_or(1), per_page)?,
    })
}
