//! Digital goods in the dashboard: products with their stock (imported with the per-line
//! report, listed masked, revealed one at a time with an audit entry), listings and channels;
//! marketplace orders (filter by status, the history and where each status came from) with
//! their deliveries, each channel's result, and the re-send; the overview's card.

use super::api::{Api, Body};
use super::error::UiError;
use super::session::{Posted, Session};
use super::view::{Chrome, count, duration_ms, when, when_opt};
use crate::state::AppState;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cartwright_core::digital::DigitalProduct;
use cartwright_core::ids::{DeliveryId, DigitalProductId, MarketOrderId};
use cartwright_core::market::MarketOrderState;
use cartwright_core::operator::Permission;
use cartwright_store::PageRequest;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// This module's pages.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/goods", get(products))
        .route("/goods/{id}", get(product))
        .route("/goods/{id}/import", post(import))
        .route("/goods/items/{id}/reveal", post(reveal))
        .route("/market", get(orders))
        .route("/market/{id}", get(order))
        .route("/market/{id}/deliveries/{delivery}/resend", post(resend))
}

/// A product as a row.
pub struct ProductRow {
    id: DigitalProductId,
    sku: String,
    name: String,
    kind: &'static str,
    available: String,
    reserved: String,
    delivered: String,
    revoked: String,
    low: bool,
}

impl From<&DigitalProduct> for ProductRow {
    fn from(p: &DigitalProduct) -> Self {
        ProductRow {
            id: p.id,
            sku: p.sku.clone(),
            name: p.name.clone(),
            kind: p.kind.as_str(),
            available: count(p.stock.available),
            reserved: count(p.stock.reserved),
            delivered: count(p.stock.delivered),
            revoked: count(p.stock.revoked),
            low: p.low(),
        }
    }
}

/// A listing as a row.
pub struct ListingRow {
    shop: String,
    item: String,
    product: String,
    units: u32,
}

/// A marketplace connection as a row.
pub struct ConnectionRow {
    name: String,
    shop: String,
    api: String,
    push: String,
    polled: String,
}

/// A channel as a row.
pub struct ChannelRow {
    name: String,
    kind: &'static str,
    target: String,
    enabled: bool,
}

#[derive(Template)]
#[template(path = "ui/goods.html")]
struct ProductsPage {
    l: Chrome,
    rows: Vec<ProductRow>,
    listings: Vec<ListingRow>,
    channels: Vec<ChannelRow>,
    connections: Vec<ConnectionRow>,
}

/// `GET /goods`.
async fn products(
    State(state): State<AppState>,
    session: Session,
) -> Result<Html<String>, UiError> {
    let store = &state.store;
    let products = store.digital_products().await?;
    let names: HashMap<DigitalProductId, String> =
        products.iter().map(|p| (p.id, p.name.clone())).collect();
    let all = store.connections().await?;
    let shops: HashMap<_, String> = all
        .iter()
        .map(|c| (c.id, format!("{} · {}", c.name, c.shop_id)))
        .collect();
    let connections = all
        .into_iter()
        .map(|c| ConnectionRow {
            push: state.commerce.push_url(c.id),
            name: c.name,
            shop: format!("{} shop {}", c.marketplace, c.shop_id),
            api: c.base_url,
            polled: when_opt(c.polled_to),
        })
        .collect();
    let listings = store
        .listings()
        .await?
        .into_iter()
        .map(|l| ListingRow {
            shop: shops.get(&l.connection_id).cloned().unwrap_or_default(),
            item: if l.item_id.is_empty() {
                format!("SKU {}", l.seller_sku)
            } else if l.model_id.is_empty() {
                format!("item {}", l.item_id)
            } else {
                format!("item {} model {}", l.item_id, l.model_id)
            },
            product: names.get(&l.product_id).cloned().unwrap_or_default(),
            units: l.units,
        })
        .collect();
    let channels = store
        .channels()
        .await?
        .into_iter()
        .map(|c| ChannelRow {
            name: c.name,
            kind: c.target.kind().as_str(),
            target: match c.target {
                cartwright_core::channel::ChannelTarget::Webhook { url } => url,
                cartwright_core::channel::ChannelTarget::Email { url, from, .. } => {
                    format!("{from} via {url}")
                }
                cartwright_core::channel::ChannelTarget::Chat => {
                    "the buyer's marketplace chat".into()
                }
            },
            enabled: c.enabled,
        })
        .collect();
    let page = ProductsPage {
        l: session.chrome("Digital goods", "goods"),
        rows: products.iter().map(ProductRow::from).collect(),
        listings,
        channels,
        connections,
    };
    Ok(Html(page.render()?))
}

/// One line of an import's report.
pub struct ReportLine {
    line: i64,
    outcome: String,
    item: String,
    message: String,
}

/// A stock item as a row.
pub struct ItemRow {
    id: i64,
    state: String,
    masked: String,
    delivery: String,
    imported: String,
}

#[derive(Template)]
#[template(path = "ui/goods_product.html")]
struct ProductPage {
    l: Chrome,
    p: ProductRow,
    message: String,
    items: Vec<ItemRow>,
    total: String,
    report: Vec<ReportLine>,
    summary: String,
    error: String,
    revealed: String,
}

#[derive(Deserialize, Default)]
struct ProductQuery {
    page: Option<u32>,
}

async fn product_page(
    state: &AppState,
    session: &Session,
    id: DigitalProductId,
    page_no: u32,
    outcome: (Vec<ReportLine>, String, String),
    revealed: String,
) -> Result<Response, UiError> {
    let p = state.store.digital_product(id).await?;
    let list = state
        .store
        .stock_items(id, &PageRequest::number(page_no.max(1), 50)?)
        .await?;
    let (report, summary, error) = outcome;
    let status = super::view::form_status(&error);
    let page = ProductPage {
        l: session.chrome(p.name.clone(), "goods"),
        message: p.message.as_str().to_owned(),
        p: ProductRow::from(&p),
        items: list
            .items
            .into_iter()
            .map(|i| ItemRow {
                id: i.id.get(),
                state: i.state,
                masked: i.masked,
                delivery: i.delivery_id.map_or(String::new(), |d| d.to_string()),
                imported: when(i.imported_at),
            })
            .collect(),
        total: count(list.total),
        report,
        summary,
        error,
        revealed,
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// `GET /goods/{id}`.
async fn product(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
    Query(q): Query<ProductQuery>,
) -> Result<Response, UiError> {
    product_page(
        &state,
        &session,
        DigitalProductId(id),
        q.page.unwrap_or(1),
        Default::default(),
        String::new(),
    )
    .await
}

/// `POST /goods/{id}/import`: pasted items through the API's import (or its dry run), with
/// the per-line report.
async fn import(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let dry = form.checked("dry_run");
    let path = format!("/api/v1/digital-products/{id}/stock?dry_run={dry}");
    let body = Body::Raw("text/plain", form.raw("items").as_bytes().to_vec());
    let outcome = match api.submit(&session, Method::POST, &path, body).await? {
        Ok(report) => {
            let lines = report["lines"]
                .as_array()
                .map(|lines| {
                    lines
                        .iter()
                        .map(|l| ReportLine {
                            line: l["line"].as_i64().unwrap_or_default(),
                            outcome: l["outcome"].as_str().unwrap_or_default().replace('_', " "),
                            item: l["item"].as_str().unwrap_or_default().to_owned(),
                            message: l["message"].as_str().unwrap_or_default().to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let imported = report["imported"].as_i64().unwrap_or_default();
            let summary = if dry {
                format!("Dry run: {imported} would be imported; nothing was changed.")
            } else {
                format!("{imported} imported.")
            };
            (lines, summary, String::new())
        }
        Err(failure) => (Vec::new(), String::new(), failure.message),
    };
    product_page(
        &state,
        &session,
        DigitalProductId(id),
        1,
        outcome,
        String::new(),
    )
    .await
}

/// `POST /goods/items/{id}/reveal`: one item whole, through the audited API.
async fn reveal(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, .. }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let path = format!("/api/v1/stock-items/{id}/reveal");
    let item = match api
        .submit(&session, Method::POST, &path, Body::Empty)
        .await?
    {
        Ok(item) => item,
        Err(failure) => return Err(refused(failure)),
    };
    let product = state
        .store
        .stock_item_product(cartwright_core::ids::StockItemId(id))
        .await?;
    let revealed = match (item["code"].as_str(), item["login"].as_str()) {
        (Some(code), _) => format!("Item {id}: {code}"),
        (_, Some(login)) => format!(
            "Item {id}: {login} / {} {}",
            item["password"].as_str().unwrap_or_default(),
            item["notes"].as_str().unwrap_or_default()
        ),
        _ => format!("Item {id}: {item}"),
    };
    product_page(&state, &session, product, 1, Default::default(), revealed).await
}

/// The page for an action the API refused: not found as such, anything else as a bad request
/// with the API's words.
fn refused(failure: super::api::Failure) -> UiError {
    match failure.code.as_str() {
        "not_found" => UiError::NotFound(failure.message),
        "forbidden" => UiError::Forbidden(failure.message),
        _ => UiError::BadRequest(failure.message),
    }
}

/// A marketplace order as a row.
pub struct OrderRow {
    id: MarketOrderId,
    number: String,
    buyer: String,
    state: &'static str,
    label: String,
    paid: String,
    delivered: String,
    attention: String,
}

#[derive(Template)]
#[template(path = "ui/market.html")]
struct OrdersPage {
    l: Chrome,
    rows: Vec<OrderRow>,
    states: Vec<(&'static str, String, String)>,
    current: String,
}

#[derive(Deserialize, Default)]
struct OrdersQuery {
    #[serde(default)]
    state: String,
}

/// `GET /market`.
async fn orders(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<OrdersQuery>,
) -> Result<Html<String>, UiError> {
    let filter: Option<MarketOrderState> = q.state.parse().ok();
    let counts: HashMap<MarketOrderState, i64> = state
        .store
        .market_order_counts()
        .await?
        .into_iter()
        .collect();
    let rows = state
        .store
        .market_orders(filter, 200)
        .await?
        .into_iter()
        .map(|o| OrderRow {
            id: o.id,
            number: o.external_id,
            buyer: o.buyer.name.or(o.buyer.id).unwrap_or_default(),
            state: o.state.as_str(),
            label: o.state.as_str().replace('_', " "),
            paid: when_opt(o.paid_at),
            delivered: when_opt(o.delivered_at),
            attention: o.attention.unwrap_or_default(),
        })
        .collect();
    let page = OrdersPage {
        l: session.chrome("Marketplace orders", "market"),
        rows,
        states: MarketOrderState::ALL
            .iter()
            .map(|s| {
                (
                    s.as_str(),
                    s.as_str().replace('_', " "),
                    count(counts.get(s).copied().unwrap_or(0)),
                )
            })
            .collect(),
        current: filter.map_or(String::new(), |s| s.as_str().to_owned()),
    };
    Ok(Html(page.render()?))
}

/// A line of an order's history.
pub struct HistoryRow {
    at: String,
    source: String,
    reported: String,
    state: String,
    note: String,
}

/// A delivery with its outbox.
pub struct DeliveryRow {
    id: DeliveryId,
    line: i64,
    product: String,
    units: i64,
    state: &'static str,
    attention: String,
    delivered: String,
    sends: Vec<SendRow>,
    can_resend: bool,
}

/// One channel's result.
pub struct SendRow {
    channel: &'static str,
    state: &'static str,
    attempts: i64,
    answer: String,
    error: String,
    key: String,
}

#[derive(Template)]
#[template(path = "ui/market_order.html")]
struct OrderPage {
    l: Chrome,
    id: MarketOrderId,
    number: String,
    marketplace: String,
    shop: String,
    buyer: String,
    state: &'static str,
    label: String,
    attention: String,
    total: String,
    history: Vec<HistoryRow>,
    deliveries: Vec<DeliveryRow>,
    notice: String,
}

#[derive(Deserialize, Default)]
struct OrderQuery {
    #[serde(default)]
    notice: String,
}

/// `GET /market/{id}`.
async fn order(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
    Query(q): Query<OrderQuery>,
) -> Result<Html<String>, UiError> {
    let store = &state.store;
    let id = MarketOrderId(id);
    let o = store.market_order(id).await?;
    let names: HashMap<DigitalProductId, String> = store
        .digital_products()
        .await?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let history = store
        .market_order_history(id)
        .await?
        .into_iter()
        .map(|h| HistoryRow {
            at: when(h.at),
            source: h.source.as_str().to_owned(),
            reported: h
                .reported
                .map_or(String::new(), |r| format!("{r:?}").to_lowercase()),
            state: h
                .state
                .map_or(String::new(), |s| s.as_str().replace('_', " ")),
            note: h.note.unwrap_or_default(),
        })
        .collect();
    let mut deliveries = Vec::new();
    for d in store.deliveries_of(id).await? {
        let sends = store
            .sends_of(d.id)
            .await?
            .into_iter()
            .map(|s| SendRow {
                channel: s.channel.as_str(),
                state: s.state.as_str(),
                attempts: s.attempts,
                answer: s.answer.unwrap_or_default(),
                error: s.last_error.unwrap_or_default(),
                key: s.idempotency_key,
            })
            .collect();
        deliveries.push(DeliveryRow {
            id: d.id,
            line: d.line_no,
            product: d
                .product_id
                .and_then(|p| names.get(&p).cloned())
                .unwrap_or_else(|| "no product mapped".into()),
            units: d.units,
            state: d.state.as_str(),
            attention: d.attention.unwrap_or_default(),
            delivered: when_opt(d.delivered_at),
            sends,
            can_resend: matches!(
                d.state,
                cartwright_core::digital::DeliveryState::Sending
                    | cartwright_core::digital::DeliveryState::Delivered
            ),
        });
    }
    let page = OrderPage {
        l: session.chrome(format!("Order {}", o.external_id), "market"),
        id,
        number: o.external_id,
        marketplace: o.marketplace,
        shop: o.shop_id,
        buyer: [
            o.buyer.name,
            o.buyer.id.map(|i| format!("id {i}")),
            o.buyer.email,
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · "),
        state: o.state.as_str(),
        label: o.state.as_str().replace('_', " "),
        attention: o.attention.unwrap_or_default(),
        total: match (o.total_minor, o.currency) {
            (Some(t), Some(c)) => format!("{} {c}", super::view::money(t)),
            (Some(t), None) => super::view::money(t),
            _ => String::new(),
        },
        history,
        deliveries,
        notice: match q.notice.as_str() {
            "resent" => {
                "Sent again: the same items, a new message, through every enabled channel.".into()
            }
            _ => String::new(),
        },
    };
    Ok(Html(page.render()?))
}

/// `POST /market/{id}/deliveries/{delivery}/resend`.
async fn resend(
    Extension(api): Extension<Arc<Api>>,
    Path((id, delivery)): Path<(i64, i64)>,
    Posted { session, .. }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let path = format!("/api/v1/deliveries/{delivery}/resend");
    match api
        .submit(&session, Method::POST, &path, Body::Empty)
        .await?
    {
        Ok(_) => Ok(Redirect::to(&format!("/market/{id}?notice=resent")).into_response()),
        Err(failure) => Err(refused(failure)),
    }
}

/// The overview's digital-goods card.
pub struct GoodsCard {
    /// Orders delivered today.
    pub delivered: String,
    /// Paid → delivered, median.
    pub p50: String,
    /// Paid → delivered, 95th percentile.
    pub p95: String,
    /// Orders waiting for an operator.
    pub attention: String,
    /// Products at or below their low-stock threshold: (id, name, available).
    pub low: Vec<(DigitalProductId, String, String)>,
    /// Whether digital goods are in use at all.
    pub shown: bool,
}

/// Figures for the overview's card.
pub async fn card(state: &AppState) -> Result<GoodsCard, UiError> {
    let store = &state.store;
    let products = store.digital_products().await?;
    let midnight = time::OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
    let stats = store.delivery_stats(midnight).await?;
    let counts: HashMap<MarketOrderState, i64> =
        store.market_order_counts().await?.into_iter().collect();
    let ms = |v: Option<i64>| v.map_or("–".into(), duration_ms);
    Ok(GoodsCard {
        shown: !products.is_empty(),
        delivered: count(stats.delivered),
        p50: ms(stats.p50_ms),
        p95: ms(stats.p95_ms),
        attention: count(
            counts
                .get(&MarketOrderState::NeedsAttention)
                .copied()
                .unwrap_or(0),
        ),
        low: products
            .iter()
            .filter(|p| p.low())
            .map(|p| (p.id, p.name.clone(), count(p.stock.available)))
            .collect(),
    })
}
