//! Rewards checks: runs over an account selection, the snapshot each check leaves (history,
//! not only the latest value), and schedules that start runs by a cron pattern in a time zone.

use crate::Invalid;
use crate::ids::{AccountId, OperatorId, RewardsRunId, ScheduleId, StorefrontId};
use crate::selection::SelectionRequest;
use crate::values::Text;
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Most checks in flight at once for one run.
pub const MAX_CONCURRENCY: u32 = 256;
/// Highest request rate a run may ask for, per second.
pub const MAX_RATE: f64 = 10_000.0;

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Points read.
    Ok,
    /// The site refused the session (401, 403, a redirect to sign in): new cookies needed.
    LoggedOut,
    /// Anything else: a server error, a timeout, an answer without the points.
    Failed,
}

impl CheckStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::LoggedOut => "logged_out",
            CheckStatus::Failed => "failed",
        }
    }
}

impl FromStr for CheckStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "ok" => CheckStatus::Ok,
            "logged_out" => CheckStatus::LoggedOut,
            "failed" => CheckStatus::Failed,
            _ => {
                return Err(format!(
                    "unknown check status {s:?}: ok, logged_out or failed"
                ));
            }
        })
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Checks are queued or under way.
    Running,
    /// Every account was checked.
    Finished,
    /// Stopped by an operator; what was checked stays.
    Cancelled,
}

impl RunState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Cancelled => "cancelled",
        }
    }
}

impl FromStr for RunState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "running" => RunState::Running,
            "finished" => RunState::Finished,
            "cancelled" => RunState::Cancelled,
            _ => return Err(format!("unknown run state {s:?}")),
        })
    }
}

/// A rewards run as requested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRewardsRun {
    /// Which accounts are checked.
    pub accounts: SelectionRequest,
    /// Checks in flight at once; the profile's `[rewards] concurrency` when absent.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Requests per second for this run; it can only lower the profile's per-domain limit.
    #[serde(default)]
    pub rate_limit: Option<f64>,
}

impl NewRewardsRun {
    /// Checks the numbers (the selection is checked when it is resolved).
    pub fn check(&self) -> Result<(), Invalid> {
        if let Some(c) = self.concurrency
            && !(1..=MAX_CONCURRENCY).contains(&c)
        {
            return Err(Invalid::new(
                "concurrency",
                format!("must be 1 to {MAX_CONCURRENCY}"),
            ));
        }
        if let Some(r) = self.rate_limit
            && !(r.is_finite() && r > 0.0 && r <= MAX_RATE)
        {
            return Err(Invalid::new(
                "rate_limit",
                format!("must be above 0 and at most {MAX_RATE} requests per second"),
            ));
        }
        Ok(())
    }
}

/// A run of rewards checks and its summary so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RewardsRun {
    /// Identifier.
    pub id: RewardsRunId,
    /// The storefront checked.
    pub storefront_id: StorefrontId,
    /// The schedule that started it, if one did.
    pub schedule_id: Option<ScheduleId>,
    /// Where it stands.
    pub state: RunState,
    /// Accounts to check.
    pub total: i64,
    /// Accounts of the selection left out (inactive, without cookies).
    pub skipped: i64,
    /// Accounts checked so far.
    pub checked: i64,
    /// Checks that read the points.
    pub ok: i64,
    /// Checks that found the session refused.
    pub logged_out: i64,
    /// Checks that failed otherwise.
    pub failed: i64,
    /// Points across the accounts read.
    pub points_total: i64,
    /// Checks in flight at once.
    pub concurrency: i64,
    /// Requests per second asked for, when the run set one.
    pub rate_limit: Option<f64>,
    /// Who started it.
    pub created_by: Option<OperatorId>,
    /// When it was asked for.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the first check started.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// When it finished or was cancelled.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// From the first check to the end, in milliseconds.
    pub duration_ms: Option<i64>,
}

/// One check's result: a row of an account's rewards history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Snapshot {
    /// Identifier.
    pub id: i64,
    /// The run it belongs to.
    pub run_id: Option<RewardsRunId>,
    /// The account.
    pub account_id: AccountId,
    /// The account's label, for lists.
    pub account_label: Option<String>,
    /// What the check found.
    pub status: CheckStatus,
    /// Points available.
    pub points: Option<i64>,
    /// Tier name.
    pub tier: Option<String>,
    /// The endpoint's HTTP status, when it answered.
    pub http_status: Option<i64>,
    /// What went wrong: the status and a short excerpt of the body.
    pub error: Option<String>,
    /// How long the check took, in milliseconds.
    pub duration_ms: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
}

/// A result before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSnapshot {
    /// The account.
    pub account_id: AccountId,
    /// What the check found.
    pub status: CheckStatus,
    /// Points available.
    pub points: Option<i64>,
    /// Tier name.
    pub tier: Option<String>,
    /// HTTP status.
    pub http_status: Option<u16>,
    /// What went wrong.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
    /// When.
    pub checked_at: OffsetDateTime,
}

/// A run's results as CSV, one row per account checked.
pub fn snapshots_csv(snapshots: &[Snapshot]) -> Result<Vec<u8>, csv::Error> {
    use crate::account_csv::spreadsheet_safe;
    let mut w = csv::Writer::from_writer(Vec::with_capacity(snapshots.len() * 96 + 96));
    w.write_record([
        "account_id",
        "label",
        "status",
        "points",
        "tier",
        "http_status",
        "error",
        "duration_ms",
        "checked_at",
    ])?;
    for s in snapshots {
        w.write_record([
            s.account_id.to_string(),
            s.account_label
                .as_deref()
                .map(spreadsheet_safe)
                .unwrap_or_default(),
            s.status.as_str().to_owned(),
            s.points.map(|p| p.to_string()).unwrap_or_default(),
            s.tier.as_deref().map(spreadsheet_safe).unwrap_or_default(),
            s.http_status.map(|c| c.to_string()).unwrap_or_default(),
            s.error.as_deref().map(spreadsheet_safe).unwrap_or_default(),
            s.duration_ms.to_string(),
            s.checked_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

/// A recurring rewards run as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// A name for operators.
    pub name: Text,
    /// Five-field cron pattern (`0 9 * * *` is every day at 09:00), with names and `@daily`.
    pub cron: String,
    /// IANA time zone the pattern is read in (`Asia/Kolkata`); UTC when absent.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Off schedules start nothing.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The run each occurrence starts.
    pub run: NewRewardsRun,
}

fn utc() -> String {
    "UTC".into()
}

fn yes() -> bool {
    true
}

impl NewSchedule {
    /// Checks the pattern, the zone and the run; returns the first occurrence after `now`.
    pub fn check(&self, now: OffsetDateTime) -> Result<OffsetDateTime, Invalid> {
        self.run.check().map_err(|e| e.within("run"))?;
        next_occurrence(&self.cron, &self.timezone, now)
    }
}

/// A recurring rewards run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    /// Identifier.
    pub id: ScheduleId,
    /// Name.
    pub name: String,
    /// Cron pattern.
    pub cron: String,
    /// Time zone.
    pub timezone: String,
    /// Whether it starts runs.
    pub enabled: bool,
    /// What each occurrence starts.
    pub run: NewRewardsRun,
    /// When it next starts a run (none while disabled).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_run_at: Option<OffsetDateTime>,
    /// The last run it started.
    pub last_run_id: Option<RewardsRunId>,
    /// When it last started one.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_run_at: Option<OffsetDateTime>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The first time after `after` that `cron` matches in `timezone`.
pub fn next_occurrence(
    cron: &str,
    timezone: &str,
    after: OffsetDateTime,
) -> Result<OffsetDateTime, Invalid> {
    let pattern = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .build()
        .parse(cron)
        .map_err(|e| Invalid::new("cron", format!("is not a cron pattern: {e}")))?;
    let zone = jiff::tz::TimeZone::get(timezone).map_err(|_| {
        Invalid::new(
            "timezone",
            format!(
                "{timezone:?} is not a known time zone; use a name like \"Asia/Kolkata\" or \"UTC\""
            ),
        )
    })?;
    let start = jiff::Timestamp::from_second(after.unix_timestamp())
        .map_err(|e| Invalid::new("cron", format!("cannot start from {after}: {e}")))?
        .to_zoned(zone);
    let next = pattern
        .find_next_occurrence(&start, false)
        .map_err(|e| Invalid::new("cron", format!("never matches: {e}")))?;
    OffsetDateTime::from_unix_timestamp(next.timestamp().as_second())
        .map_err(|e| Invalid::new("cron", format!("matches out of range: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn daily_at_nine_in_a_zone() {
        let next = next_occurrence("0 9 * * *", "Asia/Kolkata", datetime!(2026-11-22 10:00 UTC))
            .expect("valid");
        assert_eq!(
            next,
            datetime!(2026-11-23 03:30 UTC),
            "09:00 IST is 03:30 UTC"
        );
        let next =
            next_occurrence("@daily", "UTC", datetime!(2026-11-22 10:00 UTC)).expect("valid");
        assert_eq!(next, datetime!(2026-11-23 00:00 UTC));
        let next = next_occurrence("*/15 * * * MON-FRI", "UTC", datetime!(2026-11-21 23:50 UTC))
            .expect("valid");
        assert_eq!(
            next,
            datetime!(2026-11-23 00:00 UTC),
            "the 21st is a Saturday"
        );
    }

    #[test]
    fn bad_patterns_and_zones_name_their_field() {
        let at = datetime!(2026-11-22 10:00 UTC);
        assert_eq!(
            next_occurrence("0 9 * *", "UTC", at).unwrap_err().field,
            "cron"
        );
        assert_eq!(
            next_occurrence("61 9 * * *", "UTC", at).unwrap_err().field,
            "cron"
        );
        assert_eq!(
            next_occurrence("0 9 * * *", "Mars/Olympus", at)
                .unwrap_err()
                .field,
            "timezone"
        );
    }

    #[test]
    fn runs_refuse_silly_numbers() {
        let run = |concurrency, rate_limit| NewRewardsRun {
            accounts: SelectionRequest {
                storefront_id: StorefrontId(1),
                range: None,
                ids: None,
                tag: None,
            },
            concurrency,
            rate_limit,
        };
        assert!(run(Some(8), Some(5.0)).check().is_ok());
        assert_eq!(run(Some(0), None).check().unwrap_err().field, "concurrency");
        assert_eq!(
            run(None, Some(0.0)).check().unwrap_err().field,
            "rate_limit"
        );
        assert_eq!(
            run(None, Some(f64::NAN)).check().unwrap_err().field,
            "rate_limit"
        );
    }
}
