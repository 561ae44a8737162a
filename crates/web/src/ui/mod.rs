//! The operators' dashboard at `/`: server-rendered pages (askama) over the same store and
//! engine the API uses. Reads call the store as the API handlers do; every change goes through
//! the API's own handlers (see [`api`]), so a form obeys exactly the API's rules and shows its
//! errors beside the field they name. Sessions are HttpOnly cookies holding the API's sign-in
//! token; every form carries a CSRF token derived from that session.

mod accounts;
mod api;
mod assets;
mod batches;
mod catalog;
mod charts;
mod error;
mod form;
mod overview;
mod rewards;
mod session;
mod settings;
mod view;

pub use error::UiError;
pub use session::bearer_from_cookie;

use crate::state::AppState;
use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

/// The dashboard's routes, merged beside the API. `api` is the API router the forms submit to.
pub fn router(state: &AppState, api: Router<AppState>) -> Router<AppState> {
    let api = Arc::new(api::Api::new(api.with_state(state.clone())));
    let uploads = axum::extract::DefaultBodyLimit::max(state.options.max_upload_bytes * 3);
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/assets/{version}/{file}", get(assets::serve))
        .route("/accounts", get(accounts::list))
        .route("/accounts/preview", post(accounts::preview))
        .route(
            "/accounts/import",
            get(accounts::import_form)
                .post(accounts::import)
                .layer(uploads),
        )
        .route("/accounts/test-logins", post(accounts::test_logins))
        .route("/accounts/{id}", get(accounts::detail))
        .route("/accounts/{id}/cookies", post(accounts::set_cookies))
        .route("/accounts/{id}/test-login", post(accounts::test_login))
        .route("/products", get(catalog::products))
        .route(
            "/products/new",
            get(catalog::product_new).post(catalog::product_create),
        )
        .route(
            "/products/{id}",
            get(catalog::product_edit).post(catalog::product_update),
        )
        .route("/products/{id}/delete", post(catalog::product_delete))
        .route("/addresses", get(catalog::addresses))
        .route(
            "/addresses/new",
            get(catalog::address_new).post(catalog::address_create),
        )
        .route(
            "/addresses/{id}",
            get(catalog::address_edit).post(catalog::address_update),
        )
        .route("/addresses/{id}/delete", post(catalog::address_delete))
        .route("/batches", get(batches::history))
        .route("/batches/new", get(batches::new_form).post(batches::create))
        .route("/batches/{id}", get(batches::page))
        .route("/batches/{id}/rows", get(batches::rows))
        .route("/batches/{id}/stop", post(batches::stop))
        .route("/batches/{id}/resume", post(batches::resume))
        .route("/orders/{id}", get(batches::order))
        .route("/orders/{id}/resolve", post(batches::resolve))
        .route("/rewards", get(rewards::runs).post(rewards::start))
        .route("/rewards/runs/{id}", get(rewards::run))
        .route("/rewards/runs/{id}/live", get(rewards::live))
        .route("/rewards/runs/{id}/cancel", post(rewards::cancel))
        .route(
            "/rewards/schedules",
            get(rewards::schedules).post(rewards::schedule_create),
        )
        .route(
            "/rewards/schedules/{id}/toggle",
            post(rewards::schedule_toggle),
        )
        .route(
            "/rewards/schedules/{id}/delete",
            post(rewards::schedule_delete),
        )
        .route("/settings", get(settings::profiles))
        .route("/settings/profiles/validate", post(settings::validate))
        .route(
            "/settings/operators",
            get(settings::operators).post(settings::operator_create),
        )
        .route("/settings/operators/{id}", post(settings::operator_update))
        .route(
            "/settings/tokens",
            get(settings::tokens).post(settings::token_create),
        )
        .route("/settings/tokens/{id}/revoke", post(settings::token_revoke))
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
