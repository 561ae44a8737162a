//! Batches of orders: submit, list, follow, stop, resume; their orders with logs, failure
//! artifacts and PDF reports; the live event stream (WebSocket and server-sent events).

use crate::auth::{Auth, Operate, Read};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::routes::{created, page_request};
use crate::state::AppState;
use crate::streams::Live;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use cartwright_core::batch::{Batch, BatchState, BatchStats, NewBatch};
use cartwright_core::ids::{AccountId, BatchId, EventId, OrderId};
use cartwright_core::order::{Event, Level, Order, OrderState};
use cartwright_core::selection::SelectionRequest;
use cartwright_engine::EventFilter;
use cartwright_engine::events::Streamed;
use cartwright_store::{EventQuery, OrderFilter, Page};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one))
        .routes(routes!(stats))
        .routes(routes!(stop))
        .routes(routes!(resume))
        .routes(routes!(retry_failed))
        .routes(routes!(rehearse))
        .routes(routes!(batch_orders))
        .routes(routes!(batch_events))
        .routes(routes!(batch_report))
        .routes(routes!(list_orders))
        .routes(routes!(get_order))
        .routes(routes!(resolve_order))
        .routes(routes!(order_screenshot))
        .routes(routes!(order_snapshot))
        .routes(routes!(order_report))
        .routes(routes!(events_socket))
        .routes(routes!(session_checks))
}

/// Page parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page number, from 1.
    page: Option<u32>,
    /// Rows per page, 1 to 500, default 50.
    per_page: Option<u32>,
    /// The `next_cursor` of the previous page, instead of `page`.
    cursor: Option<String>,
}

/// Batches, newest first.
#[utoipa::path(get, path = "/batches", tag = "batches", params(PageQuery),
    responses((status = 200, body = Page<Batch>), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    _: Auth<Read>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<Batch>>> {
    let page = page_request(q.page, q.per_page, q.cursor.as_deref())?;
    Ok(axum::Json(state.store.batches(&page).await?))
}

/// Submits a batch: the same cart ordered from every selected account (× repetitions). It is
/// checked completely first; the batch, its orders and their jobs are written together.
#[utoipa::path(post, path = "/batches", tag = "batches", request_body = NewBatch,
    responses((status = 201, body = Batch), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    auth: Auth<Operate>,
    Json(body): Json<NewBatch>,
) -> ApiResult<Response> {
    let batch = state.engine.submit_batch(&body, auth.0.operator()).await?;
    Ok(created(format!("/api/v1/batches/{}", batch.id), batch))
}

/// One batch with its order counts.
#[utoipa::path(get, path = "/batches/{id}", tag = "batches", params(("id" = i64, Path)),
    responses((status = 200, body = Batch), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_one(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<BatchId>,
) -> ApiResult<axum::Json<Batch>> {
    Ok(axum::Json(state.store.batch(id).await?))
}

/// A batch's figures: orders by state, failures by class, totals, durations, pace.
#[utoipa::path(get, path = "/batches/{id}/stats", tag = "batches", params(("id" = i64, Path)),
    responses((status = 200, body = BatchStats), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn stats(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<BatchId>,
) -> ApiResult<axum::Json<BatchStats>> {
    Ok(axum::Json(state.store.batch_stats(id).await?))
}

/// Stops a batch: waiting orders are cancelled; running ones stop after their current step;
/// one whose final click is out completes.
#[utoipa::path(post, path = "/batches/{id}/stop", tag = "batches", params(("id" = i64, Path)),
    responses((status = 200, body = Batch), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn stop(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<BatchId>,
) -> ApiResult<axum::Json<Batch>> {
    Ok(axum::Json(state.engine.stop_batch(id).await?))
}

/// Resumes a stopped or paused batch: cancelled orders are queued again.
#[utoipa::path(post, path = "/batches/{id}/resume", tag = "batches", params(("id" = i64, Path)),
    responses((status = 200, body = Batch), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn resume(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<BatchId>,
) -> ApiResult<axum::Json<Batch>> {
    Ok(axum::Json(state.engine.resume_batch(id).await?))
}

/// Runs a batch's failed orders again (a fixed profile, fresh cookies, a shop back up), each
/// with its runs counted afresh; never one whose final click went out. A finished batch runs
/// again; a stopped or paused one must be resumed first (409).
#[utoipa::path(post, path = "/batches/{id}/retry-failed", tag = "batches", params(("id" = i64, Path)),
    responses((status = 200, body = Batch), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn retry_failed(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<BatchId>,
) -> ApiResult<axum::Json<Batch>> {
    Ok(axum::Json(state.engine.retry_failed(id).await?))
}

/// What a rehearsal did: each step up to, never including, the final click.
#[derive(Debug, Serialize, ToSchema)]
pub struct RehearsalReply {
    /// The order was ready for the final click (which was not made).
    pub ready: bool,
    /// Why it was not ready, with the failure's class.
    pub failure: Option<String>,
    /// The failure's class (`transient`, `business`, `profile`, …).
    pub failure_class: Option<String>,
    /// The total read, in minor units.
    pub total_minor: Option<i64>,
    /// The subtotal read, in minor units.
    pub subtotal_minor: Option<i64>,
    /// The discount the page showed, in minor units.
    pub discount_minor: Option<i64>,
    /// The coupon applied.
    pub coupon: Option<String>,
    /// Every step run, in order.
    pub steps: Vec<RehearsedStep>,
    /// The run's log.
    pub log: Vec<String>,
}

/// One step of a rehearsal.
#[derive(Debug, Serialize, ToSchema)]
pub struct RehearsedStep {
    /// Its phase.
    pub phase: Option<String>,
    /// Its number in the phase.
    pub label: String,
    /// What it does.
    pub what: String,
    /// How long it took, in milliseconds.
    pub took_ms: u64,
    /// It did what it says.
    pub ok: bool,
    /// It may fail: the flow went on.
    pub optional: bool,
    /// What it noted, or why it failed.
    pub note: Option<String>,
    /// The page after it.
    pub url: String,
    /// The alternative of its selector that was used, and how many elements it matched.
    pub selector_used: Option<String>,
    /// That alternative is not its selector's first.
    pub fell_back: bool,
    /// Every alternative with what it matched.
    pub matches: Vec<RehearsedMatch>,
    /// The page after it, a PNG in base64.
    pub screenshot: Option<String>,
}

/// What one alternative of a selector matched.
#[derive(Debug, Serialize, ToSchema)]
pub struct RehearsedMatch {
    /// The alternative, as the profile wrote it.
    pub selector: String,
    /// How many elements it matched.
    pub count: usize,
    /// The first match's HTML, shortened.
    pub excerpt: Option<String>,
}

impl From<cartwright_engine::order::RehearsalReport> for RehearsalReply {
    fn from(r: cartwright_engine::order::RehearsalReport) -> Self {
        use base64::Engine as _;
        let steps = r
            .steps
            .into_iter()
            .map(|s| {
                let fell_back = s.fell_back();
                let selector_used = s
                    .matches
                    .iter()
                    .find(|m| m.count > 0)
                    .map(|m| format!("{} × {}", m.selector, m.count));
                let (ok, note) = match s.outcome {
                    Ok(note) => (true, note),
                    Err(e) => (false, Some(e)),
                };
                RehearsedStep {
                    phase: s.phase.map(|p| p.as_str().to_owned()),
                    label: s.label,
                    what: s.what,
                    took_ms: u64::try_from(s.took.as_millis()).unwrap_or(u64::MAX),
                    ok,
                    optional: s.optional,
                    note,
                    url: s.url,
                    selector_used,
                    fell_back,
                    matches: s
                        .matches
                        .into_iter()
                        .map(|m| RehearsedMatch {
                            selector: m.selector,
                            count: m.count,
                            excerpt: m.excerpt,
                        })
                        .collect(),
                    screenshot: s
                        .screenshot
                        .map(|png| base64::engine::general_purpose::STANDARD.encode(png)),
                }
            })
            .collect();
        RehearsalReply {
            ready: r.outcome.is_ok(),
            failure: r.outcome.as_ref().err().map(ToString::to_string),
            failure_class: r
                .outcome
                .as_ref()
                .err()
                .map(|f| f.class.as_str().to_owned()),
            total_minor: r.totals.as_ref().map(|t| t.total_minor),
            subtotal_minor: r.totals.as_ref().and_then(|t| t.subtotal_minor),
            discount_minor: r.totals.as_ref().and_then(|t| t.discount_minor),
            coupon: r.coupon,
            steps,
            log: r
                .log
                .into_iter()
                .map(|(level, line)| format!("{} {line}", level.as_str()))
                .collect(),
        }
    }
}

/// Rehearses a batch's order for the first account its selection can run: every phase up to,
/// never including, the final click, each step with what its selectors matched and a
/// screenshot. Checked as a submitted batch is (422 naming the field); refused (422) for an
/// account with an order queued, running or placing, since it builds that account's cart.
/// Takes as long as an order does.
#[utoipa::path(post, path = "/rehearsals", tag = "batches", request_body = NewBatch,
    responses((status = 200, body = RehearsalReply), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn rehearse(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Json(body): Json<NewBatch>,
) -> ApiResult<axum::Json<RehearsalReply>> {
    let report = state.engine.rehearse_batch(&body).await?;
    Ok(axum::Json(report.into()))
}

/// Order filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    /// Page number, from 1.
    page: Option<u32>,
    /// Rows per page, 1 to 500, default 50.
    per_page: Option<u32>,
    /// The `next_cursor` of the previous page, instead of `page`.
    cursor: Option<String>,
    /// Only this batch's orders.
    batch_id: Option<BatchId>,
    /// Only this account's orders.
    account_id: Option<AccountId>,
    /// Only orders in this state.
    #[param(value_type = Option<String>)]
    state: Option<OrderState>,
}

async fn orders_page(
    state: &AppState,
    q: OrderQuery,
    batch: Option<BatchId>,
) -> ApiResult<Page<Order>> {
    let page = page_request(q.page, q.per_page, q.cursor.as_deref())?;
    let filter = OrderFilter {
        batch: batch.or(q.batch_id),
        account: q.account_id,
        state: q.state,
    };
    Ok(state.store.orders(&filter, &page).await?)
}

/// A batch's orders, in the order they were created.
#[utoipa::path(get, path = "/batches/{id}/orders", tag = "batches", params(("id" = i64, Path), OrderQuery),
    responses((status = 200, body = Page<Order>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn batch_orders(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<BatchId>,
    Query(q): Query<OrderQuery>,
) -> ApiResult<axum::Json<Page<Order>>> {
    state.store.batch_state(id).await?;
    Ok(axum::Json(orders_page(&state, q, Some(id)).await?))
}

/// Order history across batches, filtered by batch, account or state.
#[utoipa::path(get, path = "/orders", tag = "batches", params(OrderQuery),
    responses((status = 200, body = Page<Order>), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn list_orders(
    State(state): State<AppState>,
    _: Auth<Read>,
    Query(q): Query<OrderQuery>,
) -> ApiResult<axum::Json<Page<Order>>> {
    Ok(axum::Json(orders_page(&state, q, None).await?))
}

/// An order with its step log and links to its failure artifacts.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDetail {
    /// The order.
    pub order: Order,
    /// Its log, oldest first.
    pub log: Vec<Event>,
    /// The failure screenshot (PNG), when one was kept.
    pub screenshot_url: Option<String>,
    /// The page's HTML at the failure, when it was kept.
    pub snapshot_url: Option<String>,
    /// What people decided about it (an order settled by hand), oldest first.
    pub audit: Vec<cartwright_store::AuditEntry>,
}

/// A person's decision about an order whose final click went out and whose outcome the
/// evidence could not settle (`placing` or `unresolved`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveOrder {
    /// Whether the storefront has the order (look in the account's order history there).
    pub placed: bool,
    /// The storefront's order number: required when it was placed.
    #[serde(default)]
    pub order_number: Option<String>,
    /// When it was not placed: place it now (`true`, only for an `unresolved` order), or leave
    /// it cancelled (`false`).
    #[serde(default)]
    pub run_again: bool,
    /// Why, for the audit log.
    #[serde(default)]
    pub note: Option<String>,
}

/// Settles by hand an order whose final click went out and whose outcome the evidence could
/// not settle: placed (with the storefront's number), or not placed (cancelled, or run again).
/// Only `placing` and `unresolved` orders can be settled; the decision is audited.
#[utoipa::path(post, path = "/orders/{id}/resolve", tag = "batches", params(("id" = i64, Path)),
    request_body = ResolveOrder,
    responses((status = 200, body = OrderDetail), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn resolve_order(
    State(state): State<AppState>,
    auth: Auth<Operate>,
    Path(id): Path<OrderId>,
    Json(body): Json<ResolveOrder>,
) -> ApiResult<axum::Json<OrderDetail>> {
    let number = match body.order_number.as_deref().map(str::trim) {
        Some("") | None => None,
        Some(n) if !body.placed => {
            return Err(ApiError::invalid(
                "order_number",
                format!("an order that was not placed has no number (got {n:?})"),
            ));
        }
        Some(n) if n.chars().count() > 64 || n.chars().any(char::is_control) => {
            return Err(ApiError::invalid(
                "order_number",
                "must be the storefront's order number: at most 64 characters on one line",
            ));
        }
        Some(n) => Some(n.to_owned()),
    };
    if body.placed && body.run_again {
        return Err(ApiError::invalid(
            "run_again",
            "a placed order is not run again",
        ));
    }
    if body.placed && number.is_none() {
        // Without it, a later order of the account could take this one for its own.
        return Err(ApiError::invalid(
            "order_number",
            "is required for a placed order: the number the storefront shows for it",
        ));
    }
    let note = body
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().take(500).collect::<String>());
    let resolution = if body.placed {
        cartwright_store::Resolution::Placed { number }
    } else {
        cartwright_store::Resolution::NotPlaced {
            run_again: body.run_again,
        }
    };
    let actor = crate::auth::actor(&state, &auth.0).await?;
    state
        .store
        .resolve_order(id, &actor, &resolution, note.as_deref())
        .await?;
    order_detail(&state, id).await.map(axum::Json)
}

/// One order with its step log.
#[utoipa::path(get, path = "/orders/{id}", tag = "batches", params(("id" = i64, Path)),
    responses((status = 200, body = OrderDetail), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_order(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<OrderId>,
) -> ApiResult<axum::Json<OrderDetail>> {
    order_detail(&state, id).await.map(axum::Json)
}

async fn order_detail(state: &AppState, id: OrderId) -> ApiResult<OrderDetail> {
    let order = state.store.order(id).await?;
    let log = state
        .store
        .events(&EventQuery {
            order: Some(id),
            limit: 5_000,
            ..Default::default()
        })
        .await?;
    let audit = state.store.audit_of(&format!("order:{}", id.get())).await?;
    Ok(OrderDetail {
        screenshot_url: order
            .has_screenshot
            .then(|| format!("/api/v1/orders/{id}/screenshot")),
        snapshot_url: order
            .has_snapshot
            .then(|| format!("/api/v1/orders/{id}/snapshot")),
        order,
        log,
        audit,
    })
}

async fn artifact(state: &AppState, relative: Option<String>, what: &str) -> ApiResult<Vec<u8>> {
    let relative =
        relative.ok_or_else(|| ApiError::not_found(format!("this order has no {what}")))?;
    // Paths are written by the engine (`orders/{id}/run-{n}.png`); refuse anything else.
    if relative
        .split('/')
        .any(|part| part.is_empty() || part == ".." || part.starts_with('.'))
    {
        return Err(ApiError::not_found(format!("this order has no {what}")));
    }
    tokio::fs::read(state.engine.artifacts_dir().join(&relative))
        .await
        .map_err(|_| ApiError::not_found(format!("the {what} is no longer on disk")))
}

/// The screenshot taken when the order failed.
#[utoipa::path(get, path = "/orders/{id}/screenshot", tag = "batches", params(("id" = i64, Path)),
    responses((status = 200, content_type = "image/png", body = Vec<u8>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn order_screenshot(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<OrderId>,
) -> ApiResult<Response> {
    let (png, _) = state.store.order_artifacts(id).await?;
    let bytes = artifact(&state, png, "screenshot").await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        bytes,
    )
        .into_response())
}

/// The storefront's page as it was when the order failed. Served inert: scripts do not run.
#[utoipa::path(get, path = "/orders/{id}/snapshot", tag = "batches", params(("id" = i64, Path)),
    responses((status = 200, content_type = "text/html", body = String), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn order_snapshot(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<OrderId>,
) -> ApiResult<Response> {
    let (_, html) = state.store.order_artifacts(id).await?;
    let bytes = artifact(&state, html, "page snapshot").await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // A foreign site's page under our origin: no scripts, no forms, no same-origin.
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'; img-src * data:; style-src * 'unsafe-inline'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response())
}

fn pdf(bytes: Vec<u8>, name: String) -> Response {
    let disposition = HeaderValue::from_str(&format!("inline; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static("inline"));
    let mut response = ([(header::CONTENT_TYPE, "application/pdf")], bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_DISPOSITION, disposition);
    response
}

/// A PDF report of the batch: its figures, then every order.
#[utoipa::path(get, path = "/batches/{id}/report.pdf", tag = "batches", params(("id" = i64, Path)),
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn batch_report(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<BatchId>,
) -> ApiResult<Response> {
    let batch = state.store.batch(id).await?;
    let stats = state.store.batch_stats(id).await?;
    let mut orders = Vec::new();
    let mut page = cartwright_store::PageRequest::number(1, 500)?;
    loop {
        let chunk = state
            .store
            .orders(
                &OrderFilter {
                    batch: Some(id),
                    ..Default::default()
                },
                &page,
            )
            .await?;
        orders.extend(chunk.items);
        match chunk.next_cursor {
            Some(c) => page = cartwright_store::PageRequest::after(&c, 500)?,
            None => break,
        }
    }
    let bytes =
        cartwright_report::batch_report(&batch, &stats, &orders, time::OffsetDateTime::now_utc());
    Ok(pdf(bytes, format!("batch-{id}.pdf")))
}

/// A PDF of one order: its summary, then its log.
#[utoipa::path(get, path = "/orders/{id}/report.pdf", tag = "batches", params(("id" = i64, Path)),
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn order_report(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<OrderId>,
) -> ApiResult<Response> {
    let order = state.store.order(id).await?;
    let log = state
        .store
        .events(&EventQuery {
            order: Some(id),
            limit: 5_000,
            ..Default::default()
        })
        .await?;
    let bytes = cartwright_report::order_report(&order, &log, time::OffsetDateTime::now_utc());
    Ok(pdf(bytes, format!("order-{id}.pdf")))
}

/// Which events a stream carries.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventStreamQuery {
    /// Only this batch's events.
    batch_id: Option<BatchId>,
    /// Only this order's events.
    order_id: Option<OrderId>,
    /// Only this rewards run's events.
    rewards_run_id: Option<cartwright_core::ids::RewardsRunId>,
    /// Only events at least this loud: debug, info, warn, error.
    #[param(value_type = Option<String>)]
    level: Option<Level>,
    /// Start after this event id (the backlog before it is skipped).
    after: Option<EventId>,
    /// The bearer token, for clients that cannot send headers (read by the authentication).
    #[serde(rename = "access_token")]
    _access_token: Option<String>,
}

/// Live events of a batch as server-sent events: the stored ones first (after
/// `Last-Event-ID` when reconnecting), then each new one as it happens. Once the batch is
/// finished or stopped and none of its orders is running or placing, the rest is sent, then a
/// final `end` event (its data `{"state": …}`), and the stream closes.
#[utoipa::path(get, path = "/batches/{id}/events", tag = "batches", params(("id" = i64, Path), EventStreamQuery),
    responses(
        (status = 200, content_type = "text/event-stream", description = "`event: event` with an Event as data, one per event; `event: end` with `{\"state\"}` last", body = Event),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, description = "Too many live streams open", body = ErrorBody)),
    security(("bearer" = [])))]
async fn batch_events(
    State(state): State<AppState>,
    live: Live,
    Path(id): Path<BatchId>,
    headers: HeaderMap,
    Query(q): Query<EventStreamQuery>,
) -> ApiResult<Response> {
    state.store.batch_state(id).await?;
    let filter = EventFilter {
        batch: Some(id),
        order: q.order_id,
        rewards_run: q.rewards_run_id,
        min_level: q.level,
    };
    let store = state.store.clone();
    let ended = move || {
        let store = store.clone();
        async move {
            store
                .batch(id)
                .await
                .ok()
                .filter(|b| {
                    matches!(b.state, BatchState::Finished | BatchState::Stopped)
                        && b.counts.running == 0
                        && b.counts.placing == 0
                })
                .map(|b| b.state.as_str())
        }
    };
    Ok(event_stream(live, &state, filter, &headers, q.after, ended))
}

/// Events matching `filter` as server-sent events: the stored ones after `Last-Event-ID` (or
/// `after`), then the live ones, until `ended` names a final state (checked every second):
/// then the rest, an `end` event, and the end of the stream.
pub(crate) fn event_stream<F, Fut>(
    live: Live,
    state: &AppState,
    filter: EventFilter,
    headers: &HeaderMap,
    after: Option<EventId>,
    ended: F,
) -> Response
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<&'static str>> + Send + 'static,
{
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map(EventId);
    let ended = std::sync::Arc::new(ended);
    let watch = ended.clone();
    let until = async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if watch().await.is_some() {
                return;
            }
        }
    };
    // `end` comes only after every event up to the final state was sent; a stream cut short
    // (the store failed) just ends, and the client reconnects.
    let events = state
        .engine
        .events()
        .stream_until(filter, resume.or(after), until)
        .then(move |s| {
            let ended = ended.clone();
            async move {
                match s {
                    Streamed::Event(e) => SseEvent::default()
                        .id(e.id.to_string())
                        .event("event")
                        .data(serde_json::to_string(&*e).unwrap_or_default()),
                    Streamed::End => SseEvent::default().event("end").data(
                        serde_json::json!({ "state": ended().await.unwrap_or("finished") })
                            .to_string(),
                    ),
                }
            }
        });
    let stream = live.guard(events).map(Ok::<_, Infallible>);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// Live events over a WebSocket, filtered by batch, order and level: the stored ones first,
/// then each new one as it happens, as JSON text messages. A browser may open it only from
/// this server's own pages (its `Origin` must be this host).
#[utoipa::path(get, path = "/ws/events", tag = "batches", params(EventStreamQuery),
    responses(
        (status = 101, description = "switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Opened from another site's page", body = ErrorBody),
        (status = 429, description = "Too many live streams open", body = ErrorBody)),
    security(("bearer" = [])))]
async fn events_socket(
    State(state): State<AppState>,
    live: Live,
    headers: HeaderMap,
    Query(q): Query<EventStreamQuery>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    same_origin(&headers, state.options.public_origin.as_deref())?;
    let upgrade = upgrade.map_err(|e| {
        ApiError::bad_request(format!("this is a WebSocket endpoint: {}", e.body_text()))
    })?;
    let filter = EventFilter {
        batch: q.batch_id,
        order: q.order_id,
        rewards_run: q.rewards_run_id,
        min_level: q.level,
    };
    let events = live.guard(state.engine.events().stream(filter, q.after));
    Ok(upgrade.on_upgrade(move |socket| relay(socket, events)))
}

/// Refuses a request whose `Origin` (which browsers send with every WebSocket) is neither
/// this server as the request addressed it nor its configured public origin: another site, or
/// another port on this host, could otherwise open the stream with the operator's cookie.
pub(crate) fn same_origin(headers: &HeaderMap, public: Option<&str>) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    if public.is_some_and(|p| origin.to_str().is_ok_and(|o| o.eq_ignore_ascii_case(p))) {
        return Ok(());
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| url::Url::parse(o).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        });
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(ApiError::forbidden(format!(
            "a browser may open this stream only from this server's own pages (Origin {} is not {})",
            origin.to_str().unwrap_or("?"),
            host.unwrap_or("this host")
        ))),
    }
}

async fn relay(
    mut socket: WebSocket,
    events: impl futures::Stream<Item = std::sync::Arc<Event>> + Send,
) {
    let mut events = std::pin::pin!(events);
    loop {
        tokio::select! {
            next = events.next() => {
                let Some(e) = next else { break };
                let text = serde_json::to_string(&*e).unwrap_or_default();
                // A client that stopped reading does not hold the stream (and its place)
                // forever.
                let sent = tokio::time::timeout(
                    Duration::from_secs(30),
                    socket.send(Message::Text(text.into())),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// How many sign-in tests were queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    /// Tests queued.
    pub queued: usize,
}

/// Queues a sign-in test for each selected account: the session is checked in the browser and
/// the storefront's profile details (email, phone, name) are read into the account.
#[utoipa::path(post, path = "/accounts/session-checks", tag = "accounts", request_body = SelectionRequest,
    responses((status = 202, body = Queued), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn session_checks(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Json(body): Json<SelectionRequest>,
) -> ApiResult<Response> {
    let queued = state.engine.queue_session_checks(body).await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        axum::Json(Queued { queued }),
    )
        .into_response())
}
