//! The storefront's front door: reads the session, applies the switched-on faults (rate
//! limits, random server errors, slow pages), replaces the session cookie's value every few
//! responses, and records every request for inspection.

use crate::session::{self, Visit};
use crate::traffic::Seen;
use crate::{Shop, lock};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use std::sync::Arc;

/// Whether a path is a page (HTML) rather than an API call.
fn is_page(path: &str) -> bool {
    !path.starts_with("/api/") && !path.starts_with("/ext/") && !path.starts_with("/apps/")
}

/// Whether a path is the order history page.
fn is_history(path: &str) -> bool {
    path == "/profile/orders" || path == crate::threads::HISTORY
}

/// The storefront middleware.
pub async fn storefront(State(shop): State<Arc<Shop>>, mut req: Request, next: Next) -> Response {
    let cookie = req
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok());
    let visit = lock(&shop.sessions).visit(session::cookie_value(cookie));
    let (sid, email) = match &visit {
        Visit::Customer { customer, sid } => (
            Some(sid.clone()),
            lock(&shop.data)
                .customer(*customer)
                .map(|c| c.email.clone()),
        ),
        _ => (None, None),
    };
    let faults = shop.faults();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();

    let admitted = lock(&shop.traffic).admit(
        email.as_deref(),
        faults.shop_rate_limit,
        faults.account_rate_limit,
    );
    let failure = faults.error_rate > 0.0
        && lock(&shop.chaos).random_bool(faults.error_rate.clamp(0.0, 1.0))
        || (faults.history_error_rate > 0.0
            && is_history(&path)
            && lock(&shop.chaos).random_bool(faults.history_error_rate.clamp(0.0, 1.0)));
    let mut response = if let Err(wait) = admitted {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests, slow down",
        )
            .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        r
    } else if failure {
        let status = [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
        ][lock(&shop.chaos).random_range(0..3)];
        (
            status,
            "Something went wrong on our side. Please try again.",
        )
            .into_response()
    } else {
        if faults.latency_ms > 0 && is_page(&path) {
            tokio::time::sleep(std::time::Duration::from_millis(faults.latency_ms)).await;
        }
        req.extensions_mut().insert(visit);
        let answer = next.run(req).await;
        if faults.error_after_rate > 0.0
            && lock(&shop.chaos).random_bool(faults.error_after_rate.clamp(0.0, 1.0))
        {
            (
                StatusCode::BAD_GATEWAY,
                "The server did not answer in time. Please try again.",
            )
                .into_response()
        } else {
            answer
        }
    };

    let sets_session = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.starts_with(session::COOKIE)));
    if let Some(sid) = sid.filter(|_| !sets_session && response.status().as_u16() < 400) {
        let mut sessions = lock(&shop.sessions);
        if let Some(value) = sessions.served(&sid)
            && let Ok(header_value) = HeaderValue::from_str(&sessions.set_cookie(&value))
        {
            response
                .headers_mut()
                .append(header::SET_COOKIE, header_value);
        }
    }
    let mut traffic = lock(&shop.traffic);
    let at_ms = traffic.now_ms();
    traffic.record(Seen {
        account: email,
        method,
        path,
        status: response.status().as_u16(),
        at_ms,
    });
    response
}
