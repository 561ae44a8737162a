//! The dashboard, end to end: a real server on a real port (SQLite, or PostgreSQL when
//! `CARTWRIGHT_TEST_DATABASE_URL` is set) with the demo shop beside it, driven in real headless
//! Chromium and over plain HTTP. Screenshots of every main page land in the folder printed at
//! the start (`target/ui-screenshots/<database>` unless `CARTWRIGHT_UI_SCREENSHOTS` names one).

#![allow(clippy::unwrap_used)] // test helpers may panic: that is how a test fails

mod assistant;
mod browser;
mod dashboard;
mod demo;
mod goods;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod http;

/// Where screenshots go; created and printed.
pub fn screenshot_dir(test: &str) -> std::path::PathBuf {
    let backend =
        if std::env::var("CARTWRIGHT_TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
            "postgres"
        } else {
            "sqlite"
        };
    let root = std::env::var_os("CARTWRIGHT_UI_SCREENSHOTS").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots"),
        std::path::PathBuf::from,
    );
    let dir = root.join(backend).join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    println!("screenshots: {}", dir.display());
    eprintln!("screenshots: {}", dir.display());
    dir
}

/// Server logs on standard error when `CARTWRIGHT_TEST_LOG` holds a filter (`info`, `debug`).
pub fn logs() {
    if let Ok(filter) = std::env::var("CARTWRIGHT_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}
