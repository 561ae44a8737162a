//! The overview: today's and recent batches, orders placed and failed, points, the accounts
//! that need attention, and charts of orders per day and points over time.

use super::charts::{self, Bar};
use super::error::UiError;
use super::parts::{BatchRow, account_name, batch_table};
use super::session::Session;
use super::view::{Chrome, count};
use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use cartwright_core::account::SessionStatus;
use cartwright_core::ids::AccountId;
use cartwright_core::order::OrderState;
use cartwright_store::{AccountFilter, OrderFilter, PageRequest};
use std::collections::BTreeMap;
use time::{Date, Duration, OffsetDateTime};

/// Days the orders chart covers.
const DAYS: i64 = 14;

/// An account that needs an operator.
pub struct Attention {
    /// Its id.
    pub id: AccountId,
    /// How it is called.
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

/// An order whose final click went out and that is not settled: first on the page.
pub struct Unsettled {
    /// The order.
    pub id: cartwright_core::ids::OrderId,
    /// Its batch.
    pub batch: cartwright_core::ids::BatchId,
    /// Its account.
    pub account: String,
    /// `unresolved` (a person must settle it) or `placing` (being settled).
    pub state: &'static str,
}

#[derive(Template)]
#[template(path = "ui/overview.html")]
struct OverviewPage {
    l: Chrome,
    unsettled: Vec<Unsettled>,
    unresolved_total: i64,
    settling_total: i64,
    today: String,
    recent: String,
    today_count: usize,
    placed: String,
    failed: String,
    running: String,
    points: String,
    accounts: String,
    attention: Vec<Attention>,
    attention_total: String,
    orders_chart: String,
    points_chart: String,
    goods: super::goods::GoodsCard,
}

/// `GET /`.
pub async fn page(
    State(state): State<AppState>,
    session: Session,
) -> Result<Html<String>, UiError> {
    let store = &state.store;
    let now = OffsetDateTime::now_utc();
    let since = now.date() - Duration::days(DAYS - 1);
    let batches = store.batches(&PageRequest::number(1, 200)?).await?;

    let mut per_day: BTreeMap<Date, (i64, i64)> = (0..DAYS)
        .map(|d| (since + Duration::days(d), (0, 0)))
        .collect();
    let (mut placed, mut failed, mut running) = (0, 0, 0);
    for b in &batches.items {
        if let Some(day) = per_day.get_mut(&b.created_at.date()) {
            day.0 += b.counts.placed;
            day.1 += b.counts.failed;
            placed += b.counts.placed;
            failed += b.counts.failed;
        }
        running += b.counts.running + b.counts.placing + b.counts.queued;
    }
    let bars: Vec<Bar> = per_day
        .iter()
        .map(|(day, (p, f))| Bar {
            label: format!("{:02}-{:02}", u8::from(day.month()), day.day()),
            values: vec![*p, *f],
        })
        .collect();
    let orders_chart = charts::bars(
        "Orders per day, last 14 days",
        &[("placed", "bar-ok"), ("failed", "bar-bad")],
        &bars,
    );

    let rows: Vec<BatchRow> = batches.items.iter().map(BatchRow::from).collect();
    let today: Vec<BatchRow> = batches
        .items
        .iter()
        .filter(|b| b.created_at.date() == now.date())
        .map(BatchRow::from)
        .collect();
    let recent: Vec<BatchRow> = rows.into_iter().take(8).collect();

    let (accounts, points) = store.account_totals().await?;
    // Points over time: the rewards history, day by day.
    let series: Vec<(String, i64)> = store
        .points_by_day(None, 30)
        .await?
        .into_iter()
        .map(|(day, points)| (day.get(5..).unwrap_or(&day).to_owned(), points))
        .collect();
    let points_chart = if series.is_empty() {
        String::new()
    } else {
        charts::line("Reward points over time", &series)
    };

    let mut attention = Vec::new();
    let logged_out = store
        .accounts(
            &AccountFilter {
                status: Some(SessionStatus::LoggedOut),
                ..Default::default()
            },
            PageRequest::number(1, 10)?,
        )
        .await?;
    let mut attention_total = logged_out.total;
    for a in &logged_out.items {
        attention.push(Attention {
            id: a.id,
            name: account_name(
                a.label.as_ref().map(|t| t.as_str()),
                a.name.as_ref().map(|t| t.as_str()),
                a.email.as_ref().map(|e| e.as_str()),
                a.id,
            ),
            reason: "signed out: new cookies needed".into(),
        });
    }
    for b in batches.items.iter().take(5) {
        if b.counts.failed == 0 {
            continue;
        }
        let failed_orders = store
            .orders(
                &OrderFilter {
                    batch: Some(b.id),
                    state: Some(OrderState::Failed),
                    ..Default::default()
                },
                &PageRequest::number(1, 20)?,
            )
            .await?;
        for o in failed_orders.items {
            if attention.len() >= 12 || attention.iter().any(|a| a.id == o.account_id) {
                continue;
            }
            attention_total += 1;
            attention.push(Attention {
                id: o.account_id,
                name: o
                    .account
                    .clone()
                    .unwrap_or_else(|| format!("account {}", o.account_id)),
                reason: format!(
                    "order failed in batch {}: {}",
                    b.id,
                    o.error_message
                        .as_deref()
                        .map_or("no reason kept", |m| m.trim_start_matches([':', ' ']))
                ),
            });
        }
    }

    let mut unsettled = Vec::new();
    let mut totals = [0; 2];
    for (i, state) in [OrderState::Unresolved, OrderState::Placing]
        .into_iter()
        .enumerate()
    {
        let page = store
            .orders(
                &OrderFilter {
                    state: Some(state),
                    ..Default::default()
                },
                &PageRequest::number(1, 20)?,
            )
            .await?;
        totals[i] = page.total;
        unsettled.extend(page.items.into_iter().map(|o| {
            Unsettled {
                id: o.id,
                batch: o.batch_id,
                account: o
                    .account
                    .clone()
                    .unwrap_or_else(|| format!("account {}", o.account_id)),
                state: state.as_str(),
            }
        }));
    }

    let page = OverviewPage {
        l: session.chrome("Overview", "overview"),
        unsettled,
        unresolved_total: totals[0],
        settling_total: totals[1],
        today_count: today.len(),
        today: batch_table(&today, "No batches today yet.")?,
        recent: batch_table(&recent, "No batches yet: start one from New batch.")?,
        placed: count(placed),
        failed: count(failed),
        running: count(running),
        points: count(points),
        accounts: count(accounts),
        attention,
        attention_total: count(attention_total),
        orders_chart,
        points_chart,
        goods: super::goods::card(&state).await?,
    };
    Ok(Html(page.render()?))
}

/// This module's pages.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/", get(page))
}
