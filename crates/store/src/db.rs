//! The two backends behind one [`Store`](crate::Store): connection set-up, the dispatch macros
//! that run one SQL text on either backend, the timestamp column type, and the mapping of
//! constraint violations to errors that name a field.

use crate::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

/// Which database to use and how many connections to keep.
#[derive(Clone)]
pub struct DbSettings {
    /// `sqlite://path/to/file.db` or `postgres://user:pass@host/db`.
    pub url: String,
    /// Upper bound of pooled connections (readers, for SQLite).
    pub max_connections: u32,
}

impl fmt::Debug for DbSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// The URL with its password replaced by `***` (in the userinfo or a `password=` query
/// parameter), for logs and error messages. A URL that does not parse is not shown at all.
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "<a database URL that does not parse>".into();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("password"))
    {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// The backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite, the default.
    Sqlite,
    /// PostgreSQL, for teams and several worker machines.
    Postgres,
}

impl Backend {
    /// Picks the backend from the URL's scheme.
    pub fn of(url: &str) -> Result<Self, String> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(format!(
                "{:?} is not a database URL: use sqlite://PATH or postgres://USER@HOST/DB",
                redact_url(url)
            ))
        }
    }
}

impl Backend {
    /// The database's own clock, now, as an expression of a timestamp column's type. Leases
    /// are judged by this one clock, never by each node's.
    pub(crate) fn clock(self) -> &'static str {
        match self {
            // The statement's time, not the transaction's: as SQLite's clock does.
            Backend::Postgres => "statement_timestamp()",
            // The fixed-width text of `Ts` (microseconds; SQLite's clock gives milliseconds).
            Backend::Sqlite => "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')",
        }
    }

    /// The day (`2026-12-06`, UTC) of the timestamp column `column`, as text.
    pub(crate) fn day_of(self, column: &str) -> String {
        match self {
            Backend::Sqlite => format!("substr({column}, 1, 10)"),
            Backend::Postgres => format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
        }
    }

    /// What ends a `SELECT … FOR UPDATE` subquery that claims rows, so that claimers in
    /// other processes skip the rows one has locked (PostgreSQL; SQLite's one writer claims
    /// alone).
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// The database's clock plus the milliseconds bound at placeholder `ms` (`$3`).
    pub(crate) fn clock_plus(self, ms: &str) -> String {
        match self {
            Backend::Postgres => {
                format!("(statement_timestamp() + {ms}::float8 * interval '1 millisecond')")
            }
            Backend::Sqlite => format!(
                "(strftime('%Y-%m-%dT%H:%M:%f', 'now', '+' || ({ms} / 1000.0) || ' seconds') || '000Z')"
            ),
        }
    }
}

/// The pools. SQLite gets a single writer connection beside its readers, so that write
/// transactions queue in-process instead of failing with `SQLITE_BUSY`.
#[derive(Clone)]
pub(crate) enum Db {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

impl Db {
    pub(crate) async fn connect(settings: &DbSettings) -> Result<Self, StoreError> {
        let backend = Backend::of(&settings.url).map_err(StoreError::Config)?;
        let max = settings.max_connections.max(1);
        match backend {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(&settings.url)
                    .map_err(|e| StoreError::Config(format!("database_url: {e}")))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
                    // Read pages through a memory map and keep more of them per connection:
                    // list pages otherwise copy every page out of the OS cache on each read.
                    .pragma("mmap_size", "268435456")
                    .pragma("cache_size", "-16384");
                let write = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options.clone())
                    .await?;
                let read = SqlitePoolOptions::new()
                    .max_connections(max)
                    .connect_with(options.read_only(true))
                    .await?;
                Ok(Db::Sqlite { read, write })
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(&settings.url)
                    .map_err(|e| StoreError::Config(format!("database_url: {e}")))?;
                let pool = PgPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                Ok(Db::Postgres(pool))
            }
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Refreshes the planner's statistics of `table` (PostgreSQL; SQLite plans without them
    /// going stale after a bulk insert).
    pub(crate) async fn analyze(&self, table: &str) {
        if let Db::Postgres(pool) = self
            && let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
                .execute(pool)
                .await
        {
            tracing::debug!(error = %e, table, "could not analyze");
        }
    }

    pub(crate) async fn begin(
        &self,
        generations: &Arc<Generations>,
        job_signal: &Arc<tokio::sync::Notify>,
    ) -> Result<Tx, StoreError> {
        let conn = match self {
            Db::Sqlite { write, .. } => TxConn::Sqlite(write.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => TxConn::Postgres(pool.begin().await?),
        };
        Ok(Tx {
            conn,
            touched: 0,
            generations: generations.clone(),
            job_signal: job_signal.clone(),
            jobs_changed: false,
        })
    }

    pub(crate) async fn close(&self) {
        match self {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// The payloads of PostgreSQL notifications on `channel`, as they arrive, from a listener that
/// reconnects by itself (what is notified while it reconnects is missed). It ends when the
/// receiver is dropped or the pool is closed.
pub(crate) fn listen(pool: PgPool, channel: &'static str) -> tokio::sync::mpsc::Receiver<String> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        while !tx.is_closed() {
            let listen = async {
                let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                listener.listen(channel).await?;
                loop {
                    let n = listener.recv().await?;
                    if tx.send(n.payload().to_owned()).await.is_err() {
                        return Ok(());
                    }
                }
            };
            let result: Result<(), sqlx::Error> = listen.await;
            if let Err(e) = result {
                if pool.is_closed() {
                    return;
                }
                tracing::debug!(error = %e, channel, "listener reconnecting");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    rx
}

/// How strongly a read row is locked until its transaction ends (PostgreSQL; SQLite's write
/// transactions are exclusive already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowLock {
    /// Against every other lock and change of the row.
    Update,
    /// Against changes and other locks, but not against inserts of rows that refer to it.
    NoKeyUpdate,
}

impl RowLock {
    /// The clause to append to a `SELECT`.
    pub(crate) fn sql(self, backend: Backend) -> &'static str {
        match (backend, self) {
            (Backend::Sqlite, _) => "",
            (Backend::Postgres, RowLock::Update) => " FOR UPDATE",
            (Backend::Postgres, RowLock::NoKeyUpdate) => " FOR NO KEY UPDATE",
        }
    }
}

/// Advisory locks, one per rule that spans rows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lock {
    /// At most one default address.
    DefaultAddress,
    /// At least one enabled admin.
    LastAdmin,
}

impl Lock {
    /// The PostgreSQL advisory lock key: "Cart" in the high bytes, to stay clear of others'.
    fn key(self) -> i64 {
        0x4361_7274_0000
            + match self {
                Lock::DefaultAddress => 1,
                Lock::LastAdmin => 2,
            }
    }
}

/// What a write changed, for the memos that must forget what they knew about it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Topic {
    Operators = 0,
    Tokens = 1,
    Accounts = 2,
    Faq = 3,
}

/// A counter per [`Topic`], bumped after every committed write that touched it. A memo keeps
/// a value only while the counter it was computed under is unchanged.
#[derive(Debug, Default)]
pub(crate) struct Generations([AtomicU64; 4]);

impl Generations {
    pub(crate) fn current(&self, topic: Topic) -> u64 {
        self.0[topic as usize].load(Ordering::Acquire)
    }
}

/// A read-only transaction: every read in it sees the database as of one moment (SQLite's
/// WAL snapshot; PostgreSQL's repeatable read). Read through it with `write!`, like a
/// [`Tx`]; dropping it ends it.
pub(crate) struct Snapshot {
    pub(crate) conn: TxConn,
}

impl Db {
    pub(crate) async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let conn = match self {
            Db::Sqlite { read, .. } => TxConn::Sqlite(read.begin().await?),
            Db::Postgres(pool) => {
                let mut t = pool.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *t)
                    .await?;
                TxConn::Postgres(t)
            }
        };
        Ok(Snapshot { conn })
    }
}

/// A write transaction on either backend. Dropping it without [`Tx::commit`] rolls back.
pub(crate) struct Tx {
    pub(crate) conn: TxConn,
    touched: u32,
    generations: Arc<Generations>,
    job_signal: Arc<tokio::sync::Notify>,
    jobs_changed: bool,
}

pub(crate) enum TxConn {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    /// The backend this transaction runs on.
    pub(crate) fn backend(&self) -> Backend {
        match self.conn {
            TxConn::Sqlite(_) => Backend::Sqlite,
            TxConn::Postgres(_) => Backend::Postgres,
        }
    }

    /// Marks `topic` as changed by this transaction.
    pub(crate) fn touch(&mut self, topic: Topic) {
        self.touched |= 1 << topic as u32;
    }

    /// Wakes idle workers once this transaction commits: it enqueued or re-queued jobs.
    pub(crate) fn notify_jobs(&mut self) {
        self.jobs_changed = true;
    }

    /// Commits, then bumps the generations of what was touched (after, so that no reader can
    /// cache the old state under the new generation) and wakes workers if jobs changed. On
    /// PostgreSQL workers in other processes are woken by a NOTIFY sent with the commit.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self.conn {
            TxConn::Sqlite(t) => t.commit().await?,
            TxConn::Postgres(mut t) => {
                if self.jobs_changed {
                    sqlx::query("NOTIFY cartwright_jobs")
                        .execute(&mut *t)
                        .await?;
                }
                t.commit().await?
            }
        }
        if self.jobs_changed {
            self.job_signal.notify_waiters();
        }
        for (i, counter) in self.generations.0.iter().enumerate() {
            if self.touched & (1 << i) != 0 {
                counter.fetch_add(1, Ordering::AcqRel);
            }
        }
        Ok(())
    }
}

/// Runs one expression against the read pool of either backend: `$c` is the executor.
macro_rules! read {
    ($db:expr, |$c:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite { read: $c, .. } => $body,
            $crate::db::Db::Postgres($c) => $body,
        }
    };
}

/// Runs one expression inside a write transaction: `$c` is the transaction's connection.
macro_rules! write {
    ($tx:expr, |$c:ident| $body:expr) => {
        match &mut ($tx).conn {
            $crate::db::TxConn::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::db::TxConn::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

/// Binds a list of [`Arg`]s to a query built from dynamic SQL, in order.
macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for arg in $args {
            q = match arg {
                $crate::db::Arg::Int(v) => q.bind(*v),
                $crate::db::Arg::Text(v) => q.bind(v.clone()),
                $crate::db::Arg::Bool(v) => q.bind(*v),
                $crate::db::Arg::Ts(v) => q.bind($crate::db::Ts(*v)),
                $crate::db::Arg::Bytes(v) => q.bind(v.clone()),
            };
        }
        q
    }};
}

pub(crate) use {bind_args, read, write};

/// A row type both backends can decode (what `#[derive(sqlx::FromRow)]` gives).
pub(crate) trait AnyRow:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + Send
    + Unpin
{
}

impl<T> AnyRow for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin
{
}

impl Db {
    /// `SELECT {columns} FROM {table} WHERE id = $1`; a missing row is `NotFound` for `entity`.
    pub(crate) async fn row_by_id<R: AnyRow>(
        &self,
        columns: &str,
        table: &str,
        id: i64,
        entity: &'static str,
    ) -> Result<R, StoreError> {
        let sql = format!("SELECT {columns} FROM {table} WHERE id = $1");
        let row: Option<R> = read!(self, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(c)
                .await
        })?;
        row.ok_or(StoreError::NotFound { entity, id })
    }
}

impl Db {
    /// Runs dynamic SQL on the read pool and decodes every row.
    pub(crate) async fn rows<R: AnyRow>(&self, sql: &Sql) -> Result<Vec<R>, StoreError> {
        Ok(read!(self, |c| {
            bind_args!(
                sqlx::query_as(sqlx::AssertSqlSafe(sql.text.clone())),
                &sql.args
            )
            .fetch_all(c)
            .await
        })?)
    }

    /// Runs dynamic SQL that yields one integer (a count).
    pub(crate) async fn int(&self, sql: &Sql) -> Result<i64, StoreError> {
        Ok(read!(self, |c| {
            bind_args!(
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.text.clone())),
                &sql.args
            )
            .fetch_one(c)
            .await
        })?)
    }
}

impl Tx {
    /// Runs dynamic SQL inside this transaction; how many rows it changed.
    pub(crate) async fn execute(&mut self, sql: &Sql) -> Result<u64, StoreError> {
        write!(self, |c| {
            bind_args!(
                sqlx::query(sqlx::AssertSqlSafe(sql.text.clone())),
                &sql.args
            )
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(StoreError::on_write("row", "id"))
    }

    /// Runs dynamic SQL inside this transaction and decodes every row.
    pub(crate) async fn rows<R: AnyRow>(&mut self, sql: &Sql) -> Result<Vec<R>, StoreError> {
        Ok(write!(self, |c| {
            bind_args!(
                sqlx::query_as(sqlx::AssertSqlSafe(sql.text.clone())),
                &sql.args
            )
            .fetch_all(c)
            .await
        })?)
    }

    /// Runs dynamic SQL inside this transaction and returns the integers of its first column
    /// (the ids an `INSERT … RETURNING id` wrote).
    pub(crate) async fn ints(&mut self, sql: &Sql) -> Result<Vec<i64>, StoreError> {
        Ok(write!(self, |c| {
            bind_args!(
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.text.clone())),
                &sql.args
            )
            .fetch_all(c)
            .await
        })?)
    }

    /// Serialises this transaction against every other that asks for the same `key`, until
    /// it ends: for rules spanning rows that row locks cannot guard (one default address, at
    /// least one admin). SQLite's write transactions are exclusive already.
    pub(crate) async fn serialize(&mut self, key: Lock) -> Result<(), StoreError> {
        if let TxConn::Postgres(t) = &mut self.conn {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(key.key())
                .execute(&mut **t)
                .await?;
        }
        Ok(())
    }

    /// Like [`Db::row_by_id`], inside this transaction; on PostgreSQL the row is locked
    /// until the transaction ends (SQLite's write transactions are exclusive already).
    pub(crate) async fn row_by_id<R: AnyRow>(
        &mut self,
        columns: &str,
        table: &str,
        id: i64,
        entity: &'static str,
    ) -> Result<R, StoreError> {
        let sql = format!(
            "SELECT {columns} FROM {table} WHERE id = $1{}",
            RowLock::Update.sql(self.backend())
        );
        let row: Option<R> = write!(self, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(c)
                .await
        })?;
        row.ok_or(StoreError::NotFound { entity, id })
    }

    /// Locks row `id` of `table` until this transaction ends, against others that lock it
    /// (PostgreSQL; SQLite's write transactions are exclusive already).
    pub(crate) async fn lock_row(
        &mut self,
        table: &str,
        id: i64,
        lock: RowLock,
    ) -> Result<(), StoreError> {
        if let TxConn::Postgres(t) = &mut self.conn {
            let sql = format!(
                "SELECT id FROM {table} WHERE id = $1{}",
                lock.sql(Backend::Postgres)
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .execute(&mut **t)
                .await?;
        }
        Ok(())
    }

    /// `DELETE FROM {table} WHERE id = $1`; a missing row is `NotFound` for `entity`.
    pub(crate) async fn delete_by_id(
        &mut self,
        table: &str,
        id: i64,
        entity: &'static str,
    ) -> Result<(), StoreError> {
        let sql = format!("DELETE FROM {table} WHERE id = $1");
        let deleted = write!(self, |c| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| {
            if is_foreign_key(&e) {
                StoreError::Refused {
                    field: "id".into(),
                    message: format!(
                        "the {entity} is still in use; delete what refers to it first"
                    ),
                }
            } else {
                e.into()
            }
        })?;
        if deleted == 0 {
            return Err(StoreError::NotFound { entity, id });
        }
        Ok(())
    }
}

/// A value bound to dynamic SQL.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
    Bool(bool),
    Ts(OffsetDateTime),
    Bytes(Vec<u8>),
}

/// Dynamic SQL with numbered `$n` placeholders, which both backends understand.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    /// The placeholder the next [`Sql::arg`] will get (`$3`), for an expression around it.
    pub(crate) fn next_placeholder(&self) -> String {
        format!("${}", self.args.len() + 1)
    }

    pub(crate) fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            args: Vec::new(),
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends `expr(placeholder)`: an expression around a placeholder bound to `arg`.
    pub(crate) fn bound(&mut self, arg: Arg, expr: impl FnOnce(&str) -> String) -> &mut Self {
        let text = expr(&self.next_placeholder());
        self.args.push(arg);
        self.push(&text)
    }

    /// Appends a placeholder bound to `arg`.
    pub(crate) fn arg(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    /// Appends `(v1, v2, …)` for `IN`, each value bound (`(NULL)` when there is none, which
    /// matches nothing).
    pub(crate) fn list(&mut self, values: impl IntoIterator<Item = i64>) -> &mut Self {
        self.push("(");
        let mut first = true;
        for v in values {
            if !first {
                self.push(", ");
            }
            first = false;
            self.arg(Arg::Int(v));
        }
        self.push(if first { "NULL)" } else { ")" })
    }

    /// Appends one row of a multi-row `VALUES` list, `(…)` with `NULL` for `None`, preceded
    /// by `, ` unless it is the first.
    pub(crate) fn values_row(
        &mut self,
        first: bool,
        values: impl IntoIterator<Item = Option<Arg>>,
    ) -> &mut Self {
        self.push(if first { "(" } else { ", (" });
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            match value {
                Some(v) => self.arg(v),
                None => self.push("NULL"),
            };
        }
        self.push(")")
    }
}

impl Sql {
    /// Appends `AND (col1 LIKE p OR col2 LIKE p …)` for a case-insensitive search of `text` in
    /// `columns`; nothing when `text` is blank.
    pub(crate) fn text_search(&mut self, text: Option<&str>, columns: &[&str]) -> &mut Self {
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            return self;
        };
        let pattern = format!("%{}%", escape_like(&text.to_lowercase()));
        self.push(" AND (");
        for (i, col) in columns.iter().enumerate() {
            if i > 0 {
                self.push(" OR ");
            }
            self.push(&format!("lower(COALESCE({col}, '')) LIKE "))
                .arg(Arg::Text(pattern.clone()))
                .push(" ESCAPE '\\'");
        }
        self.push(")")
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Wraps a row query so the database returns all its rows as one JSON array, ordered by
/// `order`: one row crosses the driver instead of one per result row, which is what makes long
/// list pages cheap. `fields` pairs each JSON key with its SQL expression over `inner`'s columns.
pub(crate) fn json_rows(
    backend: Backend,
    fields: &[(&str, &str)],
    inner: &str,
    order: &str,
) -> String {
    let pairs = fields
        .iter()
        .map(|(key, expr)| format!("'{key}', {expr}"))
        .collect::<Vec<_>>()
        .join(", ");
    match backend {
        Backend::Sqlite => {
            format!(
                "SELECT json_group_array(json_object({pairs}) ORDER BY {order}) FROM ({inner}) AS r"
            )
        }
        Backend::Postgres => format!(
            "SELECT COALESCE(json_agg(json_build_object({pairs}) ORDER BY {order}), '[]'::json)::text \
             FROM ({inner}) AS r"
        ),
    }
}

/// Deserialises a flag written as JSON `true`/`false` (PostgreSQL) or `1`/`0` (SQLite).
pub(crate) fn json_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct Flag;
    impl serde::de::Visitor<'_> for Flag {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("true, false, 1 or 0")
        }
        fn visit_bool<E>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_i64<E>(self, v: i64) -> Result<bool, E> {
            Ok(v != 0)
        }
        fn visit_u64<E>(self, v: u64) -> Result<bool, E> {
            Ok(v != 0)
        }
    }
    d.deserialize_any(Flag)
}

impl<'de> serde::Deserialize<'de> for Ts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .map(Ts)
            .map_err(serde::de::Error::custom)
    }
}

/// A timestamp column: `TIMESTAMPTZ` on PostgreSQL; on SQLite, fixed-width UTC text
/// (`2026-11-21T23:47:26.123456Z`) so that comparing and sorting the text is comparing times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ts(pub OffsetDateTime);

impl Ts {
    /// Now, truncated to microseconds (PostgreSQL's precision) so a value reads back equal.
    pub(crate) fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Ts(now
            .replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now))
    }

    fn to_sqlite_text(self) -> String {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        )
    }
}

impl From<OffsetDateTime> for Ts {
    fn from(t: OffsetDateTime) -> Self {
        Ts(t)
    }
}

impl sqlx::Type<Sqlite> for Ts {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
        <String as sqlx::Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> sqlx::Encode<'q, Sqlite> for Ts {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'q, Sqlite>>::encode(self.to_sqlite_text(), buf)
    }
}

impl<'r> sqlx::Decode<'r, Sqlite> for Ts {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<'r, Sqlite>>::decode(value)?;
        let t = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)?;
        Ok(Ts(t))
    }
}

impl sqlx::Type<Postgres> for Ts {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <OffsetDateTime as sqlx::Type<Postgres>>::type_info()
    }
    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <OffsetDateTime as sqlx::Type<Postgres>>::compatible(ty)
    }
}

impl<'q> sqlx::Encode<'q, Postgres> for Ts {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <OffsetDateTime as sqlx::Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for Ts {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Ts(<OffsetDateTime as sqlx::Decode<'r, Postgres>>::decode(
            value,
        )?))
    }
}

/// Which field a unique index guards. Indexes are named `{table}_{column}_key` and list that
/// column last: PostgreSQL reports the index name (and the table), SQLite the columns
/// (`UNIQUE constraint failed: accounts.storefront_id, accounts.email`); both give the column.
pub(crate) fn unique_field(err: &sqlx::Error) -> Option<String> {
    let db = err.as_database_error()?;
    if !db.is_unique_violation() {
        return None;
    }
    if let Some(constraint) = db.constraint() {
        let rest = db
            .table()
            .and_then(|t| constraint.strip_prefix(t)?.strip_prefix('_'))
            .unwrap_or(constraint);
        return Some(rest.strip_suffix("_key").unwrap_or(rest).to_owned());
    }
    let last = db.message().rsplit(", ").next()?;
    Some(last.rsplit('.').next()?.to_owned())
}

/// Whether the error is a foreign-key violation (a row still referenced, or a missing parent).
pub(crate) fn is_foreign_key(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_foreign_key_violation())
}

/// Reads a stored value back through its parser; a failure means the row was edited by hand.
pub(crate) fn stored<T>(column: &'static str, parsed: Result<T, String>) -> Result<T, StoreError> {
    parsed.map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// Reads an optional stored value back through its parser.
pub(crate) fn stored_opt<T>(
    column: &'static str,
    value: Option<String>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, StoreError> {
    value.map(|v| stored(column, parse(&v))).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_timestamps_sort_as_text() {
        let a = Ts(time::macros::datetime!(2026-01-02 03:04:05 UTC));
        let b = Ts(time::macros::datetime!(2026-01-02 03:04:05.5 UTC));
        assert_eq!(a.to_sqlite_text(), "2026-01-02T03:04:05.000000Z");
        assert!(a.to_sqlite_text() < b.to_sqlite_text());
    }

    #[test]
    fn urls_pick_backends_and_hide_passwords() {
        assert_eq!(Backend::of("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::of("postgresql://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert!(
            Backend::of("mysql://u:secret@h/db")
                .unwrap_err()
                .contains("***")
        );
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
    }
}
