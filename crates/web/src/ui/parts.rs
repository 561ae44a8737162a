//! Pieces more than one page shows: rows of batches and orders, the storefront choices, an
//! account's name, a form's account selection. Pages use these; they use no page.

use super::error::UiError;
use super::form::{FormData, number, without_nulls};
use super::view::{money_opt, when};
use crate::state::AppState;
use askama::Template;
use cartwright_core::batch::Batch;
use cartwright_core::ids::{AccountId, BatchId, OrderId};
use cartwright_core::order::Order;
use serde_json::{Value, json};

/// A batch as a row of a list.
pub struct BatchRow {
    /// Its id.
    pub id: BatchId,
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: &'static str,
    /// When it was submitted.
    pub created: String,
    /// Orders placed.
    pub placed: i64,
    /// Orders failed.
    pub failed: i64,
    /// Orders in all.
    pub total: i64,
    /// Percent of orders settled.
    pub progress: i64,
}

pub fn settled(b: &Batch) -> i64 {
    b.counts.placed + b.counts.failed + b.counts.cancelled + b.counts.skipped
}

impl From<&Batch> for BatchRow {
    fn from(b: &Batch) -> Self {
        Self {
            id: b.id,
            name: b.name.clone().unwrap_or_else(|| format!("Batch {}", b.id)),
            state: b.state.as_str(),
            created: when(b.created_at),
            placed: b.counts.placed,
            failed: b.counts.failed,
            total: b.counts.total,
            progress: percent(settled(b), b.counts.total),
        }
    }
}

#[derive(Template)]
#[template(path = "ui/batch_table.html")]
struct BatchTable<'a> {
    rows: &'a [BatchRow],
    empty: &'a str,
}

/// A table of batches, or `empty` when there are none.
pub fn batch_table(rows: &[BatchRow], empty: &str) -> Result<String, UiError> {
    Ok(BatchTable { rows, empty }.render()?)
}

pub fn percent(part: i64, whole: i64) -> i64 {
    if whole <= 0 { 0 } else { part * 100 / whole }
}

/// A choice in a select.
pub struct Choice {
    /// Its value.
    pub value: String,
    /// What it shows.
    pub label: String,
}

/// The storefronts as choices.
pub async fn storefront_choices(state: &AppState) -> Result<Vec<Choice>, UiError> {
    Ok(state
        .store
        .storefronts()
        .await?
        .into_iter()
        .map(|s| Choice {
            value: s.id.to_string(),
            label: s.name.to_string(),
        })
        .collect())
}

/// The name an account goes by on pages.
pub fn account_name(
    label: Option<&str>,
    name: Option<&str>,
    email: Option<&str>,
    id: AccountId,
) -> String {
    label
        .or(name)
        .or(email)
        .map_or_else(|| format!("account {id}"), str::to_owned)
}

/// The selection part of a form (`storefront_id`, `select_by`, `from`, `to`, `tag`, `ids`) as
/// the API's selection request.
pub fn selection_json(form: &FormData) -> Value {
    let mut selection = json!({"storefront_id": number(form.get("storefront_id"))});
    match form.get("select_by") {
        "tag" => selection["tag"] = form.text("tag"),
        "ids" => {
            let ids: Vec<Value> = form
                .get("ids")
                .split([',', ' ', '\n'])
                .filter(|s| !s.trim().is_empty())
                .map(number)
                .collect();
            selection["ids"] = json!(ids);
        }
        _ => {
            selection["range"] =
                json!({"from": number(form.get("from")), "to": number(form.get("to"))});
        }
    }
    without_nulls(selection)
}

/// An order as a row of the batch page.
pub struct OrderRow {
    /// Its id.
    pub id: OrderId,
    /// The account's name.
    pub account: String,
    /// Which repetition.
    pub repetition: u32,
    /// Its state.
    pub state: &'static str,
    /// Its total.
    pub total: String,
    /// The storefront's order number.
    pub number: String,
    /// Why it failed.
    pub error: String,
    /// Attempts so far.
    pub attempts: u32,
}

impl From<&Order> for OrderRow {
    fn from(o: &Order) -> Self {
        Self {
            id: o.id,
            account: o
                .account
                .clone()
                .unwrap_or_else(|| format!("account {}", o.account_id)),
            repetition: o.repetition,
            state: o.state.as_str(),
            total: money_opt(o.total_minor),
            number: o.order_number.clone().unwrap_or_default(),
            error: match (
                &o.error_class,
                &o.error_message
                    .as_deref()
                    .map(|m| m.trim_start_matches([':', ' ']).to_owned()),
            ) {
                (Some(c), Some(m)) => format!("{}: {m}", c.as_str()),
                (Some(c), None) => c.as_str().to_owned(),
                (None, Some(m)) => m.clone(),
                (None, None) => String::new(),
            },
            attempts: o.attempts,
        }
    }
}
