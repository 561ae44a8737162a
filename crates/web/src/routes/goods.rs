//! Digital goods: products and their stock (imported with a per-line report, listed masked,
//! revealed with an audit entry), marketplace connections and listings, and marketplace orders
//! (ingested idempotently by API callers and the extension; read with their history and
//! deliveries).

use crate::auth::{Administer, Auth, Ingest, Operate, Principal, Read};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query, body_bytes};
use crate::routes::{created, page_request};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::response::Response;
use cartwright_core::channel::NewChannel;
use cartwright_core::digital::{DigitalProduct, NewDigitalProduct, StockItem};
use cartwright_core::ids::{
    ChannelId, ConnectionId, DeliveryId, DigitalProductId, MarketOrderId, StockItemId,
};
use cartwright_core::market::{IncomingOrder, MarketOrderState, Source};
use cartwright_core::operator::Scope;
use cartwright_store::{
    Channel, Connection, Delivery, Ingested, Listing, MarketOrder, NewConnection, Page, Send,
    StockImport, StockItemView,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router(max_upload: usize) -> OpenApiRouter<AppState> {
    let uploads = axum::extract::DefaultBodyLimit::max(max_upload);
    OpenApiRouter::new()
        .routes(routes!(list_products, create_product))
        .routes(routes!(get_product))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(import_stock, list_stock))
                .layer(uploads),
        )
        .routes(routes!(reveal))
        .routes(routes!(list_connections, create_connection))
        .routes(routes!(create_listing))
        .routes(routes!(ingest, list_orders))
        .routes(routes!(get_order))
        .routes(routes!(delivery_link))
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(update_channel))
        .routes(routes!(delivery_sends))
        .routes(routes!(resend_delivery))
        .routes(routes!(return_item))
        .routes(routes!(receive_push))
}

/// Receives a marketplace's push for a connection, Shopee's way: `Authorization` is the hex
/// HMAC-SHA256 of `URL|body` under the partner key, checked in constant time (401 and nothing
/// kept when it does not match). A good push is kept as received with the job that takes it
/// in, and answered at once with an empty 200.
#[utoipa::path(post, path = "/market/push/{id}", tag = "marketplace", params(("id" = i64, Path)),
    request_body(content = String, content_type = "application/json"),
    responses((status = 200, description = "Kept; taken in shortly"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn receive_push(
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
    headers: axum::http::HeaderMap,
    request: Request,
) -> ApiResult<axum::http::StatusCode> {
    let partner_key = state.commerce.partner_key(id).await?;
    let body = body_bytes(request).await?;
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !cartwright_commerce::shopee::push_is_signed(
        &partner_key,
        &state.commerce.push_url(id),
        &body,
        authorization,
    ) {
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "bad_signature",
            "the push's Authorization is not the HMAC-SHA256 of its URL and body under the partner key",
        ));
    }
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("the push is not UTF-8"))?;
    state
        .commerce
        .inbox
        .keep(id, text.to_owned())
        .await
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        })?;
    Ok(axum::http::StatusCode::OK)
}

/// A delivery's page link, to give the buyer again.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryLink {
    /// The page's address: whoever has it sees the goods.
    pub link: String,
}

/// A delivery's page link (it opens the goods): written to the audit log.
#[utoipa::path(post, path = "/deliveries/{id}/link", tag = "marketplace", params(("id" = i64, Path)),
    responses((status = 200, body = DeliveryLink), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delivery_link(
    State(state): State<AppState>,
    auth: Auth<Operate>,
    Path(id): Path<cartwright_core::ids::DeliveryId>,
) -> ApiResult<axum::Json<DeliveryLink>> {
    let actor = crate::auth::actor(&state, &auth.0).await?;
    let token = state.store.delivery_token_audited(id, &actor).await?;
    Ok(axum::Json(DeliveryLink {
        link: state.commerce.delivery_link(&token),
    }))
}

/// Every delivery channel (their secrets never shown).
#[utoipa::path(get, path = "/channels", tag = "marketplace",
    responses((status = 200, body = Vec<Channel>)), security(("bearer" = [])))]
async fn list_channels(
    State(state): State<AppState>,
    _: Auth<Read>,
) -> ApiResult<axum::Json<Vec<Channel>>> {
    Ok(axum::Json(state.store.channels().await?))
}

/// Adds a delivery channel (admins): a signed webhook, e-mail over SMTP, or the marketplace
/// chat. Deliveries prepared from now on go through it; its secret is sealed and never shown.
#[utoipa::path(post, path = "/channels", tag = "marketplace", request_body = NewChannel,
    responses((status = 201, body = Channel), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn create_channel(
    State(state): State<AppState>,
    _: Auth<Administer>,
    Json(body): Json<NewChannel>,
) -> ApiResult<Response> {
    let channel = state.store.create_channel(&body).await?;
    Ok(created(format!("/api/v1/channels/{}", channel.id), channel))
}

/// A change to a channel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelUpdate {
    /// Whether new deliveries go through it.
    pub enabled: bool,
}

/// Switches a channel on or off (admins); sends already in its outbox go on.
#[utoipa::path(patch, path = "/channels/{id}", tag = "marketplace", params(("id" = i64, Path)),
    request_body = ChannelUpdate,
    responses((status = 200, body = Channel), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn update_channel(
    State(state): State<AppState>,
    _: Auth<Administer>,
    Path(id): Path<ChannelId>,
    Json(body): Json<ChannelUpdate>,
) -> ApiResult<axum::Json<Channel>> {
    Ok(axum::Json(
        state.store.set_channel_enabled(id, body.enabled).await?,
    ))
}

/// A delivery's outbox: each channel's state, attempts, idempotency key and answer.
#[utoipa::path(get, path = "/deliveries/{id}/sends", tag = "marketplace", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<Send>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delivery_sends(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<DeliveryId>,
) -> ApiResult<axum::Json<Vec<Send>>> {
    state.store.delivery(id).await?;
    Ok(axum::Json(state.store.sends_of(id).await?))
}

/// Sends a delivery again: the same items (never new ones), its message written anew, through
/// every enabled channel with new idempotency keys. Only a delivery holding its goods
/// (sending or delivered); audited.
#[utoipa::path(post, path = "/deliveries/{id}/resend", tag = "marketplace", params(("id" = i64, Path)),
    responses((status = 202, body = Vec<Send>), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn resend_delivery(
    State(state): State<AppState>,
    auth: Auth<Operate>,
    Path(id): Path<DeliveryId>,
) -> ApiResult<(axum::http::StatusCode, axum::Json<Vec<Send>>)> {
    let actor = crate::auth::actor(&state, &auth.0).await?;
    state.commerce.resend(id, &actor).await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        axum::Json(state.store.sends_of(id).await?),
    ))
}

/// Puts a revoked stock item back on sale (an operator's explicit decision); audited.
#[utoipa::path(post, path = "/stock-items/{id}/return", tag = "digital goods", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn return_item(
    State(state): State<AppState>,
    auth: Auth<Operate>,
    Path(id): Path<StockItemId>,
) -> ApiResult<axum::http::StatusCode> {
    let actor = crate::auth::actor(&state, &auth.0).await?;
    state.store.return_item_to_stock(id, &actor).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Every digital product with its stock counts, by name.
#[utoipa::path(get, path = "/digital-products", tag = "digital goods",
    responses((status = 200, body = Vec<DigitalProduct>)), security(("bearer" = [])))]
async fn list_products(
    State(state): State<AppState>,
    _: Auth<Read>,
) -> ApiResult<axum::Json<Vec<DigitalProduct>>> {
    Ok(axum::Json(state.store.digital_products().await?))
}

/// Adds a digital product; its delivery message is checked against its kind (an unknown
/// variable is refused, named).
#[utoipa::path(post, path = "/digital-products", tag = "digital goods", request_body = NewDigitalProduct,
    responses((status = 201, body = DigitalProduct), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_product(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Json(body): Json<NewDigitalProduct>,
) -> ApiResult<Response> {
    let product = state.store.create_digital_product(&body).await?;
    Ok(created(
        format!("/api/v1/digital-products/{}", product.id),
        product,
    ))
}

/// One digital product with its stock counts.
#[utoipa::path(get, path = "/digital-products/{id}", tag = "digital goods", params(("id" = i64, Path)),
    responses((status = 200, body = DigitalProduct), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_product(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<DigitalProductId>,
) -> ApiResult<axum::Json<DigitalProduct>> {
    Ok(axum::Json(state.store.digital_product(id).await?))
}

/// How an import runs.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Report what would be imported, import nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Imports stock items: the body is the pasted text, a file with one code a line, or CSV of
/// `login,password[,notes]` for credentials. Items already in the file or in stock are
/// reported per line and not imported. Orders waiting for this product's stock are delivered
/// as it arrives.
#[utoipa::path(post, path = "/digital-products/{id}/stock", tag = "digital goods",
    params(("id" = i64, Path), ImportQuery),
    request_body(content = String, content_type = "text/plain"),
    responses((status = 200, body = StockImport), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn import_stock(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<DigitalProductId>,
    Query(query): Query<ImportQuery>,
    request: Request,
) -> ApiResult<axum::Json<StockImport>> {
    let body = body_bytes(request).await?;
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::invalid("items", "must be UTF-8 text"))?;
    Ok(axum::Json(
        state.store.import_stock(id, text, query.dry_run).await?,
    ))
}

/// Page parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StockQuery {
    /// Page number, from 1.
    page: Option<u32>,
    /// Rows per page, 1 to 500, default 50.
    per_page: Option<u32>,
    /// The `next_cursor` of the previous page, instead of `page`.
    cursor: Option<String>,
}

/// A product's stock items, masked, oldest first.
#[utoipa::path(get, path = "/digital-products/{id}/stock", tag = "digital goods",
    params(("id" = i64, Path), StockQuery),
    responses((status = 200, body = Page<StockItemView>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_stock(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<DigitalProductId>,
    Query(q): Query<StockQuery>,
) -> ApiResult<axum::Json<Page<StockItemView>>> {
    state.store.digital_product(id).await?;
    let page = page_request(q.page, q.per_page, q.cursor.as_deref())?;
    Ok(axum::Json(state.store.stock_items(id, &page).await?))
}

/// One stock item, whole. Every reveal is written to the audit log.
#[utoipa::path(post, path = "/stock-items/{id}/reveal", tag = "digital goods", params(("id" = i64, Path)),
    responses((status = 200, body = StockItem), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn reveal(
    State(state): State<AppState>,
    auth: Auth<Operate>,
    Path(id): Path<StockItemId>,
) -> ApiResult<axum::Json<StockItem>> {
    let actor = crate::auth::actor(&state, &auth.0).await?;
    Ok(axum::Json(state.store.reveal_stock_item(id, &actor).await?))
}

/// Every marketplace connection (its keys never shown).
#[utoipa::path(get, path = "/market/connections", tag = "marketplace",
    responses((status = 200, body = Vec<Connection>)), security(("bearer" = [])))]
async fn list_connections(
    State(state): State<AppState>,
    _: Auth<Read>,
) -> ApiResult<axum::Json<Vec<Connection>>> {
    Ok(axum::Json(state.store.connections().await?))
}

/// Adds a marketplace connection (admins); its keys are sealed and never shown again.
#[utoipa::path(post, path = "/market/connections", tag = "marketplace", request_body = NewConnection,
    responses((status = 201, body = Connection), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_connection(
    State(state): State<AppState>,
    _: Auth<Administer>,
    Json(body): Json<NewConnection>,
) -> ApiResult<Response> {
    let connection = state.store.create_connection(&body).await?;
    Ok(created(
        format!("/api/v1/market/connections/{}", connection.id),
        connection,
    ))
}

/// A listing to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewListing {
    /// The connection (shop) it is sold on.
    pub connection_id: ConnectionId,
    /// The marketplace's item id.
    #[serde(default)]
    pub item_id: String,
    /// The model (variant) id; every model when empty.
    #[serde(default)]
    pub model_id: String,
    /// Or the seller's SKU, instead of the item.
    #[serde(default)]
    pub seller_sku: String,
    /// The product each unit sold delivers.
    pub product_id: DigitalProductId,
    /// Units of the product per unit sold (default 1).
    #[serde(default = "one")]
    pub units: u32,
}

fn one() -> u32 {
    1
}

/// Maps a marketplace item (or the seller's SKU) to the product it delivers.
#[utoipa::path(post, path = "/market/listings", tag = "marketplace", request_body = NewListing,
    responses((status = 201, body = Listing), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_listing(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Json(body): Json<NewListing>,
) -> ApiResult<Response> {
    state
        .store
        .connection(body.connection_id)
        .await
        .map_err(|e| match e {
            cartwright_store::StoreError::NotFound { .. } => {
                ApiError::invalid("connection_id", "no connection has this id")
            }
            e => e.into(),
        })?;
    state
        .store
        .digital_product(body.product_id)
        .await
        .map_err(|e| match e {
            cartwright_store::StoreError::NotFound { .. } => {
                ApiError::invalid("product_id", "no digital product has this id")
            }
            e => e.into(),
        })?;
    let listing = state
        .store
        .create_listing(
            body.connection_id,
            &body.item_id,
            &body.model_id,
            &body.seller_sku,
            body.product_id,
            body.units,
        )
        .await?;
    Ok(created(
        format!("/api/v1/market/listings/{}", listing.id),
        listing,
    ))
}

/// Reports an order (an ingest or extension token, or an operator): new, or news of a known
/// one. The same order reported by several paths is one order; an older status never
/// overwrites a newer one. A paid order's goods are delivered at once.
#[utoipa::path(post, path = "/market/orders", tag = "marketplace", request_body = IncomingOrder,
    responses((status = 200, body = Ingested), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn ingest(
    State(state): State<AppState>,
    auth: Auth<Ingest>,
    Json(body): Json<IncomingOrder>,
) -> ApiResult<axum::Json<Ingested>> {
    let source = match &auth.0 {
        Principal::Token { scopes, .. } if scopes.contains(&Scope::Extension) => Source::Extension,
        _ => Source::Api,
    };
    // An order of a connected shop belongs to its connection (the chat can reach its buyer).
    let connection = state
        .store
        .connection_for(&body.marketplace, &body.shop_id)
        .await?;
    Ok(axum::Json(
        state.store.ingest_order(&body, source, connection).await?,
    ))
}

/// Order filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    /// Only orders in this state.
    state: Option<MarketOrderState>,
    /// At most this many (default 100, at most 1,000).
    limit: Option<u32>,
}

/// Marketplace orders, newest first.
#[utoipa::path(get, path = "/market/orders", tag = "marketplace", params(OrderQuery),
    responses((status = 200, body = Vec<MarketOrder>)), security(("bearer" = [])))]
async fn list_orders(
    State(state): State<AppState>,
    _: Auth<Read>,
    Query(q): Query<OrderQuery>,
) -> ApiResult<axum::Json<Vec<MarketOrder>>> {
    Ok(axum::Json(
        state
            .store
            .market_orders(q.state, q.limit.unwrap_or(100))
            .await?,
    ))
}

/// A marketplace order with its deliveries and history.
#[derive(Debug, Serialize, ToSchema)]
pub struct MarketOrderDetail {
    /// The order.
    pub order: MarketOrder,
    /// One delivery per line once paid.
    pub deliveries: Vec<Delivery>,
    /// Every delivery's outbox: each channel's result.
    pub sends: Vec<Send>,
    /// Every status it was told and every move it made, with where it came from.
    pub history: Vec<cartwright_store::HistoryEntry>,
}

/// One marketplace order with its deliveries and history.
#[utoipa::path(get, path = "/market/orders/{id}", tag = "marketplace", params(("id" = i64, Path)),
    responses((status = 200, body = MarketOrderDetail), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_order(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<MarketOrderId>,
) -> ApiResult<axum::Json<MarketOrderDetail>> {
    let order = state.store.market_order(id).await?;
    let deliveries = state.store.deliveries_of(id).await?;
    let mut sends = Vec::new();
    for d in &deliveries {
        sends.extend(state.store.sends_of(d.id).await?);
    }
    Ok(axum::Json(MarketOrderDetail {
        deliveries,
        sends,
        history: state.store.market_order_history(id).await?,
        order,
    }))
}
