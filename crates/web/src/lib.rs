//! Cartwright's HTTP face: the REST API under `/api/v1` with its OpenAPI document and docs,
//! bearer authentication with roles and scoped tokens, health and Prometheus metrics. Handlers
//! only parse, call the store and answer; rules live in `core` and `store`.

pub mod auth;
mod buyer;
mod contract;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod routes;
pub mod state;
pub mod streams;
pub mod ui;

pub use error::{ApiError, ApiResult};
pub use state::{AppState, WebOptions};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Cartwright", description = "Self-hosted e-commerce operations: accounts, orders, rewards, digital goods."),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Signing in"),
        (name = "operators", description = "People who sign in (admins)"),
        (name = "tokens", description = "API tokens for machines (admins)"),
        (name = "storefronts", description = "Sites whose accounts Cartwright operates"),
        (name = "accounts", description = "Customer accounts, their cookies, import and export"),
        (name = "products", description = "Products for carts"),
        (name = "addresses", description = "Shipping addresses"),
        (name = "batches", description = "Order batches, their orders, logs, reports and live events"),
        (name = "rewards", description = "Rewards checks: runs, results, history, schedules"),
        (name = "system", description = "Health"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An operator's sign-in token from POST /api/v1/auth/login, or an API token (cwt_…)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The API's routes and their OpenAPI document.
pub fn api(options: &WebOptions) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let v1 = OpenApiRouter::new()
        .merge(routes::auth::router())
        .merge(routes::operators::router())
        .merge(routes::tokens::router())
        .merge(routes::storefronts::router())
        .merge(routes::accounts::router(options.max_upload_bytes))
        .merge(routes::products::router())
        .merge(routes::addresses::router())
        .merge(routes::batches::router())
        .merge(routes::rewards::router())
        .merge(routes::goods::router(options.max_upload_bytes))
        .merge(routes::assistant::router(options.max_upload_bytes));
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .merge(routes::system::router())
        .split_for_parts();
    contract::document_common_answers(&mut doc);
    (router, doc)
}

/// The whole HTTP application: API, docs, metrics, error fallbacks and the middleware stack
/// (request ids, tracing, body limit, metrics).
pub fn app(state: AppState) -> Router {
    metrics::handle();
    let (api, openapi) = api(&state.options);
    let request_id = HeaderName::from_static("x-request-id");
    let dashboard = ui::router(&state, api.clone());
    api.merge(dashboard)
        .merge(buyer::router())
        .route("/metrics", axum::routing::get(routes::system::metrics))
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi))
        .fallback(ui::not_found)
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::from_fn(ui::bearer_from_cookie))
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
