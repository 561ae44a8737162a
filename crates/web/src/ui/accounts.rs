//! Accounts: the list with search, filters, sorting and pages; the range selector with its
//! live preview; CSV import with the per-row report; cookies; sign-in tests; one account's page.

use super::api::{Api, Body};
use super::charts;
use super::error::UiError;
use super::form::{Errors, Values};
use super::parts::{Choice, OrderRow, account_name, selection_json, storefront_choices};
use super::session::{Posted, Session};
use super::view::{Chrome, Pager, count, query, when, when_opt};
use crate::state::AppState;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cartwright_core::account::{Account, SessionStatus};
use cartwright_core::ids::{AccountId, StorefrontId};
use cartwright_core::operator::Permission;
use cartwright_core::selection::SelectionRequest;
use cartwright_core::values::Tag;
use cartwright_store::{AccountFilter, AccountSort, OrderFilter, PageRequest};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// An account as a row of the list.
pub struct AccountRow {
    /// Its id.
    pub id: AccountId,
    /// Its name on pages.
    pub name: String,
    /// Email.
    pub email: String,
    /// Phone.
    pub phone: String,
    /// Tags, comma-separated.
    pub tags: String,
    /// Whether it takes part in batches.
    pub active: bool,
    /// Session state.
    pub status: &'static str,
    /// Whether cookies are kept.
    pub cookies: bool,
    /// Points, or a dash.
    pub points: String,
    /// Tier.
    pub tier: String,
    /// Last rewards check.
    pub checked: String,
}

impl From<&Account> for AccountRow {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id,
            name: account_name(
                a.label.as_ref().map(|t| t.as_str()),
                a.name.as_ref().map(|t| t.as_str()),
                a.email.as_ref().map(|e| e.as_str()),
                a.id,
            ),
            email: a.email.as_ref().map_or(String::new(), |e| e.to_string()),
            phone: a.phone.as_ref().map_or(String::new(), |p| p.to_string()),
            tags: a
                .tags
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            active: a.active,
            status: a.session.status.as_str(),
            cookies: a.session.has_cookies,
            points: a.points.map_or_else(|| "—".into(), count),
            tier: a.tier.clone().unwrap_or_default(),
            checked: when_opt(a.last_checked_at),
        }
    }
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    active: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    storefront_id: String,
    #[serde(default)]
    sort: String,
    page: Option<u32>,
    per_page: Option<u32>,
    #[serde(default)]
    notice: String,
}

/// A sortable column header.
pub struct SortLink {
    /// The column's title.
    pub title: &'static str,
    /// The link that sorts by it (toggling direction when it is the current sort).
    pub href: String,
    /// `ascending`, `descending` or `none`, for `aria-sort`.
    pub aria: &'static str,
}

#[derive(Template)]
#[template(path = "ui/accounts.html")]
struct ListPage {
    l: Chrome,
    v: Values,
    rows: Vec<AccountRow>,
    pager: Pager,
    sorts: Vec<SortLink>,
    storefronts: Vec<Choice>,
    export: String,
    error: String,
    notice: String,
}

/// `GET /accounts`.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Result<Html<String>, UiError> {
    let mut error = String::new();
    let (descending, sort_name) = match q.sort.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, q.sort.as_str()),
    };
    let sort = if sort_name.is_empty() {
        AccountSort::Id
    } else {
        sort_name.parse().unwrap_or_else(|m: String| {
            error = m;
            AccountSort::Id
        })
    };
    let tag = match q.tag.trim() {
        "" => None,
        t => match Tag::parse(t) {
            Ok(tag) => Some(tag),
            Err(m) => {
                error = format!("Tag: {m}");
                None
            }
        },
    };
    let filter = AccountFilter {
        storefront_id: q.storefront_id.trim().parse().ok().map(StorefrontId),
        tag,
        status: match q.status.as_str() {
            "ok" => Some(SessionStatus::Ok),
            "logged_out" => Some(SessionStatus::LoggedOut),
            "unknown" => Some(SessionStatus::Unknown),
            _ => None,
        },
        active: match q.active.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        text: Some(q.q.trim().to_owned()).filter(|t| !t.is_empty()),
        sort,
        descending,
    };
    let per_page = q.per_page.unwrap_or(50).clamp(1, 500);
    let page_no = q.page.unwrap_or(1).max(1);
    let list = state
        .store
        .accounts(&filter, PageRequest::number(page_no, per_page)?)
        .await?;
    let per_page_text = per_page.to_string();
    let base = [
        ("q", q.q.as_str()),
        ("status", q.status.as_str()),
        ("active", q.active.as_str()),
        ("tag", q.tag.as_str()),
        ("storefront_id", q.storefront_id.as_str()),
    ];
    let mut with_sort = base.to_vec();
    with_sort.push(("sort", q.sort.as_str()));
    if per_page != 50 {
        with_sort.push(("per_page", per_page_text.as_str()));
    }
    let sorts = [
        ("Account", "label"),
        ("Email", "email"),
        ("Points", "points"),
        ("Last check", "last_checked_at"),
    ]
    .into_iter()
    .map(|(title, key)| {
        let current = sort_name == key;
        let next = if current && !descending {
            format!("-{key}")
        } else {
            key.to_owned()
        };
        let mut pairs = base.to_vec();
        pairs.push(("sort", next.as_str()));
        SortLink {
            title,
            href: format!("?{}", query(&pairs).trim_end_matches('&')),
            aria: match (current, descending) {
                (false, _) => "none",
                (true, false) => "ascending",
                (true, true) => "descending",
            },
        }
    })
    .collect();
    let mut export_pairs = base.to_vec();
    export_pairs.push(("sort", q.sort.as_str()));
    export_pairs.push(("format", "csv"));
    let mut v = Values::default();
    for (k, val) in base {
        v.set(k, val);
    }
    v.set("sort", q.sort.clone());
    let page = ListPage {
        l: session.chrome("Accounts", "accounts"),
        v,
        rows: list.items.iter().map(AccountRow::from).collect(),
        pager: Pager::new(page_no, per_page, list.total, query(&with_sort)),
        sorts,
        storefronts: storefront_choices(&state).await?,
        export: format!(
            "/api/v1/accounts/export?{}",
            query(&export_pairs).trim_end_matches('&')
        ),
        error,
        notice: match q.notice.as_str() {
            "tests-queued" => "Sign-in tests are queued; results appear as they finish.".into(),
            _ => String::new(),
        },
    };
    Ok(Html(page.render()?))
}

/// One line of the selection preview.
pub struct PreviewRow {
    /// Position in the storefront.
    pub position: i64,
    /// Name.
    pub name: String,
    /// Session state.
    pub status: &'static str,
    /// Why it is left out ("" when selected).
    pub reason: String,
}

#[derive(Template)]
#[template(path = "ui/preview.html")]
struct PreviewFragment {
    error: String,
    selected: usize,
    skipped: usize,
    rows: Vec<PreviewRow>,
    hidden: usize,
    not_found: String,
}

/// How many preview lines are shown.
const PREVIEW_ROWS: usize = 12;

/// `POST /accounts/preview`: who a selection covers, as an HTML fragment for the selector.
pub async fn preview(
    State(state): State<AppState>,
    Posted { form, .. }: Posted,
) -> Result<Html<String>, UiError> {
    let request: Result<SelectionRequest, _> = serde_json::from_value(selection_json(&form));
    let result = match request {
        Ok(request) => match request.validate() {
            Ok(selection) => state
                .store
                .select_accounts(&selection)
                .await
                .map_err(|e| match e {
                    cartwright_store::StoreError::Invalid(i) => {
                        format!("{}: {}", i.field, i.message)
                    }
                    e => e.to_string(),
                }),
            Err(invalid) => Err(format!("{}: {}", invalid.field, invalid.message)),
        },
        Err(_) => Err("Give a storefront and whole numbers for the range.".into()),
    };
    let fragment = match result {
        Ok(r) => {
            let mut rows: Vec<PreviewRow> = r
                .selected
                .iter()
                .map(|s| PreviewRow {
                    position: s.position,
                    name: account_name(
                        s.label.as_ref().map(|t| t.as_str()),
                        None,
                        s.email.as_ref().map(|e| e.as_str()),
                        s.id,
                    ),
                    status: s.session_status.as_str(),
                    reason: String::new(),
                })
                .collect();
            rows.extend(r.skipped.iter().map(|s| PreviewRow {
                position: s.account.position,
                name: account_name(
                    s.account.label.as_ref().map(|t| t.as_str()),
                    None,
                    s.account.email.as_ref().map(|e| e.as_str()),
                    s.account.id,
                ),
                status: s.account.session_status.as_str(),
                reason: s.reason.clone(),
            }));
            rows.sort_by_key(|r| r.position);
            let hidden = rows.len().saturating_sub(PREVIEW_ROWS);
            rows.truncate(PREVIEW_ROWS);
            PreviewFragment {
                error: String::new(),
                selected: r.selected.len(),
                skipped: r.skipped.len(),
                rows,
                hidden,
                not_found: r.not_found.join(", "),
            }
        }
        Err(error) => PreviewFragment {
            error,
            selected: 0,
            skipped: 0,
            rows: Vec::new(),
            hidden: 0,
            not_found: String::new(),
        },
    };
    Ok(Html(fragment.render()?))
}

/// One problem of an import.
pub struct RowProblem {
    /// The CSV line.
    pub line: String,
    /// The column.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// What an import did.
pub struct ImportView {
    /// A sentence on the outcome.
    pub headline: String,
    /// Whether it went through without problems.
    pub clean: bool,
    /// Added.
    pub created: String,
    /// Updated.
    pub updated: String,
    /// Rejected.
    pub rejected: String,
    /// The problems, by line.
    pub problems: Vec<RowProblem>,
    /// Columns left out.
    pub ignored: String,
}

impl ImportView {
    fn from_report(report: &Value) -> Self {
        let n = |k: &str| report[k].as_i64().unwrap_or(0);
        let applied = report["applied"].as_bool().unwrap_or(false);
        let dry = report["dry_run"].as_bool().unwrap_or(false);
        let headline = if dry {
            "Dry run: nothing was written. This is what the import would do.".to_owned()
        } else if applied {
            format!(
                "Imported: {} added, {} updated.",
                n("created"),
                n("updated")
            )
        } else {
            "Nothing was imported: fix the rows below, or choose to skip bad rows.".to_owned()
        };
        Self {
            headline,
            clean: n("rejected") == 0,
            created: count(n("created")),
            updated: count(n("updated")),
            rejected: count(n("rejected")),
            problems: report["errors"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|e| RowProblem {
                            line: e["line"].to_string(),
                            field: e["field"].as_str().unwrap_or("").to_owned(),
                            message: e["message"].as_str().unwrap_or("").to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            ignored: report["ignored_columns"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "ui/import.html")]
struct ImportPage {
    l: Chrome,
    v: Values,
    e: Errors,
    storefronts: Vec<Choice>,
    report: Option<ImportView>,
}

/// `GET /accounts/import`.
pub async fn import_form(
    State(state): State<AppState>,
    session: Session,
) -> Result<Html<String>, UiError> {
    session.require(Permission::Operate)?;
    let storefronts = storefront_choices(&state).await?;
    let mut v = Values::default();
    v.set("on_error", "fail");
    if let Some(s) = storefronts.first() {
        v.set("storefront_id", s.value.clone());
    }
    let page = ImportPage {
        l: session.chrome("Import accounts", "accounts"),
        v,
        e: Errors::default(),
        storefronts,
        report: None,
    };
    Ok(Html(page.render()?))
}

/// `POST /accounts/import`: the CSV goes to the API's import; its report is shown row by row.
pub async fn import(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let path = format!(
        "/api/v1/accounts/import?{}",
        query(&[
            ("storefront_id", form.get("storefront_id")),
            (
                "on_error",
                if form.get("on_error") == "skip" {
                    "skip"
                } else {
                    "fail"
                }
            ),
            ("dry_run", if form.checked("dry_run") { "true" } else { "" }),
        ])
        .trim_end_matches('&')
    );
    let csv = form.raw("csv").as_bytes().to_vec();
    // A refused import's answer carries its report beside the error: read the whole reply.
    let reply = api
        .call(&session, Method::POST, &path, Body::Raw("text/csv", csv))
        .await?;
    reply.fatal()?;
    let json = reply.json();
    let (errors, report) = match reply.failure() {
        None => (Errors::default(), Some(ImportView::from_report(&json))),
        Some(_) if json["report"].is_object() => (
            Errors::default(),
            Some(ImportView::from_report(&json["report"])),
        ),
        Some(failure) => (
            Errors::from_failure(&failure, &["storefront_id", "csv"]),
            None,
        ),
    };
    let status = if report.as_ref().is_some_and(|r| r.clean) {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut v = form.values();
    if report.as_ref().is_some_and(|r| r.clean) && !form.checked("dry_run") {
        v.set("csv", "");
    }
    let page = ImportPage {
        l: session.chrome("Import accounts", "accounts"),
        v,
        e: errors,
        storefronts: storefront_choices(&state).await?,
        report,
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// A cookie as the account page shows it.
pub struct CookieView {
    /// Name.
    pub name: String,
    /// Domain.
    pub domain: String,
    /// Expiry.
    pub expires: String,
}

#[derive(Template)]
#[template(path = "ui/account.html")]
struct AccountPage {
    l: Chrome,
    a: AccountRow,
    storefront: String,
    cookies: Vec<CookieView>,
    orders: Vec<(i64, OrderRow)>,
    orders_total: i64,
    chart: String,
    created: String,
    e: Errors,
    v: Values,
    notice: String,
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    #[serde(default)]
    notice: String,
}

async fn account_page(
    state: &AppState,
    session: &Session,
    id: AccountId,
    e: Errors,
    v: Values,
    notice: &str,
) -> Result<Response, UiError> {
    let account = state.store.account(id).await?;
    let storefront = state.store.storefront(account.storefront_id).await?;
    let filter = OrderFilter {
        account: Some(id),
        ..Default::default()
    };
    let first = state
        .store
        .orders(&filter, &PageRequest::number(1, 50)?)
        .await?;
    // Newest first: the last page when there are more than fit.
    let orders = if first.total > 50 {
        let last = u32::try_from((first.total + 49) / 50).unwrap_or(1);
        state
            .store
            .orders(&filter, &PageRequest::number(last, 50)?)
            .await?
    } else {
        first
    };
    let mut rows: Vec<(i64, OrderRow)> = orders
        .items
        .iter()
        .map(|o| (o.batch_id.get(), OrderRow::from(o)))
        .collect();
    rows.reverse();
    let history: Vec<(String, i64)> = state
        .store
        .snapshots(&cartwright_store::SnapshotFilter {
            account: Some(id),
            limit: 1_000,
            ..Default::default()
        })
        .await?
        .iter()
        .filter_map(|s| {
            let at = s.checked_at;
            let label = format!(
                "{:02}-{:02} {:02}:{:02}",
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute()
            );
            Some((label, s.points?))
        })
        .collect();
    let chart = if history.is_empty() {
        String::new()
    } else {
        charts::line("Reward points, check by check", &history)
    };
    let status = e.status();
    let page = AccountPage {
        l: session.chrome(AccountRow::from(&account).name, "accounts"),
        storefront: storefront.name.to_string(),
        cookies: account
            .session
            .cookies
            .iter()
            .map(|c| CookieView {
                name: c.name.clone(),
                domain: c.domain.clone(),
                expires: c
                    .expires_at
                    .map_or_else(|| "end of session".to_owned(), when),
            })
            .collect(),
        a: AccountRow::from(&account),
        orders: rows,
        orders_total: orders.total,
        chart,
        created: when(account.created_at),
        e,
        v,
        notice: match notice {
            "cookies" => "Cookies saved.".into(),
            "test-queued" => "Sign-in test queued: reload in a moment to see the result.".into(),
            _ => String::new(),
        },
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// `GET /accounts/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, UiError> {
    account_page(
        &state,
        &session,
        AccountId(id),
        Errors::default(),
        Values::default(),
        &q.notice,
    )
    .await
}

/// `POST /accounts/{id}/cookies`: pasted cookies (a cookie-export JSON or a header line).
pub async fn set_cookies(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let reply = api
        .submit(
            &session,
            Method::PUT,
            &format!("/api/v1/accounts/{id}/cookies"),
            Body::Raw("text/plain", form.get("cookies").as_bytes().to_vec()),
        )
        .await?;
    match reply {
        Ok(_) => Ok(Redirect::to(&format!("/accounts/{id}?notice=cookies")).into_response()),
        Err(failure) => {
            let mut errors = Errors::from_failure(&failure, &["cookies"]);
            if !errors.has("cookies") {
                errors = Errors::from_failure(
                    &super::api::Failure {
                        field: Some("cookies".into()),
                        ..failure
                    },
                    &["cookies"],
                );
            }
            account_page(&state, &session, AccountId(id), errors, form.values(), "").await
        }
    }
}

/// `POST /accounts/{id}/test-login`, or with a selection (`select_by`, …) for many accounts.
pub async fn test_login(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let account = state.store.account(AccountId(id)).await?;
    let body = serde_json::json!({"storefront_id": account.storefront_id, "ids": [id]});
    let reply = api
        .submit(
            &session,
            Method::POST,
            "/api/v1/accounts/session-checks",
            Body::Json(body),
        )
        .await?;
    if let Err(failure) = reply {
        return account_page(
            &state,
            &session,
            AccountId(id),
            Errors::summary(failure.message),
            form.values(),
            "",
        )
        .await;
    }
    Ok(Redirect::to(&format!("/accounts/{id}?notice=test-queued")).into_response())
}

/// `POST /accounts/test-logins`: sign-in tests for every account of a selection.
pub async fn test_logins(
    Extension(api): Extension<Arc<Api>>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let reply = api
        .submit(
            &session,
            Method::POST,
            "/api/v1/accounts/session-checks",
            Body::Json(selection_json(&form)),
        )
        .await?;
    if let Err(failure) = reply {
        return Err(UiError::BadRequest(format!(
            "The selection was refused: {}",
            failure.message
        )));
    }
    Ok(Redirect::to("/accounts?notice=tests-queued").into_response())
}

/// This module's pages.
pub fn router(uploads: axum::extract::DefaultBodyLimit) -> axum::Router<AppState> {
    axum::Router::new()
        .route("/accounts", get(list))
        .route("/accounts/preview", post(preview))
        .route(
            "/accounts/import",
            get(import_form).post(import).layer(uploads),
        )
        .route("/accounts/test-logins", post(test_logins))
        .route("/accounts/{id}", get(detail))
        .route("/accounts/{id}/cookies", post(set_cookies))
        .route("/accounts/{id}/test-login", post(test_login))
}
