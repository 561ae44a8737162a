//! The order report: the order's figures and outcome, then every line of its run log.

use crate::format::{clock_ms, date, date_time, date_time_or_dash, duration_ms, money_or_dash};
use crate::layout::{Color, Column, Report, Row, Table};
use cartwright_core::order::{Event, Level, Order};
use time::OffsetDateTime;

const ERROR: Color = [0.7, 0.0, 0.0];
const WARN: Color = [0.6, 0.33, 0.0];

pub(crate) fn render(order: &Order, log: &[Event], generated_at: OffsetDateTime) -> Vec<u8> {
    let mut report = Report::new(&format!("Order {}", order.id), generated_at);
    report.heading("Summary");
    report.table(&Table::key_values(110.0, 9.0), summary(order));
    report.heading(&log_heading(log));
    if log.is_empty() {
        report.table(&Table::plain(9.0), [Row::new(vec!["No events.".into()])]);
    } else {
        report.table(&log_table(), log.iter().map(event_row));
    }
    report.finish()
}

fn summary(order: &Order) -> Vec<Row> {
    let dash = || "-".to_owned();
    let account = match &order.account {
        Some(label) => format!("{label} (id {})", order.account_id),
        None => format!("id {}", order.account_id),
    };
    let timings = if order.timings.is_empty() {
        dash()
    } else {
        order
            .timings
            .iter()
            .map(|(phase, ms)| {
                format!(
                    "{phase} {}",
                    duration_ms(i64::try_from(*ms).unwrap_or(i64::MAX))
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rows = vec![
        ("Order", order.id.to_string()),
        ("Batch", order.batch_id.to_string()),
        ("Account", account),
        ("Repetition", order.repetition.to_string()),
        ("State", order.state.as_str().to_owned()),
        ("Attempts", order.attempts.to_string()),
        (
            "Order number",
            order.order_number.clone().unwrap_or_else(dash),
        ),
        ("Subtotal", money_or_dash(order.subtotal_minor)),
        ("Discount", money_or_dash(order.discount_minor)),
        ("Total", money_or_dash(order.total_minor)),
        ("Coupon", order.coupon.clone().unwrap_or_else(dash)),
        (
            "Error class",
            order
                .error_class
                .map_or_else(dash, |c| c.as_str().to_owned()),
        ),
        (
            "Error message",
            order.error_message.clone().unwrap_or_else(dash),
        ),
        ("Created", date_time(order.created_at)),
        ("Started", date_time_or_dash(order.started_at)),
        ("Placing", date_time_or_dash(order.placing_at)),
        ("Finished", date_time_or_dash(order.finished_at)),
        ("Timings", timings),
    ];
    let kept: Vec<&str> = [
        order.has_screenshot.then_some("screenshot"),
        order.has_snapshot.then_some("HTML snapshot"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !kept.is_empty() {
        rows.push(("Kept at failure", kept.join(", ")));
    }
    rows.into_iter()
        .map(|(label, value)| Row::new(vec![label.to_owned(), value]))
        .collect()
}

/// "Log (300 events, 2026-11-22)": the dates, since each row shows only the time.
fn log_heading(log: &[Event]) -> String {
    let first = log.iter().map(|e| e.at).min();
    let last = log.iter().map(|e| e.at).max();
    let events = if log.len() == 1 { "event" } else { "events" };
    match (first.map(date), last.map(date)) {
        (Some(first), Some(last)) if first == last => {
            format!("Log ({} {events}, {first})", log.len())
        }
        (Some(first), Some(last)) => format!("Log ({} {events}, {first} to {last})", log.len()),
        _ => format!("Log ({} {events})", log.len()),
    }
}

fn log_table() -> Table {
    Table::new(
        vec![
            Column::fixed("Time (UTC)", 58.0),
            Column::fixed("Level", 32.0),
            Column::fixed("Phase / step", 96.0),
            Column::rest("Message"),
        ],
        7.5,
    )
}

fn event_row(event: &Event) -> Row {
    let place = match (&event.phase, &event.step) {
        (Some(phase), Some(step)) => format!("{phase} / {step}"),
        (Some(phase), None) => phase.clone(),
        (None, Some(step)) => step.clone(),
        (None, None) => String::new(),
    };
    Row {
        cells: vec![
            clock_ms(event.at),
            event.level.as_str().to_owned(),
            place,
            event.message.clone(),
        ],
        color: match event.level {
            Level::Error => Some(ERROR),
            Level::Warn => Some(WARN),
            Level::Debug | Level::Info => None,
        },
    }
}
