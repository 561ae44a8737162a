//! Customer accounts: CRUD, listing, selection by position/ids/tag, sealed cookies, and the
//! CSV import's upsert.

use crate::db::{
    Arg, Sql, Topic, Ts, Tx, bind_args, escape_like, json_flag, json_rows, read, stored,
    stored_opt, write,
};
use crate::page::CursorValue;
use crate::{Cursor, Page, PageRequest, PageStart, Store, StoreError};
use cartwright_core::Invalid;
use cartwright_core::account::{
    Account, AccountPatch, NewAccount, SessionInfo, SessionStatus, require_contact,
};
use cartwright_core::account_csv::{self, AccountRow as ImportRow, ParsedImport, RowError};
use cartwright_core::cookies::{CookieInfo, CookieJar};
use cartwright_core::ids::{AccountId, StorefrontId};
use cartwright_core::selection::{AccountSelection, SelectBy};
use cartwright_core::values::{Email, Phone, Tag, Tags, Text};
use serde::Serialize;
use std::collections::HashMap;
use std::str::FromStr;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

/// An account as the import planner needs it: id, email, phone.
type Existing = (i64, Option<String>, Option<String>);

const EXISTING_SQL: &str = "SELECT id, email, phone FROM accounts WHERE storefront_id = $1";

impl ImportReport {
    /// Counts a plan into the report.
    fn add_plan(&mut self, plan: &account_csv::Plan) {
        self.errors.extend(plan.errors.iter().cloned());
        self.errors.sort_by_key(|e| e.line);
        let mut lines: Vec<usize> = self.errors.iter().map(|e| e.line).collect();
        lines.dedup();
        self.rejected = lines.len();
        self.created = plan.creates.len();
        self.updated = plan.updates.len();
    }
}

/// Which accounts a list or export covers.
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    /// Only this storefront's.
    pub storefront_id: Option<StorefrontId>,
    /// Only those with this tag.
    pub tag: Option<Tag>,
    /// Only those in this session state.
    pub status: Option<SessionStatus>,
    /// Only active (or inactive) ones.
    pub active: Option<bool>,
    /// Text found in label, name, email or phone (case-insensitive).
    pub text: Option<String>,
    /// Order.
    pub sort: AccountSort,
    /// Largest first.
    pub descending: bool,
}

/// Orders for account lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AccountSort {
    /// The order accounts were added (their positions).
    #[default]
    Id,
    /// Operator label.
    Label,
    /// Customer name.
    Name,
    /// Email.
    Email,
    /// Reward points.
    Points,
    /// Last rewards check.
    LastChecked,
    /// Last change.
    Updated,
}

impl AccountFilter {
    /// The sort's name in cursors.
    fn sort_name(&self) -> &'static str {
        self.sort.column()
    }

    /// Narrows `sql` to the rows after `cursor` in this filter's order. NULLs sort last in
    /// both directions, so the rows after a non-NULL value include every NULL.
    fn keyset(&self, cursor: &Cursor, sql: &mut Sql) -> Result<(), Invalid> {
        if cursor.sort != self.sort_name() || cursor.descending != self.descending {
            return Err(Invalid::new(
                "cursor",
                "was made for another sort; start again without it",
            ));
        }
        let (cmp, col) = (if self.descending { "<" } else { ">" }, self.sort.column());
        if self.sort == AccountSort::Id {
            sql.push(&format!(" AND id {cmp} "))
                .arg(Arg::Int(cursor.id));
            return Ok(());
        }
        let value = match (&cursor.value, self.sort) {
            (None, _) => None,
            (Some(CursorValue::Int(v)), AccountSort::Points) => Some(Arg::Int(*v)),
            (Some(CursorValue::Text(t)), AccountSort::LastChecked | AccountSort::Updated) => Some(
                OffsetDateTime::parse(t, &Rfc3339)
                    .map(Arg::Ts)
                    .map_err(|_| Invalid::new("cursor", "is not a cursor this list gave out"))?,
            ),
            (
                Some(CursorValue::Text(t)),
                AccountSort::Label | AccountSort::Name | AccountSort::Email,
            ) => Some(Arg::Text(t.clone())),
            _ => return Err(Invalid::new("cursor", "is not a cursor this list gave out")),
        };
        match value {
            Some(v) => {
                sql.push(&format!(" AND ({col} {cmp} ")).arg(v.clone());
                sql.push(&format!(" OR ({col} = ")).arg(v);
                sql.push(&format!(" AND id {cmp} "))
                    .arg(Arg::Int(cursor.id));
                sql.push(&format!(") OR {col} IS NULL)"));
            }
            None => {
                sql.push(&format!(" AND {col} IS NULL AND id {cmp} "))
                    .arg(Arg::Int(cursor.id));
            }
        }
        Ok(())
    }

    /// The cursor just after `last`.
    fn cursor_after(&self, last: &Account) -> Cursor {
        let text = |v: Option<&str>| v.map(|s| CursorValue::Text(s.to_owned()));
        let time = |t: Option<OffsetDateTime>| {
            t.and_then(|t| t.format(&Rfc3339).ok())
                .map(CursorValue::Text)
        };
        let value = match self.sort {
            AccountSort::Id => None,
            AccountSort::Label => text(last.label.as_ref().map(Text::as_str)),
            AccountSort::Name => text(last.name.as_ref().map(Text::as_str)),
            AccountSort::Email => text(last.email.as_ref().map(Email::as_str)),
            AccountSort::Points => last.points.map(CursorValue::Int),
            AccountSort::LastChecked => time(last.last_checked_at),
            AccountSort::Updated => time(Some(last.updated_at)),
        };
        Cursor {
            sort: self.sort_name().to_owned(),
            descending: self.descending,
            value,
            id: last.id.get(),
        }
    }

    /// The ORDER BY clause: the sort column, then id as a tie-breaker.
    fn order(&self) -> String {
        let dir = if self.descending { "DESC" } else { "ASC" };
        format!("{} {dir} NULLS LAST, id {dir}", self.sort.column())
    }
}

impl AccountSort {
    fn column(self) -> &'static str {
        match self {
            AccountSort::Id => "id",
            AccountSort::Label => "label",
            AccountSort::Name => "name",
            AccountSort::Email => "email",
            AccountSort::Points => "points",
            AccountSort::LastChecked => "last_checked_at",
            AccountSort::Updated => "updated_at",
        }
    }
}

impl FromStr for AccountSort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "id" | "position" => AccountSort::Id,
            "label" => AccountSort::Label,
            "name" => AccountSort::Name,
            "email" => AccountSort::Email,
            "points" => AccountSort::Points,
            "last_checked_at" => AccountSort::LastChecked,
            "updated_at" => AccountSort::Updated,
            _ => {
                return Err(format!(
                    "cannot sort by {s:?}: use id, label, name, email, points, last_checked_at or \
                     updated_at, with a leading - for descending"
                ));
            }
        })
    }
}

/// One account picked by a selection.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Selected {
    /// The account.
    pub id: AccountId,
    /// Its 1-based position among the storefront's accounts in the order they were added.
    pub position: i64,
    /// Operator label.
    pub label: Option<Text>,
    /// Sign-in email.
    pub email: Option<Email>,
    /// Sign-in phone.
    pub phone: Option<Phone>,
    /// Whether it is active.
    pub active: bool,
    /// Last observed session state.
    pub session_status: SessionStatus,
    /// Whether cookies are stored.
    pub has_cookies: bool,
}

/// An account a selection matched but will not run, and why.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Skipped {
    /// The account.
    pub account: Selected,
    /// Why it is left out.
    pub reason: String,
}

/// Who a selection covers: the accounts that will run, those matched but left out, and what
/// was asked for but does not exist.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SelectionResult {
    /// The selection, validated.
    pub selection: AccountSelection,
    /// Accounts that will run, in selection order.
    pub selected: Vec<Selected>,
    /// Accounts matched but left out.
    pub skipped: Vec<Skipped>,
    /// Requested ids or positions that do not exist in this storefront.
    pub not_found: Vec<String>,
}

/// How an import treats bad rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Apply the valid rows even when others are bad (`on_error=skip`).
    pub skip_invalid: bool,
    /// Check and count only; change nothing.
    pub dry_run: bool,
}

/// What an import did, or would do.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ImportReport {
    /// Whether changes were written.
    pub applied: bool,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Accounts added.
    pub created: usize,
    /// Accounts updated (matched by email, else phone).
    pub updated: usize,
    /// Rows rejected.
    pub rejected: usize,
    /// Every problem, by line.
    pub errors: Vec<RowError>,
    /// Header columns that were not imported.
    pub ignored_columns: Vec<String>,
}

#[derive(sqlx::FromRow, serde::Deserialize)]
struct AccountRow {
    id: i64,
    storefront_id: i64,
    label: Option<String>,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    tags: String,
    #[serde(deserialize_with = "json_flag")]
    active: bool,
    #[serde(deserialize_with = "json_flag")]
    has_cookies: bool,
    cookie_info: Option<String>,
    session_status: String,
    points: Option<i64>,
    tier: Option<String>,
    last_checked_at: Option<Ts>,
    created_at: Ts,
    updated_at: Ts,
}

/// The columns of [`AccountRow`] as JSON keys and SQL expressions, for [`json_rows`].
const ACCOUNT_FIELDS: &[(&str, &str)] = &[
    ("id", "id"),
    ("storefront_id", "storefront_id"),
    ("label", "label"),
    ("name", "name"),
    ("email", "email"),
    ("phone", "phone"),
    ("tags", "tags"),
    ("active", "active"),
    ("has_cookies", "has_cookies"),
    ("cookie_info", "cookie_info"),
    ("session_status", "session_status"),
    ("points", "points"),
    ("tier", "tier"),
    ("last_checked_at", "last_checked_at"),
    ("created_at", "created_at"),
    ("updated_at", "updated_at"),
];

const ACCOUNT_COLUMNS: &str = "id, storefront_id, label, name, email, phone, tags, active, \
    cookies IS NOT NULL AS has_cookies, cookie_info, session_status, points, tier, \
    last_checked_at, created_at, updated_at";

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<Self, StoreError> {
        let cookies: Vec<CookieInfo> = match &r.cookie_info {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| StoreError::Corrupt(format!("accounts.cookie_info: {e}")))?,
            None => Vec::new(),
        };
        Ok(Account {
            id: AccountId(r.id),
            storefront_id: StorefrontId(r.storefront_id),
            label: stored_opt("accounts.label", r.label, Text::parse)?,
            name: stored_opt("accounts.name", r.name, Text::parse)?,
            email: stored_opt("accounts.email", r.email, Email::parse)?,
            phone: stored_opt("accounts.phone", r.phone, Phone::parse)?,
            tags: Tags::from_stored(&r.tags),
            active: r.active,
            session: SessionInfo {
                status: stored("accounts.session_status", r.session_status.parse())?,
                has_cookies: r.has_cookies,
                cookies,
            },
            points: r.points,
            tier: r.tier,
            last_checked_at: r.last_checked_at.map(|t| t.0),
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

fn tag_pattern(tag: &Tag) -> String {
    format!("%,{},%", escape_like(tag.as_str()))
}

fn filter_sql(f: &AccountFilter, sql: &mut Sql) {
    sql.push(" WHERE TRUE");
    if let Some(id) = f.storefront_id {
        sql.push(" AND storefront_id = ").arg(Arg::Int(id.get()));
    }
    if let Some(tag) = &f.tag {
        sql.push(" AND (',' || tags || ',') LIKE ")
            .arg(Arg::Text(tag_pattern(tag)))
            .push(" ESCAPE '\\'");
    }
    if let Some(status) = f.status {
        sql.push(" AND session_status = ")
            .arg(Arg::Text(status.as_str().into()));
    }
    if let Some(active) = f.active {
        sql.push(" AND active = ").arg(Arg::Bool(active));
    }
    sql.text_search(f.text.as_deref(), &["label", "name", "email", "phone"]);
}

/// `jar` sealed for account `id`, and its public info.
pub(crate) fn sealed_jar(
    store: &Store,
    jar: &CookieJar,
    id: AccountId,
) -> Result<(Vec<u8>, String), StoreError> {
    let plain = serde_json::to_vec(jar).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let info =
        serde_json::to_string(&jar.info()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((
        store.cookies.seal(&plain, &crate::cookies_context(id)),
        info,
    ))
}

impl Store {
    /// Adds an account.
    pub async fn create_account(&self, new: &NewAccount) -> Result<Account, StoreError> {
        new.check()?;
        let now = Ts::now();
        let mut tx = self.begin().await?;
        tx.touch(Topic::Accounts);
        let row: AccountRow = write!(&mut tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "INSERT INTO accounts (storefront_id, label, name, email, phone, tags, active, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                 RETURNING {ACCOUNT_COLUMNS}"
            )))
            .bind(new.storefront_id.get())
            .bind(new.label.as_ref().map(Text::as_str))
            .bind(new.name.as_ref().map(Text::as_str))
            .bind(new.email.as_ref().map(Email::as_str))
            .bind(new.phone.as_ref().map(Phone::as_str))
            .bind(new.tags.to_stored())
            .bind(new.active)
            .bind(now)
            .fetch_one(c)
            .await
        })
        .map_err(StoreError::on_write("account", "storefront_id"))?;
        tx.commit().await?;
        row.try_into()
    }

    /// One account.
    pub async fn account(&self, id: AccountId) -> Result<Account, StoreError> {
        let row: AccountRow = self
            .db
            .row_by_id(ACCOUNT_COLUMNS, "accounts", id.get(), "account")
            .await?;
        row.try_into()
    }

    /// A page of accounts matching `filter`.
    pub async fn accounts(
        &self,
        filter: &AccountFilter,
        page: PageRequest,
    ) -> Result<Page<Account>, StoreError> {
        let mut count = Sql::new("SELECT COUNT(*) FROM accounts");
        filter_sql(filter, &mut count);
        let mut list = Sql::new(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts"));
        filter_sql(filter, &mut list);
        if let PageStart::After(cursor) = &page.start {
            filter.keyset(cursor, &mut list)?;
        }
        let order = filter.order();
        list.push(&format!(" ORDER BY {order} LIMIT "))
            .arg(Arg::Int(i64::from(page.per_page)));
        if let Some(offset) = page.offset() {
            list.push(" OFFSET ").arg(Arg::Int(offset));
        }
        let rows = self.account_rows(list, &order).await?;
        // Counting scans every matching row; the total of a filter is remembered briefly.
        let key = format!("{:?}", (&count.text, &count.args));
        let total = self
            .memos
            .account_totals
            .get_or(key, async {
                read!(&self.db, |c| {
                    bind_args!(
                        sqlx::query_scalar(sqlx::AssertSqlSafe(count.text.clone())),
                        &count.args
                    )
                    .fetch_one(c)
                    .await
                })
                .map_err(StoreError::from)
            })
            .await?;
        let items: Vec<Account> = rows
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<_, _>>()?;
        let next = items.last().map(|last| filter.cursor_after(last));
        Ok(page.page_of(items, total, next))
    }

    /// Every account matching `filter`, for exports.
    pub async fn all_accounts(&self, filter: &AccountFilter) -> Result<Vec<Account>, StoreError> {
        let mut list = Sql::new(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts"));
        filter_sql(filter, &mut list);
        let order = filter.order();
        list.push(&format!(" ORDER BY {order}"));
        let rows = self.account_rows(list, &order).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Runs a query over [`ACCOUNT_COLUMNS`] and returns its rows, in `order`, fetched as
    /// one JSON array.
    async fn account_rows(&self, query: Sql, order: &str) -> Result<Vec<AccountRow>, StoreError> {
        let sql = json_rows(self.backend(), ACCOUNT_FIELDS, &query.text, order);
        let json: String = read!(&self.db, |c| {
            bind_args!(
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())),
                &query.args
            )
            .fetch_one(c)
            .await
        })?;
        serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("accounts: {e}")))
    }

    /// Changes an account; it must keep an email or a phone.
    pub async fn update_account(
        &self,
        id: AccountId,
        patch: &AccountPatch,
    ) -> Result<Account, StoreError> {
        let mut tx = self.begin().await?;
        tx.touch(Topic::Accounts);
        let current: Account = tx
            .row_by_id::<AccountRow>(ACCOUNT_COLUMNS, "accounts", id.get(), "account")
            .await?
            .try_into()?;
        let email = patch.email.clone().apply(current.email);
        let phone = patch.phone.clone().apply(current.phone);
        require_contact(email.as_ref(), phone.as_ref())?;
        let label = patch.label.clone().apply(current.label);
        let name = patch.name.clone().apply(current.name);
        let tags = patch.tags.clone().unwrap_or(current.tags);
        let active = patch.active.unwrap_or(current.active);
        let row: AccountRow = write!(&mut tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE accounts SET label = $2, name = $3, email = $4, phone = $5, tags = $6, \
                 active = $7, updated_at = $8 WHERE id = $1 RETURNING {ACCOUNT_COLUMNS}"
            )))
            .bind(id.get())
            .bind(label.as_ref().map(Text::as_str))
            .bind(name.as_ref().map(Text::as_str))
            .bind(email.as_ref().map(Email::as_str))
            .bind(phone.as_ref().map(Phone::as_str))
            .bind(tags.to_stored())
            .bind(active)
            .bind(Ts::now())
            .fetch_one(c)
            .await
        })
        .map_err(StoreError::on_write("account", "storefront_id"))?;
        tx.commit().await?;
        row.try_into()
    }

    /// Deletes an account.
    pub async fn delete_account(&self, id: AccountId) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.touch(Topic::Accounts);
        tx.delete_by_id("accounts", id.get(), "account").await?;
        tx.commit().await
    }

    /// Replaces an account's cookies (sealed) and resets its session state to unknown.
    pub async fn set_cookies(&self, id: AccountId, jar: &CookieJar) -> Result<Account, StoreError> {
        let (sealed, info) = sealed_jar(self, jar, id)?;
        self.write_cookies(id, Some(sealed), Some(info), SessionStatus::Unknown)
            .await
    }

    /// Forgets an account's cookies.
    pub async fn clear_cookies(&self, id: AccountId) -> Result<Account, StoreError> {
        self.write_cookies(id, None, None, SessionStatus::Unknown)
            .await
    }

    async fn write_cookies(
        &self,
        id: AccountId,
        sealed: Option<Vec<u8>>,
        info: Option<String>,
        status: SessionStatus,
    ) -> Result<Account, StoreError> {
        let mut tx = self.begin().await?;
        tx.touch(Topic::Accounts);
        let row: Option<AccountRow> = write!(&mut tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE accounts SET cookies = $2, cookie_info = $3, session_status = $4, \
                 updated_at = $5, cookies_bound = TRUE WHERE id = $1 RETURNING {ACCOUNT_COLUMNS}"
            )))
            .bind(id.get())
            .bind(sealed)
            .bind(info)
            .bind(status.as_str())
            .bind(Ts::now())
            .fetch_optional(c)
            .await
        })?;
        tx.commit().await?;
        row.ok_or_else(|| StoreError::not_found("account", id.get()))?
            .try_into()
    }

    /// An account's cookies, unsealed, for the engine. `None` when none are stored.
    pub async fn account_cookies(&self, id: AccountId) -> Result<Option<CookieJar>, StoreError> {
        let row: Option<(Option<Vec<u8>>,)> = read!(&self.db, |c| {
            sqlx::query_as("SELECT cookies FROM accounts WHERE id = $1")
                .bind(id.get())
                .fetch_optional(c)
                .await
        })?;
        let (sealed,) = row.ok_or_else(|| StoreError::not_found("account", id.get()))?;
        sealed.map(|s| self.open_jar(id, &s)).transpose()
    }

    /// Account `id`'s sealed jar, opened: only under its own id.
    pub(crate) fn open_jar(&self, id: AccountId, sealed: &[u8]) -> Result<CookieJar, StoreError> {
        self.open_jar_in(sealed, &crate::cookies_context(id))
            .map_err(|e| StoreError::Corrupt(format!("accounts.cookies of account {id}: {e}")))
    }

    fn open_jar_in(&self, sealed: &[u8], context: &[u8]) -> Result<CookieJar, String> {
        let plain = self
            .cookies
            .open(sealed, context)
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&plain).map_err(|e| e.to_string())
    }

    /// Seals again, bound to their account, the jars sealed before jars were bound; runs at
    /// every start and finds nothing to do after the first.
    pub(crate) async fn bind_legacy_cookies(&self) -> Result<(), StoreError> {
        let mut after = 0i64;
        let mut bound = 0usize;
        loop {
            let rows: Vec<(i64, Vec<u8>)> = read!(&self.db, |c| {
                sqlx::query_as(
                    "SELECT id, cookies FROM accounts WHERE cookies IS NOT NULL \
                     AND NOT cookies_bound AND id > $1 ORDER BY id LIMIT 500",
                )
                .bind(after)
                .fetch_all(c)
                .await
            })?;
            let Some((last, _)) = rows.last() else { break };
            after = *last;
            let mut tx = self.begin().await?;
            for (id, sealed) in rows {
                let id = AccountId(id);
                let resealed = if self
                    .open_jar_in(&sealed, &crate::cookies_context(id))
                    .is_ok()
                {
                    sealed
                } else {
                    match self.open_jar_in(&sealed, crate::LEGACY_COOKIES_CONTEXT) {
                        Ok(jar) => sealed_jar(self, &jar, id)?.0,
                        Err(e) => {
                            tracing::warn!(account = %id, error = %e, "a stored cookie jar does not open; left as it is");
                            continue;
                        }
                    }
                };
                write!(&mut tx, |c| {
                    sqlx::query(
                        "UPDATE accounts SET cookies = $2, cookies_bound = TRUE WHERE id = $1",
                    )
                    .bind(id.get())
                    .bind(resealed)
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected())
                })?;
                bound += 1;
            }
            tx.commit().await?;
        }
        if bound > 0 {
            tracing::info!(
                accounts = bound,
                "bound stored cookie jars to their accounts"
            );
        }
        Ok(())
    }

    /// Resolves a selection into the accounts it covers.
    pub async fn select_accounts(
        &self,
        selection: &AccountSelection,
    ) -> Result<SelectionResult, StoreError> {
        let storefront = selection.storefront_id;
        self.storefront(storefront).await.map_err(|e| match e {
            StoreError::NotFound { .. } => Invalid::new(
                "storefront_id",
                format!("storefront {storefront} does not exist"),
            )
            .into(),
            e => e,
        })?;
        let mut sql = Sql::new(
            "SELECT id, position, label, email, phone, active, session_status, has_cookies FROM \
             (SELECT id, label, email, phone, active, session_status, tags, \
             cookies IS NOT NULL AS has_cookies, ROW_NUMBER() OVER (ORDER BY id) AS position \
             FROM accounts WHERE storefront_id = ",
        );
        sql.arg(Arg::Int(storefront.get())).push(") ranked WHERE ");
        match &selection.by {
            SelectBy::Range { from, to } => {
                sql.push("position BETWEEN ")
                    .arg(Arg::Int(i64::from(*from)))
                    .push(" AND ")
                    .arg(Arg::Int(i64::from(*to)));
            }
            SelectBy::Ids { ids } => {
                sql.push("id IN (");
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.arg(Arg::Int(id.get()));
                }
                sql.push(")");
            }
            SelectBy::Tag { tag } => {
                sql.push("(',' || tags || ',') LIKE ")
                    .arg(Arg::Text(tag_pattern(tag)))
                    .push(" ESCAPE '\\'");
            }
        }
        sql.push(" ORDER BY position");
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            position: i64,
            label: Option<String>,
            email: Option<String>,
            phone: Option<String>,
            active: bool,
            session_status: String,
            has_cookies: bool,
        }
        let rows: Vec<Row> = read!(&self.db, |c| {
            bind_args!(
                sqlx::query_as(sqlx::AssertSqlSafe(sql.text.clone())),
                &sql.args
            )
            .fetch_all(c)
            .await
        })?;
        let mut matched = rows
            .into_iter()
            .map(|r| {
                Ok(Selected {
                    id: AccountId(r.id),
                    position: r.position,
                    label: stored_opt("accounts.label", r.label, Text::parse)?,
                    email: stored_opt("accounts.email", r.email, Email::parse)?,
                    phone: stored_opt("accounts.phone", r.phone, Phone::parse)?,
                    active: r.active,
                    session_status: stored("accounts.session_status", r.session_status.parse())?,
                    has_cookies: r.has_cookies,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;

        let mut not_found = Vec::new();
        match &selection.by {
            SelectBy::Range { from, to } => {
                let expected = i64::from(*to) - i64::from(*from) + 1;
                if (matched.len() as i64) < expected {
                    let total: i64 = read!(&self.db, |c| {
                        sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE storefront_id = $1")
                            .bind(storefront.get())
                            .fetch_one(c)
                            .await
                    })?;
                    let first_missing = (total + 1).max(i64::from(*from));
                    not_found.push(format!(
                        "positions {first_missing}-{to} (the storefront has {total} accounts)"
                    ));
                }
            }
            SelectBy::Ids { ids } => {
                let order: HashMap<AccountId, usize> =
                    ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
                matched.sort_by_key(|s| order.get(&s.id).copied().unwrap_or(usize::MAX));
                let found: std::collections::HashSet<AccountId> =
                    matched.iter().map(|s| s.id).collect();
                not_found.extend(
                    ids.iter()
                        .filter(|id| !found.contains(id))
                        .map(|id| format!("account {id}")),
                );
            }
            SelectBy::Tag { .. } => {}
        }
        let (selected, inactive): (Vec<_>, Vec<_>) = matched.into_iter().partition(|s| s.active);
        Ok(SelectionResult {
            selection: selection.clone(),
            selected,
            skipped: inactive
                .into_iter()
                .map(|account| Skipped {
                    account,
                    reason: "inactive".into(),
                })
                .collect(),
            not_found,
        })
    }

    /// Upserts parsed import rows into a storefront (see [`account_csv::plan`]): a row
    /// updates the account with its email, else the one with its phone, else adds one. All
    /// rows are applied in one transaction, or none: bad rows stop the import unless
    /// `skip_invalid`. A dry run plans against a snapshot and writes nothing.
    pub async fn import_accounts(
        &self,
        storefront_id: StorefrontId,
        parsed: ParsedImport,
        options: ImportOptions,
    ) -> Result<ImportReport, StoreError> {
        let mut report = ImportReport {
            dry_run: options.dry_run,
            errors: parsed.errors,
            ignored_columns: parsed.ignored_columns,
            ..ImportReport::default()
        };
        if options.dry_run {
            let existing: Vec<Existing> = read!(&self.db, |c| {
                sqlx::query_as(EXISTING_SQL)
                    .bind(storefront_id.get())
                    .fetch_all(c)
                    .await
            })?;
            report.add_plan(&account_csv::plan(existing, parsed.rows));
            return Ok(report);
        }
        let rows = parsed.rows;
        let mut tx = self.begin().await?;
        let applied = self
            .import_in(
                &mut tx,
                storefront_id,
                rows,
                &mut report,
                options.skip_invalid,
            )
            .await?;
        if applied {
            tx.commit().await?;
        }
        report.applied = applied;
        Ok(report)
    }

    /// Plans and, unless refused, applies an import inside `tx`. Returns whether it applied.
    pub(crate) async fn import_in(
        &self,
        tx: &mut Tx,
        storefront_id: StorefrontId,
        rows: Vec<ImportRow>,
        report: &mut ImportReport,
        skip_invalid: bool,
    ) -> Result<bool, StoreError> {
        tx.touch(Topic::Accounts);
        let existing: Vec<Existing> = write!(tx, |c| sqlx::query_as(EXISTING_SQL)
            .bind(storefront_id.get())
            .fetch_all(c)
            .await)?;
        let plan = account_csv::plan(existing, rows);
        report.add_plan(&plan);
        if !report.errors.is_empty() && !skip_invalid {
            return Ok(false);
        }
        let now = Ts::now();
        let mut changes: Vec<(Option<i64>, &ImportRow)> =
            plan.updates.iter().map(|(id, r)| (Some(*id), r)).collect();
        changes.extend(plan.creates.iter().map(|r| (None, r)));
        for (target, row) in changes {
            let id: i64 = match target {
                Some(id) => write!(tx, |c| {
                    sqlx::query_scalar(
                        "UPDATE accounts SET label = COALESCE($2, label), name = COALESCE($3, name), \
                         email = COALESCE($4, email), phone = COALESCE($5, phone), \
                         tags = COALESCE($6, tags), active = COALESCE($7, active), updated_at = $8 \
                         WHERE id = $1 RETURNING id",
                    )
                    .bind(id)
                    .bind(row.label.as_ref().map(Text::as_str))
                    .bind(row.name.as_ref().map(Text::as_str))
                    .bind(row.email.as_ref().map(Email::as_str))
                    .bind(row.phone.as_ref().map(Phone::as_str))
                    .bind(row.tags.as_ref().map(Tags::to_stored))
                    .bind(row.active)
                    .bind(now)
                    .fetch_one(c)
                    .await
                }),
                None => write!(tx, |c| {
                    sqlx::query_scalar(
                        "INSERT INTO accounts (storefront_id, label, name, email, phone, tags, active, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
                    )
                    .bind(storefront_id.get())
                    .bind(row.label.as_ref().map(Text::as_str))
                    .bind(row.name.as_ref().map(Text::as_str))
                    .bind(row.email.as_ref().map(Email::as_str))
                    .bind(row.phone.as_ref().map(Phone::as_str))
                    .bind(row.tags.as_ref().map(Tags::to_stored).unwrap_or_default())
                    .bind(row.active.unwrap_or(true))
                    .bind(now)
                    .fetch_one(c)
                    .await
                }),
            }
            .map_err(StoreError::on_write("account", "storefront_id"))?;
            if let Some(jar) = &row.cookies {
                let (sealed, info) = sealed_jar(self, jar, AccountId(id))?;
                write!(tx, |c| {
                    sqlx::query(
                        "UPDATE accounts SET cookies = $2, cookie_info = $3, \
                         session_status = 'unknown', cookies_bound = TRUE WHERE id = $1",
                    )
                    .bind(id)
                    .bind(sealed.clone())
                    .bind(info.clone())
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected())
                })?;
            }
        }
        Ok(true)
    }
}

impl Store {
    /// Fills in an account's details as its storefront profile shows them (a sign-in test):
    /// only values that parse are kept; a value another account of the storefront already has
    /// is a conflict.
    pub async fn record_account_details(
        &self,
        id: AccountId,
        email: Option<&str>,
        phone: Option<&str>,
        name: Option<&str>,
    ) -> Result<cartwright_core::account::Account, StoreError> {
        use cartwright_core::patch::Patch;
        use cartwright_core::values::{Email, Phone, Text};
        let patch = cartwright_core::account::AccountPatch {
            email: email
                .and_then(|e| Email::parse(e).ok())
                .map_or(Patch::Keep, Patch::Set),
            phone: phone
                .and_then(|p| Phone::parse(p).ok())
                .map_or(Patch::Keep, Patch::Set),
            name: name
                .and_then(|n| Text::parse(n).ok())
                .map_or(Patch::Keep, Patch::Set),
            ..Default::default()
        };
        self.update_account(id, &patch).await
    }

    /// Records what a run learnt about an account's session: its state, and the cookies the
    /// storefront refreshed (sealed), when there are any.
    pub async fn record_session(
        &self,
        id: AccountId,
        status: SessionStatus,
        jar: Option<&CookieJar>,
    ) -> Result<(), StoreError> {
        let sealed = jar
            .map(|j| crate::accounts::sealed_jar(self, j, id))
            .transpose()?;
        let mut tx = self.begin().await?;
        tx.touch(crate::db::Topic::Accounts);
        let n = write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE accounts SET session_status = $2, cookies = COALESCE($3, cookies), \
                 cookie_info = COALESCE($4, cookie_info), updated_at = $5, \
                 cookies_bound = cookies_bound OR $3 IS NOT NULL WHERE id = $1",
            )
            .bind(id.get())
            .bind(status.as_str())
            .bind(sealed.as_ref().map(|(s, _)| s.clone()))
            .bind(sealed.as_ref().map(|(_, i)| i.clone()))
            .bind(Ts::now())
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(StoreError::not_found("account", id.get()));
        }
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
        assert_eq!(tag_pattern(&Tag::parse("a_b").unwrap()), "%,a\\_b,%");
    }

    #[test]
    fn sort_names() {
        assert_eq!(
            "points".parse::<AccountSort>().unwrap(),
            AccountSort::Points
        );
        assert!("password".parse::<AccountSort>().is_err());
    }
}
