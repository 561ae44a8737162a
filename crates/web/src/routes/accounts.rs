//! Customer accounts: CRUD, list with filters, selection preview, cookies, CSV import and
//! export, encrypted backups.

use crate::auth::{Administer, Auth, Operate, Read};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query, body_bytes};
use crate::routes::{created, page_request};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use cartwright_core::account::{Account, AccountPatch, NewAccount, SessionStatus};
use cartwright_core::account_csv;
use cartwright_core::cookies::CookieJar;
use cartwright_core::ids::{AccountId, StorefrontId};
use cartwright_core::selection::SelectionRequest;
use cartwright_core::values::Tag;
use cartwright_store::{
    AccountFilter, AccountSort, BackupSummary, ImportOptions, ImportReport, Page, SelectionResult,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module. Import and restore take uploads up to `max_upload` bytes.
pub fn router(max_upload: usize) -> OpenApiRouter<AppState> {
    let uploads = axum::extract::DefaultBodyLimit::max(max_upload);
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(set_cookies, clear_cookies))
        .routes(routes!(preview_selection))
        .routes(routes!(export))
        .routes(routes!(backup))
        .merge(OpenApiRouter::new().routes(routes!(import)).layer(uploads))
        .merge(OpenApiRouter::new().routes(routes!(restore)).layer(uploads))
}

/// Filters for account lists and exports.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    /// Page number, from 1 (lists only).
    page: Option<u32>,
    /// The previous page's `next_cursor`, instead of `page`: as fast deep in the list as at
    /// its start, and stable while accounts are added (lists only).
    cursor: Option<String>,
    /// Rows per page, 1 to 500, default 50 (lists only).
    per_page: Option<u32>,
    /// `csv` (default) or `json` (exports only).
    #[param(value_type = Option<String>)]
    format: Option<ExportFormat>,
    /// Only this storefront's accounts.
    storefront_id: Option<StorefrontId>,
    /// Only accounts with this tag.
    #[param(value_type = Option<String>)]
    tag: Option<Tag>,
    /// Only accounts in this session state: `unknown`, `ok` or `logged_out`.
    #[param(value_type = Option<String>)]
    status: Option<SessionStatus>,
    /// Only active (`true`) or inactive (`false`) accounts.
    active: Option<bool>,
    /// Text in label, name, email or phone.
    q: Option<String>,
    /// `id` (default), `label`, `name`, `email`, `points`, `last_checked_at` or `updated_at`;
    /// a leading `-` sorts descending.
    sort: Option<String>,
}

impl AccountQuery {
    fn filter(&self) -> Result<AccountFilter, ApiError> {
        let (descending, sort) = match self.sort.as_deref() {
            Some(s) => match s.strip_prefix('-') {
                Some(rest) => (true, rest.parse::<AccountSort>()),
                None => (false, s.parse()),
            },
            None => (false, Ok(AccountSort::Id)),
        };
        Ok(AccountFilter {
            storefront_id: self.storefront_id,
            tag: self.tag.clone(),
            status: self.status,
            active: self.active,
            text: self.q.clone(),
            sort: sort.map_err(|m| ApiError::invalid("sort", m))?,
            descending,
        })
    }
}

/// A page of accounts. Cookie values are never included.
#[utoipa::path(get, path = "/accounts", tag = "accounts", params(AccountQuery),
    responses((status = 200, body = Page<Account>), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    _: Auth<Read>,
    Query(query): Query<AccountQuery>,
) -> ApiResult<axum::Json<Page<Account>>> {
    if query.format.is_some() {
        return Err(ApiError::invalid("format", "only exports take a format"));
    }
    let page = page_request(query.page, query.per_page, query.cursor.as_deref())?;
    Ok(axum::Json(
        state.store.accounts(&query.filter()?, page).await?,
    ))
}

/// Adds an account.
#[utoipa::path(post, path = "/accounts", tag = "accounts", request_body = NewAccount,
    responses((status = 201, body = Account), (status = 409, description = "Email or phone taken", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Json(body): Json<NewAccount>,
) -> ApiResult<Response> {
    let account = state.store.create_account(&body).await?;
    Ok(created(format!("/api/v1/accounts/{}", account.id), account))
}

/// One account.
#[utoipa::path(get, path = "/accounts/{id}", tag = "accounts", params(("id" = i64, Path)),
    responses((status = 200, body = Account), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_one(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<AccountId>,
) -> ApiResult<axum::Json<Account>> {
    Ok(axum::Json(state.store.account(id).await?))
}

/// Changes an account. It must keep an email or a phone.
#[utoipa::path(patch, path = "/accounts/{id}", tag = "accounts", params(("id" = i64, Path)),
    request_body = AccountPatch,
    responses((status = 200, body = Account), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<AccountId>,
    Json(body): Json<AccountPatch>,
) -> ApiResult<axum::Json<Account>> {
    Ok(axum::Json(state.store.update_account(id, &body).await?))
}

/// Deletes an account.
#[utoipa::path(delete, path = "/accounts/{id}", tag = "accounts", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<AccountId>,
) -> ApiResult<StatusCode> {
    state.store.delete_account(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces an account's session cookies. The body is what a browser cookie-export extension
/// produces (a JSON array of cookies, or `{"cookies": [...]}`) or a `name=value; …` header
/// string. Cookies without a domain are bound to the storefront's host. The answer shows
/// cookie names and expiry, never values.
#[utoipa::path(put, path = "/accounts/{id}/cookies", tag = "accounts", params(("id" = i64, Path)),
    request_body(description = "A cookie export (a JSON array of cookies, or `{\"cookies\": [...]}`) or a `name=value; …` Cookie header as text",
        content(("application/json"), (String = "text/plain"))),
    responses((status = 200, body = Account), (status = 404, body = ErrorBody),
        (status = 422, description = "A cookie is malformed; `field` names it", body = ErrorBody)),
    security(("bearer" = [])))]
async fn set_cookies(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<AccountId>,
    request: Request,
) -> ApiResult<axum::Json<Account>> {
    let account = state.store.account(id).await?;
    let storefront = state.store.storefront(account.storefront_id).await?;
    let body = body_bytes(request).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::invalid("cookies", "must be UTF-8 text"))?;
    let jar = CookieJar::parse(text, &storefront.host()).map_err(|e| e.within("cookies"))?;
    Ok(axum::Json(state.store.set_cookies(id, &jar).await?))
}

/// Forgets an account's cookies.
#[utoipa::path(delete, path = "/accounts/{id}/cookies", tag = "accounts", params(("id" = i64, Path)),
    responses((status = 200, body = Account), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn clear_cookies(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<AccountId>,
) -> ApiResult<axum::Json<Account>> {
    Ok(axum::Json(state.store.clear_cookies(id).await?))
}

/// Shows who a selection covers: by 1-based position range in the order accounts were added
/// (`{"range":{"from":1,"to":50}}`, the old "users 1–50"), by ids, or by tag. Inactive
/// accounts are listed as skipped; ids or positions that do not exist are reported.
#[utoipa::path(post, path = "/accounts/selection", tag = "accounts", request_body = SelectionRequest,
    responses((status = 200, body = SelectionResult), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn preview_selection(
    State(state): State<AppState>,
    _: Auth<Read>,
    Json(body): Json<SelectionRequest>,
) -> ApiResult<axum::Json<SelectionResult>> {
    let selection = body.validate()?;
    Ok(axum::Json(state.store.select_accounts(&selection).await?))
}

/// How an import treats bad rows.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Apply nothing when any row is bad (the default).
    #[default]
    Fail,
    /// Apply the good rows, report the bad ones.
    Skip,
}

/// Import parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Storefront the accounts belong to.
    storefront_id: StorefrontId,
    /// `fail` (default) or `skip`.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    on_error: OnError,
    /// Check and count only.
    #[serde(default)]
    dry_run: bool,
}

/// An import refused: the error, and, when rows were bad, the full report (a bad query value
/// or an unreadable file has none).
#[derive(Serialize, ToSchema)]
pub struct ImportRefused {
    /// The error.
    error: crate::error::ErrorDetail,
    /// Every problem found, when rows were read.
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<ImportReport>,
}

/// Imports accounts from CSV (header row; columns `label, name, email, phone, tags, active,
/// cookies`; others are ignored and reported). Each row updates the account with its email,
/// else with its phone, else adds one. With `on_error=fail` nothing is applied when any row is
/// bad (422 with the report); with `on_error=skip` the good rows are applied.
#[utoipa::path(post, path = "/accounts/import", tag = "accounts", params(ImportQuery),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport),
        (status = 422, description = "Bad rows (with the report; nothing applied), a bad query value or an unreadable file", body = ImportRefused)),
    security(("bearer" = [])))]
async fn import(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Query(query): Query<ImportQuery>,
    request: Request,
) -> ApiResult<Response> {
    let storefront = state
        .store
        .storefront(query.storefront_id)
        .await
        .map_err(|e| match e {
            cartwright_store::StoreError::NotFound { .. } => {
                ApiError::invalid("storefront_id", "no storefront has this id")
            }
            e => e.into(),
        })?;
    let body = body_bytes(request).await?;
    let parsed = account_csv::parse(&body, &storefront.host())?;
    let options = ImportOptions {
        skip_invalid: matches!(query.on_error, OnError::Skip),
        dry_run: query.dry_run,
    };
    let report = state
        .store
        .import_accounts(storefront.id, parsed, options)
        .await?;
    if !report.applied && !report.dry_run {
        let error = crate::error::ErrorDetail {
            code: "invalid_rows",
            message: format!(
                "{} rows have problems; nothing was imported (fix them, or send on_error=skip)",
                report.rejected
            ),
            field: Some("file".into()),
        };
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(ImportRefused {
                error,
                report: Some(report),
            }),
        )
            .into_response());
    }
    Ok(axum::Json(report).into_response())
}

/// Export format.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// Comma-separated values with a header row.
    #[default]
    Csv,
    /// A JSON array of accounts.
    Json,
}

/// Exports accounts matching the filters, without cookies, as CSV (default) or JSON.
#[utoipa::path(get, path = "/accounts/export", tag = "accounts",
    params(AccountQuery),
    responses((status = 200, content_type = "text/csv", body = String)),
    security(("bearer" = [])))]
async fn export(
    State(state): State<AppState>,
    _: Auth<Read>,
    Query(query): Query<AccountQuery>,
) -> ApiResult<Response> {
    if query.page.is_some() || query.per_page.is_some() || query.cursor.is_some() {
        return Err(ApiError::invalid("page", "exports are not paged"));
    }
    let accounts = state.store.all_accounts(&query.filter()?).await?;
    Ok(match query.format.unwrap_or_default() {
        ExportFormat::Json => axum::Json(accounts).into_response(),
        ExportFormat::Csv => {
            let csv = account_csv::export(&accounts).map_err(|e| ApiError::internal(&e))?;
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"accounts.csv\"",
                    ),
                ],
                csv,
            )
                .into_response()
        }
    })
}

/// A backup request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// Seals the file; needed to restore it. At least 12 characters.
    #[schema(format = Password, min_length = 12)]
    passphrase: String,
}

/// Exports every storefront and account *with cookies*, sealed with the passphrase
/// (argon2id + AES-256-GCM). Admins only.
#[utoipa::path(post, path = "/accounts/backup", tag = "accounts", request_body = BackupRequest,
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn backup(
    State(state): State<AppState>,
    _: Auth<Administer>,
    Json(body): Json<BackupRequest>,
) -> ApiResult<Response> {
    let data = state.store.export_backup(&body.passphrase).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"cartwright-accounts.cwbackup\"",
            ),
        ],
        data,
    )
        .into_response())
}

/// A restore request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The passphrase the backup was sealed with.
    #[schema(format = Password, min_length = 12)]
    passphrase: String,
    /// The backup file, base64-encoded.
    backup: String,
}

/// Restores a backup: missing storefronts are added, accounts are upserted by email, else
/// phone, with their cookies. Admins only.
#[utoipa::path(post, path = "/accounts/restore", tag = "accounts", request_body = RestoreRequest,
    responses((status = 200, body = BackupSummary), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn restore(
    State(state): State<AppState>,
    _: Auth<Administer>,
    Json(body): Json<RestoreRequest>,
) -> ApiResult<axum::Json<BackupSummary>> {
    let data = base64::engine::general_purpose::STANDARD
        .decode(body.backup.trim())
        .map_err(|_| ApiError::invalid("backup", "must be the backup file encoded as base64"))?;
    Ok(axum::Json(
        state.store.restore_backup(&data, &body.passphrase).await?,
    ))
}
