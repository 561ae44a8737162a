//! The Open Platform order API (`/api/v2/order/get_order_list`, `get_order_detail`), with the
//! request signature checked as the real platform does: HMAC-SHA256 with the partner key over
//! `partner_id + path + timestamp + access_token + shop_id`, hex, within five minutes.

use super::{Status, sign};
use crate::Shop;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub fn router() -> Router<Arc<Shop>> {
    Router::new()
        .route("/api/v2/order/get_order_list", get(order_list))
        .route("/api/v2/order/get_order_detail", get(order_detail))
        .route("/api/v2/sellerchat/send_message", post(send_message))
        .route("/api/v2/sellerchat/get_message_list", get(message_list))
        .route("/api/v2/auth/access_token/get", post(refresh_token))
}

fn request_id() -> String {
    format!(
        "{:032x}",
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    )
}

fn failure(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "message": message, "request_id": request_id()})),
    )
        .into_response()
}

fn check_signature(shop: &Shop, path: &str, q: &HashMap<String, String>) -> Result<(), Response> {
    let config = shop.market.config();
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let timestamp: i64 = get("timestamp")
        .parse()
        .map_err(|_| failure(StatusCode::BAD_REQUEST, "error_param", "no timestamp"))?;
    if (time::OffsetDateTime::now_utc().unix_timestamp() - timestamp).abs() > 300 {
        return Err(failure(
            StatusCode::BAD_REQUEST,
            "error_param",
            "Invalid timestamp",
        ));
    }
    if get("partner_id") != config.partner_id.to_string() {
        return Err(failure(
            StatusCode::FORBIDDEN,
            "error_auth",
            "Invalid partner_id.",
        ));
    }
    let access_token = shop.market.access_token();
    if get("shop_id") != config.shop_id.to_string() || get("access_token") != access_token {
        return Err(failure(
            StatusCode::FORBIDDEN,
            "error_auth",
            "Invalid access_token.",
        ));
    }
    let base = format!(
        "{}{path}{timestamp}{}{}",
        config.partner_id, access_token, config.shop_id
    );
    if !get("sign").eq_ignore_ascii_case(&sign(&config.partner_key, &base)) {
        return Err(failure(StatusCode::FORBIDDEN, "error_sign", "Wrong sign."));
    }
    Ok(())
}

async fn order_list(
    State(shop): State<Arc<Shop>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list(&shop, &q).unwrap_or_else(|r| r)
}

fn list(shop: &Shop, q: &HashMap<String, String>) -> Result<Response, Response> {
    check_signature(shop, "/api/v2/order/get_order_list", q)?;
    let text = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let number = |k: &str| {
        text(k).parse::<i64>().map_err(|_| {
            failure(
                StatusCode::BAD_REQUEST,
                "error_param",
                &format!("Wrong parameters, detail: {k} must be a number."),
            )
        })
    };
    let (time_from, time_to, page_size) = (
        number("time_from")?,
        number("time_to")?,
        number("page_size")?,
    );
    if time_to < time_from || time_to - time_from > 15 * 86_400 {
        return Err(failure(
            StatusCode::BAD_REQUEST,
            "order.order_list_invalid_time",
            "Start time must be earlier than end time and diff in 15days.",
        ));
    }
    if !(1..=100).contains(&page_size) {
        return Err(failure(
            StatusCode::BAD_REQUEST,
            "error_param",
            "Wrong parameters, detail: page_size must be between 1 and 100.",
        ));
    }
    let by_update = match text("time_range_field") {
        "create_time" => false,
        "update_time" => true,
        _ => {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                "error_param",
                "Wrong parameters, detail: time_range_field must be create_time or update_time.",
            ));
        }
    };
    let status = match text("order_status") {
        "" => None,
        s => Some(Status::parse(s).ok_or_else(|| {
            failure(
                StatusCode::BAD_REQUEST,
                "error_param",
                "Wrong parameters, detail: unknown order_status.",
            )
        })?),
    };
    let offset: usize = text("cursor").trim_matches('"').parse().unwrap_or(0);
    let with_status = text("response_optional_fields")
        .split(',')
        .any(|f| f.trim() == "order_status");
    let matching: Vec<_> = shop
        .market
        .orders()
        .into_iter()
        .filter(|o| {
            let t = if by_update {
                o.update_time
            } else {
                o.create_time
            };
            t >= time_from && t <= time_to && status.is_none_or(|s| o.status == s)
        })
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(page_size as usize)
        .map(|o| {
            if with_status {
                json!({"order_sn": o.order_sn, "order_status": o.status.as_str()})
            } else {
                json!({"order_sn": o.order_sn})
            }
        })
        .collect();
    let next = offset + page.len();
    let more = next < matching.len();
    Ok(Json(json!({
        "error": "", "message": "", "request_id": request_id(),
        "response": {"more": more, "next_cursor": if more { next.to_string() } else { String::new() }, "order_list": page},
    }))
    .into_response())
}

async fn order_detail(
    State(shop): State<Arc<Shop>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = check_signature(&shop, "/api/v2/order/get_order_detail", &q) {
        return r;
    }
    let sns: Vec<&str> = q
        .get("order_sn_list")
        .map(|l| {
            l.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if sns.is_empty() || sns.len() > 50 {
        return failure(
            StatusCode::BAD_REQUEST,
            "error_param",
            "Wrong parameters, detail: order_sn_list must list 1 to 50 orders.",
        );
    }
    let fields: Vec<&str> = q
        .get("response_optional_fields")
        .map(|f| f.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let wants = |f: &str| fields.contains(&f);
    let orders = shop.market.orders();
    let list: Vec<Value> = sns
        .iter()
        .filter_map(|sn| orders.iter().find(|o| o.order_sn == *sn))
        .map(|o| {
            let mut v = json!({
                "order_sn": o.order_sn, "region": "ID", "currency": "IDR", "cod": false,
                "order_status": o.status.as_str(), "message_to_seller": "", "create_time": o.create_time,
                "update_time": o.update_time, "days_to_ship": 2, "ship_by_date": o.create_time + 2 * 86_400,
            });
            if let Some(map) = v.as_object_mut() {
                if wants("buyer_username") {
                    map.insert("buyer_username".into(), json!(o.buyer_username));
                }
                if wants("buyer_user_id") {
                    map.insert("buyer_user_id".into(), json!(o.buyer_user_id));
                }
                if wants("pay_time") {
                    map.insert("pay_time".into(), json!(o.pay_time));
                }
                if wants("total_amount") && o.pay_time.is_some() {
                    map.insert("total_amount".into(), json!(o.total() as f64));
                }
                if wants("item_list") {
                    let items: Vec<Value> = o
                        .items
                        .iter()
                        .map(|i| json!({"item_id": i.item_id, "item_name": i.name, "item_sku": i.sku, "model_id": 0,
                                        "model_name": "", "model_sku": "", "model_quantity_purchased": i.qty,
                                        "model_original_price": i.price as f64, "model_discounted_price": i.price as f64}))
                        .collect();
                    map.insert("item_list".into(), json!(items));
                }
            }
            v
        })
        .collect();
    Json(json!({"error": "", "message": "", "request_id": request_id(), "warning": [], "response": {"order_list": list}})).into_response()
}

/// The seller chat's `send_message`: a text to a buyer, signed like every call.
async fn send_message(
    State(shop): State<Arc<Shop>>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    const PATH: &str = "/api/v2/sellerchat/send_message";
    if let Err(r) = check_signature(&shop, PATH, &q) {
        return r;
    }
    let bad = |m: &str| failure(StatusCode::BAD_REQUEST, "error_param", m);
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad("Wrong parameters, detail: the body is not JSON.");
    };
    let Some(to_id) = v["to_id"].as_i64() else {
        return bad("Wrong parameters, detail: to_id must be a number.");
    };
    if v["message_type"] != "text" {
        return bad("Wrong parameters, detail: message_type must be text.");
    }
    let text = v["content"]["text"].as_str().unwrap_or_default();
    if text.trim().is_empty() {
        return bad("Wrong parameters, detail: content.text is empty.");
    }
    match shop.market.seller_writes(to_id, text) {
        Some((_, id)) => Json(json!({
            "response": {
                "to_id": to_id,
                "message_id": id,
                "message_type": "text",
                "content": {"text": text},
                "created_timestamp": time::OffsetDateTime::now_utc().unix_timestamp(),
            },
            "request_id": request_id(),
            "error": "",
            "message": "",
        }))
        .into_response(),
        None => failure(
            StatusCode::BAD_REQUEST,
            "error_not_found",
            "The buyer has no conversation with this shop.",
        ),
    }
}

/// The seller chat's buyer messages after `since_id` (oldest first, `page_size` at most 100),
/// each with its order and buyer: how the seller's tools read new questions.
async fn message_list(
    State(shop): State<Arc<Shop>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    const PATH: &str = "/api/v2/sellerchat/get_message_list";
    if let Err(r) = check_signature(&shop, PATH, &q) {
        return r;
    }
    let since: u64 = match q.get("since_id").map(String::as_str).unwrap_or("0") {
        "" => 0,
        s => match s.parse() {
            Ok(n) => n,
            Err(_) => {
                return failure(
                    StatusCode::BAD_REQUEST,
                    "error_param",
                    "since_id must be a number",
                );
            }
        },
    };
    let size: usize = q
        .get("page_size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(50)
        .clamp(1, 100);
    let page = shop.market.buyer_messages(since, size + 1);
    let more = page.len() > size;
    let list: Vec<Value> = page
        .into_iter()
        .take(size)
        .map(|(m, sn, buyer_id, buyer)| {
            json!({
                "message_id": m.id.to_string(), "from_id": buyer_id, "from_user_name": buyer,
                "order_sn": sn, "message_type": "text", "content": {"text": m.text},
                "created_timestamp": m.at,
            })
        })
        .collect();
    Json(
        json!({"error": "", "message": "", "request_id": request_id(),
                "response": {"messages": list, "more": more}}),
    )
    .into_response()
}

/// `auth/access_token/get`: a refresh token for new tokens, signed at partner level
/// (`partner_id + path + timestamp`).
async fn refresh_token(
    State(shop): State<Arc<Shop>>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    const PATH: &str = "/api/v2/auth/access_token/get";
    let config = shop.market.config();
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let base = format!("{}{PATH}{}", config.partner_id, get("timestamp"));
    if get("partner_id") != config.partner_id.to_string()
        || !get("sign").eq_ignore_ascii_case(&sign(&config.partner_key, &base))
    {
        return failure(StatusCode::FORBIDDEN, "error_sign", "Wrong sign.");
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return failure(
            StatusCode::BAD_REQUEST,
            "error_param",
            "the body is not JSON",
        );
    };
    if v["shop_id"].as_i64() != Some(config.shop_id) {
        return failure(StatusCode::FORBIDDEN, "error_auth", "Invalid shop_id.");
    }
    match shop
        .market
        .refresh_tokens(v["refresh_token"].as_str().unwrap_or_default())
    {
        Some((access, refresh)) => Json(json!({
            "access_token": access, "refresh_token": refresh, "expire_in": 14_400,
            "request_id": request_id(), "error": "", "message": "",
        }))
        .into_response(),
        None => failure(
            StatusCode::FORBIDDEN,
            "error_auth",
            "Invalid refresh_token.",
        ),
    }
}
