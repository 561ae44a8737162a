//! One order's run, and the sign-in test. The order runs the profile's phases in a fresh
//! browser context; the cap is checked on the total the storefront shows; the order is marked
//! `placing` (with the account's order history as it stood) before the final click, and an
//! order whose confirmation is lost (or whose worker died) is settled from the history, never
//! by a second click.

use crate::browser::{BrowserError, Session, SessionOptions};
use crate::engine::Engine;
use crate::flow::{Failure, Flow, FlowError, StepLog};
use crate::profile::{Phase, Profile};
use cartwright_core::account::SessionStatus;
use cartwright_core::batch::CouponPolicy;
use cartwright_core::cookies::CookieJar;
use cartwright_core::ids::{AccountId, BatchId, OrderId};
use cartwright_core::order::{ErrorClass, Level, NewEvent, OrderState, Totals};
use cartwright_jobs::{BoxFuture, Handler, Outcome};
use cartwright_store::{Finish, Job, OrderStart, OrderTicket, Recorded, RunRecord, StoreError};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Runs `order` jobs.
pub struct OrderHandler(pub Arc<Engine>);

/// Runs `session_check` jobs.
pub struct SessionCheckHandler(pub Arc<Engine>);

impl Handler for OrderHandler {
    fn run(&self, job: Job) -> BoxFuture<Outcome> {
        let engine = self.0.clone();
        Box::pin(async move {
            let Some(id) = job.payload.get("order").and_then(Value::as_i64) else {
                return Outcome::Fail {
                    error: format!("the job's payload names no order: {}", job.payload),
                };
            };
            engine.run_order(OrderId(id)).await
        })
    }
}

impl Handler for SessionCheckHandler {
    fn run(&self, job: Job) -> BoxFuture<Outcome> {
        let engine = self.0.clone();
        Box::pin(async move {
            let Some(id) = job.payload.get("account").and_then(Value::as_i64) else {
                return Outcome::Fail {
                    error: format!("the job's payload names no account: {}", job.payload),
                };
            };
            engine
                .check_session(AccountId(id), job.attempt, job.max_attempts)
                .await
        })
    }
}

fn store_retry(e: &StoreError) -> Outcome {
    Outcome::Retry {
        error: format!("the database failed: {e}"),
        after: Duration::from_secs(2),
    }
}

/// Where a run's log lines go: the event bus, tagged with the batch, order and account.
struct RunLog {
    engine: Arc<Engine>,
    batch: Option<BatchId>,
    order: Option<OrderId>,
    account: AccountId,
}

impl RunLog {
    fn of(engine: &Arc<Engine>, ticket: &OrderTicket) -> Self {
        RunLog {
            engine: engine.clone(),
            batch: Some(ticket.batch.id),
            order: Some(ticket.order.id),
            account: ticket.order.account_id,
        }
    }
}

impl StepLog for RunLog {
    fn log(&self, phase: Option<Phase>, step: Option<&str>, level: Level, message: &str) {
        self.engine
            .emit(self.event(phase.map(Phase::as_str), step, level, message.to_owned()));
    }
}

impl RunLog {
    fn event(
        &self,
        phase: Option<&str>,
        step: Option<&str>,
        level: Level,
        message: String,
    ) -> NewEvent {
        NewEvent {
            batch_id: self.batch,
            order_id: self.order,
            rewards_run_id: None,
            account_id: Some(self.account),
            phase: phase.map(str::to_owned),
            step: step.map(str::to_owned),
            level,
            message,
            at: time::OffsetDateTime::now_utc(),
        }
    }

    fn say(&self, level: Level, message: impl Into<String>) {
        self.engine
            .emit(self.event(None, None, level, message.into()));
    }
}

/// What a run needs from the store before the browser starts.
struct Prepared {
    profile: Arc<Profile>,
    base_url: url::Url,
    cookies: CookieJar,
    context: Value,
    lines: Vec<Value>,
    host: String,
}

/// How a run ended before it is recorded.
enum Ended {
    Placed {
        number: String,
    },
    Failed(Failure),
    Stopped,
    /// The final click may have gone out and the history does not show the order: it was not
    /// placed, for a reason of this class.
    NotSeen {
        message: String,
        class: ErrorClass,
    },
    /// More than one new order in the history: an operator must look.
    Ambiguous {
        message: String,
    },
}

impl Engine {
    /// Runs (or settles) one order; the job's outcome.
    pub(crate) async fn run_order(self: &Arc<Self>, id: OrderId) -> Outcome {
        let start = match self.store.start_order(id, self.config.max_runs).await {
            Ok(s) => s,
            Err(StoreError::NotFound { .. }) => return Outcome::Done,
            Err(e) => return store_retry(&e),
        };
        match start {
            OrderStart::Nothing(reason) => {
                tracing::debug!(order = id.get(), "nothing to do: {reason}");
                Outcome::Done
            }
            OrderStart::Busy => Outcome::Defer {
                reason: "another order of this account is running".into(),
                after: Duration::from_millis(500),
            },
            OrderStart::Run(ticket) => self.drive(*ticket).await,
            OrderStart::Resolve(ticket) => self.resolve(*ticket).await,
        }
    }

    async fn prepare(&self, ticket: &OrderTicket) -> Result<Prepared, Failure> {
        let store_fail = |e: StoreError| {
            Failure::new(ErrorClass::Transient, format!("the database failed: {e}"))
        };
        let spec = &ticket.batch.spec;
        let storefront = self
            .store
            .storefront(ticket.batch.storefront_id)
            .await
            .map_err(store_fail)?;
        let profile = self
            .profiles
            .get(storefront.profile.as_str())
            .map_err(|e| Failure::new(ErrorClass::Profile, e.to_string()))?;
        let base_url = url::Url::parse(storefront.base_url.as_str()).map_err(|e| {
            Failure::new(
                ErrorClass::Profile,
                format!("the storefront's base URL: {e}"),
            )
        })?;
        let account = self
            .store
            .account(ticket.order.account_id)
            .await
            .map_err(store_fail)?;
        let cookies = self
            .store
            .account_cookies(account.id)
            .await
            .map_err(store_fail)?
            .filter(|j| !j.cookies().is_empty())
            .ok_or_else(|| {
                Failure::new(
                    ErrorClass::SessionExpired,
                    "the account has no cookies: import its session first",
                )
            })?;
        let address = match spec.address_id {
            Some(id) => self.store.address(id).await.map_err(store_fail)?,
            None => self
                .store
                .default_address()
                .await
                .map_err(store_fail)?
                .ok_or_else(|| {
                    Failure::new(
                        ErrorClass::Business,
                        "the batch names no address and there is no default address",
                    )
                })?,
        };
        let mut lines = Vec::with_capacity(spec.lines.len());
        for line in &spec.lines {
            let product = self
                .store
                .product(line.product_id)
                .await
                .map_err(store_fail)?;
            lines.push(json!({
                "url": product.url.as_str(),
                "quantity": line.quantity,
                "product_id": product.id.get(),
                "name": product.name.as_str(),
                "sku": product.sku.as_ref().map(|s| s.as_str()),
            }));
        }
        let kind = address.kind.as_str();
        let kind_label = format!("{}{}", kind[..1].to_uppercase(), &kind[1..]);
        let payment = match &spec.payment {
            cartwright_core::batch::Payment::CashOnDelivery => {
                json!({"method": "cash_on_delivery", "label": "Cash on Delivery"})
            }
            cartwright_core::batch::Payment::Saved { label } => {
                json!({"method": "saved", "label": label.as_str()})
            }
        };
        let context = json!({
            "account": {
                "id": account.id.get(),
                "label": account.label.as_ref().map(|v| v.as_str()),
                "name": account.name.as_ref().map(|v| v.as_str()),
                "email": account.email.as_ref().map(|v| v.as_str()),
                "phone": account.phone.as_ref().map(|v| v.as_str()),
            },
            "address": {
                "label": address.label.as_ref().map(|v| v.as_str()),
                "full_name": address.full_name.as_str(),
                "phone": address.phone.as_str(),
                "line1": address.line1.as_str(),
                "street": address.street.as_ref().map(|v| v.as_str()),
                "landmark": address.landmark.as_ref().map(|v| v.as_str()),
                "postcode": address.postcode.as_str(),
                "city": address.city.as_str(),
                "state": address.state.as_str(),
                "kind": kind,
                "kind_label": kind_label,
            },
            "payment": payment,
        });
        let host = base_url.host_str().unwrap_or_default().to_owned();
        Ok(Prepared {
            profile,
            base_url,
            cookies,
            context,
            lines,
            host,
        })
    }

    async fn open(&self, prepared: &Prepared) -> Result<Session, BrowserError> {
        self.limiter
            .limit(&prepared.host, prepared.profile.site.rate_limit);
        self.pool
            .session(SessionOptions {
                cookies: prepared.cookies.cookies().to_vec(),
                proxy: None,
                call_timeout: Duration::from_secs(30),
            })
            .await
    }

    /// A full run of an order that is `running`.
    async fn drive(self: &Arc<Self>, ticket: OrderTicket) -> Outcome {
        let order = &ticket.order;
        let log = RunLog::of(self, &ticket);
        log.say(
            Level::Info,
            format!("run {} of order {} started", order.attempts, order.id),
        );
        let prepared = match self.prepare(&ticket).await {
            Ok(p) => p,
            Err(f) => {
                return self
                    .record(&ticket, &log, Ended::Failed(f), RunRecord::default(), None)
                    .await;
            }
        };
        let opening = Instant::now();
        let session = match self.open(&prepared).await {
            Ok(s) => s,
            Err(e) => {
                return self
                    .record(
                        &ticket,
                        &log,
                        Ended::Failed(e.into()),
                        RunRecord::default(),
                        None,
                    )
                    .await;
            }
        };
        // Stop checks read the batch's state in the background, a few times a second.
        let stopped = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (store, flag, batch) = (self.store.clone(), stopped.clone(), ticket.batch.id);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    if let Ok(state) = store.batch_state(batch).await
                        && state != cartwright_core::batch::BatchState::Running
                    {
                        flag.store(true, Ordering::Release);
                        return;
                    }
                }
            })
        };
        let stop_flag = stopped.clone();
        let stop = move || stop_flag.load(Ordering::Acquire);
        let mut record = RunRecord::default();
        record
            .timings
            .insert("browser".into(), opening.elapsed().as_millis() as u64);
        let mut flow = Flow::new(
            &session,
            &prepared.profile,
            prepared.base_url.clone(),
            prepared.context.clone(),
            &log,
        );
        flow.stop_when(&stop);
        let ended = self
            .steps(&ticket, &prepared, &mut flow, &mut record, &log)
            .await;
        watcher.abort();
        drop(flow);
        self.record(&ticket, &log, ended, record, Some((session, &prepared)))
            .await
    }

    /// The phases, in order. Returns how the run ended.
    async fn steps(
        &self,
        ticket: &OrderTicket,
        prepared: &Prepared,
        flow: &mut Flow<'_>,
        record: &mut RunRecord,
        log: &RunLog,
    ) -> Ended {
        let spec = &ticket.batch.spec;
        let profile = &prepared.profile;
        macro_rules! phase {
            ($phase:expr) => {{
                let started = Instant::now();
                let result = flow.phase($phase).await;
                *record
                    .timings
                    .entry($phase.as_str().to_owned())
                    .or_default() += started.elapsed().as_millis() as u64;
                match result {
                    Ok(()) => {}
                    Err(FlowError::Stopped) => return Ended::Stopped,
                    Err(FlowError::Failed(f)) => return Ended::Failed(f),
                }
            }};
        }
        phase!(Phase::CheckLogin);
        log.say(Level::Info, "signed in");
        // The history as it stands before anything is ordered: after a lost confirmation, a
        // number not in it is this order.
        phase!(Phase::FindInHistory);
        let history_before = history_of(flow);
        if spec.clear_addresses && !profile.phase(Phase::ClearAddresses).is_empty() {
            phase!(Phase::ClearAddresses);
        }
        if spec.clear_cart {
            phase!(Phase::ClearCart);
        }
        for line in &prepared.lines {
            flow.set("line", line.clone());
            phase!(Phase::AddItem);
        }
        let started = Instant::now();
        let coupon = self.coupon(flow, profile, spec.coupon, log).await;
        record
            .timings
            .insert("apply_coupon".into(), started.elapsed().as_millis() as u64);
        match coupon {
            Ok(c) => record.coupon = c,
            Err(FlowError::Stopped) => return Ended::Stopped,
            Err(FlowError::Failed(f)) => return Ended::Failed(f),
        }
        flow.unset("total");
        phase!(Phase::ReadTotal);
        let totals = match totals_of(flow) {
            Some(t) => t,
            None => {
                return Ended::Failed(Failure::new(
                    ErrorClass::Profile,
                    "read_total did not read a total",
                ));
            }
        };
        record.totals = Some(totals);
        let cap = spec.max_total.minor();
        if totals.total_minor > cap {
            return Ended::Failed(Failure::new(
                ErrorClass::Business,
                format!(
                    "the cart total {} is above the batch's cap of {}: the order was not placed",
                    show_minor(totals.total_minor),
                    show_minor(cap)
                ),
            ));
        }
        log.say(
            Level::Info,
            format!(
                "cart total {} (cap {})",
                show_minor(totals.total_minor),
                show_minor(cap)
            ),
        );
        phase!(Phase::SetAddress);
        phase!(Phase::ChoosePayment);
        match self
            .store
            .mark_placing(ticket.order.id, &history_before, record)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Ended::Stopped,
            Err(e) => {
                return Ended::Failed(Failure::new(
                    ErrorClass::Transient,
                    format!("the database failed before the final click: {e}"),
                ));
            }
        }
        log.say(Level::Info, "placing the order");
        // From here the run completes whatever the operator does: the click may be out.
        flow.unstoppable();
        let started = Instant::now();
        let placed = async {
            flow.phase(Phase::Place).await?;
            flow.phase(Phase::Confirm).await
        }
        .await;
        record
            .timings
            .insert("place".into(), started.elapsed().as_millis() as u64);
        match placed {
            Ok(()) => match flow
                .var("order_number")
                .and_then(Value::as_str)
                .filter(|n| !n.trim().is_empty())
            {
                Some(number) => Ended::Placed {
                    number: number.trim().to_owned(),
                },
                None => {
                    let why = "the confirmation showed no order number".to_owned();
                    self.settle(flow, ticket, &history_before, log, why, ErrorClass::Profile)
                        .await
                }
            },
            Err(e) => {
                let (why, class) = match e {
                    FlowError::Failed(f) => (f.to_string(), f.class),
                    FlowError::Stopped => ("stopped".into(), ErrorClass::Transient),
                };
                self.settle(flow, ticket, &history_before, log, why, class)
                    .await
            }
        }
    }

    /// After a final click whose result is unknown: looks for the new order in the history
    /// for a while (it may take a moment to appear).
    async fn settle(
        &self,
        flow: &mut Flow<'_>,
        ticket: &OrderTicket,
        before: &[String],
        log: &RunLog,
        why: String,
        class: ErrorClass,
    ) -> Ended {
        log.say(
            Level::Warn,
            format!("the confirmation failed ({why}); looking for the order in the history"),
        );
        let known: HashSet<String> = match self
            .store
            .account_order_numbers(ticket.order.account_id)
            .await
        {
            Ok(k) => k.into_iter().collect(),
            Err(e) => {
                return Ended::NotSeen {
                    message: format!("the database failed while settling: {e}"),
                    class: ErrorClass::Transient,
                };
            }
        };
        let deadline = Instant::now() + self.config.resolve_window;
        let mut wait = Duration::from_millis(500);
        loop {
            flow.unset("history");
            match flow.phase(Phase::FindInHistory).await {
                Ok(()) => {
                    let new: Vec<String> = history_of(flow)
                        .into_iter()
                        .filter(|n| !before.contains(n) && !known.contains(n))
                        .collect();
                    match new.len() {
                        1 => {
                            log.say(
                                Level::Info,
                                format!("found order {} in the history", new[0]),
                            );
                            return Ended::Placed {
                                number: new[0].clone(),
                            };
                        }
                        0 => {}
                        _ => {
                            return Ended::Ambiguous {
                                message: format!(
                                    "the history shows {} new orders ({}): which one is this order cannot be told",
                                    new.len(),
                                    new.join(", ")
                                ),
                            };
                        }
                    }
                }
                Err(e) => log.say(Level::Warn, format!("reading the history failed: {e}")),
            }
            if Instant::now() + wait > deadline {
                return Ended::NotSeen {
                    message: format!("{why}; the order is not in the history"),
                    class,
                };
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }

    /// An order found `placing`: its run was lost after it was marked. Settled from the
    /// history in a fresh session.
    async fn resolve(self: &Arc<Self>, ticket: OrderTicket) -> Outcome {
        let log = RunLog::of(self, &ticket);
        log.say(
            Level::Warn,
            "the order was being placed when its run was lost: settling it from the history",
        );
        let Some(before) = ticket.history_before.clone() else {
            let ended = Ended::Ambiguous {
                message: "no history was recorded before the final click".into(),
            };
            return self
                .record(&ticket, &log, ended, RunRecord::default(), None)
                .await;
        };
        let prepared = match self.prepare(&ticket).await {
            Ok(p) => p,
            Err(f) => return self.keep_placing(&log, f.to_string()),
        };
        let session = match self.open(&prepared).await {
            Ok(s) => s,
            Err(e) => return self.keep_placing(&log, e.to_string()),
        };
        let mut flow = Flow::new(
            &session,
            &prepared.profile,
            prepared.base_url.clone(),
            prepared.context.clone(),
            &log,
        );
        if let Err(e) = flow.phase(Phase::CheckLogin).await {
            drop(flow);
            session.close().await;
            return self.keep_placing(&log, e.to_string());
        }
        let ended = self
            .settle(
                &mut flow,
                &ticket,
                &before,
                &log,
                "its run was lost".into(),
                ErrorClass::Transient,
            )
            .await;
        drop(flow);
        self.record(
            &ticket,
            &log,
            ended,
            RunRecord::default(),
            Some((session, &prepared)),
        )
        .await
    }

    fn keep_placing(&self, log: &RunLog, why: String) -> Outcome {
        log.say(Level::Warn, format!("could not read the history yet ({why}); the order stays placing and is looked at again"));
        Outcome::Retry {
            error: why,
            after: self.config.retry_base * 4,
        }
    }

    /// Applies a coupon as the batch asks.
    async fn coupon(
        &self,
        flow: &mut Flow<'_>,
        profile: &Profile,
        policy: CouponPolicy,
        log: &RunLog,
    ) -> Result<Option<String>, FlowError> {
        if policy == CouponPolicy::None {
            return Ok(None);
        }
        let Some(coupons) = &profile.coupons else {
            if policy == CouponPolicy::Required {
                return Err(Failure::new(
                    ErrorClass::Business,
                    "a coupon is required but the profile has no [coupons] section",
                )
                .into());
            }
            log.say(
                Level::Warn,
                "the profile has no [coupons] section: no coupon applied",
            );
            return Ok(None);
        };
        flow.steps(Some(Phase::ReadTotal), &coupons.open, "coupons.open.")
            .await?;
        let offered = flow.count(&coupons.option, "clickable").await?;
        if offered == 0 {
            if policy == CouponPolicy::Required {
                return Err(Failure::new(
                    ErrorClass::Business,
                    "no coupon is offered and the batch requires one",
                )
                .into());
            }
            log.say(Level::Info, "no coupon is offered");
            return Ok(None);
        }
        let mut chosen = 0;
        if policy == CouponPolicy::Best && offered > 1 {
            let tries = offered.min(10);
            let mut best: Option<(usize, i64)> = None;
            for i in 0..tries {
                if i > 0 {
                    flow.steps(Some(Phase::ReadTotal), &coupons.open, "coupons.open.")
                        .await?;
                }
                flow.unset("coupon");
                if !flow.click_nth(&coupons.option, i).await? {
                    continue;
                }
                if flow
                    .steps(Some(Phase::ReadTotal), &coupons.applied, "coupons.applied.")
                    .await
                    .is_err()
                {
                    // Not accepted (below its minimum): not a candidate.
                    continue;
                }
                flow.unset("total");
                if coupons.total.is_empty() {
                    flow.phase(Phase::ReadTotal).await?;
                } else {
                    flow.steps(Some(Phase::ReadTotal), &coupons.total, "coupons.total.")
                        .await?;
                }
                if let Some(t) = totals_of(flow) {
                    log.say(
                        Level::Debug,
                        format!(
                            "offer {} of {offered}: total {}",
                            i + 1,
                            show_minor(t.total_minor)
                        ),
                    );
                    if best.is_none_or(|(_, b)| t.total_minor < b) {
                        best = Some((i, t.total_minor));
                    }
                }
                flow.steps(Some(Phase::ReadTotal), &coupons.remove, "coupons.remove.")
                    .await?;
            }
            let Some((i, _)) = best else {
                if policy == CouponPolicy::Required {
                    return Err(Failure::new(
                        ErrorClass::Business,
                        "no offered coupon was accepted",
                    )
                    .into());
                }
                return Ok(None);
            };
            chosen = i;
            flow.steps(Some(Phase::ReadTotal), &coupons.open, "coupons.open.")
                .await?;
        }
        flow.unset("coupon");
        if !flow.click_nth(&coupons.option, chosen).await? {
            return Err(Failure::new(
                ErrorClass::Profile,
                "the coupon's Apply button could not be clicked",
            )
            .into());
        }
        if let Err(e) = flow
            .steps(Some(Phase::ReadTotal), &coupons.applied, "coupons.applied.")
            .await
        {
            if policy == CouponPolicy::Required {
                return Err(e);
            }
            log.say(Level::Warn, format!("the coupon was not accepted: {e}"));
            return Ok(None);
        }
        let name = match flow
            .var("coupon")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            Some(code) => code.to_owned(),
            None => format!("offer {} of {offered}", chosen + 1),
        };
        log.say(Level::Info, format!("applied coupon {name}"));
        Ok(Some(name))
    }

    /// Records how a run ended: artifacts on failure, cookies written back, the order's new
    /// state, the job's outcome.
    async fn record(
        self: &Arc<Self>,
        ticket: &OrderTicket,
        log: &RunLog,
        ended: Ended,
        record: RunRecord,
        session: Option<(Session, &Prepared)>,
    ) -> Outcome {
        let order = &ticket.order;
        let mut artifacts = (None, None);
        let mut session_status = SessionStatus::Ok;
        if let Ended::Failed(f) = &ended {
            if f.class == ErrorClass::SessionExpired {
                session_status = SessionStatus::LoggedOut;
            }
            if let Some((s, _)) = &session {
                artifacts = self.keep_artifacts(s, order.id, order.attempts).await;
            }
        }
        if let Some((s, prepared)) = session {
            let had_session = !matches!(&ended, Ended::Failed(f) if f.class == ErrorClass::Fatal);
            if had_session {
                let jar = s
                    .cookies()
                    .await
                    .ok()
                    .and_then(|all| site_cookies(all, &prepared.host));
                if let Err(e) = self
                    .store
                    .record_session(order.account_id, session_status, jar.as_ref())
                    .await
                {
                    log.say(
                        Level::Warn,
                        format!("could not write the account's cookies back: {e}"),
                    );
                }
            }
            s.close().await;
        } else if session_status == SessionStatus::LoggedOut
            && let Err(e) = self
                .store
                .record_session(order.account_id, session_status, None)
                .await
        {
            log.say(
                Level::Warn,
                format!("could not mark the account signed out: {e}"),
            );
        }
        let (finish, outcome) = match ended {
            Ended::Placed { number } => {
                log.say(Level::Info, format!("placed order {number}"));
                (Finish::Placed { number }, Outcome::Done)
            }
            Ended::Stopped => {
                log.say(
                    Level::Warn,
                    "stopped by the operator before the final click",
                );
                (Finish::Cancelled, Outcome::Done)
            }
            Ended::Ambiguous { message } => {
                log.say(Level::Error, format!("unresolved: {message}"));
                let finish = Finish::Failed {
                    class: ErrorClass::Unresolved,
                    message,
                    screenshot: artifacts.0,
                    snapshot: artifacts.1,
                };
                (finish, Outcome::Done)
            }
            Ended::NotSeen { message, class } => match class {
                // The storefront refused it (out of stock, signed out): not placed, for good.
                ErrorClass::Business | ErrorClass::SessionExpired => {
                    log.say(
                        Level::Error,
                        format!("failed ({}): {message}", class.as_str()),
                    );
                    (
                        Finish::Failed {
                            class,
                            message,
                            screenshot: artifacts.0,
                            snapshot: artifacts.1,
                        },
                        Outcome::Done,
                    )
                }
                _ => {
                    self.retry_or_fail(order, log, ErrorClass::Transient, message, None, artifacts)
                }
            },
            Ended::Failed(f) => match f.class {
                ErrorClass::Transient => {
                    self.retry_or_fail(order, log, f.class, f.to_string(), f.retry_after, artifacts)
                }
                ErrorClass::Fatal => {
                    let message = f.to_string();
                    log.say(Level::Error, format!("the batch is paused: {message}"));
                    if let Err(e) = self.store.pause_batch(ticket.batch.id, &message).await {
                        tracing::debug!(error = %e, "pausing the batch");
                    }
                    (Finish::Held { message }, Outcome::Done)
                }
                class => {
                    log.say(Level::Error, format!("failed ({}): {f}", class.as_str()));
                    let finish = Finish::Failed {
                        class,
                        message: f.to_string(),
                        screenshot: artifacts.0,
                        snapshot: artifacts.1,
                    };
                    (finish, Outcome::Done)
                }
            },
        };
        let moved = match self.store.finish_order(order.id, &finish, &record).await {
            Ok(moved) => moved,
            // The order keeps its state; the job is retried and the next run sees it.
            Err(e) => return store_retry(&e),
        };
        let outcome = match moved {
            // Stopped or paused, but the batch was resumed before this run recorded it.
            Recorded::RunAgain => {
                log.say(Level::Info, "the batch was resumed: the order runs again");
                Outcome::Defer {
                    reason: "the batch was resumed".into(),
                    after: Duration::ZERO,
                }
            }
            // It would have waited for another run, but the batch was stopped meanwhile.
            Recorded::Moved(OrderState::Cancelled) if !matches!(finish, Finish::Cancelled) => {
                log.say(Level::Warn, "the batch is stopped: the order is cancelled");
                Outcome::Done
            }
            Recorded::Moved(_) | Recorded::Stale => outcome,
        };
        self.events.flush().await;
        outcome
    }

    fn retry_or_fail(
        &self,
        order: &cartwright_core::order::Order,
        log: &RunLog,
        class: ErrorClass,
        message: String,
        retry_after: Option<Duration>,
        artifacts: (Option<String>, Option<String>),
    ) -> (Finish, Outcome) {
        if order.attempts >= self.config.max_runs {
            let message = format!("gave up after {} runs; the last: {message}", order.attempts);
            log.say(
                Level::Error,
                format!("failed ({}): {message}", class.as_str()),
            );
            return (
                Finish::Failed {
                    class,
                    message,
                    screenshot: artifacts.0,
                    snapshot: artifacts.1,
                },
                Outcome::Done,
            );
        }
        let after = backoff(
            self.config.retry_base,
            self.config.retry_max,
            order.attempts,
        )
        .max(retry_after.unwrap_or_default());
        log.say(Level::Warn, format!("{message}; trying again in {after:?}"));
        (
            Finish::Retry {
                message: message.clone(),
            },
            Outcome::Retry {
                error: message,
                after,
            },
        )
    }

    /// Saves the page as it stands: a PNG and its HTML, under the artifacts directory.
    async fn keep_artifacts(
        &self,
        session: &Session,
        order: OrderId,
        run: u32,
    ) -> (Option<String>, Option<String>) {
        let dir = format!("orders/{}", order.get());
        if let Err(e) = tokio::fs::create_dir_all(self.config.artifacts.join(&dir)).await {
            tracing::warn!(error = %e, "cannot create the artifacts directory");
            return (None, None);
        }
        let png = format!("{dir}/run-{run}.png");
        let html = format!("{dir}/run-{run}.html");
        let shot = match session.screenshot().await {
            Ok(bytes) => tokio::fs::write(self.config.artifacts.join(&png), bytes)
                .await
                .ok()
                .map(|_| png),
            Err(_) => None,
        };
        let page = match session.html().await {
            Ok(text) => tokio::fs::write(self.config.artifacts.join(&html), text)
                .await
                .ok()
                .map(|_| html),
            Err(_) => None,
        };
        (shot, page)
    }

    /// A sign-in test: checks the session and reads the profile's details into the account.
    pub(crate) async fn check_session(
        self: &Arc<Self>,
        id: AccountId,
        attempt: i64,
        max_attempts: i64,
    ) -> Outcome {
        let log = RunLog {
            engine: self.clone(),
            batch: None,
            order: None,
            account: id,
        };
        let account = match self.store.account(id).await {
            Ok(a) => a,
            Err(StoreError::NotFound { .. }) => return Outcome::Done,
            Err(e) => return store_retry(&e),
        };
        let storefront = match self.store.storefront(account.storefront_id).await {
            Ok(s) => s,
            Err(e) => return store_retry(&e),
        };
        let profile = match self.profiles.get(storefront.profile.as_str()) {
            Ok(p) => p,
            Err(e) => {
                log.say(Level::Error, format!("sign-in test: {e}"));
                return Outcome::Fail {
                    error: e.to_string(),
                };
            }
        };
        let cookies = match self.store.account_cookies(id).await {
            Ok(Some(j)) if !j.cookies().is_empty() => j,
            Ok(_) => {
                log.say(Level::Error, "sign-in test: the account has no cookies");
                let _ = self
                    .store
                    .record_session(id, SessionStatus::LoggedOut, None)
                    .await;
                return Outcome::Done;
            }
            Err(e) => return store_retry(&e),
        };
        let Ok(base_url) = url::Url::parse(storefront.base_url.as_str()) else {
            return Outcome::Fail {
                error: "the storefront's base URL does not parse".into(),
            };
        };
        let prepared = Prepared {
            host: base_url.host_str().unwrap_or_default().to_owned(),
            profile,
            base_url,
            cookies,
            context: json!({ "account": { "id": id.get() } }),
            lines: Vec::new(),
        };
        let session = match self.open(&prepared).await {
            Ok(s) => s,
            Err(e) => {
                log.say(Level::Error, format!("sign-in test: {e}"));
                return Outcome::Retry {
                    error: e.to_string(),
                    after: self.config.retry_base,
                };
            }
        };
        let mut flow = Flow::new(
            &session,
            &prepared.profile,
            prepared.base_url.clone(),
            prepared.context.clone(),
            &log,
        );
        let mut result = flow.phase(Phase::CheckLogin).await;
        if result.is_ok() && !prepared.profile.phase(Phase::ReadProfile).is_empty() {
            result = flow.phase(Phase::ReadProfile).await;
        }
        let text = |name: &str| {
            flow.var(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let (email, phone) = (text("email"), text("phone"));
        let name = match (text("first_name"), text("last_name")) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (f, l) => f.or(l).or_else(|| text("name")),
        };
        drop(flow);
        let status = match &result {
            Err(FlowError::Failed(f)) if f.class == ErrorClass::SessionExpired => {
                SessionStatus::LoggedOut
            }
            Err(_) => SessionStatus::Unknown,
            Ok(()) => SessionStatus::Ok,
        };
        let jar = session
            .cookies()
            .await
            .ok()
            .and_then(|all| site_cookies(all, &prepared.host));
        session.close().await;
        if let Err(e) = self.store.record_session(id, status, jar.as_ref()).await {
            return store_retry(&e);
        }
        match result {
            Ok(()) => {
                if (email.is_some() || phone.is_some() || name.is_some())
                    && let Err(e) = self
                        .store
                        .record_account_details(
                            id,
                            email.as_deref(),
                            phone.as_deref(),
                            name.as_deref(),
                        )
                        .await
                {
                    log.say(
                        Level::Warn,
                        format!("sign-in test: the details read could not be kept: {e}"),
                    );
                }
                log.say(Level::Info, "sign-in test: signed in");
                Outcome::Done
            }
            Err(FlowError::Failed(f))
                if f.class == ErrorClass::Transient && attempt < max_attempts =>
            {
                log.say(Level::Warn, format!("sign-in test: {f}; trying again"));
                Outcome::Retry {
                    error: f.to_string(),
                    after: backoff(
                        self.config.retry_base,
                        self.config.retry_max,
                        attempt as u32,
                    ),
                }
            }
            Err(e) => {
                log.say(Level::Error, format!("sign-in test: {e}"));
                Outcome::Done
            }
        }
    }
}

/// The cookies of the storefront's site among a context's cookies.
fn site_cookies(all: Vec<cartwright_core::cookies::Cookie>, host: &str) -> Option<CookieJar> {
    let host = host.to_ascii_lowercase();
    let mine: Vec<_> = all
        .into_iter()
        .filter(|c| {
            let d = c.domain.trim_start_matches('.').to_ascii_lowercase();
            host == d || host.ends_with(&format!(".{d}"))
        })
        .collect();
    if mine.is_empty() {
        return None;
    }
    CookieJar::from_cookies(mine).ok()
}

fn history_of(flow: &Flow<'_>) -> Vec<String> {
    match flow.var("history") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.trim().to_owned()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

fn minor(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_f64)
        .map(|x| (x * 100.0).round() as i64)
}

fn totals_of(flow: &Flow<'_>) -> Option<Totals> {
    let total = minor(flow.var("total"))?;
    let subtotal = minor(flow.var("mrp")).or_else(|| minor(flow.var("subtotal")));
    let discount = minor(flow.var("discount")).or_else(|| subtotal.map(|s| (s - total).max(0)));
    Some(Totals {
        subtotal_minor: subtotal,
        discount_minor: discount,
        total_minor: total,
    })
}

fn show_minor(m: i64) -> String {
    format!("{}.{:02}", m / 100, (m % 100).abs())
}

/// Exponential backoff with jitter: base × 2^(run − 1), at most `max`, times 0.5–1.5.
pub(crate) fn backoff(base: Duration, max: Duration, run: u32) -> Duration {
    let exp = base
        .saturating_mul(1u32 << run.saturating_sub(1).min(16))
        .min(max);
    let jitter: f64 = rand::random_range(0.5..1.5);
    exp.mul_f64(jitter)
}
