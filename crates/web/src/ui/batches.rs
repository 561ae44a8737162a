//! Batches: the new-batch form, the batch page with its live progress and log, the order
//! drawer, and the history with its figures.

use super::api::{Api, Body};
use super::error::UiError;
use super::form::{Errors, Values, number, without_nulls};
use super::parts::{BatchRow, Choice, OrderRow, batch_table, percent, selection_json, settled};
use super::session::{Posted, Session};
use super::view::{Chrome, Pager, count, duration_ms, money, money_opt, when, when_opt};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use cartwright_core::batch::{Batch, CouponPolicy, Payment};
use cartwright_core::ids::{BatchId, OrderId};
use cartwright_core::operator::Permission;
use cartwright_core::order::{Order, OrderState};
use cartwright_core::placing::Settling;
use cartwright_store::{EventQuery, OrderFilter, PageRequest, ProductFilter};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Template)]
#[template(path = "ui/batches.html")]
struct HistoryPage {
    l: Chrome,
    table: String,
    pager: Pager,
    batches: String,
    placed: String,
    failed: String,
    success: String,
}

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<u32>,
}

/// `GET /batches`: every batch, newest first, with figures over the page.
pub async fn history(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<PageQuery>,
) -> Result<Html<String>, UiError> {
    let page_no = q.page.unwrap_or(1).max(1);
    let list = state
        .store
        .batches(&PageRequest::number(page_no, 25)?)
        .await?;
    let (placed, failed) = list.items.iter().fold((0, 0), |(p, f), b| {
        (p + b.counts.placed, f + b.counts.failed)
    });
    let page = HistoryPage {
        l: session.chrome("Batches", "batches"),
        table: batch_table(
            &list.items.iter().map(BatchRow::from).collect::<Vec<_>>(),
            "No batches yet.",
        )?,
        pager: Pager::new(page_no, 25, list.total, String::new()),
        batches: count(list.total),
        placed: count(placed),
        failed: count(failed),
        success: if placed + failed == 0 {
            "—".into()
        } else {
            format!("{}%", percent(placed, placed + failed))
        },
    };
    Ok(Html(page.render()?))
}

/// One cart line of the form.
pub struct LineView {
    /// Its index.
    pub index: usize,
    /// The chosen product id.
    pub product: String,
    /// The quantity.
    pub quantity: String,
    /// Its error.
    pub error: String,
}

#[derive(Template)]
#[template(path = "ui/batch_new.html")]
struct NewBatchPage {
    l: Chrome,
    v: Values,
    e: Errors,
    storefronts: Vec<Choice>,
    products: Vec<Choice>,
    addresses: Vec<Choice>,
    lines: Vec<LineView>,
}

async fn new_batch_page(
    state: &AppState,
    session: &Session,
    v: Values,
    e: Errors,
    lines: Vec<(String, String)>,
    line_errors: &[String],
) -> Result<Response, UiError> {
    let storefronts = super::parts::storefront_choices(state).await?;
    let products = state
        .store
        .products(&ProductFilter::default(), PageRequest::number(1, 500)?)
        .await?
        .items
        .into_iter()
        .map(|p| Choice {
            value: p.id.to_string(),
            label: format!(
                "{}{}{}",
                p.name,
                p.price
                    .map_or(String::new(), |m| format!(" · {}", money(m.minor()))),
                if p.in_stock { "" } else { " (out of stock)" }
            ),
        })
        .collect();
    let addresses = state
        .store
        .addresses()
        .await?
        .into_iter()
        .map(|a| Choice {
            value: a.id.to_string(),
            label: format!(
                "{}{} — {}, {}",
                a.label
                    .as_ref()
                    .map_or(a.full_name.as_str(), |l| l.as_str()),
                if a.is_default { " (default)" } else { "" },
                a.city,
                a.postcode
            ),
        })
        .collect();
    let mut lines: Vec<LineView> = lines
        .into_iter()
        .enumerate()
        .map(|(index, (product, quantity))| LineView {
            index,
            product,
            quantity,
            error: line_errors.get(index).cloned().unwrap_or_default(),
        })
        .collect();
    while lines.len() < 3 {
        lines.push(LineView {
            index: lines.len(),
            product: String::new(),
            quantity: "1".into(),
            error: String::new(),
        });
    }
    let status = e.status();
    let page = NewBatchPage {
        l: session.chrome("New batch", "new-batch"),
        v,
        e,
        storefronts,
        products,
        addresses,
        lines,
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// `GET /batches/new`.
pub async fn new_form(
    State(state): State<AppState>,
    session: Session,
    Query(prefill): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let mut v = Values::default();
    v.set("select_by", "range");
    v.set("from", "1");
    v.set("to", "10");
    v.set("repetitions", "1");
    v.set("payment", "cash_on_delivery");
    v.set("coupon", CouponPolicy::None.as_str());
    v.set("clear_cart", "on");
    if let Some(s) = state.store.storefronts().await?.first() {
        v.set("storefront_id", s.id.to_string());
    }
    // "New batch with these" from the accounts page brings its selection.
    for key in ["storefront_id", "from", "to", "tag", "name", "max_total"] {
        if let Some(value) = prefill.get(key).filter(|v| !v.trim().is_empty()) {
            v.set(key, value.trim());
        }
    }
    new_batch_page(&state, &session, v, Errors::default(), Vec::new(), &[]).await
}

/// `POST /batches`: submits through the API; its errors are shown beside their fields.
pub async fn create(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let products = form.all("line_product");
    let quantities = form.all("line_quantity");
    let lines: Vec<(String, String)> = products
        .iter()
        .zip(quantities.iter().chain(std::iter::repeat(&"1")))
        .filter(|(p, _)| !p.is_empty())
        .map(|(p, q)| ((*p).to_owned(), (*q).to_owned()))
        .collect();
    let payment = match form.get("payment") {
        "saved" => json!({"method": "saved", "label": form.get("payment_label")}),
        _ => serde_json::to_value(Payment::CashOnDelivery).unwrap_or(Value::Null),
    };
    let body = without_nulls(json!({
        "name": form.text("name"),
        "accounts": selection_json(&form),
        "lines": lines.iter().map(|(p, q)| json!({"product_id": number(p), "quantity": number(q)})).collect::<Vec<_>>(),
        "repetitions": number(form.get("repetitions")),
        "address_id": number(form.get("address_id")),
        "payment": payment,
        "coupon": form.text("coupon"),
        "coupon_code": form.text("coupon_code"),
        "shipping": form.text("shipping"),
        // Sent even when empty, so the API names the field (an absent amount is refused
        // without one).
        "max_total": form.get("max_total"),
        "clear_cart": form.checked("clear_cart"),
        "clear_addresses": form.checked("clear_addresses"),
    }));
    // "Rehearse one order" sends the same form for a rehearsal, never a batch.
    let rehearsing = form.get("rehearse") == "1";
    let path = if rehearsing {
        "/api/v1/rehearsals"
    } else {
        "/api/v1/batches"
    };
    let reply = api
        .submit(&session, Method::POST, path, Body::Json(body))
        .await?;
    let failure = match reply {
        Ok(report) if rehearsing => {
            let page = RehearsalPage {
                l: session.chrome("Rehearsal".to_owned(), "batches"),
                r: RehearsalView::from(&report),
            };
            return Ok(Html(page.render()?).into_response());
        }
        Ok(batch) => {
            let id = batch["id"].as_i64().unwrap_or_default();
            return Ok(Redirect::to(&format!("/batches/{id}")).into_response());
        }
        Err(failure) => failure,
    };
    let line_fields: Vec<String> = (0..lines.len()).map(|i| format!("lines[{i}]")).collect();
    let mut known = vec![
        "name",
        "accounts.storefront_id",
        "accounts.range",
        "accounts.tag",
        "accounts.ids",
        "accounts",
        "lines",
        "repetitions",
        "address_id",
        "payment",
        "coupon",
        "coupon_code",
        "shipping",
        "max_total",
    ];
    known.extend(line_fields.iter().map(String::as_str));
    let errors = Errors::from_failure(&failure, &known);
    let line_errors: Vec<String> = line_fields
        .iter()
        .map(|f| errors.get(f).to_owned())
        .collect();
    new_batch_page(&state, &session, form.values(), errors, lines, &line_errors).await
}

/// A rehearsal's report as the page shows it.
#[derive(Template)]
#[template(path = "ui/rehearsal.html")]
struct RehearsalPage {
    l: Chrome,
    r: RehearsalView,
}

/// A rehearsal, for the page.
pub struct RehearsalView {
    /// Ready for the final click.
    pub ready: bool,
    /// Why not.
    pub failure: String,
    /// The total read.
    pub total: String,
    /// The discount read.
    pub discount: String,
    /// The coupon.
    pub coupon: String,
    /// The steps.
    pub steps: Vec<RehearsedStepView>,
    /// The log.
    pub log: Vec<String>,
}

/// One step of a rehearsal, for the page.
pub struct RehearsedStepView {
    /// Its number in the report.
    pub n: usize,
    /// Phase and step number.
    pub place: String,
    /// What it does.
    pub what: String,
    /// Milliseconds.
    pub took_ms: u64,
    /// `ok`, `skipped` or `failed`.
    pub result: &'static str,
    /// What it noted or why it failed.
    pub note: String,
    /// The selector used.
    pub used: String,
    /// A fallback was used.
    pub fell_back: bool,
    /// Each alternative: selector, count, excerpt.
    pub matches: Vec<(String, u64, String)>,
    /// A `data:` URL of the screenshot, or empty.
    pub screenshot: String,
    /// The page's URL after it.
    pub url: String,
}

impl From<&Value> for RehearsalView {
    fn from(r: &Value) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let amount = |v: &Value| v.as_i64().map_or_else(|| "—".to_owned(), money);
        let steps = r["steps"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, s)| RehearsedStepView {
                n: i + 1,
                place: format!("{} {}", text(&s["phase"]), text(&s["label"])),
                what: text(&s["what"]),
                took_ms: s["took_ms"].as_u64().unwrap_or_default(),
                result: match (s["ok"].as_bool(), s["optional"].as_bool()) {
                    (Some(true), _) => "ok",
                    (_, Some(true)) => "skipped",
                    _ => "failed",
                },
                note: text(&s["note"]),
                used: text(&s["selector_used"]),
                fell_back: s["fell_back"].as_bool().unwrap_or_default(),
                matches: s["matches"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|m| {
                        (
                            text(&m["selector"]),
                            m["count"].as_u64().unwrap_or_default(),
                            text(&m["excerpt"]),
                        )
                    })
                    .collect(),
                screenshot: s["screenshot"]
                    .as_str()
                    .map_or_else(String::new, |b| format!("data:image/png;base64,{b}")),
                url: text(&s["url"]),
            })
            .collect();
        RehearsalView {
            ready: r["ready"].as_bool().unwrap_or_default(),
            failure: text(&r["failure"]),
            total: amount(&r["total_minor"]),
            discount: amount(&r["discount_minor"]),
            coupon: r["coupon"].as_str().unwrap_or("none").to_owned(),
            steps,
            log: r["log"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(text)
                .collect(),
        }
    }
}

/// Counts as the page shows them.
pub struct CountsView {
    /// Queued.
    pub queued: i64,
    /// Running.
    pub running: i64,
    /// Final click out, being settled from the history.
    pub settling: i64,
    /// Final click out, outcome unknown: a person must settle them.
    pub unresolved: i64,
    /// Placed.
    pub placed: i64,
    /// Failed.
    pub failed: i64,
    /// Cancelled or skipped.
    pub other: i64,
    /// In all.
    pub total: i64,
    /// Percent settled.
    pub progress: i64,
}

impl From<&Batch> for CountsView {
    fn from(b: &Batch) -> Self {
        let c = &b.counts;
        Self {
            queued: c.queued,
            running: c.running,
            settling: c.placing,
            unresolved: c.unresolved,
            placed: c.placed,
            failed: c.failed,
            other: c.cancelled + c.skipped,
            total: c.total,
            progress: percent(settled(b), c.total),
        }
    }
}

#[derive(Template)]
#[template(path = "ui/batch.html")]
struct BatchPage {
    l: Chrome,
    b: BatchRow,
    counts: CountsView,
    orders: Vec<OrderRow>,
    more_orders: i64,
    can_stop: bool,
    can_resume: bool,
    can_retry: bool,
    pause_reason: String,
    summary: String,
}

/// A batch's figures in a sentence: values, timings, failures by class.
async fn summary(state: &AppState, batch: &Batch) -> Result<String, UiError> {
    let stats = state.store.batch_stats(batch.id).await?;
    let mut parts = vec![
        format!("Submitted {}", when(batch.created_at)),
        format!("placed value {}", money(stats.placed_total_minor)),
        format!("discounts {}", money(stats.discount_minor)),
    ];
    if let Some(ms) = stats.duration_p50_ms {
        parts.push(format!("median order {}", duration_ms(ms)));
    }
    if let Some(ms) = stats.duration_p95_ms {
        parts.push(format!("95th percentile {}", duration_ms(ms)));
    }
    if let Some(pace) = stats.placed_per_minute {
        parts.push(format!("{pace:.1} placed a minute"));
    }
    for (class, n) in &stats.failed_by_class {
        parts.push(format!("failed ({class}) {}", count(*n)));
    }
    Ok(format!("{}.", parts.join(" · ")))
}

async fn all_orders(state: &AppState, id: BatchId) -> Result<(Vec<Order>, i64), UiError> {
    let page = state
        .store
        .orders(
            &OrderFilter {
                batch: Some(id),
                ..Default::default()
            },
            &PageRequest::number(1, 500)?,
        )
        .await?;
    let more = page.total - page.items.len() as i64;
    Ok((page.items, more))
}

/// `GET /batches/{id}`.
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
) -> Result<Html<String>, UiError> {
    let id = BatchId(id);
    let batch = state.store.batch(id).await?;
    let (orders, more_orders) = all_orders(&state, id).await?;
    use cartwright_core::batch::BatchState;
    let can = session.role.allows(Permission::Operate);
    let page = BatchPage {
        l: session.chrome(
            batch.name.clone().unwrap_or_else(|| format!("Batch {id}")),
            "batches",
        ),
        counts: CountsView::from(&batch),
        b: BatchRow::from(&batch),
        orders: orders.iter().map(OrderRow::from).collect(),
        more_orders,
        can_stop: can && matches!(batch.state, BatchState::Running | BatchState::Paused),
        can_resume: can && matches!(batch.state, BatchState::Stopped | BatchState::Paused),
        can_retry: can
            && matches!(batch.state, BatchState::Finished | BatchState::Running)
            && batch.counts.failed > 0,
        pause_reason: batch.pause_reason.clone().unwrap_or_default(),
        summary: summary(&state, &batch).await?,
    };
    Ok(Html(page.render()?))
}

/// `GET /batches/{id}/rows`: the batch's counts and orders as the page shows them, for the
/// page's script to update in place.
pub async fn rows(
    State(state): State<AppState>,
    _session: Session,
    Path(id): Path<i64>,
) -> Result<Json<Value>, UiError> {
    let id = BatchId(id);
    let batch = state.store.batch(id).await?;
    let (orders, _) = all_orders(&state, id).await?;
    let c = CountsView::from(&batch);
    let orders: Vec<Value> = orders
        .iter()
        .map(OrderRow::from)
        .map(|o| {
            json!({"id": o.id.get(), "state": o.state, "total": o.total, "number": o.number,
                   "error": o.error, "attempts": o.attempts})
        })
        .collect();
    Ok(Json(json!({
        "state": batch.state.as_str(),
        "counts": {"queued": c.queued, "running": c.running, "settling": c.settling,
                   "unresolved": c.unresolved, "placed": c.placed,
                   "failed": c.failed, "other": c.other, "total": c.total},
        "progress": c.progress,
        "summary": summary(&state, &batch).await?,
        "orders": orders,
    })))
}

async fn act(api: &Api, session: &Session, id: i64, action: &str) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let _ = api
        .submit(
            session,
            Method::POST,
            &format!("/api/v1/batches/{id}/{action}"),
            Body::Empty,
        )
        .await?;
    // A conflict (already stopped, already finished) changes nothing; the page shows why.
    Ok(Redirect::to(&format!("/batches/{id}")).into_response())
}

/// `POST /batches/{id}/stop`.
pub async fn stop(
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    posted: Posted,
) -> Result<Response, UiError> {
    act(&api, &posted.session, id, "stop").await
}

/// `POST /batches/{id}/resume`.
pub async fn resume(
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    posted: Posted,
) -> Result<Response, UiError> {
    act(&api, &posted.session, id, "resume").await
}

/// `POST /batches/{id}/retry-failed`.
pub async fn retry_failed(
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    posted: Posted,
) -> Result<Response, UiError> {
    act(&api, &posted.session, id, "retry-failed").await
}

/// One line of an order's step timeline.
pub struct StepView {
    /// When.
    pub at: String,
    /// How loud.
    pub level: &'static str,
    /// The phase.
    pub phase: String,
    /// The step.
    pub step: String,
    /// What happened.
    pub message: String,
}

/// What an order's page and drawer show.
macro_rules! order_view {
    ($name:ident, $path:literal) => {
        #[derive(Template)]
        #[template(path = $path)]
        struct $name {
            l: Chrome,
            o: OrderRow,
            batch: BatchId,
            steps: Vec<StepView>,
            screenshot: bool,
            snapshot: bool,
            evidence: Vec<String>,
            decisions: Vec<String>,
            can_resolve: bool,
            coupon: String,
            subtotal: String,
            discount: String,
            created: String,
            finished: String,
        }
    };
}
order_view!(OrderPage, "ui/order.html");
order_view!(OrderDrawer, "ui/order_drawer.html");

#[derive(Deserialize)]
pub struct OrderQuery {
    #[serde(default)]
    drawer: bool,
}

/// `GET /orders/{id}`: an order with its step timeline and failure artifacts; with
/// `?drawer=true` only the drawer's content, for the batch page to show beside the list.
pub async fn order(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
    Query(q): Query<OrderQuery>,
) -> Result<Html<String>, UiError> {
    let id = OrderId(id);
    let order = state.store.order(id).await?;
    let log = state
        .store
        .events(&EventQuery {
            order: Some(id),
            limit: 5_000,
            ..Default::default()
        })
        .await?;
    let evidence_lines = order.settling.as_ref().map(evidence).unwrap_or_default();
    let decisions: Vec<String> = state
        .store
        .audit_of(&format!("order:{}", id.get()))
        .await?
        .iter()
        .map(|a| {
            let note = a.detail["note"]
                .as_str()
                .map(|n| format!(": {n}"))
                .unwrap_or_default();
            format!(
                "{} — {} settled it ({} → {}){note}",
                when(a.at),
                a.actor,
                a.detail["from"].as_str().unwrap_or("?"),
                a.detail["to"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    let can_resolve = session.role.allows(Permission::Operate)
        && matches!(order.state, OrderState::Placing | OrderState::Unresolved);
    macro_rules! fill {
        ($name:ident) => {
            $name {
                l: session.chrome(format!("Order {id}"), "batches"),
                o: OrderRow::from(&order),
                batch: order.batch_id,
                steps: log
                    .iter()
                    .map(|e| StepView {
                        at: format!(
                            "{:02}:{:02}:{:02}.{:03}",
                            e.at.hour(),
                            e.at.minute(),
                            e.at.second(),
                            e.at.millisecond()
                        ),
                        level: e.level.as_str(),
                        phase: e.phase.clone().unwrap_or_default(),
                        step: e.step.clone().unwrap_or_default(),
                        message: e.message.clone(),
                    })
                    .collect(),
                screenshot: order.has_screenshot,
                snapshot: order.has_snapshot,
                evidence: evidence_lines.clone(),
                decisions: decisions.clone(),
                can_resolve,
                coupon: order.coupon.clone().unwrap_or_default(),
                subtotal: money_opt(order.subtotal_minor),
                discount: money_opt(order.discount_minor),
                created: when(order.created_at),
                finished: when_opt(order.finished_at),
            }
        };
    }
    let html = if q.drawer {
        fill!(OrderDrawer).render()?
    } else {
        fill!(OrderPage).render()?
    };
    Ok(Html(html))
}

/// What settling an order after its final click found, in lines an operator reads.
fn evidence(s: &Settling) -> Vec<String> {
    let mut lines = vec![format!("Why the outcome is not known: {}.", s.why)];
    if let Some(r) = &s.refusal {
        lines.push(format!("The storefront refused it: {}.", r.message));
    }
    lines.push(format!(
        "The order history was looked at {} time{}{}.",
        s.looks,
        if s.looks == 1 { "" } else { "s" },
        s.last_look
            .map(|t| format!(", last at {}", when(t)))
            .unwrap_or_default()
    ));
    if s.absent_reads > 0 {
        lines.push(format!(
            "It was read without the order {} time{}{}.",
            s.absent_reads,
            if s.absent_reads == 1 { "" } else { "s" },
            match (s.absent_since, s.absent_until) {
                (Some(a), Some(b)) => format!(", from {} to {}", when(a), when(b)),
                _ => String::new(),
            }
        ));
    }
    if let Some(u) = &s.unreadable {
        lines.push(format!("The last look could not read it: {u}."));
    }
    if !s.candidates.is_empty() {
        lines.push(format!(
            "New orders it shows, any of which may be this one: {}.",
            s.candidates.join(", ")
        ));
    }
    lines
}

/// `POST /orders/{id}/resolve`: a person settles an order whose final click went out.
pub async fn resolve(
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let (placed, run_again) = match form.get("outcome") {
        "placed" => (true, false),
        "not_placed" => (false, false),
        "run_again" => (false, true),
        other => {
            return Err(UiError::BadRequest(format!(
                "{other:?} is not a decision: placed, not_placed or run_again"
            )));
        }
    };
    let body = without_nulls(json!({
        "placed": placed,
        "run_again": run_again,
        "order_number": form.text("order_number"),
        "note": form.text("note"),
    }));
    let reply = api
        .submit(
            &session,
            Method::POST,
            &format!("/api/v1/orders/{id}/resolve"),
            Body::Json(body),
        )
        .await?;
    match reply {
        Ok(detail) => {
            let batch = detail["order"]["batch_id"].as_i64().unwrap_or_default();
            Ok(Redirect::to(&format!("/batches/{batch}")).into_response())
        }
        Err(failure) => Err(UiError::BadRequest(failure.message)),
    }
}

/// This module's pages.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/batches", get(history))
        .route("/batches/new", get(new_form).post(create))
        .route("/batches/{id}", get(page))
        .route("/batches/{id}/rows", get(rows))
        .route("/batches/{id}/stop", post(stop))
        .route("/batches/{id}/resume", post(resume))
        .route("/batches/{id}/retry-failed", post(retry_failed))
        .route("/orders/{id}", get(order))
        .route("/orders/{id}/resolve", post(resolve))
}
