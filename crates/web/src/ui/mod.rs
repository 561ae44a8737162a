//! The operators' dashboard at `/`: server-rendered pages (askama) over the same store and
//! engine the API uses. Reads call the store as the API handlers do; every change goes through
//! the API's own handlers (see [`api`]), so a form obeys exactly the API's rules and shows its
//! errors beside the field they name. Sessions are HttpOnly cookies holding the API's sign-in
//! token; every form carries a CSRF token derived from that session.

mod accounts;
mod api;
mod assets;
mod assistant;
mod batches;
mod catalog;
mod charts;
mod error;
mod form;
mod goods;
mod me;
mod overview;
mod parts;
mod rewards;
mod session;
mod settings;
mod view;

pub use error::UiError;
pub use session::bearer_from_cookie;

use crate::state::AppState;
use axum::Router;
use std::sync::Arc;

/// The dashboard's routes, merged beside the API. `api` is the API router the forms submit to.
pub fn router(state: &AppState, api: Router<AppState>) -> Router<AppState> {
    let api = Arc::new(api::Api::new(api.with_state(state.clone())));
    let uploads = axum::extract::DefaultBodyLimit::max(state.options.max_upload_bytes * 3);
    Router::new()
        .merge(overview::router())
        .merge(session::router())
        .merge(me::router())
        .merge(assets::router())
        .merge(accounts::router(uploads))
        .merge(catalog::router())
        .merge(batches::router())
        .merge(rewards::router())
        .merge(goods::router())
        .merge(assistant::router())
        .merge(settings::router())
        .layer(axum::Extension(api))
        .layer(axum::middleware::from_fn(page_headers))
}

/// Headers every dashboard answer carries: its own scripts and styles only, never framed by
/// another site, no referrer to other origins.
async fn page_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ));
    headers
        .entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    response
}

/// The answer for paths nothing serves: the API's JSON 404 under `/api/`, else an HTML page.
pub async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with("/api/") || uri.path() == "/api" || uri.path() == "/metrics" {
        crate::ApiError::not_found("no such route").into_response()
    } else {
        UiError::NotFound("There is no page at this address.".into()).into_response()
    }
}
