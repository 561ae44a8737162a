//! The dashboard's stylesheet and script, built into the binary and served under a URL that
//! carries a hash of their content, so browsers may keep them for a year.

use crate::state::AppState;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

const CSS: &str = include_str!("../../assets/app.css");
const JS: &str = include_str!("../../assets/app.js");

/// The version in asset URLs: a hash of both files.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::new().chain_update(CSS).chain_update(JS).finalize();
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
});

static CSS_URL: LazyLock<String> = LazyLock::new(|| format!("/assets/{}/app.css", *VERSION));
static JS_URL: LazyLock<String> = LazyLock::new(|| format!("/assets/{}/app.js", *VERSION));

/// The stylesheet's URL.
pub fn stylesheet() -> &'static str {
    CSS_URL.as_str()
}

/// The script's URL.
pub fn script() -> &'static str {
    JS_URL.as_str()
}

/// `GET /assets/{version}/{file}`: an old version is still answered (with the current file)
/// but not cached, so a page from before an upgrade keeps working.
pub async fn serve(Path((version, file)): Path<(String, String)>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    let cache = if version == *VERSION {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// This module's pages.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/assets/{version}/{file}", get(serve))
}
