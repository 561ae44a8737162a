//! Cartwright's persistence: one storage API, [`Store`], over SQLite (the embedded default) and
//! PostgreSQL (for teams and several worker machines). SQL is written once with `$n`
//! placeholders where both backends agree; migrations are per backend. Account cookies are
//! sealed with AES-256-GCM before they reach either.

mod accounts;
mod addresses;
mod audit;
mod backup;
mod batches;
mod channels;
mod chat;
pub mod crypto;
mod db;
mod deliveries;
mod digital;
mod events;
mod faq;
mod jobs;
mod market;
mod memo;
mod operators;
mod orders;
mod outbox;
mod page;
mod products;
mod rewards;
mod sign_ins;
mod storefronts;
#[cfg(feature = "testing")]
pub mod testing;

pub use accounts::{
    AccountFilter, AccountSort, ImportOptions, ImportReport, Selected, SelectionResult,
};
pub use audit::{Actor, AuditEntry};
pub use backup::BackupSummary;
pub use batches::BatchInputs;
pub use channels::Channel;
pub use chat::{
    AnswerRecord, AnswerSource, AnswerState, AskedCount, CHAT_REPLY_JOB, ChatMessage, Exchange,
    Handoff, NewAnswer, NewQuestion, Sender,
};
pub use crypto::{CryptoError, SecretKey};
pub use db::{Backend, DbSettings, redact_url};
pub use deliveries::{Claim, Delivery, DeliveryPage, Handed, token_hash};
pub use digital::{StockImport, StockItemView};
pub use events::EventQuery;
pub use faq::{AssistantSettings, AssistantSettingsUpdate, FaqEntry, FaqImport, LlmEndpoint};
pub use jobs::ORDER_JOB;
pub use jobs::{Job, JobCount, Lease, NewJob};
pub use market::{
    Connection, ConnectionKeys, DELIVERY_JOB, DeliveryStats, HistoryEntry, Ingested, Listing,
    MarketOrder, NewConnection, POLL_JOB, PUSH_JOB,
};
pub use operators::{LoginRecord, OperatorAuth, TokenAuth};
pub use orders::{
    Finish, Marked, OrderFilter, OrderStart, OrderTicket, Recorded, Resolution, RunRecord,
};
pub use outbox::{Prepared, SEND_JOB, Send, SendWork};
pub use page::{Cursor, Page, PageRequest, PageStart};
pub use products::ProductFilter;
pub use rewards::{REWARDS_JOB, RunWork, ScheduleTurn, SnapshotFilter};
pub use sign_ins::SignInAuth;

use cartwright_core::Invalid;
use cartwright_core::ids::OperatorId;
use crypto::Sealer;
use db::{Db, Generations, Topic};
use memo::Memo;
use std::sync::Arc;

/// What can go wrong in the store, in terms the API can answer with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("{entity} {id} does not exist")]
    NotFound {
        /// What was looked for (`account`).
        entity: &'static str,
        /// Its id.
        id: i64,
    },
    /// A unique value is already taken.
    #[error("{field} is already used by another {entity}")]
    Conflict {
        /// What was being written.
        entity: &'static str,
        /// The field whose value is taken.
        field: String,
    },
    /// The change is well-formed but the current state forbids it (e.g. removing the last
    /// admin, deleting a storefront that still has accounts).
    #[error("{message}")]
    Refused {
        /// The field the refusal is about.
        field: String,
        /// Why.
        message: String,
    },
    /// A value breaks a rule only the store can check (e.g. a reference to a missing row).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Bad connection settings.
    #[error("{0}")]
    Config(String),
    /// A stored value no longer parses or decrypts: the database was edited or the key changed.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// True when the database is busy or unreachable rather than the request being wrong:
    /// worth retrying later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
            )
        )
    }

    pub(crate) fn not_found(entity: &'static str, id: impl Into<i64>) -> Self {
        StoreError::NotFound {
            entity,
            id: id.into(),
        }
    }

    /// Maps unique and foreign-key violations of a write to `entity` onto their meaning;
    /// `reference` names the field whose foreign key a violation is about.
    pub(crate) fn on_write(
        entity: &'static str,
        reference: &'static str,
    ) -> impl Fn(sqlx::Error) -> StoreError {
        move |e| {
            if let Some(field) = db::unique_field(&e) {
                StoreError::Conflict { entity, field }
            } else if db::is_foreign_key(&e) {
                StoreError::Invalid(Invalid::new(
                    reference,
                    "refers to something that does not exist",
                ))
            } else {
                StoreError::Database(e)
            }
        }
    }
}

/// The storage API. Cheap to clone; all clones share the pools and memos.
#[derive(Clone)]
pub struct Store {
    db: Db,
    cookies: Sealer,
    /// Seals digital goods (stock items, shared content, delivery messages and links).
    goods: Sealer,
    /// Keys the fingerprints that find duplicate stock items.
    fingerprints: [u8; 32],
    generations: Arc<Generations>,
    memos: Arc<Memos>,
    job_signal: Arc<tokio::sync::Notify>,
}

/// Values read on nearly every request, remembered briefly (see [`memo`]).
struct Memos {
    operator_auth: Memo<OperatorId, Option<OperatorAuth>>,
    token_auth: Memo<Vec<u8>, Option<TokenAuth>>,
    sign_in_auth: Memo<i64, Option<SignInAuth>>,
    account_totals: Memo<String, i64>,
}

/// What cookie jars were sealed under before they were bound to their account.
const LEGACY_COOKIES_CONTEXT: &[u8] = b"cartwright/account-cookies";

/// The context bound into account `id`'s sealed cookie jar: a jar copied to another account's
/// row does not open there.
fn cookies_context(id: cartwright_core::ids::AccountId) -> Vec<u8> {
    format!("cartwright/account-cookies/{id}").into_bytes()
}

impl Store {
    /// Connects to the database `settings` names. Secrets are sealed with keys derived from `key`.
    pub async fn connect(settings: &DbSettings, key: &SecretKey) -> Result<Self, StoreError> {
        let generations = Arc::new(Generations::default());
        let memos = Arc::new(Memos {
            operator_auth: Memo::new(Topic::Operators, generations.clone()),
            token_auth: Memo::new(Topic::Tokens, generations.clone()),
            sign_in_auth: Memo::new(Topic::Operators, generations.clone()),
            account_totals: Memo::new(Topic::Accounts, generations.clone()),
        });
        let db = Db::connect(settings).await?;
        let job_signal = Arc::new(tokio::sync::Notify::new());
        if let Db::Postgres(pool) = &db {
            listen_for_jobs(pool.clone(), job_signal.clone());
        }
        Ok(Self {
            db,
            cookies: key.sealer("account-cookies"),
            goods: key.sealer("digital-goods"),
            fingerprints: key.derive("stock-fingerprints"),
            generations,
            memos,
            job_signal,
        })
    }

    /// Applies the backend's pending migrations. Safe to run from several processes at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite { write, .. } => sqlx::migrate!("./migrations/sqlite").run(write).await?,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        self.bind_legacy_cookies().await
    }

    /// Begins a write transaction.
    pub(crate) async fn begin(&self) -> Result<db::Tx, StoreError> {
        self.db.begin(&self.generations, &self.job_signal).await
    }

    /// Which backend this store runs on.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Checks that the database answers.
    pub async fn health(&self) -> Result<(), StoreError> {
        db::read!(&self.db, |c| sqlx::query("SELECT 1")
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Closes every connection; pending queries finish first.
    pub async fn close(&self) {
        self.db.close().await;
    }
}

/// Wakes this process's workers when any process on the database enqueues a job; missed
/// notifications (while the listener reconnects) only delay work until the next poll.
fn listen_for_jobs(pool: sqlx::PgPool, signal: Arc<tokio::sync::Notify>) {
    let mut notified = db::listen(pool, "cartwright_jobs");
    tokio::spawn(async move {
        while notified.recv().await.is_some() {
            signal.notify_waiters();
        }
    });
}
