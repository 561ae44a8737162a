//! One order's run: the profile's phases in a fresh browser context, the cart's lines checked
//! against the batch and the cap on the total the storefront shows, then the final click through [`placing`], and the run's end
//! recorded (artifacts on failure, refreshed cookies written back, the order's new state, the
//! job's outcome). An order found `placing` is settled from the history instead of run.

mod artifacts;
mod cart;
mod coupon;
pub mod placing;
mod rehearse;
mod session_check;

pub use rehearse::{Rehearsal, RehearsalReport};

pub use session_check::SESSION_CHECK_JOB;
pub(crate) use session_check::SessionCheckHandler;

use crate::browser::{BrowserError, Session, SessionOptions};
use crate::engine::Engine;
use crate::flow::{Failure, Flow, FlowError, StepLog};
use crate::profile::{Phase, Profile};
use cartwright_core::account::SessionStatus;
use cartwright_core::cookies::CookieJar;
use cartwright_core::ids::{AccountId, BatchId, OrderId};
use cartwright_core::money::Money;
use cartwright_core::order::{ErrorClass, Level, NewEvent, OrderState, Totals};
use cartwright_core::placing::Settling;
use cartwright_jobs::{BoxFuture, Handler, Outcome};
use cartwright_store::{
    Finish, Job, Lease, Marked, OrderStart, OrderTicket, Recorded, RunRecord, StoreError,
};
use placing::Settled;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Runs `order` jobs.
pub struct OrderHandler(pub Arc<Engine>);

impl Handler for OrderHandler {
    fn run(&self, job: Job) -> BoxFuture<Outcome> {
        let engine = self.0.clone();
        Box::pin(async move {
            let Some(id) = job.payload.get("order").and_then(Value::as_i64) else {
                return Outcome::Fail {
                    error: format!("the job's payload names no order: {}", job.payload),
                };
            };
            engine.run_order(OrderId(id), job.lease()).await
        })
    }
}

fn store_retry(e: &StoreError) -> Outcome {
    Outcome::Retry {
        error: format!("the database failed: {e}"),
        after: Duration::from_secs(2),
    }
}

/// Where a run's log lines go: the event bus, tagged with the batch, order and account; or,
/// for a rehearsal, a list kept for its report.
pub(crate) struct RunLog {
    engine: Arc<Engine>,
    batch: Option<BatchId>,
    order: Option<OrderId>,
    account: AccountId,
    kept: Option<std::sync::Mutex<Vec<(Level, String)>>>,
}

impl RunLog {
    fn of(engine: &Arc<Engine>, ticket: &OrderTicket) -> Self {
        RunLog {
            engine: engine.clone(),
            batch: Some(ticket.batch.id),
            order: Some(ticket.order.id),
            account: ticket.order.account_id,
            kept: None,
        }
    }

    /// A log whose lines are kept, not published.
    fn kept(engine: &Arc<Engine>, account: AccountId) -> Self {
        RunLog {
            engine: engine.clone(),
            batch: None,
            order: None,
            account,
            kept: Some(std::sync::Mutex::new(Vec::new())),
        }
    }

    /// The lines a kept log holds.
    fn lines(&self) -> Vec<(Level, String)> {
        self.kept.as_ref().map_or_else(Vec::new, |k| {
            k.lock().unwrap_or_else(|p| p.into_inner()).clone()
        })
    }

    fn emit(&self, event: NewEvent) {
        match &self.kept {
            Some(kept) => {
                let line = match (&event.phase, &event.step) {
                    (Some(p), Some(s)) => format!("{p} {s}: {}", event.message),
                    (Some(p), None) => format!("{p}: {}", event.message),
                    _ => event.message,
                };
                kept.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((event.level, line));
            }
            None => self.engine.emit(event),
        }
    }

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

    pub(crate) fn say(&self, level: Level, message: impl Into<String>) {
        self.emit(self.event(None, None, level, message.into()));
    }
}

impl StepLog for RunLog {
    fn log(&self, phase: Option<Phase>, step: Option<&str>, level: Level, message: &str) {
        self.emit(self.event(phase.map(Phase::as_str), step, level, message.to_owned()));
    }
}

/// What a run needs from the store before the browser starts.
pub(crate) struct Prepared {
    profile: Arc<Profile>,
    base_url: url::Url,
    cookies: CookieJar,
    context: Value,
    lines: Vec<Value>,
    host: String,
}

/// How a run ended before it is recorded.
enum Ended {
    /// Before the final click.
    Failed(Failure),
    /// Stopped by the operator before the final click.
    Stopped,
    /// After the final click (or a look at a placing order): what the evidence shows.
    Clicked(Settled),
    /// This worker lost the order's job to another before the final click: nothing of this
    /// run is recorded.
    LeaseLost,
}

/// Aborts a background task when the run that started it ends, however it ends.
struct Background(tokio::task::JoinHandle<()>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Engine {
    /// Runs (or settles) one order; the job's outcome.
    pub(crate) async fn run_order(self: &Arc<Self>, id: OrderId, lease: Lease) -> Outcome {
        let start = match self.store.start_order(id, self.config.retry.max_runs).await {
            Ok(s) => s,
            Err(StoreError::NotFound { .. }) => return Outcome::Done,
            Err(e) => return store_retry(&e),
        };
        match start {
            OrderStart::Nothing(reason) => {
                tracing::debug!(order = id.get(), "nothing to do: {reason}");
                Outcome::Done
            }
            OrderStart::Busy { settling } => Outcome::Defer {
                reason: if settling {
                    "another order of this account is being settled from its history".into()
                } else {
                    "another order of this account is being run".into()
                },
                // Settling can take long: do not knock twice a second meanwhile.
                after: Duration::from_millis(if settling { 5_000 } else { 500 }),
            },
            OrderStart::Run(ticket) => self.drive(*ticket, &lease).await,
            OrderStart::Resolve(ticket) => self.resolve(*ticket, &lease).await,
        }
    }

    /// The profile of a ticket's storefront, when it can be had.
    async fn profile_of(&self, ticket: &OrderTicket) -> Option<Arc<Profile>> {
        let storefront = self
            .store
            .storefront(ticket.batch.storefront_id)
            .await
            .ok()?;
        self.profiles.get(storefront.profile.as_str()).ok()
    }

    async fn prepare(&self, ticket: &OrderTicket) -> Result<Prepared, Failure> {
        self.prepare_for(
            ticket.batch.storefront_id,
            ticket.order.account_id,
            &ticket.batch.spec,
        )
        .await
    }

    /// Refuses a storefront address the engine may not reach (see [`crate::net`]): inside,
    /// a profile failure that no retry fixes; not resolving, a transient one.
    pub(crate) async fn reachable(&self, url: &url::Url) -> Result<(), Failure> {
        crate::net::ensure_public(url, self.config.allow_internal)
            .await
            .map_err(|e| match e {
                crate::net::Unreachable::Internal(e) => {
                    Failure::new(ErrorClass::Profile, e.to_string())
                }
                e => Failure::new(ErrorClass::Transient, e.to_string()),
            })
    }

    /// What a run of `spec` for `account` on `storefront` needs from the store.
    async fn prepare_for(
        &self,
        storefront: cartwright_core::ids::StorefrontId,
        account: AccountId,
        spec: &cartwright_core::batch::NewBatch,
    ) -> Result<Prepared, Failure> {
        let store_fail = |e: StoreError| {
            Failure::new(ErrorClass::Transient, format!("the database failed: {e}"))
        };
        let storefront = self
            .store
            .storefront(storefront)
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
        self.reachable(&base_url).await?;
        let account = self.store.account(account).await.map_err(store_fail)?;
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
                "variant": product.variant.as_ref().map(|v| v.as_str()),
            }));
        }
        // Shops that ask for first and last name: the last word is the last name.
        let full_name = address.full_name.as_str().trim();
        let (first_name, last_name) = full_name.rsplit_once(' ').unwrap_or((full_name, ""));
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
                "first_name": first_name.trim(),
                "last_name": Some(last_name).filter(|n| !n.is_empty()),
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
            "shipping": {"label": spec.shipping.as_ref().map(|s| s.as_str())},
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

    /// What a run needs from the store, and a browser context with the account's cookies;
    /// how long the context took to open.
    async fn start_session(
        &self,
        ticket: &OrderTicket,
    ) -> Result<(Prepared, Session, Duration), Failure> {
        let prepared = self.prepare(ticket).await?;
        let opening = Instant::now();
        let session = self.open(&prepared).await?;
        Ok((prepared, session, opening.elapsed()))
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
    async fn drive(self: &Arc<Self>, ticket: OrderTicket, lease: &Lease) -> Outcome {
        let order = &ticket.order;
        let log = RunLog::of(self, &ticket);
        log.say(
            Level::Info,
            format!("run {} of order {} started", order.attempts, order.id),
        );
        let (prepared, session, opening) = match self.start_session(&ticket).await {
            Ok(started) => started,
            Err(f) => {
                return self
                    .record(
                        &ticket,
                        lease,
                        &log,
                        Ended::Failed(f),
                        RunRecord::default(),
                        None,
                    )
                    .await;
            }
        };
        // Stop checks read the batch's state in the background, a few times a second.
        let stopped = Arc::new(AtomicBool::new(false));
        let _watcher = {
            let (store, flag, batch) = (self.store.clone(), stopped.clone(), ticket.batch.id);
            Background(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    if let Ok(state) = store.batch_state(batch).await
                        && state != cartwright_core::batch::BatchState::Running
                    {
                        flag.store(true, Ordering::Release);
                        return;
                    }
                }
            }))
        };
        let stop_flag = stopped.clone();
        let stop = move || stop_flag.load(Ordering::Acquire);
        let mut record = RunRecord::default();
        record
            .timings
            .insert("browser".into(), opening.as_millis() as u64);
        let mut flow = Flow::new(
            &session,
            &prepared.profile,
            prepared.base_url.clone(),
            prepared.context.clone(),
            &log,
        );
        flow.stop_when(&stop);
        let ended = self
            .steps(&ticket, lease, &prepared, &mut flow, &mut record, &log)
            .await;
        drop(flow);
        self.record(
            &ticket,
            lease,
            &log,
            ended,
            record,
            Some((session, &prepared)),
        )
        .await
    }

    /// The phases, in order, up to and through the final click. Returns how the run ended.
    async fn steps(
        &self,
        ticket: &OrderTicket,
        lease: &Lease,
        prepared: &Prepared,
        flow: &mut Flow<'_>,
        record: &mut RunRecord,
        log: &RunLog,
    ) -> Ended {
        let history_before = match self
            .ready_to_click(&ticket.batch.spec, prepared, flow, record, log)
            .await
        {
            Ok(history) => history,
            Err(ended) => return ended,
        };
        let permit = match self
            .mark_placing(ticket.order.id, lease, &history_before, record)
            .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(Marked::LeaseLost)) => return Ended::LeaseLost,
            Ok(Err(_)) => return Ended::Stopped,
            Err(e) => {
                return Ended::Failed(Failure::new(
                    ErrorClass::Transient,
                    format!("the database failed before the final click: {e}"),
                ));
            }
        };
        log.say(Level::Info, "placing the order");
        // From here the run completes whatever the operator does: the click may be out.
        flow.unstoppable();
        let started = Instant::now();
        let settled = self
            .click_and_confirm(flow, &permit, ticket, lease, &history_before, log)
            .await;
        record
            .timings
            .insert("place".into(), started.elapsed().as_millis() as u64);
        Ended::Clicked(settled)
    }

    /// Every phase before the final click: signed in, the history read, the cart built and
    /// checked, the total within the cap, the address and payment chosen. The history as it
    /// stood before, or how the run ended.
    async fn ready_to_click(
        &self,
        spec: &cartwright_core::batch::NewBatch,
        prepared: &Prepared,
        flow: &mut Flow<'_>,
        record: &mut RunRecord,
        log: &RunLog,
    ) -> Result<Vec<String>, Ended> {
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
                    Err(FlowError::Stopped) => return Err(Ended::Stopped),
                    Err(FlowError::Failed(f)) => return Err(Ended::Failed(f)),
                }
            }};
        }
        phase!(Phase::CheckLogin);
        log.say(Level::Info, "signed in");
        // The history as it stands before anything is ordered: after a lost confirmation, a
        // number not in it is this order.
        phase!(Phase::FindInHistory);
        let history_before = match history_before(flow, profile).await {
            Ok(h) => h,
            Err(f) => return Err(Ended::Failed(f)),
        };
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
        let coupon = coupon::apply(
            flow,
            profile,
            spec.coupon,
            spec.coupon_code.as_ref().map(|c| c.as_str()),
            log,
        )
        .await;
        record
            .timings
            .insert("apply_coupon".into(), started.elapsed().as_millis() as u64);
        match coupon {
            Ok(c) => record.coupon = c,
            Err(FlowError::Stopped) => return Err(Ended::Stopped),
            Err(FlowError::Failed(f)) => return Err(Ended::Failed(f)),
        }
        let started = Instant::now();
        let checked = cart::verify(
            flow,
            profile,
            &prepared.lines,
            &prepared.base_url,
            spec.clear_cart,
            log,
        )
        .await;
        record
            .timings
            .insert("verify_cart".into(), started.elapsed().as_millis() as u64);
        match checked {
            Ok(()) => {}
            Err(FlowError::Stopped) => return Err(Ended::Stopped),
            Err(FlowError::Failed(f)) => return Err(Ended::Failed(f)),
        }
        flow.unset("total");
        phase!(Phase::ReadTotal);
        let totals = match totals_of(flow) {
            Some(t) => t,
            None => {
                return Err(Ended::Failed(Failure::new(
                    ErrorClass::Profile,
                    "read_total did not read a total",
                )));
            }
        };
        record.totals = Some(totals);
        let cap = spec.max_total;
        let Some(total) = flow.amount("total") else {
            return Err(Ended::Failed(Failure::new(
                ErrorClass::Profile,
                "read_total did not read a total",
            )));
        };
        if total > cap {
            return Err(Ended::Failed(Failure::new(
                ErrorClass::Business,
                format!(
                    "the cart total {} is above the batch's cap of {}: the order was not placed",
                    total.grouped(),
                    cap.grouped()
                ),
            )));
        }
        log.say(
            Level::Info,
            format!("cart total {} (cap {})", total.grouped(), cap.grouped()),
        );
        // A total read again on the last page (after shipping is chosen) is checked too.
        flow.unset("total");
        phase!(Phase::SetAddress);
        phase!(Phase::ChoosePayment);
        if let Some(last) = flow.amount("total") {
            if last > cap {
                return Err(Ended::Failed(Failure::new(
                    ErrorClass::Business,
                    format!(
                        "the total on the last page, {}, is above the batch's cap of {}: the order was not placed",
                        last.grouped(),
                        cap.grouped()
                    ),
                )));
            }
            if last != total {
                log.say(
                    Level::Info,
                    format!(
                        "total on the last page {} (cap {})",
                        last.grouped(),
                        cap.grouped()
                    ),
                );
            }
            record.totals = totals_of(flow);
        } else if spec.shipping.is_some() {
            // A shipping method changes the total after it was checked: unchecked, never paid.
            return Err(Ended::Failed(Failure::new(
                ErrorClass::Profile,
                "the batch names a shipping method but the profile reads no total after choosing it (an `extract` into `total` in set_address or choose_payment): the order was not placed",
            )));
        }
        Ok(history_before)
    }

    /// An order found `placing`: its final click may have gone out in a run that was lost,
    /// or its settling was handed back to its job. Settled from the history in a fresh
    /// session; never clicked again.
    async fn resolve(self: &Arc<Self>, ticket: OrderTicket, lease: &Lease) -> Outcome {
        let log = RunLog::of(self, &ticket);
        let settling = ticket.order.settling.clone().unwrap_or_else(|| {
            Settling::new("its run was lost after the order was marked placing")
        });
        log.say(
            Level::Warn,
            format!(
                "settling the order from the history ({}); it is never clicked again",
                settling.why
            ),
        );
        let Some(before) = ticket.history_before.clone() else {
            let ended = Ended::Clicked(Settled::Unresolved(
                "no history was recorded before the final click".into(),
                Some(settling),
            ));
            return self
                .record(&ticket, lease, &log, ended, RunRecord::default(), None)
                .await;
        };
        let (prepared, session, _) = match self.start_session(&ticket).await {
            Ok(started) => started,
            Err(f) => {
                return self
                    .look_later(&ticket, lease, settling, f.to_string(), &log)
                    .await;
            }
        };
        let mut flow = Flow::new(
            &session,
            &prepared.profile,
            prepared.base_url.clone(),
            prepared.context.clone(),
            &log,
        );
        let settled = match flow.phase(Phase::CheckLogin).await {
            Err(e) => {
                drop(flow);
                session.close().await;
                if let FlowError::Failed(f) = &e
                    && f.class == ErrorClass::SessionExpired
                    && let Err(e) = self
                        .store
                        .record_session(ticket.order.account_id, SessionStatus::LoggedOut, None)
                        .await
                {
                    log.say(
                        Level::Warn,
                        format!("could not mark the account signed out: {e}"),
                    );
                }
                return self
                    .look_later(&ticket, lease, settling, e.to_string(), &log)
                    .await;
            }
            Ok(()) => {
                self.settle(&mut flow, &ticket, lease, &before, settling, &log)
                    .await
            }
        };
        drop(flow);
        self.record(
            &ticket,
            lease,
            &log,
            Ended::Clicked(settled),
            RunRecord::default(),
            Some((session, &prepared)),
        )
        .await
    }

    /// A look that could not even start: noted, and the order looked at again later.
    async fn look_later(
        self: &Arc<Self>,
        ticket: &OrderTicket,
        lease: &Lease,
        mut settling: Settling,
        why: String,
        log: &RunLog,
    ) -> Outcome {
        let next_look = self
            .could_not_look(ticket, lease, &mut settling, why, log)
            .await;
        let ended = Ended::Clicked(Settled::StillPlacing { next_look });
        self.record(ticket, lease, log, ended, RunRecord::default(), None)
            .await
    }

    /// Records how a run ended: artifacts on failure, cookies written back, the order's new
    /// state, the job's outcome.
    async fn record(
        self: &Arc<Self>,
        ticket: &OrderTicket,
        lease: &Lease,
        log: &RunLog,
        ended: Ended,
        record: RunRecord,
        session: Option<(Session, &Prepared)>,
    ) -> Outcome {
        let order = &ticket.order;
        if matches!(ended, Ended::LeaseLost | Ended::Clicked(Settled::Gone)) {
            log.say(
                Level::Warn,
                "this worker no longer holds the order (its job went to another worker, or the order was settled meanwhile): this run ends without recording anything",
            );
            if let Some((s, _)) = session {
                s.close().await;
            }
            self.events.flush().await;
            return Outcome::Done;
        }
        let mut artifacts = (None, None);
        let mut session_status = SessionStatus::Ok;
        let keeps_page = match &ended {
            Ended::Failed(f) => {
                if f.class == ErrorClass::SessionExpired {
                    session_status = SessionStatus::LoggedOut;
                }
                true
            }
            Ended::Clicked(Settled::Refused(..) | Settled::Unresolved(..)) => true,
            _ => false,
        };
        if keeps_page && let Some((s, _)) = &session {
            artifacts = artifacts::keep(&self.config.artifacts, s, order.id, order.attempts).await;
        }
        if let Some((s, prepared)) = session {
            let had_session = !matches!(&ended, Ended::Failed(f) if f.class == ErrorClass::Fatal);
            if had_session {
                self.write_back(&s, prepared, order.account_id, session_status, log)
                    .await;
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
            // Handled above.
            Ended::LeaseLost => return Outcome::Done,
            Ended::Stopped => {
                log.say(
                    Level::Warn,
                    "stopped by the operator before the final click",
                );
                (Finish::Cancelled, Outcome::Done)
            }
            Ended::Failed(f) => self.failed(ticket, log, f, artifacts),
            Ended::Clicked(settled) => match self.clicked(order, log, settled, artifacts) {
                Ok(pair) => pair,
                // Still placing: the evidence is kept already; the job looks again later.
                Err(next_look) => {
                    log.say(
                        Level::Warn,
                        format!(
                            "the order stays placing: the history is looked at again in {}",
                            humantime::format_duration(Duration::from_secs(
                                next_look.as_secs().max(1)
                            ))
                        ),
                    );
                    self.events.flush().await;
                    return Outcome::Defer {
                        reason: "the order is being settled from the history".into(),
                        after: next_look,
                    };
                }
            },
        };
        let moved = match self
            .finish_order(order.id, &finish, &record, lease, log)
            .await
        {
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
            Recorded::Moved(_) => {
                // The browser cannot run: the batch pauses (once this run's end is recorded,
                // so a run that lost its job pauses nothing).
                if let Finish::Held { message } = &finish
                    && let Err(e) = self.pause_batch(ticket.batch.id, message).await
                {
                    tracing::debug!(error = %e, "pausing the batch");
                }
                outcome
            }
            Recorded::Stale => {
                log.say(
                    Level::Info,
                    "the order was settled elsewhere meanwhile: this run's end is not recorded",
                );
                Outcome::Done
            }
        };
        self.events.flush().await;
        outcome
    }

    /// What a failure before the final click does: a retry while runs are left (transient),
    /// a paused batch (the browser cannot run), or a final failure.
    fn failed(
        &self,
        ticket: &OrderTicket,
        log: &RunLog,
        f: Failure,
        (screenshot, snapshot): (Option<String>, Option<String>),
    ) -> (Finish, Outcome) {
        let order = &ticket.order;
        match f.class {
            ErrorClass::Transient if self.config.retry.allows_another(order.attempts) => {
                let after = self.config.retry.backoff(order.attempts, f.retry_after);
                let message = f.to_string();
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
            ErrorClass::Fatal => {
                let message = f.to_string();
                log.say(Level::Error, format!("the batch is paused: {message}"));
                (Finish::Held { message }, Outcome::Done)
            }
            class => {
                let message = if class == ErrorClass::Transient {
                    format!("gave up after {} runs; the last: {f}", order.attempts)
                } else {
                    f.to_string()
                };
                log.say(
                    Level::Error,
                    format!("failed ({}): {message}", class.as_str()),
                );
                let finish = Finish::Failed {
                    class,
                    message,
                    screenshot,
                    snapshot,
                };
                (finish, Outcome::Done)
            }
        }
    }

    /// What the evidence after a final click does; `Err` with the wait before the next look
    /// when it proves nothing yet.
    fn clicked(
        &self,
        order: &cartwright_core::order::Order,
        log: &RunLog,
        settled: Settled,
        (screenshot, snapshot): (Option<String>, Option<String>),
    ) -> Result<(Finish, Outcome), Duration> {
        Ok(match settled {
            Settled::Placed { number, settling } => {
                log.say(Level::Info, format!("placed order {number}"));
                (Finish::Placed { number, settling }, Outcome::Done)
            }
            Settled::NotPlaced(settling) => {
                let after = self.config.retry.backoff(order.attempts, None);
                let message = format!(
                    "the history has not shown the order in {} reads: the click placed nothing, and the order runs again",
                    settling.absent_reads
                );
                log.say(Level::Warn, message.clone());
                (
                    Finish::NotPlaced { settling },
                    Outcome::Retry {
                        error: message,
                        after,
                    },
                )
            }
            Settled::Refused(refusal, settling) => {
                log.say(
                    Level::Error,
                    format!(
                        "failed ({}): the storefront refused the order and its history confirms it was not placed: {}",
                        refusal.class.as_str(),
                        refusal.message
                    ),
                );
                let finish = Finish::Refused {
                    refusal,
                    settling,
                    screenshot,
                    snapshot,
                };
                (finish, Outcome::Done)
            }
            Settled::Unresolved(message, settling) => {
                log.say(
                    Level::Error,
                    format!("unresolved: {message}; a person must settle it"),
                );
                let finish = Finish::Unresolved {
                    message,
                    settling,
                    screenshot,
                    snapshot,
                };
                (finish, Outcome::Done)
            }
            Settled::StillPlacing { next_look } => return Err(next_look),
            // Handled before: nothing is recorded.
            Settled::Gone => return Err(Duration::ZERO),
        })
    }

    /// Records a run's end, trying again for a moment when the database is unavailable: the
    /// run's result (a placed order's number above all) is worth more than a retry.
    async fn finish_order(
        &self,
        order: OrderId,
        finish: &Finish,
        record: &RunRecord,
        lease: &Lease,
        log: &RunLog,
    ) -> Result<Recorded, StoreError> {
        let mut wait = Duration::from_millis(500);
        for _ in 0..3 {
            match self
                .store
                .finish_order(order, finish, record, Some(lease))
                .await
            {
                Err(e) if e.is_unavailable() => {
                    log.say(
                        Level::Warn,
                        format!("recording the run's end failed ({e}); trying again"),
                    );
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                other => return other,
            }
        }
        self.store
            .finish_order(order, finish, record, Some(lease))
            .await
    }

    /// Writes the session's refreshed cookies back to the account (what fails the checks an
    /// imported cookie passes is left out and named), with what the run learnt of its session.
    async fn write_back(
        &self,
        session: &Session,
        prepared: &Prepared,
        account: AccountId,
        status: SessionStatus,
        log: &RunLog,
    ) {
        let jar = match session.cookies().await {
            Ok(all) => {
                let (jar, dropped) = site_cookies(all, &prepared.host);
                if !dropped.is_empty() {
                    log.say(
                        Level::Warn,
                        format!(
                            "{} of the site's cookies could not be kept: {}",
                            dropped.len(),
                            dropped.join("; ")
                        ),
                    );
                }
                jar
            }
            Err(e) => {
                log.say(
                    Level::Warn,
                    format!("could not read the session's cookies ({e}): the stored ones are kept"),
                );
                None
            }
        };
        if let Err(e) = self
            .store
            .record_session(account, status, jar.as_ref())
            .await
        {
            log.say(
                Level::Warn,
                format!("could not write the account's cookies back: {e}"),
            );
        }
    }
}

/// The cookies of the storefront's site among a context's cookies, checked; and what was left
/// out.
fn site_cookies(
    all: Vec<cartwright_core::cookies::Cookie>,
    host: &str,
) -> (Option<CookieJar>, Vec<String>) {
    let host = host.to_ascii_lowercase();
    let mine: Vec<_> = all
        .into_iter()
        .filter(|c| {
            let d = c.domain.trim_start_matches('.').to_ascii_lowercase();
            host == d || host.ends_with(&format!(".{d}"))
        })
        .collect();
    CookieJar::from_browser(mine)
}

/// The order numbers the `find_in_history` phase read into `history`.
pub(crate) fn history_of(flow: &Flow<'_>) -> Vec<String> {
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

/// The history before anything is ordered. An empty one counts only when the page shows the
/// profile's "no orders" notice (when the profile names one): a snapshot that missed orders
/// would let one of them pass for this order after a lost confirmation.
async fn history_before(flow: &Flow<'_>, profile: &Profile) -> Result<Vec<String>, Failure> {
    let history = history_of(flow);
    if history.is_empty()
        && let Some(empty) = &profile.history.empty
        && flow.count(empty, "present").await.unwrap_or(0) == 0
    {
        return Err(Failure::new(
            ErrorClass::Transient,
            "the order history read before ordering shows no order and not its \"no orders\" notice: it did not load as expected",
        ));
    }
    Ok(history)
}

/// The cart's figures as the page showed them, exact to the cent.
pub(crate) fn totals_of(flow: &Flow<'_>) -> Option<Totals> {
    let minor = |name: &str| flow.amount(name).map(Money::minor);
    let total = minor("total")?;
    let subtotal = minor("mrp").or_else(|| minor("subtotal"));
    // Only what the page calls the discount: subtotal − total would count shipping as one.
    let discount = minor("discount");
    Some(Totals {
        subtotal_minor: subtotal,
        discount_minor: discount,
        total_minor: total,
    })
}
