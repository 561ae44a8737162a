//! A fresh, migrated store for tests: a temporary SQLite file, or a new PostgreSQL database
//! on the server `CARTWRIGHT_TEST_DATABASE_URL` names (as CI's second pass does).

use crate::{DbSettings, SecretKey, Store, StoreError};
use sqlx::Connection;

/// A migrated store in `dir` (or on the test server), and its database's URL.
pub async fn store(dir: &std::path::Path, name: &str) -> Result<(Store, String), StoreError> {
    let url = match std::env::var("CARTWRIGHT_TEST_DATABASE_URL") {
        Ok(server) if server.starts_with("postgres") => {
            let database = format!("cw_{name}_{}_{}", std::process::id(), rand::random::<u32>());
            let mut conn = sqlx::PgConnection::connect(&server).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
                .execute(&mut conn)
                .await?;
            let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
            format!("{base}/{database}")
        }
        _ => format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
    };
    let store = Store::connect(
        &DbSettings {
            url: url.clone(),
            max_connections: 8,
        },
        &SecretKey::generate(),
    )
    .await?;
    store.migrate().await?;
    Ok((store, url))
}
