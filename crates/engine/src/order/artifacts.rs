//! Failure artifacts: what the page looked like when a run failed or an order was left to a
//! person, kept for operators.

use crate::browser::Session;
use cartwright_core::ids::OrderId;
use std::path::Path;

/// Saves the page as it stands: a PNG and its HTML, under `root` (the artifacts directory);
/// their paths relative to it.
pub(super) async fn keep(
    root: &Path,
    session: &Session,
    order: OrderId,
    run: u32,
) -> (Option<String>, Option<String>) {
    let dir = format!("orders/{}", order.get());
    if let Err(e) = tokio::fs::create_dir_all(root.join(&dir)).await {
        tracing::warn!(error = %e, "cannot create the artifacts directory");
        return (None, None);
    }
    let png = format!("{dir}/run-{run}.png");
    let html = format!("{dir}/run-{run}.html");
    let shot = match session.screenshot().await {
        Ok(bytes) => tokio::fs::write(root.join(&png), bytes)
            .await
            .ok()
            .map(|_| png),
        Err(_) => None,
    };
    let page = match session.html().await {
        Ok(text) => tokio::fs::write(root.join(&html), text)
            .await
            .ok()
            .map(|_| html),
        Err(_) => None,
    };
    (shot, page)
}
