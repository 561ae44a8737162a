#![allow(clippy::unwrap_used)]
//! The reports read back with a PDF parser: what an operator looks for is there, on the pages
//! it should be on, whatever the text.

use cartwright_core::batch::{Batch, BatchStats};
use cartwright_core::ids::{AccountId, BatchId, EventId, OrderId};
use cartwright_core::order::{ErrorClass, Event, Level, Order, OrderState};
use cartwright_report::{batch_report, order_report};
use lopdf::{Document, Object};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use time::macros::datetime;

const GENERATED: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);

/// Each page's text, in page order, after checking the file is whole.
fn pages(pdf: &[u8]) -> Vec<String> {
    assert!(pdf.starts_with(b"%PDF-"), "starts with the PDF header");
    assert!(pdf.trim_ascii_end().ends_with(b"%%EOF"), "ends with %%EOF");
    let doc = Document::load_mem(pdf).unwrap();
    let numbers: Vec<u32> = doc.get_pages().keys().copied().collect();
    assert!(!numbers.is_empty());
    for (number, page_id) in doc.get_pages() {
        let fonts = doc.get_page_fonts(page_id).unwrap();
        assert_eq!(fonts.len(), 2, "page {number} uses the two Helvetica faces");
        for font in fonts.values() {
            let base = font.get(b"BaseFont").and_then(Object::as_name).unwrap();
            assert!(base == b"Helvetica" || base == b"Helvetica-Bold");
            let encoding = font.get(b"Encoding").and_then(Object::as_name).unwrap();
            assert_eq!(encoding, b"WinAnsiEncoding");
        }
    }
    numbers
        .iter()
        .map(|n| doc.extract_text(&[*n]).unwrap())
        .collect()
}

fn batch() -> Batch {
    serde_json::from_value(serde_json::json!({
        "id": 7,
        "name": "Diwali restock",
        "storefront_id": 3,
        "spec": {
            "accounts": {"storefront_id": 3, "range": {"from": 1, "to": 50}},
            "lines": [{"product_id": 11, "quantity": 2}, {"product_id": 12, "quantity": 1}],
            "repetitions": 2,
            "coupon": "best",
            "max_total": 1500
        },
        "state": "finished",
        "pause_reason": null,
        "created_by": 1,
        "counts": {"queued": 0, "running": 0, "placing": 0, "placed": 8, "failed": 3,
                   "cancelled": 1, "skipped": 0, "total": 12},
        "created_at": "2026-11-21T09:30:00Z",
        "updated_at": "2026-11-21T09:52:10Z",
        "finished_at": "2026-11-21T09:52:10Z"
    }))
    .unwrap()
}

fn stats() -> BatchStats {
    BatchStats {
        counts: batch().counts,
        failed_by_class: BTreeMap::from([("business".into(), 1), ("transient".into(), 2)]),
        placed_total_minor: 1_234_567,
        discount_minor: 50_000,
        duration_p50_ms: Some(12_480),
        duration_p95_ms: Some(185_000),
        duration_mean_ms: Some(20_100),
        placed_per_minute: Some(3.5),
    }
}

fn order(id: i64, state: OrderState) -> Order {
    let at = datetime!(2026-11-21 09:31:00 UTC);
    Order {
        id: OrderId(id),
        batch_id: BatchId(7),
        account_id: AccountId(100 + id),
        account: Some(format!("buyer{id}@example.com")),
        repetition: 1,
        state,
        attempts: 1,
        error_class: None,
        error_message: None,
        subtotal_minor: Some(159_900),
        discount_minor: Some(10_000),
        total_minor: Some(149_900),
        coupon: Some("FESTIVE10".into()),
        order_number: (state == OrderState::Placed).then(|| format!("OD-{}", 1000 + id)),
        timings: BTreeMap::from([("sign_in".into(), 1_200), ("checkout".into(), 8_450)]),
        has_screenshot: false,
        has_snapshot: false,
        created_at: at,
        updated_at: at,
        started_at: Some(at),
        placing_at: Some(at),
        finished_at: Some(datetime!(2026-11-21 09:31:42 UTC)),
        settling: None,
    }
}

fn failed(id: i64, class: ErrorClass, message: &str) -> Order {
    Order {
        error_class: Some(class),
        error_message: Some(message.into()),
        total_minor: None,
        ..order(id, OrderState::Failed)
    }
}

fn event(i: usize, level: Level, message: String) -> Event {
    let at =
        datetime!(2026-11-21 09:31:00.000 UTC) + time::Duration::milliseconds(i as i64 * 1_234);
    Event {
        id: EventId(i as i64 + 1),
        batch_id: Some(BatchId(7)),
        order_id: Some(OrderId(42)),
        rewards_run_id: None,
        account_id: Some(AccountId(142)),
        phase: Some("add_item".into()),
        step: Some(format!("2.{i}")),
        level,
        message,
        at,
    }
}

#[test]
fn batch_report_shows_the_title_figures_and_every_order() {
    let orders = vec![
        order(1, OrderState::Placed),
        order(2, OrderState::Placed),
        failed(3, ErrorClass::Business, "Out of stock: Basmati rice 5 kg"),
        failed(
            4,
            ErrorClass::Transient,
            "Timed out waiting for the cart page",
        ),
    ];
    let pdf = batch_report(&batch(), &stats(), &orders, GENERATED);
    let pages = pages(&pdf);
    assert_eq!(pages.len(), 1);
    let text = &pages[0];
    for expected in [
        "Batch 7: Diwali restock",
        "Generated 2026-11-22 10:00:00 UTC",
        "Summary",
        "finished",
        "2026-11-21 09:30:00 UTC",
        "2026-11-21 09:52:10 UTC",
        "12 in all",
        "8 placed",
        "3 failed",
        "business 1, transient 2",
        "12,345.67",
        "500.00",
        "p50 12.4 s, p95 3 min 05 s, mean 20.1 s",
        "3.50",
        "coupon best",
        "Orders (4)",
        "Order no.",
        "Message",
        "OD-1001",
        "OD-1002",
        "buyer3@example.com",
        "1,499.00",
        "Out of stock: Basmati rice 5 kg",
        "Timed out waiting for the cart page",
        "transient",
        "Page 1 of 1",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
}

#[test]
fn order_report_shows_the_summary_and_the_log() {
    let mut order = failed(
        42,
        ErrorClass::Profile,
        "No selector matched the place-order button",
    );
    order.attempts = 3;
    order.order_number = Some("OD-778".into());
    order.has_screenshot = true;
    let log = vec![
        event(0, Level::Info, "Signed in as buyer42".into()),
        event(1, Level::Debug, "Cart cleared".into()),
        event(
            2,
            Level::Warn,
            "Coupon FESTIVE10 refused, trying the next".into(),
        ),
        event(
            3,
            Level::Error,
            "No selector matched the place-order button".into(),
        ),
    ];
    let pdf = order_report(&order, &log, GENERATED);
    let pages = pages(&pdf);
    assert_eq!(pages.len(), 1);
    let text = &pages[0];
    for expected in [
        "Order 42",
        "Batch",
        "buyer42@example.com (id 142)",
        "failed",
        "OD-778",
        "1,599.00",
        "100.00",
        "FESTIVE10",
        "profile",
        "checkout 8.4 s, sign_in 1.2 s",
        "screenshot",
        "Log (4 events, 2026-11-21)",
        "Time (UTC)",
        "Phase / step",
        "09:31:00.000",
        "09:31:03.702",
        "add_item / 2.3",
        "warn",
        "Signed in as buyer42",
        "Coupon FESTIVE10 refused, trying the next",
        "No selector matched the place-order button",
        "Page 1 of 1",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
}

#[test]
fn a_long_log_runs_onto_several_pages_each_with_the_header() {
    let order = order(42, OrderState::Placed);
    let log: Vec<Event> = (0..300)
        .map(|i| event(i, Level::Info, format!("step-{i:04} done")))
        .collect();
    let pages = pages(&order_report(&order, &log, GENERATED));
    assert!(
        pages.len() >= 3,
        "300 rows need several pages, got {}",
        pages.len()
    );
    let count = pages.len();
    for (i, text) in pages.iter().enumerate() {
        assert!(text.contains("Time (UTC)"), "page {} has the header", i + 1);
        assert!(text.contains("Message"), "page {} has the header", i + 1);
        let footer = format!("Page {} of {count}", i + 1);
        assert!(text.contains(&footer), "page {} says {footer:?}", i + 1);
    }
    let all = pages.concat();
    for i in 0..300 {
        assert!(
            all.contains(&format!("step-{i:04} done")),
            "row {i} is shown"
        );
    }
    assert!(pages[0].contains("step-0000 done") && pages[count - 1].contains("step-0299 done"));
}

#[test]
fn non_latin_and_very_long_messages_render_without_panicking() {
    let foreign = "\u{20b9}1,299 \u{092c}\u{0915}\u{093e}\u{092f}\u{093e} \u{2014} \u{6ce8}\u{6587} \
                   \u{1f6d2} caf\u{e9} \u{201c}quoted\u{201d} (paren) back\\slash";
    let long = format!(
        "{} {} END",
        "the storefront answered with an unexpected page ".repeat(400),
        "x".repeat(3_000)
    );
    let mut foreign_order = failed(9, ErrorClass::Business, foreign);
    foreign_order.account = Some("\u{0930}\u{093e}\u{0939}\u{0941}\u{0932} \u{20b9}".into());
    foreign_order.coupon = Some("\u{20b9}100 OFF".into());

    let log = vec![
        event(0, Level::Error, foreign.into()),
        event(1, Level::Error, long.clone()),
        event(2, Level::Info, "after the long one".into()),
        event(3, Level::Info, "line one\nline two\r\n\ttabbed".into()),
    ];
    let text = pages(&order_report(&foreign_order, &log, GENERATED)).concat();
    assert!(
        text.contains("Rs.1,299"),
        "the rupee sign becomes Rs.:\n{text}"
    );
    assert!(text.contains("Rs.100 OFF"));
    assert!(text.contains("caf\u{e9}"), "Latin-1 letters survive");
    assert!(text.contains("\u{201c}quoted\u{201d} (paren) back\\slash"));
    assert!(text.contains('?'), "characters without a glyph become ?");
    assert!(text.contains("the storefront answered"));
    assert!(
        text.contains("after the long one"),
        "the log goes on after a long message"
    );
    assert!(text.contains("line one") && text.contains("line two"));

    let orders = vec![
        failed(1, ErrorClass::Business, foreign),
        failed(2, ErrorClass::Fatal, &long),
        order(3, OrderState::Placed),
    ];
    let mut batch = batch();
    batch.name = Some(format!("{} {}", foreign, "very long name ".repeat(30)));
    let pages = pages(&batch_report(&batch, &stats(), &orders, GENERATED));
    let text = pages.concat();
    assert!(text.contains("Batch 7: Rs.1,299"));
    assert!(
        text.contains("OD-1003"),
        "the order after the long one is shown"
    );
    assert!(text.contains(&format!("Page {} of {}", pages.len(), pages.len())));
}

#[test]
fn empty_batches_and_logs_still_make_a_report() {
    let mut batch = batch();
    batch.name = None;
    let text = pages(&batch_report(
        &batch,
        &BatchStats::default(),
        &[],
        GENERATED,
    ))
    .concat();
    assert!(text.contains("Batch 7"));
    assert!(text.contains("Orders (0)") && text.contains("No orders."));
    assert!(text.contains("0 in all") && text.contains("0.00") && text.contains("none"));

    let queued = Order {
        account: None,
        order_number: None,
        subtotal_minor: None,
        discount_minor: None,
        total_minor: None,
        coupon: None,
        timings: BTreeMap::new(),
        started_at: None,
        placing_at: None,
        finished_at: None,
        ..order(5, OrderState::Queued)
    };
    let text = pages(&order_report(&queued, &[], GENERATED)).concat();
    assert!(text.contains("Order 5") && text.contains("queued") && text.contains("id 105"));
    assert!(text.contains("Log (0 events)") && text.contains("No events."));
}
