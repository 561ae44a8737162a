//! What buyers see: the delivery page behind an unguessable link (256 random bits; the store
//! keeps only its hash to find it). Not signed in, not cached, not indexed, not framed; each
//! address may open pages a few times a second at most, so links cannot be tried in bulk.

use crate::state::AppState;
use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The buyers' routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/d/{token}", axum::routing::get(delivery).post(reveal))
}

#[derive(Template)]
#[template(path = "buyer/delivery.html")]
struct DeliveryPage {
    found: bool,
    product: String,
    order_number: String,
    message: String,
    shows: bool,
    reveal_once: bool,
    revealed_at: String,
    delivered_at: String,
    views: i64,
}

/// Pages opened per address: at most `BURST` at once, refilled `PER_SECOND` a second.
static OPENED: Mutex<Option<HashMap<IpAddr, (f64, Instant)>>> = Mutex::new(None);
const BURST: f64 = 10.0;
const PER_SECOND: f64 = 2.0;

fn allowed(ip: IpAddr) -> bool {
    let now = Instant::now();
    let mut guard = OPENED.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    if map.len() > 100_000 {
        map.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(60));
    }
    let (tokens, at) = map.entry(ip).or_insert((BURST, now));
    *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * PER_SECOND).min(BURST);
    *at = now;
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        true
    } else {
        false
    }
}

async fn delivery(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    page(&state, peer, &token, false).await
}

/// The button of a reveal-once page: the goods show to the first press only.
async fn reveal(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    page(&state, peer, &token, true).await
}

fn minute(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

async fn page(state: &AppState, peer: SocketAddr, token: &str, reveal: bool) -> Response {
    if !allowed(peer.ip()) {
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many pages opened: wait a moment.",
        )
            .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    }
    // Keys are 43 URL-safe characters; anything else is not one (and is not looked up).
    let page = if token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        match state.store.delivery_page(token, reveal).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "a delivery page could not be read");
                return (StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment.").into_response();
            }
        }
    } else {
        None
    };
    let status = if page.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let view = match page {
        Some(p) => DeliveryPage {
            found: true,
            product: p.product,
            order_number: p.order_number,
            shows: p.message.is_some(),
            message: p.message.unwrap_or_default(),
            reveal_once: p.reveal_once,
            revealed_at: p.revealed_at.map(minute).unwrap_or_default(),
            delivered_at: p.delivered_at.map(minute).unwrap_or_default(),
            views: p.views,
        },
        None => DeliveryPage {
            found: false,
            product: String::new(),
            order_number: String::new(),
            message: String::new(),
            shows: false,
            reveal_once: false,
            revealed_at: String::new(),
            delivered_at: String::new(),
            views: 0,
        },
    };
    let html = match view.render() {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "the delivery page template failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, private"),
    );
    headers.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    response
}
