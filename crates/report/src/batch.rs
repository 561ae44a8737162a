//! The batch report: what the batch is, how it went, and every order's outcome.

use crate::format::{date_time, date_time_or_dash, duration_or_dash, money, money_or_dash};
use crate::layout::{Column, Report, Row, Table};
use cartwright_core::batch::{Batch, BatchStats, Payment};
use cartwright_core::order::{Order, OrderState};
use time::OffsetDateTime;

/// A message in the orders table shows at most this many lines: the table is an overview,
/// and the order's own report has the whole message.
const MESSAGE_LINES: usize = 10;
/// Failed orders stand out in the table.
const FAILED: [f32; 3] = [0.65, 0.0, 0.0];

pub(crate) fn render(
    batch: &Batch,
    stats: &BatchStats,
    orders: &[Order],
    generated_at: OffsetDateTime,
) -> Vec<u8> {
    let title = match &batch.name {
        Some(name) => format!("Batch {}: {name}", batch.id),
        None => format!("Batch {}", batch.id),
    };
    let mut report = Report::new(&title, generated_at);
    report.heading("Summary");
    report.table(&Table::key_values(110.0, 9.0), summary(batch, stats));
    report.heading(&format!("Orders ({})", orders.len()));
    if orders.is_empty() {
        report.table(&Table::plain(9.0), [Row::new(vec!["No orders.".into()])]);
    } else {
        report.table(&orders_table(), orders.iter().map(order_row));
    }
    report.finish()
}

fn summary(batch: &Batch, stats: &BatchStats) -> Vec<Row> {
    let c = &stats.counts;
    let state = match &batch.pause_reason {
        Some(reason) => format!("{} ({reason})", batch.state.as_str()),
        None => batch.state.as_str().to_owned(),
    };
    let failed_by_class = if stats.failed_by_class.is_empty() {
        "none".to_owned()
    } else {
        stats
            .failed_by_class
            .iter()
            .map(|(class, n)| format!("{class} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let per_minute = stats
        .placed_per_minute
        .filter(|v| v.is_finite())
        .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    let spec = &batch.spec;
    let payment = match &spec.payment {
        Payment::CashOnDelivery => "cash on delivery".to_owned(),
        Payment::Saved { label } => format!("saved method \"{}\"", label.as_str()),
    };
    let cart = format!(
        "{} line{}, {} order{} per account; coupon {}; max total {}; {payment}",
        spec.lines.len(),
        plural(spec.lines.len()),
        spec.repetitions,
        plural(spec.repetitions as usize),
        spec.coupon.as_str(),
        money(spec.max_total.minor()),
    );
    [
        ("State", state),
        ("Storefront", batch.storefront_id.to_string()),
        ("Cart", cart),
        ("Created", date_time(batch.created_at)),
        ("Finished", date_time_or_dash(batch.finished_at)),
        (
            "Orders",
            format!(
                "{} in all: {} placed, {} failed, {} cancelled, {} skipped, {} queued, \
                 {} running, {} placing",
                c.total, c.placed, c.failed, c.cancelled, c.skipped, c.queued, c.running, c.placing
            ),
        ),
        ("Failed by class", failed_by_class),
        ("Placed total", money(stats.placed_total_minor)),
        ("Discount", money(stats.discount_minor)),
        (
            "Duration",
            format!(
                "p50 {}, p95 {}, mean {}",
                duration_or_dash(stats.duration_p50_ms),
                duration_or_dash(stats.duration_p95_ms),
                duration_or_dash(stats.duration_mean_ms)
            ),
        ),
        ("Placed per minute", per_minute),
    ]
    .into_iter()
    .map(|(label, value)| Row::new(vec![label.to_owned(), value]))
    .collect()
}

fn orders_table() -> Table {
    Table::new(
        vec![
            Column::fixed("ID", 34.0),
            Column::fixed("Account", 84.0),
            Column::figures("Rep.", 24.0),
            Column::fixed("State", 44.0),
            Column::fixed("Order no.", 66.0),
            Column::figures("Total", 54.0),
            Column::fixed("Error", 58.0),
            Column::rest("Message"),
        ],
        7.5,
    )
    .max_lines(MESSAGE_LINES)
}

fn order_row(order: &Order) -> Row {
    let account = order
        .account
        .clone()
        .unwrap_or_else(|| format!("account {}", order.account_id));
    Row {
        cells: vec![
            order.id.to_string(),
            account,
            order.repetition.to_string(),
            order.state.as_str().to_owned(),
            order.order_number.clone().unwrap_or_default(),
            money_or_dash(order.total_minor),
            order
                .error_class
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            order.error_message.clone().unwrap_or_default(),
        ],
        color: (order.state == OrderState::Failed).then_some(FAILED),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
