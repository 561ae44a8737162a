//! The storefront's JSON API, called by `shop.js`, and the rewards API.

use crate::model::{Address, ShopError, pincode_place};
use crate::session::Visit;
use crate::{Confirmation, Shop, lock};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub fn router() -> Router<Arc<Shop>> {
    Router::new()
        .route("/api/cart", get(cart))
        .route("/api/cart/items", post(add_item))
        .route("/api/cart/lines/{product}/decrease", post(decrease))
        .route("/api/cart/lines/{product}/increase", post(increase))
        .route("/api/cart/lines/{product}", delete(remove_line))
        .route("/api/cart/coupon", post(apply_coupon).delete(remove_coupon))
        .route("/api/pincode/{pincode}", get(pincode))
        .route("/api/addresses", get(list_addresses).post(add_address))
        .route("/api/addresses/{id}", delete(delete_address))
        .route("/api/orders", post(place_order))
        .route(
            "/ext/reward-engine/application/api/v1.0/user/account",
            get(rewards),
        )
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn shop_error(e: &ShopError) -> Response {
    let status = match e {
        ShopError::NotFound(_) => StatusCode::NOT_FOUND,
        ShopError::OutOfStock(_) => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    error(status, &e.to_string())
}

fn customer(visit: &Visit) -> Result<u32, Response> {
    match visit {
        Visit::Customer { customer, .. } => Ok(*customer),
        _ => Err(error(StatusCode::UNAUTHORIZED, "Please log in")),
    }
}

fn done(result: Result<(), ShopError>) -> Response {
    match result {
        Ok(()) => Json(json!({ "ok": true })).into_response(),
        Err(e) => shop_error(&e),
    }
}

async fn cart(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    let id = match customer(&visit) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let data = lock(&shop.data);
    let cart = data.cart(id);
    let t = data.totals(id);
    Json(json!({
        "lines": cart.lines.iter().map(|l| json!({"product": l.product, "qty": l.qty})).collect::<Vec<_>>(),
        "coupon": cart.coupon,
        "totals": {"mrp": t.mrp, "mrp_discount": t.mrp_discount, "coupon_discount": t.coupon_discount,
                   "shipping": t.shipping, "total": t.total, "units": t.units},
    }))
    .into_response()
}

#[derive(Deserialize)]
struct AddItem {
    slug: String,
}

async fn add_item(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Json(body): Json<AddItem>,
) -> Response {
    let id = match customer(&visit) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let mut data = lock(&shop.data);
    let Some(product) = data.product_by_slug(&body.slug).map(|p| p.id) else {
        return shop_error(&ShopError::NotFound("product"));
    };
    done(data.add_to_cart(id, product))
}

async fn decrease(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Path(product): Path<u32>,
) -> Response {
    match customer(&visit) {
        Ok(id) => done(lock(&shop.data).change_qty(id, product, -1)),
        Err(r) => r,
    }
}

async fn increase(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Path(product): Path<u32>,
) -> Response {
    match customer(&visit) {
        Ok(id) => done(lock(&shop.data).change_qty(id, product, 1)),
        Err(r) => r,
    }
}

async fn remove_line(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Path(product): Path<u32>,
) -> Response {
    match customer(&visit) {
        Ok(id) => done(lock(&shop.data).remove_line(id, product)),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct CouponBody {
    code: String,
}

async fn apply_coupon(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Json(body): Json<CouponBody>,
) -> Response {
    match customer(&visit) {
        Ok(id) => done(lock(&shop.data).apply_coupon(id, &body.code)),
        Err(r) => r,
    }
}

async fn remove_coupon(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
) -> Response {
    match customer(&visit) {
        Ok(id) => {
            lock(&shop.data).remove_coupon(id);
            done(Ok(()))
        }
        Err(r) => r,
    }
}

/// Looks a PIN code up, taking a moment as the real service does.
async fn pincode(State(shop): State<Arc<Shop>>, Path(pincode): Path<String>) -> Response {
    tokio::time::sleep(shop.config.pincode_delay).await;
    match pincode_place(&pincode) {
        Some((city, state)) => {
            Json(json!({"pincode": pincode, "city": city, "state": state})).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "We do not deliver to this pincode"),
    }
}

async fn list_addresses(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
) -> Response {
    match customer(&visit) {
        Ok(id) => {
            let data = lock(&shop.data);
            let list: Vec<_> = data.addresses(id).iter().map(address_json).collect();
            Json(list).into_response()
        }
        Err(r) => r,
    }
}

fn address_json(a: &Address) -> serde_json::Value {
    json!({"id": a.id, "full_name": a.full_name, "line1": a.line1, "street": a.street, "landmark": a.landmark,
           "pincode": a.pincode, "city": a.city, "state": a.state, "phone": a.phone, "kind": a.kind})
}

#[derive(Deserialize)]
struct NewAddress {
    full_name: String,
    phone: String,
    line1: String,
    street: String,
    #[serde(default)]
    landmark: String,
    pincode: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    kind: String,
}

async fn add_address(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Json(a): Json<NewAddress>,
) -> Response {
    let id = match customer(&visit) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let kind = if ["Home", "Work", "Other"].contains(&a.kind.as_str()) {
        a.kind
    } else {
        "Home".into()
    };
    let address = Address {
        id: 0,
        full_name: a.full_name.trim().into(),
        line1: a.line1.trim().into(),
        street: a.street.trim().into(),
        landmark: a.landmark.trim().into(),
        pincode: a.pincode.trim().into(),
        city: a.city.trim().into(),
        state: a.state.trim().into(),
        phone: a.phone.trim().into(),
        kind,
    };
    match lock(&shop.data).add_address(id, address) {
        Ok(saved) => (StatusCode::CREATED, Json(address_json(&saved))).into_response(),
        Err(e) => shop_error(&e),
    }
}

async fn delete_address(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Path(address): Path<u32>,
) -> Response {
    match customer(&visit) {
        Ok(id) => done(lock(&shop.data).delete_address(id, address)),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct PlaceOrder {
    address_id: u32,
    payment: String,
}

async fn place_order(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Json(body): Json<PlaceOrder>,
) -> Response {
    let id = match customer(&visit) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let faults = shop.faults();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let placed = {
        let mut data = lock(&shop.data);
        // A product that sells out while this shopper was checking out.
        if let Some(slug) = &faults.sell_out_at_checkout {
            data.sell_out_if_in_cart(id, slug);
        }
        data.place_order(id, body.address_id, &body.payment, None, now)
    };
    match placed {
        Ok(_) if faults.confirmation == Confirmation::Lost => error(
            StatusCode::BAD_GATEWAY,
            "Something went wrong while placing your order. Please check My Orders before trying again.",
        ),
        Ok(order) => (
            StatusCode::CREATED,
            Json(json!({"number": order.number, "total": order.totals.total})),
        )
            .into_response(),
        Err(e) => shop_error(&e),
    }
}

/// The rewards endpoint: points and tier of the signed-in customer; 401 without a session.
async fn rewards(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    let Visit::Customer { customer, .. } = visit else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"success": false, "message": "Unauthorized"})),
        )
            .into_response();
    };
    let data = lock(&shop.data);
    let Some(c) = data.customer(customer) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"success": false, "message": "Unauthorized"})),
        )
            .into_response();
    };
    Json(json!({
        "success": true,
        "pointSummary": {"available": c.points, "redeemed": 0, "expiring": 0},
        "userTier": {"name": c.tier},
        "user": {"firstName": c.first_name, "lastName": c.last_name},
    }))
    .into_response()
}
