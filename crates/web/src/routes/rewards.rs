//! Rewards checks: start a run over an account selection, follow it (also live, as events),
//! read and export its results, cancel it; each account's rewards history; schedules that
//! start runs by a cron pattern.

use crate::auth::{Auth, Operate, Read};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::routes::created;
use crate::state::AppState;
use crate::streams::Live;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use cartwright_core::ids::{AccountId, EventId, RewardsRunId, ScheduleId, StorefrontId};
use cartwright_core::order::{Event, Level};
use cartwright_core::rewards::{
    CheckStatus, NewRewardsRun, NewSchedule, RewardsRun, RunState, Schedule, Snapshot,
};
use cartwright_engine::EventFilter;
use cartwright_store::SnapshotFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_runs, start_run))
        .routes(routes!(get_run))
        .routes(routes!(cancel_run))
        .routes(routes!(run_results))
        .routes(routes!(run_results_csv))
        .routes(routes!(run_events))
        .routes(routes!(account_history))
        .routes(routes!(points_by_day))
        .routes(routes!(list_schedules, create_schedule))
        .routes(routes!(get_schedule, update_schedule, delete_schedule))
}

/// Which runs to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// Only this storefront's runs.
    storefront_id: Option<StorefrontId>,
    /// Runs older than this one (the last id of the previous page).
    before: Option<RewardsRunId>,
    /// At most this many, 1 to 500, default 50.
    limit: Option<u32>,
}

/// Rewards runs, newest first.
#[utoipa::path(get, path = "/rewards/runs", tag = "rewards", params(RunsQuery),
    responses((status = 200, body = Vec<RewardsRun>)), security(("bearer" = [])))]
async fn list_runs(
    State(state): State<AppState>,
    _: Auth<Read>,
    Query(q): Query<RunsQuery>,
) -> ApiResult<axum::Json<Vec<RewardsRun>>> {
    Ok(axum::Json(
        state
            .store
            .rewards_runs(q.storefront_id, q.before, q.limit.unwrap_or(50))
            .await?,
    ))
}

/// Starts a rewards run: every selected account's points and tier read over plain HTTP with
/// its own cookies, at the run's concurrency, within the site's rate limit (and the run's, when
/// lower). Accounts inactive or without cookies are counted as skipped.
#[utoipa::path(post, path = "/rewards/runs", tag = "rewards", request_body = NewRewardsRun,
    responses((status = 201, body = RewardsRun), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn start_run(
    State(state): State<AppState>,
    auth: Auth<Operate>,
    Json(body): Json<NewRewardsRun>,
) -> ApiResult<Response> {
    let run = state
        .engine
        .start_rewards_run(&body, auth.0.operator())
        .await?;
    Ok(created(format!("/api/v1/rewards/runs/{}", run.id), run))
}

/// One run with its summary so far: counts by status, total points, duration.
#[utoipa::path(get, path = "/rewards/runs/{id}", tag = "rewards", params(("id" = i64, Path)),
    responses((status = 200, body = RewardsRun), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_run(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<RewardsRunId>,
) -> ApiResult<axum::Json<RewardsRun>> {
    Ok(axum::Json(state.store.rewards_run(id).await?))
}

/// Cancels a running run: checks under way finish and are kept, nothing more starts.
#[utoipa::path(post, path = "/rewards/runs/{id}/cancel", tag = "rewards", params(("id" = i64, Path)),
    responses((status = 200, body = RewardsRun), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn cancel_run(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<RewardsRunId>,
) -> ApiResult<axum::Json<RewardsRun>> {
    Ok(axum::Json(state.store.cancel_rewards_run(id).await?))
}

/// Which results to read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    /// Only this status: ok, logged_out, failed.
    #[param(value_type = Option<String>)]
    status: Option<CheckStatus>,
    /// Results after this snapshot id (the last id of the previous page).
    after: Option<i64>,
    /// At most this many, 1 to 10,000, default 1,000.
    limit: Option<u32>,
}

/// A run's results so far, in the order they were recorded.
#[utoipa::path(get, path = "/rewards/runs/{id}/results", tag = "rewards", params(("id" = i64, Path), ResultsQuery),
    responses((status = 200, body = Vec<Snapshot>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn run_results(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<RewardsRunId>,
    Query(q): Query<ResultsQuery>,
) -> ApiResult<axum::Json<Vec<Snapshot>>> {
    state.store.rewards_run(id).await?;
    Ok(axum::Json(
        state
            .store
            .snapshots(&SnapshotFilter {
                run: Some(id),
                status: q.status,
                after: q.after,
                limit: q.limit.unwrap_or(1_000),
                ..Default::default()
            })
            .await?,
    ))
}

/// A run's results as CSV (spreadsheet-safe), every row.
#[utoipa::path(get, path = "/rewards/runs/{id}/results.csv", tag = "rewards", params(("id" = i64, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn run_results_csv(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<RewardsRunId>,
) -> ApiResult<Response> {
    state.store.rewards_run(id).await?;
    let all = state.store.run_snapshots(id).await?;
    let csv = cartwright_core::rewards::snapshots_csv(&all).map_err(|e| ApiError::internal(&e))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"rewards-run-{id}.csv\""),
            ),
        ],
        csv,
    )
        .into_response())
}

/// Which events a run's stream carries.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunEventsQuery {
    /// Only events at least this loud: debug, info, warn, error.
    #[param(value_type = Option<String>)]
    level: Option<Level>,
    /// Start after this event id.
    after: Option<EventId>,
    /// The bearer token, for clients that cannot send headers (read by the authentication).
    #[serde(rename = "access_token")]
    _access_token: Option<String>,
}

/// A run's progress as server-sent events: the stored ones first (after `Last-Event-ID` when
/// reconnecting), then each new one.
#[utoipa::path(get, path = "/rewards/runs/{id}/events", tag = "rewards", params(("id" = i64, Path), RunEventsQuery),
    responses(
        (status = 200, content_type = "text/event-stream", description = "`event: event` with an Event as data, one per event; `event: end` with `{\"state\"}` last, once the run is final", body = Event),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, description = "Too many live streams open", body = ErrorBody)),
    security(("bearer" = [])))]
async fn run_events(
    State(state): State<AppState>,
    live: Live,
    Path(id): Path<RewardsRunId>,
    headers: HeaderMap,
    Query(q): Query<RunEventsQuery>,
) -> ApiResult<Response> {
    state.store.rewards_run(id).await?;
    let filter = EventFilter {
        rewards_run: Some(id),
        min_level: q.level,
        ..Default::default()
    };
    let store = state.store.clone();
    let ended = move || {
        let store = store.clone();
        async move {
            // Over once it is final and its job is done: checks already under way when it was
            // cancelled, and its summary, are written by then.
            let run = store.rewards_run(id).await.ok()?;
            if run.state == RunState::Running
                || store
                    .job_pending(&format!("{}:{id}", cartwright_store::REWARDS_JOB))
                    .await
                    .unwrap_or(true)
            {
                return None;
            }
            Some(run.state.as_str())
        }
    };
    Ok(super::batches::event_stream(
        live, &state, filter, &headers, q.after, ended,
    ))
}

/// Which history to read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Entries after this snapshot id.
    after: Option<i64>,
    /// At most this many, 1 to 10,000, default 1,000.
    limit: Option<u32>,
}

/// An account's rewards history: every check, oldest first.
#[utoipa::path(get, path = "/accounts/{id}/rewards", tag = "rewards", params(("id" = i64, Path), HistoryQuery),
    responses((status = 200, body = Vec<Snapshot>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn account_history(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<AccountId>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<axum::Json<Vec<Snapshot>>> {
    state.store.account(id).await?;
    Ok(axum::Json(
        state
            .store
            .snapshots(&SnapshotFilter {
                account: Some(id),
                after: q.after,
                limit: q.limit.unwrap_or(1_000),
                ..Default::default()
            })
            .await?,
    ))
}

/// Points over time.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PointsQuery {
    /// Only this storefront's accounts.
    storefront_id: Option<StorefrontId>,
    /// How many days back, 1 to 366, default 30.
    #[param(minimum = 1, maximum = 366)]
    days: Option<u32>,
}

/// One day's points.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayPoints {
    /// The day (UTC), `YYYY-MM-DD`.
    pub day: String,
    /// The sum over accounts of the last points read that day.
    pub points: i64,
}

/// Points per day across accounts, for charts.
#[utoipa::path(get, path = "/rewards/points-by-day", tag = "rewards", params(PointsQuery),
    responses((status = 200, body = Vec<DayPoints>), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn points_by_day(
    State(state): State<AppState>,
    _: Auth<Read>,
    Query(q): Query<PointsQuery>,
) -> ApiResult<axum::Json<Vec<DayPoints>>> {
    let days = q.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(ApiError::invalid("days", "must be 1 to 366"));
    }
    let rows = state.store.points_by_day(q.storefront_id, days).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|(day, points)| DayPoints { day, points })
            .collect(),
    ))
}

/// Schedules, by name.
#[utoipa::path(get, path = "/schedules", tag = "rewards",
    responses((status = 200, body = Vec<Schedule>)), security(("bearer" = [])))]
async fn list_schedules(
    State(state): State<AppState>,
    _: Auth<Read>,
) -> ApiResult<axum::Json<Vec<Schedule>>> {
    Ok(axum::Json(state.store.schedules().await?))
}

/// Checks a schedule: the pattern, the zone, and the run it starts (storefront, profile with
/// a rewards endpoint, selection) as a run request would be checked.
async fn checked_schedule(state: &AppState, body: &NewSchedule) -> ApiResult<time::OffsetDateTime> {
    let next = body.check(time::OffsetDateTime::now_utc())?;
    state
        .engine
        .check_rewards_run(&body.run)
        .await
        .map_err(|e| {
            let e = ApiError::from(e);
            match e.field_name() {
                Some(field) => e.with_field(format!("run.{field}")),
                None => e,
            }
        })?;
    Ok(next)
}

/// Makes a schedule: a rewards run started at every match of a cron pattern (`0 9 * * *`)
/// in a time zone; across nodes each occurrence starts one run.
#[utoipa::path(post, path = "/schedules", tag = "rewards", request_body = NewSchedule,
    responses((status = 201, body = Schedule), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_schedule(
    State(state): State<AppState>,
    auth: Auth<Operate>,
    Json(body): Json<NewSchedule>,
) -> ApiResult<Response> {
    let next = checked_schedule(&state, &body).await?;
    let schedule = state
        .store
        .create_schedule(&body, next, auth.0.operator())
        .await?;
    Ok(created(
        format!("/api/v1/schedules/{}", schedule.id),
        schedule,
    ))
}

/// One schedule.
#[utoipa::path(get, path = "/schedules/{id}", tag = "rewards", params(("id" = i64, Path)),
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_schedule(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<ScheduleId>,
) -> ApiResult<axum::Json<Schedule>> {
    Ok(axum::Json(state.store.schedule(id).await?))
}

/// Replaces a schedule's settings (turning it off with `"enabled": false`).
#[utoipa::path(put, path = "/schedules/{id}", tag = "rewards", params(("id" = i64, Path)), request_body = NewSchedule,
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_schedule(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<ScheduleId>,
    Json(body): Json<NewSchedule>,
) -> ApiResult<axum::Json<Schedule>> {
    state.store.schedule(id).await?;
    let next = checked_schedule(&state, &body).await?;
    Ok(axum::Json(
        state.store.update_schedule(id, &body, next).await?,
    ))
}

/// Deletes a schedule; the runs it started stay.
#[utoipa::path(delete, path = "/schedules/{id}", tag = "rewards", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_schedule(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<ScheduleId>,
) -> ApiResult<axum::http::StatusCode> {
    state.store.delete_schedule(id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
