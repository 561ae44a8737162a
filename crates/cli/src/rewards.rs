//! `cartwright rewards`: checks the rewards points of an account selection with this
//! process's workers (beside any others on the same database), shows progress, and ends with
//! a summary and, when asked, the results as CSV. Ctrl-C cancels the run; what was checked
//! stays.

use crate::run::{RunError, pick_storefront, progress_bar, selection, usage};
use cartwright_core::order::Level;
use cartwright_core::rewards::{NewRewardsRun, RunState};
use cartwright_engine::{Engine, EventFilter};
use futures::StreamExt;
use std::path::PathBuf;
use std::time::Duration;

/// What `cartwright rewards` was asked.
#[derive(Debug, Clone)]
pub struct RewardsArgs {
    /// Storefront slug; the only storefront when absent.
    pub storefront: Option<String>,
    /// Pick the storefront by its profile's name instead.
    pub profile: Option<String>,
    /// `1-500`, `7`, `ids:3,9`, `tag:vip`.
    pub accounts: String,
    /// Checks at once (the profile's default when absent).
    pub concurrency: Option<u32>,
    /// Requests per second, below the site's limit.
    pub rate_limit: Option<f64>,
    /// Write the results here as CSV.
    pub csv: Option<PathBuf>,
}

/// Runs the checks to the end. `Ok(true)` when every account was read.
pub async fn rewards(settings: &crate::Settings, args: RewardsArgs) -> Result<bool, RunError> {
    let key = crate::secret_key(settings)?;
    let store = crate::open_store(settings, &key).await?;
    let engine = Engine::new(store.clone(), settings.engine());
    let storefront =
        pick_storefront(&store, args.storefront.as_deref(), args.profile.as_deref()).await?;
    let spec = NewRewardsRun {
        accounts: selection(storefront.id, &args.accounts)?,
        concurrency: args.concurrency,
        rate_limit: args.rate_limit,
    };
    let run = engine
        .start_rewards_run(&spec, None)
        .await
        .map_err(|e| match e {
            cartwright_store::StoreError::Invalid(i) => {
                usage(format!("{}: {}", i.field, i.message))
            }
            e => e.into(),
        })?;
    let workers = crate::start_workers(
        settings,
        &engine,
        &cartwright_commerce::Commerce::new(store.clone(), settings.commerce(settings.listen)),
    )
    .await?;
    eprintln!(
        "rewards run {} on {}: {} accounts ({} skipped), {} at once{}",
        run.id,
        storefront.slug,
        run.total,
        run.skipped,
        run.concurrency,
        run.rate_limit
            .map(|r| format!(", at most {r}/s"))
            .unwrap_or_default()
    );
    let bar = progress_bar(
        run.total,
        "{elapsed_precise} [{bar:30}] {pos}/{len} {per_sec} {msg}",
    );
    let problems = {
        let bar = bar.clone();
        let mut events = Box::pin(engine.events().stream(
            EventFilter {
                rewards_run: Some(run.id),
                min_level: Some(Level::Warn),
                ..Default::default()
            },
            None,
        ));
        tokio::spawn(async move {
            while let Some(e) = events.next().await {
                bar.println(format!("{:5} {}", e.level.as_str(), e.message));
            }
        })
    };
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let last = loop {
        tokio::select! {
            _ = &mut ctrl_c => {
                bar.println("cancelling: checks under way finish, nothing more starts");
                if let Err(e) = store.cancel_rewards_run(run.id).await {
                    bar.println(format!("could not cancel: {e}"));
                }
                ctrl_c.set(tokio::signal::ctrl_c());
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let now = store.rewards_run(run.id).await?;
        bar.set_position(u64::try_from(now.checked).unwrap_or(0));
        bar.set_message(format!(
            "ok {} logged out {} failed {}",
            now.ok, now.logged_out, now.failed
        ));
        if now.state != RunState::Running {
            break now;
        }
    };
    bar.finish_and_clear();
    workers.shutdown(crate::SHUTDOWN_GRACE).await;
    engine.shutdown().await;
    problems.abort();
    println!(
        "rewards run {}: {} {} of {} checked: {} ok, {} logged out, {} failed, {} skipped; {} points in total; {}",
        last.id,
        last.state.as_str(),
        last.checked,
        last.total,
        last.ok,
        last.logged_out,
        last.failed,
        last.skipped,
        last.points_total,
        last.duration_ms
            .map_or("-".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0)),
    );
    if let Some(path) = &args.csv {
        let all = store.run_snapshots(last.id).await?;
        let csv = cartwright_core::rewards::snapshots_csv(&all)
            .map_err(|e| usage(format!("--csv: {e}")))?;
        std::fs::write(path, csv).map_err(|e| usage(format!("--csv {}: {e}", path.display())))?;
        println!("results written to {}", path.display());
    }
    store.close().await;
    Ok(last.state == RunState::Finished && last.ok == last.total)
}
