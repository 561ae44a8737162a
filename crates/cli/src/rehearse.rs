//! `cartwright profile rehearse`: an order's phases up to, never including, the final click,
//! written out as a report a person reads while writing a profile for a new shop.

use crate::Settings;
use crate::run::{RunArgs, RunError, batch_from, usage};
use cartwright_core::money::show_minor as money;
use cartwright_engine::Engine;
use cartwright_engine::order::RehearsalReport;
use std::fmt::Write as _;
use std::path::Path;

/// Rehearses the order `args` describe for the first account they select; writes
/// `report.md` and a screenshot per step into `out`. True when the order was ready for the
/// final click.
pub async fn rehearse(settings: &Settings, args: RunArgs, out: &Path) -> Result<bool, RunError> {
    let key = crate::secret_key(settings)?;
    let store = crate::open_store(settings, &key).await?;
    let engine = Engine::new(store.clone(), settings.engine());
    let spec = batch_from(&store, &args).await?;
    let report = engine.rehearse_batch(&spec).await.map_err(|e| match e {
        cartwright_engine::BatchError::Store(e) => e.into(),
        e => usage(e.to_string()),
    });
    engine.shutdown().await;
    store.close().await;
    let report = report?;
    write(&report, out).map_err(|e| usage(format!("--out {}: {e}", out.display())))?;
    print!("{}", summary(&report));
    println!("report: {}", out.join("report.md").display());
    Ok(report.outcome.is_ok())
}

/// The lines printed when a rehearsal ends.
fn summary(report: &RehearsalReport) -> String {
    let mut s = String::new();
    let fell_back = report.steps.iter().filter(|r| r.fell_back()).count();
    let failed = report
        .steps
        .iter()
        .filter(|r| r.outcome.is_err() && !r.optional)
        .count();
    let _ = writeln!(
        s,
        "{} steps, {failed} failed (a step the site failed under is tried again), {fell_back} used a fallback selector",
        report.steps.len()
    );
    if let Some(t) = &report.totals {
        let _ = writeln!(s, "total {}", money(t.total_minor));
    }
    match &report.outcome {
        Ok(()) => {
            let _ = writeln!(
                s,
                "ready for the final click, which a rehearsal never makes: no order was placed"
            );
        }
        Err(f) => {
            let _ = writeln!(s, "stopped before the final click: {f}");
        }
    }
    s
}

/// Writes `report.md` and `step-NNN.png` into `out`.
fn write(report: &RehearsalReport, out: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    let mut md = String::from("# Rehearsal\n\n");
    let _ = writeln!(md, "{}", summary(report).replace('\n', "  \n"));
    if let Some(t) = &report.totals {
        let _ = writeln!(
            md,
            "Totals read: total {}, subtotal {}, discount {}; coupon {}\n",
            money(t.total_minor),
            t.subtotal_minor.map_or("—".into(), money),
            t.discount_minor.map_or("—".into(), money),
            report.coupon.as_deref().unwrap_or("none")
        );
    }
    md.push_str("| # | phase | step | what | ms | result | selector used |\n|---|---|---|---|---|---|---|\n");
    for (i, step) in report.steps.iter().enumerate() {
        let n = i + 1;
        if let Some(png) = &step.screenshot {
            std::fs::write(out.join(format!("step-{n:03}.png")), png)?;
        }
        let result = match &step.outcome {
            Ok(Some(note)) => format!("ok: {note}"),
            Ok(None) => "ok".into(),
            Err(e) if step.optional => format!("skipped (optional): {e}"),
            Err(e) => format!("**failed**: {e}"),
        };
        let used = step.matches.iter().position(|m| m.count > 0).map_or_else(
            || {
                if step.matches.is_empty() {
                    "—".into()
                } else {
                    "none matched".into()
                }
            },
            |i| {
                let m = &step.matches[i];
                let fallback = if m.alternative > 0 { " (fallback)" } else { "" };
                format!("{} × {}{fallback}", m.selector, m.count)
            },
        );
        let _ = writeln!(
            md,
            "| [{n}](step-{n:03}.png) | {} | {} | {} | {} | {} | {} |",
            step.phase.map_or("-", |p| p.as_str()),
            step.label,
            cell(&step.what),
            step.took.as_millis(),
            cell(&result),
            cell(&used)
        );
    }
    md.push_str("\n## What each selector matched\n\n");
    for (i, step) in report.steps.iter().enumerate() {
        if step.matches.is_empty() {
            continue;
        }
        let _ = writeln!(md, "### Step {} — {} ({})\n", i + 1, step.what, step.url);
        for m in &step.matches {
            let _ = writeln!(md, "- `{}`: {} match(es)", m.selector, m.count);
            if let Some(html) = &m.excerpt {
                let _ = writeln!(md, "  ```html\n  {html}\n  ```");
            }
        }
        md.push('\n');
    }
    md.push_str("## Log\n\n```\n");
    for (level, line) in &report.log {
        let _ = writeln!(md, "{} {line}", level.as_str());
    }
    md.push_str("```\n");
    std::fs::write(out.join("report.md"), md)
}

/// Text fit for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
