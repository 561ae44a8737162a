//! The engine's workers: which jobs run in which lane, and the sweep that gives every open
//! order a job.

use crate::engine::Engine;
use crate::order::SESSION_CHECK_JOB;
use cartwright_jobs::{Handler, Workers};
use std::sync::Arc;

impl Engine {
    /// How many browser runs may go at once: `wanted`, capped by what memory allows (about
    /// 100 MB per context), with a warning when capped.
    pub fn browser_concurrency(wanted: usize) -> usize {
        match crate::browser::memory_cap() {
            Some(cap) if cap < wanted => {
                tracing::warn!(
                    wanted,
                    cap,
                    "capping browser concurrency to what memory allows (about 100 MB per context)"
                );
                cap
            }
            _ => wanted.max(1),
        }
    }

    /// Workers for this engine's jobs: orders and sign-in tests share the browser lane of
    /// `concurrency` contexts; rewards runs (plain HTTP, each with its own concurrency) go two
    /// at a time in their own lane.
    pub fn workers(self: &Arc<Self>, id: impl Into<String>, concurrency: usize) -> Workers {
        let orders: Arc<dyn Handler> = Arc::new(crate::order::OrderHandler(self.clone()));
        let checks: Arc<dyn Handler> = Arc::new(crate::order::SessionCheckHandler(self.clone()));
        let rewards: Arc<dyn Handler> = Arc::new(crate::rewards::RewardsHandler(self.clone()));
        Workers::new(self.store.clone(), id)
            .lane(
                "browser",
                Self::browser_concurrency(concurrency),
                vec![
                    (cartwright_store::ORDER_JOB, orders),
                    (SESSION_CHECK_JOB, checks),
                ],
            )
            .lane("http", 2, vec![(cartwright_store::REWARDS_JOB, rewards)])
            .every(self.config.sweep_every, {
                let store = self.store.clone();
                Arc::new(move || {
                    let store = store.clone();
                    Box::pin(async move {
                        match store.sweep_orders().await {
                            Ok(0) => {}
                            Ok(n) => tracing::warn!(
                                orders = n,
                                "gave a job back to orders left without one"
                            ),
                            Err(e) => tracing::warn!(error = %e, "sweeping orders failed"),
                        }
                    })
                })
            })
    }
}
