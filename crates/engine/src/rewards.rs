//! Rewards checks: plain HTTP with each account's own cookies against the profile's rewards
//! endpoint (no browser), many at once under the site's per-domain rate limit and the run's
//! own, results written in batches. A run survives crashes: its job checks only the accounts
//! not yet recorded in it.

use crate::Engine;
use crate::profile::Rewards;
use crate::ratelimit::RateLimiter;
use cartwright_core::cookies::{Cookie, CookieJar, SameSite};
use cartwright_core::ids::{AccountId, OperatorId, RewardsRunId};
use cartwright_core::order::{Level, NewEvent};
use cartwright_core::rewards::{CheckStatus, NewRewardsRun, NewSnapshot, RewardsRun, RunState};
use cartwright_jobs::{BoxFuture, Handler, Outcome};
use cartwright_store::{Job, ScheduleTurn, StoreError};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use url::Url;

/// Results written per transaction at most.
const WRITE_BATCH: usize = 500;
/// Longest a result waits to be written.
const WRITE_EVERY: Duration = Duration::from_millis(250);
/// Progress events at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Accounts with a problem that get their own event; past this, only the counts.
const PROBLEM_EVENTS: usize = 200;
/// Largest answer read.
const MAX_BODY: usize = 1024 * 1024;
/// How much of a body a failure quotes.
const EXCERPT: usize = 160;

/// Runs rewards-run jobs.
pub(crate) struct RewardsHandler(pub Arc<Engine>);

impl Handler for RewardsHandler {
    fn run(&self, job: Job) -> BoxFuture<Outcome> {
        let engine = self.0.clone();
        Box::pin(async move {
            let Some(id) = job.payload.get("run").and_then(serde_json::Value::as_i64) else {
                return Outcome::Fail {
                    error: "the job names no run".into(),
                };
            };
            match work(&engine, RewardsRunId(id)).await {
                Ok(()) => Outcome::Done,
                Err(RunError::Store(StoreError::NotFound { .. })) => Outcome::Done,
                Err(RunError::Store(e)) => Outcome::Retry {
                    error: e.to_string(),
                    after: Duration::from_secs(2u64.pow(job.attempt.clamp(1, 6) as u32)),
                },
                Err(RunError::Unusable(message)) => {
                    engine.emit(event(RewardsRunId(id), None, Level::Error, &message));
                    let _ = engine.store.cancel_rewards_run(RewardsRunId(id)).await;
                    Outcome::Fail { error: message }
                }
            }
        })
    }
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unusable(String),
}

/// Where and how a run's checks go.
struct Target {
    endpoint: Url,
    home: Url,
    host: String,
    rewards: Rewards,
    timeout: Duration,
}

/// The run's pace: the site's per-domain limit (shared with everything else this process
/// sends there) and, when the run asked for one, its own lower limit.
struct Pace<'a> {
    domain: &'a RateLimiter,
    own: Option<RateLimiter>,
}

impl Pace<'_> {
    async fn acquire(&self, host: &str) {
        self.domain.acquire(host).await;
        if let Some(own) = &self.own {
            own.acquire(host).await;
        }
    }

    fn pause(&self, host: &str, wait: Duration) {
        self.domain.pause(host, wait);
    }
}

fn event(run: RewardsRunId, account: Option<AccountId>, level: Level, message: &str) -> NewEvent {
    NewEvent {
        batch_id: None,
        order_id: None,
        rewards_run_id: Some(run),
        account_id: account,
        phase: Some("rewards".into()),
        step: None,
        level,
        message: message.to_owned(),
        at: OffsetDateTime::now_utc(),
    }
}

fn summary(run: &RewardsRun) -> String {
    format!(
        "checked {} of {}: {} ok, {} logged out, {} failed; {} points",
        run.checked, run.total, run.ok, run.logged_out, run.failed, run.points_total
    )
}

async fn work(engine: &Arc<Engine>, id: RewardsRunId) -> Result<(), RunError> {
    let store = &engine.store;
    let cartwright_store::RunWork { run, remaining } = store.rewards_run_work(id).await?;
    if run.state != RunState::Running {
        return Ok(());
    }
    let storefront = store.storefront(run.storefront_id).await?;
    let profile = engine
        .profiles
        .get(storefront.profile.as_str())
        .map_err(|e| RunError::Unusable(format!("the storefront's profile cannot be used: {e}")))?;
    let rewards = profile.rewards.clone().ok_or_else(|| {
        RunError::Unusable(format!(
            "profile {} has no [rewards] endpoint",
            storefront.profile
        ))
    })?;
    let home = Url::parse(storefront.base_url.as_str())
        .map_err(|e| RunError::Unusable(format!("the storefront's base URL: {e}")))?;
    let endpoint = home
        .join(&rewards.path)
        .map_err(|e| RunError::Unusable(format!("[rewards] path: {e}")))?;
    crate::net::ensure_public(&endpoint, engine.config.allow_internal)
        .await
        .map_err(|e| RunError::Unusable(e.to_string()))?;
    let host = endpoint.host_str().unwrap_or_default().to_owned();
    engine.limiter.limit(&host, profile.site.rate_limit);
    let pace = Pace {
        domain: &engine.limiter,
        own: run.rate_limit.map(|rate| {
            let own = RateLimiter::new();
            own.limit(&host, rate);
            own
        }),
    };
    let target = Target {
        endpoint,
        home,
        host,
        rewards,
        timeout: profile.site.page_timeout,
    };
    let concurrency = usize::try_from(run.concurrency).unwrap_or(1).max(1);
    engine.emit(event(
        id,
        None,
        Level::Info,
        &format!(
            "checking {} accounts ({} already done), {concurrency} at once{}",
            remaining.len(),
            run.checked,
            run.rate_limit
                .map(|r| format!(", at most {r}/s"))
                .unwrap_or_default()
        ),
    ));

    let cancelled = Arc::new(AtomicBool::new(false));
    let (results_tx, results_rx) =
        mpsc::channel::<(NewSnapshot, Option<CookieJar>)>(2 * WRITE_BATCH);
    let writer = tokio::spawn(write_results(
        engine.clone(),
        id,
        results_rx,
        cancelled.clone(),
    ));

    // Jars are read and unsealed a chunk at a time, ahead of the checks.
    let (jars_tx, jars_rx) = mpsc::channel::<(AccountId, Option<CookieJar>)>(1024);
    let loader = {
        let store = store.clone();
        let cancelled = cancelled.clone();
        tokio::spawn(async move {
            for chunk in remaining.chunks(WRITE_BATCH) {
                if cancelled.load(Ordering::Relaxed) {
                    break;
                }
                for pair in store.account_jars(chunk).await? {
                    if jars_tx.send(pair).await.is_err() {
                        return Ok(());
                    }
                }
            }
            Ok::<(), StoreError>(())
        })
    };
    let http = &engine.http;
    futures::stream::unfold(
        jars_rx,
        |mut rx| async move { rx.recv().await.map(|x| (x, rx)) },
    )
    .for_each_concurrent(concurrency, |(account, jar)| {
        let results_tx = results_tx.clone();
        let (target, pace, cancelled) = (&target, &pace, &cancelled);
        async move {
            if cancelled.load(Ordering::Relaxed) {
                return;
            }
            let result = check(http, target, pace, account, jar).await;
            let _ = results_tx.send(result).await;
        }
    })
    .await;
    drop(results_tx);
    let loaded = loader
        .await
        .map_err(|e| RunError::Unusable(format!("the account loader stopped: {e}")))?;
    let written = writer
        .await
        .map_err(|e| RunError::Unusable(format!("the result writer stopped: {e}")))?;
    loaded?;
    let run = written?;
    match run.state {
        RunState::Finished => engine.emit(event(
            id,
            None,
            Level::Info,
            &format!("finished: {}", summary(&run)),
        )),
        RunState::Cancelled => engine.emit(event(
            id,
            None,
            Level::Warn,
            &format!("cancelled: {}", summary(&run)),
        )),
        // Every account was looked at but some result is missing (a write failed): the job
        // is tried again and checks what is left.
        RunState::Running => {
            return Err(RunError::Store(StoreError::Corrupt(format!(
                "run {id} ended with {} of {} accounts recorded",
                run.checked, run.total
            ))));
        }
    }
    engine.events.flush().await;
    Ok(())
}

/// Writes results in batches; stops the run's checks when it was cancelled. Returns the run
/// as last written.
async fn write_results(
    engine: Arc<Engine>,
    id: RewardsRunId,
    mut rx: mpsc::Receiver<(NewSnapshot, Option<CookieJar>)>,
    cancelled: Arc<AtomicBool>,
) -> Result<RewardsRun, StoreError> {
    let mut buffer = Vec::with_capacity(WRITE_BATCH);
    let mut last_progress = Instant::now();
    let mut problems = 0usize;
    let mut run = engine.store.rewards_run(id).await?;
    loop {
        let first = rx.recv().await;
        let open = first.is_some();
        buffer.extend(first);
        let deadline = tokio::time::Instant::now() + WRITE_EVERY;
        while open && buffer.len() < WRITE_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) => buffer.push(r),
                Ok(None) | Err(_) => break,
            }
        }
        if !buffer.is_empty() {
            for (s, _) in &buffer {
                if s.status != CheckStatus::Ok && problems < PROBLEM_EVENTS {
                    problems += 1;
                    let what = match s.status {
                        CheckStatus::LoggedOut => "logged out",
                        _ => "failed",
                    };
                    let detail = s.error.as_deref().unwrap_or("");
                    engine.emit(event(
                        id,
                        Some(s.account_id),
                        Level::Warn,
                        &format!("account {}: {what}: {detail}", s.account_id),
                    ));
                }
            }
            run = record(&engine, id, &buffer).await?;
            buffer.clear();
            if run.state == RunState::Cancelled {
                cancelled.store(true, Ordering::Relaxed);
            }
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                engine.emit(event(id, None, Level::Info, &summary(&run)));
            }
        }
        if !open {
            return Ok(run);
        }
    }
}

/// Writes one batch, trying again a few times when the database hiccups.
async fn record(
    engine: &Engine,
    id: RewardsRunId,
    batch: &[(NewSnapshot, Option<CookieJar>)],
) -> Result<RewardsRun, StoreError> {
    let mut wait = Duration::from_millis(200);
    for _ in 0..4 {
        match engine.store.record_checks(id, batch).await {
            Ok(run) => return Ok(run),
            Err(e) => {
                tracing::warn!(run = id.get(), error = %e, "writing rewards results failed; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    engine.store.record_checks(id, batch).await
}

/// One account's check. Never fails: what went wrong is the snapshot's status and error.
async fn check(
    http: &reqwest::Client,
    target: &Target,
    pace: &Pace<'_>,
    account: AccountId,
    jar: Option<CookieJar>,
) -> (NewSnapshot, Option<CookieJar>) {
    let started = Instant::now();
    let checked_at = OffsetDateTime::now_utc();
    let snapshot = |status, http_status: Option<u16>, error: Option<String>| NewSnapshot {
        account_id: account,
        status,
        points: None,
        tier: None,
        http_status,
        error,
        duration_ms: started.elapsed().as_millis() as i64,
        checked_at,
    };
    let Some(jar) = jar.filter(|j| !j.is_empty()) else {
        return (
            snapshot(
                CheckStatus::LoggedOut,
                None,
                Some("no cookies stored".into()),
            ),
            None,
        );
    };
    let mut cookies = to_store(&jar);
    if target.rewards.warm_up
        && let Err(e) = fetch(http, target, pace, &target.home, &mut cookies).await
    {
        let (status, code, error) = e.classify("warm-up");
        return (
            snapshot(status, code, Some(error)),
            write_back(&jar, &cookies),
        );
    }
    let result = fetch(http, target, pace, &target.endpoint, &mut cookies).await;
    let refreshed = write_back(&jar, &cookies);
    let (code, body) = match result {
        Ok(answer) => answer,
        Err(e) => {
            let (status, code, error) = e.classify("rewards");
            return (snapshot(status, code, Some(error)), refreshed);
        }
    };
    let mut s = snapshot(CheckStatus::Ok, Some(code), None);
    match read_points(&target.rewards, &body) {
        Ok((points, tier)) => {
            s.points = Some(points);
            s.tier = tier;
        }
        Err(message) => {
            s.status = CheckStatus::Failed;
            s.error = Some(format!("{message}: {}", excerpt(&body)));
        }
    }
    s.duration_ms = started.elapsed().as_millis() as i64;
    (s, refreshed)
}

#[derive(Debug)]
enum FetchError {
    Refused(u16, String),
    Redirected(u16, String),
    Status(u16, String),
    Transport(String),
}

impl FetchError {
    fn classify(self, what: &str) -> (CheckStatus, Option<u16>, String) {
        match self {
            FetchError::Refused(code, body) => (
                CheckStatus::LoggedOut,
                Some(code),
                format!("{what}: HTTP {code}: {body}"),
            ),
            FetchError::Redirected(code, to) => (
                CheckStatus::LoggedOut,
                Some(code),
                format!("{what}: HTTP {code}: redirected to {to}"),
            ),
            FetchError::Status(code, body) => (
                CheckStatus::Failed,
                Some(code),
                format!("{what}: HTTP {code}: {body}"),
            ),
            FetchError::Transport(e) => (CheckStatus::Failed, None, format!("{what}: {e}")),
        }
    }
}

/// A GET with the account's cookies, paced; keeps the cookies the answer sets. 429 waits as
/// the site asks and 5xx or a dropped connection are tried again, a few times.
async fn fetch(
    http: &reqwest::Client,
    target: &Target,
    pace: &Pace<'_>,
    url: &Url,
    cookies: &mut cookie_store::CookieStore,
) -> Result<(u16, Vec<u8>), FetchError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        pace.acquire(&target.host).await;
        let header = cookies
            .get_request_values(url)
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut request = http
            .get(url.clone())
            .timeout(target.timeout)
            .header(reqwest::header::ACCEPT, "application/json, text/html;q=0.8");
        if !header.is_empty() {
            request = request.header(reqwest::header::COOKIE, header);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if attempt < 3 && (e.is_connect() || e.is_request()) => {
                tokio::time::sleep(Duration::from_millis(250 * attempt)).await;
                continue;
            }
            Err(e) => return Err(FetchError::Transport(transport_message(&e))),
        };
        let set = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| cookie::Cookie::parse(v.to_owned()).ok())
            .collect::<Vec<_>>();
        cookies.store_response_cookies(set.into_iter(), url);
        let status = response.status();
        let code = status.as_u16();
        if status.is_redirection() {
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
                .to_owned();
            return Err(FetchError::Redirected(code, to));
        }
        if code == 429 && attempt < 4 {
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs)
                .min(Duration::from_secs(60));
            pace.pause(&target.host, wait);
            continue;
        }
        let body = read_body(response).await.map_err(FetchError::Transport)?;
        return match code {
            200..=299 => Ok((code, body)),
            401 | 403 => Err(FetchError::Refused(code, excerpt(&body))),
            500..=599 if attempt < 3 => {
                tokio::time::sleep(Duration::from_millis(250 * attempt)).await;
                continue;
            }
            _ => Err(FetchError::Status(code, excerpt(&body))),
        };
    }
}

fn transport_message(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        format!("could not connect: {e}")
    } else {
        format!("request failed: {e}")
    }
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_message(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("the answer is larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The points and tier at the profile's JSON pointers.
fn read_points(rewards: &Rewards, body: &[u8]) -> Result<(i64, Option<String>), String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_owned())?;
    if let Some(pointer) = &rewards.success
        && json.pointer(pointer) != Some(&serde_json::Value::Bool(true))
    {
        return Err(format!("{pointer} is not true"));
    }
    let points = match json.pointer(&rewards.points) {
        Some(serde_json::Value::Number(n)) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.round() as i64)
        }),
        Some(serde_json::Value::String(s)) => s.trim().replace(',', "").parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("no points at {}", rewards.points))?;
    let tier = rewards
        .tier
        .as_ref()
        .and_then(|p| json.pointer(p))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    Ok((points, tier))
}

/// The start of a body, on one line, for error messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > EXCERPT {
        let mut cut = EXCERPT;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    if out.is_empty() {
        "(empty body)".into()
    } else {
        out
    }
}

/// The account's jar as an RFC 6265 store, which decides what each request sends.
fn to_store(jar: &CookieJar) -> cookie_store::CookieStore {
    let mut store = cookie_store::CookieStore::new();
    for c in jar.cookies() {
        let host = c.domain.trim_start_matches('.');
        let scheme = if c.secure { "https" } else { "http" };
        let Ok(url) = Url::parse(&format!("{scheme}://{host}/")) else {
            continue;
        };
        let mut raw = cookie::Cookie::build((c.name.clone(), c.value.clone()))
            .path(c.path.clone())
            .secure(c.secure)
            .http_only(c.http_only);
        if c.domain.starts_with('.') {
            raw = raw.domain(host.to_owned());
        }
        if let Some(at) = c
            .expires
            .and_then(|e| OffsetDateTime::from_unix_timestamp(e).ok())
        {
            raw = raw.expires(at);
        }
        let _ = store.insert_raw(&raw.build(), &url);
    }
    store
}

/// The jar with what the site set during the check; `None` when nothing changed.
fn write_back(original: &CookieJar, store: &cookie_store::CookieStore) -> Option<CookieJar> {
    let mut jar = original.clone();
    let mut changed = false;
    for c in store.iter_unexpired() {
        let domain = match &c.domain {
            cookie_store::CookieDomain::HostOnly(h) => h.clone(),
            cookie_store::CookieDomain::Suffix(d) => format!(".{d}"),
            _ => continue,
        };
        let path: &str = &c.path;
        let expires = match c.expires {
            cookie_store::CookieExpiration::AtUtc(at) => Some(at.unix_timestamp()),
            cookie_store::CookieExpiration::SessionEnd => None,
        };
        let same = original.cookies().iter().any(|o| {
            o.name == c.name() && o.domain == domain && o.path == path && o.value == c.value()
        });
        if same {
            continue;
        }
        changed = true;
        let previous = original
            .cookies()
            .iter()
            .find(|o| o.name == c.name() && o.domain == domain && o.path == path);
        jar.upsert(Cookie {
            name: c.name().to_owned(),
            value: c.value().to_owned(),
            domain,
            path: path.to_owned(),
            expires,
            http_only: c.http_only().unwrap_or(false),
            secure: c.secure().unwrap_or(false),
            same_site: previous.map_or(SameSite::Lax, |p| p.same_site),
        });
    }
    if !changed {
        return None;
    }
    // What the site set is checked as an imported cookie is: one that would not read back
    // (a name with brackets, say) is left out rather than spoiling the stored jar.
    let (checked, dropped) = CookieJar::from_browser(jar.cookies().to_vec());
    if !dropped.is_empty() {
        tracing::warn!(cookies = ?dropped, "cookies the site set could not be kept");
    }
    checked
}

impl Engine {
    /// Checks a rewards run request and writes the run with its job: the storefront, its
    /// profile's rewards endpoint and the accounts the selection names. Accounts without
    /// cookies or inactive are counted as skipped.
    pub async fn start_rewards_run(
        &self,
        spec: &NewRewardsRun,
        created_by: Option<OperatorId>,
    ) -> Result<RewardsRun, StoreError> {
        self.make_rewards_run(spec, created_by, None)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the run was not written".into()))
    }

    /// Checks a rewards run request without starting it (a schedule's run, say).
    pub async fn check_rewards_run(&self, spec: &NewRewardsRun) -> Result<(), StoreError> {
        self.resolve_rewards_run(spec).await.map(|_| ())
    }

    async fn make_rewards_run(
        &self,
        spec: &NewRewardsRun,
        created_by: Option<OperatorId>,
        turn: Option<ScheduleTurn>,
    ) -> Result<Option<RewardsRun>, StoreError> {
        let (accounts, skipped, concurrency) = self.resolve_rewards_run(spec).await?;
        let run = self
            .store
            .create_rewards_run(spec, &accounts, skipped, concurrency, created_by, turn)
            .await?;
        if let Some(run) = &run {
            self.emit(event(
                run.id,
                None,
                Level::Info,
                &format!(
                    "run of {} accounts queued ({} skipped: inactive or without cookies)",
                    run.total, run.skipped
                ),
            ));
        }
        Ok(run)
    }

    /// The accounts a request checks, how many it skips, and its concurrency.
    async fn resolve_rewards_run(
        &self,
        spec: &NewRewardsRun,
    ) -> Result<(Vec<AccountId>, i64, u32), StoreError> {
        use cartwright_core::Invalid;
        spec.check()?;
        let (selection, storefront, profile) = self.resolve_selection(&spec.accounts).await?;
        let Some(rewards) = &profile.rewards else {
            return Err(Invalid::new(
                "accounts.storefront_id",
                format!(
                    "profile {} has no [rewards] endpoint to check",
                    storefront.profile
                ),
            )
            .into());
        };
        let chosen = self.store.select_accounts(&selection).await?;
        if !chosen.not_found.is_empty() {
            return Err(Invalid::new(
                "accounts",
                format!(
                    "these do not exist in the storefront: {}",
                    chosen.not_found.join(", ")
                ),
            )
            .into());
        }
        let accounts: Vec<AccountId> = chosen.selected.iter().map(|s| s.id).collect();
        let concurrency = spec.concurrency.unwrap_or(rewards.concurrency);
        Ok((accounts, chosen.skipped.len() as i64, concurrency))
    }

    /// Starts the runs of schedules that are due; a schedule another node started first is
    /// left alone. Returns how many runs were started.
    pub async fn start_due_schedules(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let mut started = 0;
        for schedule in self.store.due_schedules(now).await? {
            let Some(due) = schedule.next_run_at else {
                continue;
            };
            let next =
                cartwright_core::rewards::next_occurrence(&schedule.cron, &schedule.timezone, now)
                    .ok();
            let turn = ScheduleTurn {
                schedule: schedule.id,
                due,
                next,
            };
            match self.make_rewards_run(&schedule.run, None, Some(turn)).await {
                Ok(Some(run)) => {
                    started += 1;
                    tracing::info!(schedule = %schedule.name, run = run.id.get(), "schedule started a rewards run");
                }
                Ok(None) => {}
                Err(e) => {
                    // A schedule whose run cannot be made (its storefront gone, say) moves on
                    // to its next occurrence instead of failing every few seconds.
                    tracing::warn!(schedule = %schedule.name, error = %e, "a scheduled rewards run could not start");
                    self.store.skip_schedule_turn(turn).await?;
                }
            }
        }
        Ok(started)
    }

    /// Starts due schedules until the engine shuts down: on every node that runs workers;
    /// the store makes sure each occurrence starts one run.
    pub async fn run_schedules(self: Arc<Self>) {
        let mut stop = self.stopping.subscribe();
        loop {
            if *stop.borrow_and_update() {
                return;
            }
            let now = OffsetDateTime::now_utc();
            if let Err(e) = self.start_due_schedules(now).await {
                tracing::warn!(error = %e, "starting scheduled runs failed");
            }
            let wait = match self.store.next_schedule_at().await {
                Ok(Some(at)) => {
                    let until = (at - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
                    Duration::try_from(until)
                        .unwrap_or_default()
                        .min(Duration::from_secs(5))
                }
                _ => Duration::from_secs(5),
            };
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(50))) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewards() -> Rewards {
        Rewards {
            path: "/points".into(),
            points: "/pointSummary/available".into(),
            tier: Some("/userTier/name".into()),
            success: Some("/success".into()),
            warm_up: false,
            concurrency: 4,
        }
    }

    #[test]
    fn points_and_tier_come_from_the_pointers() {
        let body =
            br#"{"success":true,"pointSummary":{"available":1250},"userTier":{"name":"Gold"}}"#;
        assert_eq!(
            read_points(&rewards(), body),
            Ok((1250, Some("Gold".into())))
        );
        let body = br#"{"success":true,"pointSummary":{"available":"1,250"}}"#;
        assert_eq!(read_points(&rewards(), body), Ok((1250, None)));
        let body = br#"{"success":false,"pointSummary":{"available":3}}"#;
        assert_eq!(
            read_points(&rewards(), body),
            Err("/success is not true".into())
        );
        assert!(read_points(&rewards(), b"<html>").is_err());
        assert!(read_points(&rewards(), br#"{"success":true}"#).is_err());
    }

    #[test]
    fn a_rotated_cookie_is_written_back_and_the_rest_kept() {
        let jar = CookieJar::from_header("session=old; theme=dark", "shop.test").expect("jar");
        let mut store = to_store(&jar);
        let url = Url::parse("http://shop.test/api").expect("url");
        let sent: Vec<_> = store.get_request_values(&url).collect();
        assert_eq!(sent.len(), 2, "both cookies go with the request");
        assert!(write_back(&jar, &store).is_none(), "nothing changed yet");
        let set = cookie::Cookie::parse("session=new; Path=/; HttpOnly").expect("cookie");
        store.store_response_cookies(std::iter::once(set), &url);
        let back = write_back(&jar, &store).expect("changed");
        let session = back
            .cookies()
            .iter()
            .find(|c| c.name == "session")
            .expect("session");
        assert_eq!(session.value, "new");
        assert!(
            back.cookies()
                .iter()
                .any(|c| c.name == "theme" && c.value == "dark")
        );
        assert_eq!(back.cookies().len(), 2);
        // A cookie that would not read back from the store is left out; the rest is kept.
        let odd = cookie::Cookie::parse("recent[7]=1; Path=/").expect("cookie");
        store.store_response_cookies(std::iter::once(odd), &url);
        assert!(store.iter_unexpired().any(|c| c.name() == "recent[7]"));
        let back = write_back(&jar, &store).expect("changed");
        assert_eq!(back.cookies().len(), 2, "{back:?}");
        let json = serde_json::to_string(&back).expect("json");
        assert!(
            serde_json::from_str::<CookieJar>(&json).is_ok(),
            "it reads back"
        );
    }

    #[tokio::test]
    async fn the_client_speaks_https() {
        // Nothing listens there: the error is about connecting, not about an unknown scheme.
        let err = crate::engine::http_client(false)
            .get("https://127.0.0.1:9/")
            .send()
            .await
            .expect_err("nothing listens on port 9");
        assert!(err.is_connect(), "{err}");
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        let long = "x".repeat(500);
        assert!(excerpt(long.as_bytes()).chars().count() <= EXCERPT + 1);
        assert_eq!(excerpt(b"a\n  b"), "a b");
        assert_eq!(excerpt(b""), "(empty body)");
    }
}
