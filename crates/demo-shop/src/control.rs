//! Control and inspection endpoints under `/_control`, for tests, benchmarks and the demo:
//! switch faults, look at orders and requests, expire sessions, change stock, drive the
//! marketplace. Unauthenticated: the demo shop is a local test fixture.

use crate::marketplace::{Item, Status};
use crate::{Faults, Shop, lock, seed};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn router() -> Router<Arc<Shop>> {
    Router::new()
        .route("/_control/faults", get(get_faults).put(put_faults))
        .route("/_control/reset", post(reset))
        .route("/_control/orders", get(orders))
        .route("/_control/requests", get(requests))
        .route("/_control/customers", get(customers))
        .route("/_control/sessions", post(sign_in))
        .route("/_control/sessions/expire", post(expire))
        .route("/_control/products/{slug}", put(set_stock))
        .route(
            "/_control/marketplace/orders",
            get(market_orders).post(market_create),
        )
        .route(
            "/_control/marketplace/orders/{sn}/status",
            put(market_status),
        )
        .route(
            "/_control/marketplace/orders/{sn}/messages",
            post(market_message),
        )
        .route("/_control/marketplace/advance", post(market_advance))
        .route("/_control/marketplace/pushes", get(market_pushes))
        .route("/_control/marketplace/push-url", put(market_push_url))
}

fn bad(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

async fn get_faults(State(shop): State<Arc<Shop>>) -> Json<Faults> {
    Json(shop.faults())
}

async fn put_faults(State(shop): State<Arc<Shop>>, Json(faults): Json<Faults>) -> Response {
    for (name, rate) in [
        ("error_rate", faults.error_rate),
        ("history_error_rate", faults.history_error_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return bad(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("{name} must be between 0 and 1"),
            );
        }
    }
    shop.set_faults(faults.clone());
    Json(faults).into_response()
}

/// Back to the seeded state: data, faults and the request log. Sessions are kept, so cookies
/// handed out stay valid.
async fn reset(State(shop): State<Arc<Shop>>) -> StatusCode {
    *lock(&shop.data) = seed::shop(shop.config.seed, shop.config.customers);
    shop.set_faults(shop.config.faults.clone());
    lock(&shop.traffic).reset();
    shop.static_served
        .store(0, std::sync::atomic::Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct AccountQuery {
    account: Option<String>,
}

/// Orders placed, optionally by one account (email): what tests check for duplicates.
async fn orders(State(shop): State<Arc<Shop>>, Query(q): Query<AccountQuery>) -> Response {
    let data = lock(&shop.data);
    let list: Vec<_> = data
        .orders
        .iter()
        .filter_map(|o| {
            let email = data.customer(o.customer)?.email.clone();
            if q.account
                .as_deref()
                .is_some_and(|a| !a.eq_ignore_ascii_case(&email))
            {
                return None;
            }
            Some(json!({
                "number": o.number,
                "account": email,
                "items": o.lines.iter().map(|l| json!({
                    "slug": data.product(l.product).map(|p| p.slug.clone()), "qty": l.qty,
                    "unit_price": l.price, "variant": l.variant,
                })).collect::<Vec<_>>(),
                "coupon": o.coupon,
                "total": o.totals.total,
                "coupon_discount": o.totals.coupon_discount,
                "payment": o.payment,
                "pincode": o.address.pincode,
                "placed_at": o.placed_at,
            }))
        })
        .collect();
    Json(list).into_response()
}

/// The request log, optionally for one account, with counts per path.
async fn requests(State(shop): State<Arc<Shop>>, Query(q): Query<AccountQuery>) -> Response {
    let seen = lock(&shop.traffic).requests(q.account.as_deref());
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for s in &seen {
        *counts
            .entry(format!("{} {}", s.method, s.path))
            .or_default() += 1;
    }
    // The script and stylesheet are not the storefront's requests (no session, no faults):
    // only how many times they were served.
    let assets = shop
        .static_served
        .load(std::sync::atomic::Ordering::Relaxed);
    Json(json!({"total": seen.len(), "counts": counts, "requests": seen, "static": assets}))
        .into_response()
}

async fn customers(State(shop): State<Arc<Shop>>) -> Response {
    let list: Vec<_> = shop
        .customers()
        .iter()
        .map(|c| {
            json!({"id": c.id, "email": c.email, "phone": c.phone, "first_name": c.first_name,
                        "last_name": c.last_name, "points": c.points, "tier": c.tier})
        })
        .collect();
    Json(list).into_response()
}

#[derive(Deserialize)]
struct SignIn {
    email: String,
}

/// Signs a customer in and returns the session cookie.
async fn sign_in(State(shop): State<Arc<Shop>>, Json(body): Json<SignIn>) -> Response {
    let id = lock(&shop.data)
        .customer_by_email(&body.email)
        .map(|c| c.id);
    match id.and_then(|id| shop.sign_in(id)) {
        Some(value) => {
            Json(json!({"name": crate::session::COOKIE, "value": value})).into_response()
        }
        None => bad(StatusCode::NOT_FOUND, "no such customer"),
    }
}

#[derive(Deserialize)]
struct Expire {
    /// Emails; all sessions when absent.
    accounts: Option<Vec<String>>,
}

async fn expire(State(shop): State<Arc<Shop>>, Json(body): Json<Expire>) -> Response {
    let ids: Option<Vec<u32>> = body.accounts.map(|emails| {
        let data = lock(&shop.data);
        emails
            .iter()
            .filter_map(|e| data.customer_by_email(e).map(|c| c.id))
            .collect()
    });
    let n = lock(&shop.sessions).expire(ids.as_deref());
    Json(json!({"expired": n})).into_response()
}

#[derive(Deserialize)]
struct Stock {
    stock: u32,
}

async fn set_stock(
    State(shop): State<Arc<Shop>>,
    Path(slug): Path<String>,
    Json(body): Json<Stock>,
) -> Response {
    let mut data = lock(&shop.data);
    match data.products.iter_mut().find(|p| p.slug == slug) {
        Some(p) => {
            p.stock = body.stock;
            Json(json!({"slug": slug, "stock": body.stock})).into_response()
        }
        None => bad(StatusCode::NOT_FOUND, "no such product"),
    }
}

async fn market_orders(State(shop): State<Arc<Shop>>) -> Response {
    Json(shop.market.orders()).into_response()
}

#[derive(Deserialize)]
struct NewMarketOrder {
    buyer: Option<String>,
    items: Option<Vec<Item>>,
}

async fn market_create(
    State(shop): State<Arc<Shop>>,
    Json(body): Json<NewMarketOrder>,
) -> Response {
    let sn = shop.market.create_order(body.buyer.as_deref(), body.items);
    (StatusCode::CREATED, Json(json!({"order_sn": sn}))).into_response()
}

#[derive(Deserialize)]
struct NewStatus {
    status: String,
}

async fn market_status(
    State(shop): State<Arc<Shop>>,
    Path(sn): Path<String>,
    Json(body): Json<NewStatus>,
) -> Response {
    let Some(status) = Status::parse(&body.status) else {
        return bad(StatusCode::UNPROCESSABLE_ENTITY, "unknown status");
    };
    match shop.market.set_status(&sn, status) {
        Some(()) => Json(json!({"order_sn": sn, "status": status.as_str()})).into_response(),
        None => bad(StatusCode::NOT_FOUND, "no such order"),
    }
}

#[derive(Deserialize)]
struct BuyerMessage {
    text: String,
}

async fn market_message(
    State(shop): State<Arc<Shop>>,
    Path(sn): Path<String>,
    Json(body): Json<BuyerMessage>,
) -> Response {
    match shop.market.buyer_says(&sn, &body.text) {
        Some(id) => (
            StatusCode::CREATED,
            Json(serde_json::json!({"message_id": id.to_string()})),
        )
            .into_response(),
        None => bad(StatusCode::NOT_FOUND, "no such order"),
    }
}

async fn market_advance(State(shop): State<Arc<Shop>>) -> Response {
    Json(json!({"moved": shop.market.advance_all()})).into_response()
}

async fn market_pushes(State(shop): State<Arc<Shop>>) -> Response {
    Json(shop.market.pushes()).into_response()
}

#[derive(Deserialize)]
struct PushUrl {
    url: Option<String>,
}

async fn market_push_url(State(shop): State<Arc<Shop>>, Json(body): Json<PushUrl>) -> StatusCode {
    shop.market.set_push_url(body.url);
    StatusCode::NO_CONTENT
}
