//! Cartwright's PDF reports: a batch with its figures and orders, an order with its run log.
//!
//! The reports use the standard Helvetica faces with WinAnsi encoding, so nothing is embedded
//! and the files stay small. Text is measured with the fonts' own metrics to wrap or cut it to
//! its column; characters the encoding lacks are replaced (`₹` becomes `Rs.`, others `?`).
//! Pages are A4 portrait; a table that runs onto another page repeats its header there, and
//! every page's footer says "Page n of m". Rendering has no I/O and cannot fail.

mod batch;
mod format;
mod layout;
mod order;
mod text;

use cartwright_core::batch::{Batch, BatchStats};
use cartwright_core::order::{Event, Order};
use time::OffsetDateTime;

/// A batch's report: its state, times and figures, then a table of its `orders` (id, account,
/// repetition, state, order number, total, error class, message), in the order given.
pub fn batch_report(
    batch: &Batch,
    stats: &BatchStats,
    orders: &[Order],
    generated_at: OffsetDateTime,
) -> Vec<u8> {
    batch::render(batch, stats, orders, generated_at)
}

/// An order's report: its figures, error and timings, then its run `log`, one row per event
/// (time in UTC, level, phase and step, message), in the order given.
pub fn order_report(order: &Order, log: &[Event], generated_at: OffsetDateTime) -> Vec<u8> {
    order::render(order, log, generated_at)
}
