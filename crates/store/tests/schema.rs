//! The SQLite and PostgreSQL migrations build the same schema: the same tables, the same
//! columns with the same nullability, the same indexes. Run against PostgreSQL when
//! `CARTWRIGHT_TEST_DATABASE_URL` names a server (as CI's second pass does); the SQLite half
//! is read either way.

#![allow(clippy::unwrap_used)]

use cartwright_store::{DbSettings, SecretKey, Store};
use sqlx::{Connection, Row};
use std::collections::BTreeSet;

/// (table, column, nullable) and index names.
type Schema = (BTreeSet<(String, String, bool)>, BTreeSet<String>);

const NOT_OURS: [&str; 2] = ["_sqlx_migrations", "sqlite_sequence"];

async fn migrated(url: &str) {
    let store = Store::connect(
        &DbSettings {
            url: url.to_owned(),
            max_connections: 2,
        },
        &SecretKey::generate(),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    store.close().await;
}

async fn sqlite_schema(url: &str) -> Schema {
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut c)
            .await
            .unwrap();
    let mut columns = BTreeSet::new();
    for table in tables.iter().filter(|t| !NOT_OURS.contains(&t.as_str())) {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA table_info({table})")))
            .fetch_all(&mut c)
            .await
            .unwrap();
        for r in rows {
            let name: String = r.get("name");
            // A primary key is never null, whatever SQLite's table_info says of it.
            let nullable = r.get::<i64, _>("notnull") == 0 && r.get::<i64, _>("pk") == 0;
            columns.insert((table.clone(), name, nullable));
        }
    }
    let indexes = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap()
    .into_iter()
    .collect();
    (columns, indexes)
}

async fn postgres_schema(url: &str) -> Schema {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let columns = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, is_nullable = 'YES' AS n \
         FROM information_schema.columns WHERE table_schema = 'public'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap()
    .into_iter()
    .map(|r| {
        (
            r.get::<String, _>("t"),
            r.get::<String, _>("c"),
            r.get::<bool, _>("n"),
        )
    })
    .filter(|(t, _, _)| !NOT_OURS.contains(&t.as_str()))
    .collect();
    let indexes = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap()
    .into_iter()
    .filter(|i: &String| !i.starts_with("_sqlx"))
    .collect();
    (columns, indexes)
}

#[tokio::test]
async fn both_backends_build_the_same_tables_columns_and_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("schema.db").display());
    migrated(&sqlite).await;
    let (sqlite_columns, sqlite_indexes) = sqlite_schema(&sqlite).await;
    assert!(
        sqlite_columns.contains(&("orders".into(), "settling".into(), true)),
        "the SQLite schema was read"
    );
    let Ok(server) = std::env::var("CARTWRIGHT_TEST_DATABASE_URL") else {
        eprintln!("no PostgreSQL server named: only the SQLite schema was read");
        return;
    };
    let name = format!("cw_schema_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let postgres = format!("{}/{name}", server.rsplit_once('/').unwrap().0);
    migrated(&postgres).await;
    let (pg_columns, pg_indexes) = postgres_schema(&postgres).await;
    let only = |a: &BTreeSet<(String, String, bool)>, b: &BTreeSet<(String, String, bool)>| {
        a.difference(b).cloned().collect::<Vec<_>>()
    };
    assert!(
        sqlite_columns == pg_columns,
        "columns differ (table, column, nullable): only on SQLite {:?}; only on PostgreSQL {:?}",
        only(&sqlite_columns, &pg_columns),
        only(&pg_columns, &sqlite_columns)
    );
    assert_eq!(sqlite_indexes, pg_indexes, "indexes differ");
    eprintln!(
        "the same {} columns and {} indexes on both",
        pg_columns.len(),
        pg_indexes.len()
    );
}
