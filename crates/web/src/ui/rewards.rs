//! Rewards: runs (start one over a selection, follow it live, its results, CSV export, total
//! points) and schedules (recurring runs).

use super::api::{Api, Body};
use super::error::UiError;
use super::form::{Errors, FormData, Values, number, without_nulls};
use super::parts::{Choice, selection_json, storefront_choices};
use super::session::{Posted, Session};
use super::view::{Chrome, count, duration_ms, when, when_opt};
use crate::state::AppState;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cartwright_core::ids::{RewardsRunId, ScheduleId};
use cartwright_core::operator::Permission;
use cartwright_core::rewards::{RewardsRun, RunState};
use cartwright_store::SnapshotFilter;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// A run as a row, or the head of its page.
pub struct RunRow {
    /// Its id.
    pub id: RewardsRunId,
    /// The storefront's name.
    pub storefront: String,
    /// Its state.
    pub state: &'static str,
    /// When it was asked for.
    pub created: String,
    /// Accounts to check.
    pub total: i64,
    /// Checked so far.
    pub checked: i64,
    /// Signed in and read.
    pub ok: i64,
    /// Signed out.
    pub logged_out: i64,
    /// Failed.
    pub failed: i64,
    /// Left out.
    pub skipped: i64,
    /// Points over the accounts read.
    pub points: String,
    /// Percent checked.
    pub progress: i64,
    /// How long it took.
    pub duration: String,
    /// Started by a schedule.
    pub scheduled: bool,
}

impl RunRow {
    fn new(r: &RewardsRun, names: &HashMap<i64, String>) -> Self {
        Self {
            id: r.id,
            storefront: names
                .get(&r.storefront_id.get())
                .cloned()
                .unwrap_or_default(),
            state: r.state.as_str(),
            created: when(r.created_at),
            total: r.total,
            checked: r.checked,
            ok: r.ok,
            logged_out: r.logged_out,
            failed: r.failed,
            skipped: r.skipped,
            points: count(r.points_total),
            progress: if r.total <= 0 {
                100
            } else {
                (r.checked + r.skipped) * 100 / r.total
            },
            duration: r.duration_ms.map_or_else(|| "—".into(), duration_ms),
            scheduled: r.schedule_id.is_some(),
        }
    }
}

async fn names(state: &AppState) -> Result<HashMap<i64, String>, UiError> {
    Ok(storefront_choices(state)
        .await?
        .into_iter()
        .filter_map(|c| Some((c.value.parse().ok()?, c.label)))
        .collect())
}

#[derive(Template)]
#[template(path = "ui/rewards.html")]
struct RunsPage {
    l: Chrome,
    runs: Vec<RunRow>,
    storefronts: Vec<Choice>,
    v: Values,
    e: Errors,
}

async fn runs_page(
    state: &AppState,
    session: &Session,
    v: Values,
    e: Errors,
) -> Result<Response, UiError> {
    let names = names(state).await?;
    let runs = state
        .store
        .rewards_runs(None, None, 50)
        .await?
        .iter()
        .map(|r| RunRow::new(r, &names))
        .collect();
    let status = e.status();
    let page = RunsPage {
        l: session.chrome("Rewards", "rewards"),
        runs,
        storefronts: storefront_choices(state).await?,
        v,
        e,
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// Every account of the first storefront.
async fn default_selection(state: &AppState, v: &mut Values) -> Result<(), UiError> {
    v.set("select_by", "range");
    v.set("from", "1");
    v.set("to", "1");
    if let Some(s) = state.store.storefronts().await?.first() {
        v.set("storefront_id", s.id.to_string());
        let filter = cartwright_store::AccountFilter {
            storefront_id: Some(s.id),
            ..Default::default()
        };
        let accounts = state
            .store
            .accounts(&filter, cartwright_store::PageRequest::number(1, 1)?)
            .await?;
        v.set("to", accounts.total.max(1).to_string());
    }
    Ok(())
}

/// `GET /rewards`: recent runs and the form to start one.
pub async fn runs(State(state): State<AppState>, session: Session) -> Result<Response, UiError> {
    let mut v = Values::default();
    default_selection(&state, &mut v).await?;
    runs_page(&state, &session, v, Errors::default()).await
}

/// The selection, concurrency and rate of a run form, as the API's run request.
fn run_json(form: &FormData) -> Value {
    let rate = match form.get("rate_limit") {
        "" => Value::Null,
        r => r.parse::<f64>().map_or_else(|_| json!(r), |n| json!(n)),
    };
    without_nulls(json!({
        "accounts": selection_json(form),
        "concurrency": number(form.get("concurrency")),
        "rate_limit": rate,
    }))
}

const RUN_FIELDS: &[&str] = &[
    "accounts.storefront_id",
    "accounts.range",
    "accounts.tag",
    "accounts.ids",
    "accounts",
    "concurrency",
    "rate_limit",
];

/// `POST /rewards`: starts a run through the API and goes to its page.
pub async fn start(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let reply = api
        .submit(
            &session,
            Method::POST,
            "/api/v1/rewards/runs",
            Body::Json(run_json(&form)),
        )
        .await?;
    match reply {
        Ok(json) => {
            let id = json["id"].as_i64().unwrap_or_default();
            Ok(Redirect::to(&format!("/rewards/runs/{id}")).into_response())
        }
        Err(failure) => {
            let errors = Errors::from_failure(&failure, RUN_FIELDS);
            runs_page(&state, &session, form.values(), errors).await
        }
    }
}

/// One result of a run.
pub struct ResultRow {
    /// The account.
    pub account_id: i64,
    /// Its name.
    pub account: String,
    /// ok, logged_out or failed.
    pub status: &'static str,
    /// Points read.
    pub points: String,
    /// Tier read.
    pub tier: String,
    /// What went wrong.
    pub error: String,
    /// How long the check took.
    pub duration: String,
}

#[derive(Template)]
#[template(path = "ui/rewards_run.html")]
struct RunPage {
    l: Chrome,
    r: RunRow,
    running: bool,
    results: String,
}

#[derive(Template)]
#[template(path = "ui/rewards_results.html")]
struct ResultsFragment {
    rows: Vec<ResultRow>,
    more: bool,
}

/// Results shown on a run's page; the CSV has them all.
const RESULT_ROWS: u32 = 500;

async fn results(state: &AppState, id: RewardsRunId) -> Result<String, UiError> {
    let snapshots = state
        .store
        .snapshots(&SnapshotFilter {
            run: Some(id),
            limit: RESULT_ROWS + 1,
            ..Default::default()
        })
        .await?;
    let more = snapshots.len() > RESULT_ROWS as usize;
    let rows = snapshots
        .iter()
        .take(RESULT_ROWS as usize)
        .map(|s| ResultRow {
            account_id: s.account_id.get(),
            account: s
                .account_label
                .clone()
                .unwrap_or_else(|| format!("account {}", s.account_id)),
            status: s.status.as_str(),
            points: s.points.map_or_else(|| "—".into(), count),
            tier: s.tier.clone().unwrap_or_default(),
            error: s.error.clone().unwrap_or_default(),
            duration: duration_ms(s.duration_ms),
        })
        .collect();
    Ok(ResultsFragment { rows, more }.render()?)
}

/// `GET /rewards/runs/{id}`.
pub async fn run(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
) -> Result<Html<String>, UiError> {
    let id = RewardsRunId(id);
    let run = state.store.rewards_run(id).await?;
    let page = RunPage {
        l: session.chrome(format!("Rewards run {id}"), "rewards"),
        running: run.state == RunState::Running,
        r: RunRow::new(&run, &names(&state).await?),
        results: results(&state, id).await?,
    };
    Ok(Html(page.render()?))
}

/// `GET /rewards/runs/{id}/live`: the run's figures and results, for its page's script.
pub async fn live(
    State(state): State<AppState>,
    _session: Session,
    Path(id): Path<i64>,
) -> Result<axum::Json<Value>, UiError> {
    let id = RewardsRunId(id);
    let run = state.store.rewards_run(id).await?;
    let r = RunRow::new(&run, &HashMap::new());
    Ok(axum::Json(json!({
        "state": r.state,
        "progress": r.progress,
        "counts": {"checked": r.checked, "ok": r.ok, "logged_out": r.logged_out,
                   "failed": r.failed, "skipped": r.skipped, "total": r.total},
        "points": r.points,
        "duration": r.duration,
        "results": results(&state, id).await?,
    })))
}

/// `POST /rewards/runs/{id}/cancel`.
pub async fn cancel(
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, .. }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let _ = api
        .submit(
            &session,
            Method::POST,
            &format!("/api/v1/rewards/runs/{id}/cancel"),
            Body::Empty,
        )
        .await?;
    Ok(Redirect::to(&format!("/rewards/runs/{id}")).into_response())
}

/// A schedule as a row.
pub struct ScheduleRow {
    /// Its id.
    pub id: ScheduleId,
    /// Name.
    pub name: String,
    /// Pattern and zone.
    pub when: String,
    /// Whether it starts runs.
    pub enabled: bool,
    /// Who it checks.
    pub who: String,
    /// The next start.
    pub next: String,
    /// The last run.
    pub last_run: Option<RewardsRunId>,
    /// When it last ran.
    pub last_at: String,
}

#[derive(Template)]
#[template(path = "ui/schedules.html")]
struct SchedulesPage {
    l: Chrome,
    rows: Vec<ScheduleRow>,
    storefronts: Vec<Choice>,
    v: Values,
    e: Errors,
}

async fn schedules_page(
    state: &AppState,
    session: &Session,
    v: Values,
    e: Errors,
) -> Result<Response, UiError> {
    let names = names(state).await?;
    let rows = state
        .store
        .schedules()
        .await?
        .into_iter()
        .map(|s| {
            let a = &s.run.accounts;
            let who = match (&a.range, &a.ids, &a.tag) {
                (Some(r), _, _) => format!("positions {} to {}", r.from, r.to),
                (_, Some(ids), _) => format!("{} accounts by id", ids.len()),
                (_, _, Some(tag)) => format!("tag {tag}"),
                _ => String::new(),
            };
            ScheduleRow {
                id: s.id,
                name: s.name.clone(),
                when: format!("{} ({})", s.cron, s.timezone),
                enabled: s.enabled,
                who: format!(
                    "{}, {who}",
                    names
                        .get(&a.storefront_id.get())
                        .cloned()
                        .unwrap_or_default()
                ),
                next: when_opt(s.next_run_at),
                last_run: s.last_run_id,
                last_at: when_opt(s.last_run_at),
            }
        })
        .collect();
    let status = e.status();
    let page = SchedulesPage {
        l: session.chrome("Schedules", "rewards"),
        rows,
        storefronts: storefront_choices(state).await?,
        v,
        e,
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// `GET /rewards/schedules`.
pub async fn schedules(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, UiError> {
    let mut v = Values::default();
    default_selection(&state, &mut v).await?;
    v.set("cron", "0 9 * * *");
    v.set("timezone", "Asia/Kolkata");
    v.set("enabled", "on");
    schedules_page(&state, &session, v, Errors::default()).await
}

/// `POST /rewards/schedules`: adds a schedule.
pub async fn schedule_create(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let body = without_nulls(json!({
        "name": form.get("name"),
        "cron": form.get("cron"),
        "timezone": form.text("timezone"),
        "enabled": form.checked("enabled"),
        "run": run_json(&form),
    }));
    let reply = api
        .submit(
            &session,
            Method::POST,
            "/api/v1/schedules",
            Body::Json(body),
        )
        .await?;
    match reply {
        Ok(_) => Ok(Redirect::to("/rewards/schedules").into_response()),
        Err(mut failure) => {
            // The run's fields are the form's own: `run.accounts.range` is `accounts.range`.
            failure.field = failure
                .field
                .map(|f| f.strip_prefix("run.").map_or(f.clone(), str::to_owned));
            let mut fields = vec!["name", "cron", "timezone"];
            fields.extend_from_slice(RUN_FIELDS);
            let errors = Errors::from_failure(&failure, &fields);
            schedules_page(&state, &session, form.values(), errors).await
        }
    }
}

/// `POST /rewards/schedules/{id}/toggle`: turns a schedule on or off.
pub async fn schedule_toggle(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, .. }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let schedule = state
        .store
        .schedules()
        .await?
        .into_iter()
        .find(|s| s.id.get() == id)
        .ok_or_else(|| UiError::NotFound("There is no such schedule.".into()))?;
    let body = json!({
        "name": schedule.name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "enabled": !schedule.enabled,
        "run": schedule.run,
    });
    let reply = api
        .submit(
            &session,
            Method::PUT,
            &format!("/api/v1/schedules/{id}"),
            Body::Json(body),
        )
        .await?;
    if let Err(failure) = reply {
        return Err(UiError::BadRequest(failure.message));
    }
    Ok(Redirect::to("/rewards/schedules").into_response())
}

/// `POST /rewards/schedules/{id}/delete`.
pub async fn schedule_delete(
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, .. }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let _ = api
        .submit(
            &session,
            Method::DELETE,
            &format!("/api/v1/schedules/{id}"),
            Body::Empty,
        )
        .await?;
    Ok(Redirect::to("/rewards/schedules").into_response())
}

/// This module's pages.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/rewards", get(runs).post(start))
        .route("/rewards/runs/{id}", get(run))
        .route("/rewards/runs/{id}/live", get(live))
        .route("/rewards/runs/{id}/cancel", post(cancel))
        .route("/rewards/schedules", get(schedules).post(schedule_create))
        .route("/rewards/schedules/{id}/toggle", post(schedule_toggle))
        .route("/rewards/schedules/{id}/delete", post(schedule_delete))
}
