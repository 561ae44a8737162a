//! The flow runner: runs a profile's steps in a browser session, logging every step, waiting
//! for conditions rather than sleeping, and classing every failure (transient, session
//! expired, business, profile) from what the page and the network said.

use crate::browser::{BrowserError, NetworkError, Session};
use crate::profile::{Action, Condition, Extract, Phase, Profile, Rounds, Selector, Step, Target};
use cartwright_core::money::Money;
use cartwright_core::order::ErrorClass;
pub use cartwright_core::order::Level;
use serde_json::{Map, Value, json};
use std::time::Duration;
use tokio::time::{Instant, sleep};

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(40);
/// Longest the page waits by itself before the site's answers are checked again.
const WAIT_TURN: Duration = Duration::from_millis(500);
/// Longest wait for the network to go quiet after a click.
const SETTLE: Duration = Duration::from_secs(3);

/// Where the runner reports each step.
pub trait StepLog: Send + Sync {
    /// One line of the run's log.
    fn log(&self, phase: Option<Phase>, step: Option<&str>, level: Level, message: &str);
}

/// Why a run did not finish.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FlowError {
    /// A step failed.
    #[error("{0}")]
    Failed(Failure),
    /// The operator stopped the batch.
    #[error("stopped by the operator")]
    Stopped,
}

/// A failed step, classed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{place}{message}", place = place_of(*phase, step.as_deref()))]
pub struct Failure {
    /// What kind of failure: decides retries.
    pub class: ErrorClass,
    /// Where.
    pub phase: Option<Phase>,
    /// Which step (its number and what it does).
    pub step: Option<String>,
    /// What happened.
    pub message: String,
    /// The site asked us to wait this long.
    pub retry_after: Option<Duration>,
}

/// Where a failure happened, as a prefix of its message ("read_total, step 2: "); nothing
/// for a failure outside any step.
fn place_of(phase: Option<Phase>, step: Option<&str>) -> String {
    match (phase, step) {
        (None, None) => String::new(),
        (Some(p), None) => format!("{}: ", p.as_str()),
        (None, Some(s)) => format!("step {s}: "),
        (Some(p), Some(s)) => format!("{}, step {s}: ", p.as_str()),
    }
}

impl Failure {
    /// A failure outside any step.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            phase: None,
            step: None,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<BrowserError> for Failure {
    fn from(e: BrowserError) -> Self {
        let class = match e {
            BrowserError::Missing(_) | BrowserError::Launch(_) => ErrorClass::Fatal,
            BrowserError::Cdp(_) => ErrorClass::Transient,
        };
        Failure::new(class, e.to_string())
    }
}

impl From<Failure> for FlowError {
    fn from(f: Failure) -> Self {
        FlowError::Failed(f)
    }
}

/// What failed inside a step, before it is placed in its phase.
enum StepError {
    Class(ErrorClass, String, Option<Duration>),
    /// Nothing matched in time: a profile problem unless the page says otherwise.
    NotFound(String),
    Stopped,
}

impl From<BrowserError> for StepError {
    fn from(e: BrowserError) -> Self {
        let f = Failure::from(e);
        StepError::Class(f.class, f.message, None)
    }
}

fn net_error(e: NetworkError) -> StepError {
    match e {
        NetworkError::TooMany { wait, .. } => {
            StepError::Class(ErrorClass::Transient, e.to_string(), Some(wait))
        }
        NetworkError::Status { status, .. } => {
            let class = match status {
                500..=599 | 408 => ErrorClass::Transient,
                401 | 403 => ErrorClass::SessionExpired,
                404 | 410 => ErrorClass::Business,
                _ => ErrorClass::Profile,
            };
            StepError::Class(class, e.to_string(), None)
        }
        NetworkError::Failed(_) => StepError::Class(ErrorClass::Transient, e.to_string(), None),
    }
}

/// Why a page did not load.
enum Loaded {
    Stopped,
    Failed(NetworkError),
}

/// Runs a profile's phases in one session.
pub struct Flow<'a> {
    session: &'a Session,
    profile: &'a Profile,
    base_url: url::Url,
    context: Value,
    log: &'a dyn StepLog,
    stop: Option<&'a (dyn Fn() -> bool + Send + Sync)>,
    /// When the last click, key press or navigation went out: a server error after it means
    /// what it asked for is not coming.
    last_action: std::sync::Mutex<Instant>,
    /// The page a navigation just loaded, until anything is done on it: a navigation to the
    /// same address would load the same thing again.
    fresh: std::sync::Mutex<Option<String>>,
    /// The final click is running under its permit: only then may the `place` and `confirm`
    /// steps run.
    clicking: bool,
    /// The final click has run in this session: nothing is done again in it from now on (a
    /// page reloaded could be the one the order went to).
    clicked: bool,
    /// The amounts `extract` steps with `number = true` read, exact (their variables hold
    /// them as JSON numbers, for templates).
    amounts: std::collections::BTreeMap<String, Money>,
    /// Where each step's record goes when the flow is rehearsed.
    recorder: Option<&'a std::sync::Mutex<Vec<StepRecord>>>,
}

/// One step as a rehearsal saw it: what it did, how long it took, how it ended, what each of
/// its selector's alternatives matched, and the page after it.
#[derive(Debug, Clone)]
pub struct StepRecord {
    /// The phase (or section) it ran in.
    pub phase: Option<Phase>,
    /// Its number in the phase (`3`, `2.1.1` inside a repeat).
    pub label: String,
    /// What it does, in profile words.
    pub what: String,
    /// How long it took.
    pub took: Duration,
    /// What it noted, or why it failed.
    pub outcome: Result<Option<String>, String>,
    /// It may fail: the flow went on.
    pub optional: bool,
    /// Each alternative of its selector, in order, with what it matched.
    pub matches: Vec<AlternativeMatch>,
    /// The page after the step (PNG), when it could be taken.
    pub screenshot: Option<Vec<u8>>,
    /// The page's URL after the step.
    pub url: String,
}

impl StepRecord {
    /// Whether the first alternative that matched is not its selector's first.
    pub fn fell_back(&self) -> bool {
        self.matches
            .iter()
            .find(|m| m.count > 0)
            .is_some_and(|m| m.alternative > 0)
    }
}

/// What one alternative of a selector matched.
#[derive(Debug, Clone)]
pub struct AlternativeMatch {
    /// The alternative, as the profile wrote it.
    pub selector: String,
    /// Its place among its selector's alternatives (0: the first).
    pub alternative: usize,
    /// How many visible elements it matched.
    pub count: usize,
    /// The first match's HTML, shortened.
    pub excerpt: Option<String>,
}

impl<'a> Flow<'a> {
    /// A runner over `session`. `context` holds the template roots (`account`, `address`, …);
    /// `base_url` and `vars` are set here.
    pub fn new(
        session: &'a Session,
        profile: &'a Profile,
        base_url: url::Url,
        mut context: Value,
        log: &'a dyn StepLog,
    ) -> Self {
        if let Value::Object(map) = &mut context {
            map.insert(
                "base_url".into(),
                Value::String(base_url.as_str().trim_end_matches('/').to_owned()),
            );
            map.entry("vars")
                .or_insert_with(|| Value::Object(Map::new()));
        }
        Self {
            session,
            profile,
            base_url,
            context,
            log,
            stop: None,
            last_action: std::sync::Mutex::new(Instant::now()),
            fresh: std::sync::Mutex::new(None),
            clicking: false,
            clicked: false,
            amounts: std::collections::BTreeMap::new(),
            recorder: None,
        }
    }

    /// Records every step from now on (a rehearsal): its selector's matches, a screenshot.
    pub fn record_into(&mut self, recorder: &'a std::sync::Mutex<Vec<StepRecord>>) {
        self.recorder = Some(recorder);
    }

    /// What each alternative of the step's selector matches now.
    async fn probe(&self, step: &Step) -> Vec<AlternativeMatch> {
        let want = if matches!(step.action, Action::Extract(_)) {
            "any"
        } else {
            "visible"
        };
        let targets: Vec<&Target> = match &step.action {
            Action::Click(t) => vec![t],
            Action::Fill { target, .. } | Action::Select { target, .. } => vec![target],
            Action::Extract(e) => vec![&e.target],
            Action::WaitFor(c) | Action::Assert { condition: c, .. } => match c {
                Condition::Present(t) | Condition::Absent(t) | Condition::Filled(t) => vec![t],
                Condition::Any(ts) => ts.iter().collect(),
                Condition::Text(_) | Condition::Url(_) => vec![],
            },
            Action::Repeat {
                rounds: Rounds::WhilePresent(t),
                ..
            } => vec![t],
            _ => vec![],
        };
        let mut out = Vec::new();
        for target in targets {
            for (i, alternative) in target.alternatives.iter().enumerate() {
                let Ok(selector) = self.selector(alternative) else {
                    continue;
                };
                let spec = json!({ "alternatives": [selector], "want": want, "read": "html", "all": false, "mark": false, "index": 0 });
                let found = self.session.find(&spec).await.unwrap_or_default();
                out.push(AlternativeMatch {
                    alternative: i,
                    selector: crate::profile::describe_selector(alternative),
                    count: found.count,
                    excerpt: found.values.into_iter().next(),
                });
            }
        }
        out
    }

    /// The amount an `extract` step with `number = true` read into `name`, exact to the
    /// cent (its sign aside).
    pub fn amount(&self, name: &str) -> Option<Money> {
        self.amounts.get(name).copied()
    }

    /// The profile the flow runs.
    pub fn profile(&self) -> &'a Profile {
        self.profile
    }

    /// The final click and its confirmation (the `place` and `confirm` phases). They run only
    /// under a permit, which only recording the order `placing` gives
    /// ([`crate::order::placing`]).
    pub async fn final_click(
        &mut self,
        _permit: &crate::order::placing::ClickPermit,
    ) -> Result<(), FlowError> {
        self.clicking = true;
        self.clicked = true;
        let result = async {
            self.phase(Phase::Place).await?;
            self.phase(Phase::Confirm).await
        }
        .await;
        self.clicking = false;
        result
    }

    /// Checks `stop` before every step: when it says so, the run ends with [`FlowError::Stopped`].
    pub fn stop_when(&mut self, stop: &'a (dyn Fn() -> bool + Send + Sync)) {
        self.stop = Some(stop);
    }

    /// Runs without stop checks from now on: the final click and its confirmation always
    /// complete.
    pub fn unstoppable(&mut self) {
        self.stop = None;
    }

    /// Sets a template root (`line` for each cart line).
    pub fn set(&mut self, root: &str, value: Value) {
        if let Value::Object(map) = &mut self.context {
            map.insert(root.to_owned(), value);
        }
    }

    /// A variable an `extract` step wrote.
    pub fn var(&self, name: &str) -> Option<&Value> {
        self.context.get("vars")?.get(name)
    }

    /// Forgets a variable, so that a later read is known to be fresh.
    pub fn unset(&mut self, name: &str) {
        self.amounts.remove(name);
        if let Some(Value::Object(vars)) = self.context.get_mut("vars") {
            vars.remove(name);
        }
    }

    /// The session.
    pub fn session(&self) -> &Session {
        self.session
    }

    /// Runs one phase.
    pub async fn phase(&mut self, phase: Phase) -> Result<(), FlowError> {
        let steps = self.profile.phase(phase);
        self.steps(Some(phase), steps, "").await
    }

    /// Runs steps outside the named phases (the coupon steps), logged under `phase`.
    pub async fn steps(
        &mut self,
        phase: Option<Phase>,
        steps: &[Step],
        prefix: &str,
    ) -> Result<(), FlowError> {
        if matches!(phase, Some(Phase::Place | Phase::Confirm)) && !self.clicking {
            return Err(FlowError::Failed(Failure {
                class: ErrorClass::Profile,
                phase,
                step: None,
                message: "the final click runs only once the order is recorded as being placed (Flow::final_click)".into(),
                retry_after: None,
            }));
        }
        // Where the steps go on from when the site fails under them: the first step run on
        // the page that was last loaded with success, and that page. Never once the final
        // click has run: what it sent may have been taken.
        let redo = !self.clicked && !matches!(phase, Some(Phase::Place | Phase::Confirm));
        let mut page_start = 0;
        let mut page_url = self.session.good_page();
        let mut redone = 0;
        // A page reached again after a form it accepted is progress, and starts a budget of
        // its own; all of them together are bounded.
        let mut redos_left = (steps.len() as u32 + 1) * self.profile.site.page_retries;
        let mut i = 0;
        while let Some(step) = steps.get(i) {
            let label = format!("{prefix}{}", i + 1);
            let what = self.describe(&step.action);
            if self.stop.is_some_and(|stop| stop()) {
                return Err(FlowError::Stopped);
            }
            if let Some(target) = &step.if_present {
                let spec = self
                    .spec(target, "visible", None, false, false, 0)
                    .map_err(|e| self.unplaced(phase, &label, step, &what, e))?;
                let here = self
                    .session
                    .find(&spec)
                    .await
                    .map_err(|e| self.unplaced(phase, &label, step, &what, e.into()))?;
                if here.count == 0 {
                    self.log.log(
                        phase,
                        Some(&label),
                        Level::Debug,
                        &format!(
                            "{what}: skipped, {} is not on the page",
                            describe_target(target)
                        ),
                    );
                    i += 1;
                    continue;
                }
            }
            let started = Instant::now();
            let pages_before = self.session.page_load().map(|p| p.seq);
            // A rehearsal looks at what a step acts on before it acts, and at what it waits
            // for or reads after.
            let acts = matches!(
                step.action,
                Action::Click(_) | Action::Fill { .. } | Action::Select { .. }
            );
            let before = match self.recorder {
                Some(_) if acts => Some(self.probe(step).await),
                _ => None,
            };
            let result = Box::pin(self.step(phase, step, &label)).await;
            if let Some(recorder) = self.recorder {
                let matches = match before {
                    Some(m) => m,
                    None => self.probe(step).await,
                };
                let outcome = match &result {
                    Ok(note) => Ok(note.clone()),
                    Err(StepError::Class(_, m, _) | StepError::NotFound(m)) => Err(m.clone()),
                    Err(StepError::Stopped) => Err("stopped".into()),
                };
                let record = StepRecord {
                    phase,
                    label: label.clone(),
                    what: what.clone(),
                    took: started.elapsed(),
                    outcome,
                    optional: step.optional,
                    matches,
                    screenshot: self.session.screenshot().await.ok(),
                    url: self.session.url().await,
                };
                recorder
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(record);
            }
            match result {
                Ok(note) => {
                    i += 1;
                    if let Some(load) = self.session.page_load()
                        && Some(load.seq) != pages_before
                        && load.status < 400
                    {
                        page_start = i;
                        page_url = Some(load.url);
                        redone = 0;
                    }
                    let ms = started.elapsed().as_millis();
                    let message = match note {
                        Some(note) => format!("{what}: {note} ({ms} ms)"),
                        None => format!("{what} ({ms} ms)"),
                    };
                    self.log.log(phase, Some(&label), Level::Debug, &message);
                }
                Err(e) => {
                    let absent = matches!(e, StepError::NotFound(_));
                    let (class, message, retry_after) = match e {
                        StepError::Stopped => return Err(FlowError::Stopped),
                        StepError::Class(class, message, after) => (class, message, after),
                        StepError::NotFound(message) => self.explain(message).await,
                    };
                    // A `goto` has already loaded its page again in place.
                    // Only the site's own failures (an error status, a page that did not load),
                    // not the browser's. Steps that start on a page an earlier phase left (no
                    // `goto` first) are not done again from their start: what that phase
                    // entered would be lost.
                    let from_here = page_start > 0
                        || matches!(steps.first().map(|s| &s.action), Some(Action::Goto(_)));
                    let back_to = if from_here { page_url.clone() } else { None };
                    if redo
                        && class == ErrorClass::Transient
                        && self.site_failed()
                        && !matches!(step.action, Action::Goto(_))
                        && redos_left > 0
                        && let Some(resume) = self
                            .redo(phase, &label, &message, retry_after, &mut redone, &back_to)
                            .await?
                    {
                        redos_left -= 1;
                        if resume {
                            // The page the accepted form led to: its steps start here.
                            page_start = i;
                            page_url = self.session.good_page();
                            redone = 0;
                        } else {
                            i = page_start;
                        }
                        continue;
                    }
                    if step.optional {
                        // An optional element that is not there is the design (a drawer
                        // already closed); anything else that stopped the step is worth a look.
                        let level = if absent && class == ErrorClass::Profile {
                            Level::Info
                        } else {
                            Level::Warn
                        };
                        self.log.log(
                            phase,
                            Some(&label),
                            level,
                            &format!("{what}: skipped (optional): {message}"),
                        );
                        i += 1;
                        continue;
                    }
                    self.log.log(
                        phase,
                        Some(&label),
                        Level::Error,
                        &format!("{what}: {message}"),
                    );
                    return Err(FlowError::Failed(Failure {
                        class,
                        phase,
                        step: Some(format!("{label} ({what}, line {})", step.line)),
                        message,
                        retry_after,
                    }));
                }
            }
        }
        Ok(())
    }

    /// What a step does, with the batch's values where they say more than the template: the
    /// URL opened, the number of rounds, the option chosen, the text looked for. What is typed
    /// stays a template (addresses and phones stay out of logs).
    fn describe(&self, action: &Action) -> String {
        let value = |t: &crate::profile::Template| self.render(t).unwrap_or_else(|_| t.to_string());
        let target = |t: &Target| match (&t.name, t.alternatives.first()) {
            (None, Some(Selector::Text { text, .. })) => format!("\"{}\"", value(text)),
            (None, Some(Selector::Aria { label, .. })) => format!("[aria \"{}\"]", value(label)),
            _ => describe_target(t),
        };
        match action {
            Action::Goto(t) => format!("goto {}", value(t)),
            Action::Click(t) => format!("click {}", target(t)),
            // A size or a shade says what is bought; a person's details stay out of logs.
            Action::Select {
                target: t,
                value: v,
            } if !private(v) => {
                format!("select {} in {}", value(v), target(t))
            }
            Action::Repeat {
                rounds: Rounds::Times(t),
                ..
            } => format!("repeat {} times", value(t)),
            Action::WaitFor(Condition::Text(t)) => format!("wait for text \"{}\"", value(t)),
            Action::WaitFor(Condition::Url(t)) => format!("wait for URL containing {}", value(t)),
            other => describe(other),
        }
    }

    /// A failure of a step before it ran (its `if_present` could not be looked at).
    fn unplaced(
        &self,
        phase: Option<Phase>,
        label: &str,
        step: &Step,
        what: &str,
        e: StepError,
    ) -> FlowError {
        let (class, message, retry_after) = match e {
            StepError::Stopped => return FlowError::Stopped,
            StepError::Class(class, message, after) => (class, message, after),
            StepError::NotFound(message) => (ErrorClass::Profile, message, None),
        };
        FlowError::Failed(Failure {
            class,
            phase,
            step: Some(format!("{label} ({what}, line {})", step.line)),
            message,
            retry_after,
        })
    }

    /// Whether the site answered the last action with a 5xx, 408 or 429 (the tab's page, or a
    /// script's request): what steps may be done again for.
    fn site_failed(&self) -> bool {
        let since = *self.last_action.lock().unwrap_or_else(|p| p.into_inner());
        self.session
            .page_load()
            .is_some_and(|p| p.status >= 500 || p.status == 408 || p.status == 429)
            || self
                .session
                .error_since(since)
                .is_some_and(|(status, _)| status >= 500)
    }

    /// The site failed under a step (a 5xx, a 429, a page that did not load): the page is
    /// loaded again and the steps go on. When the failed page was a GET (after a form that
    /// redirected, the page it led to), that page is loaded and the failed step runs again:
    /// `Some(true)`. Otherwise the page the steps were on is loaded and what was done on it
    /// is done again: `Some(false)`. `None` when there is no page to go back to.
    async fn redo(
        &self,
        phase: Option<Phase>,
        label: &str,
        why: &str,
        retry_after: Option<Duration>,
        redone: &mut u32,
        page_url: &Option<String>,
    ) -> Result<Option<bool>, FlowError> {
        let (url, resume) = match self.session.page_load() {
            Some(load) if load.status >= 400 && load.get => (load.url, true),
            _ => match page_url {
                Some(url) => (url.clone(), false),
                None => return Ok(None),
            },
        };
        let retries = self.profile.site.page_retries;
        if *redone >= retries {
            return Ok(None);
        }
        *redone += 1;
        let round = *redone;
        let from = if resume {
            "this step"
        } else {
            "the page's first step"
        };
        let wait = retry_after
            .unwrap_or(Duration::from_millis(500 << (round - 1).min(4)))
            .min(Duration::from_secs(60));
        self.log.log(
            phase,
            Some(label),
            Level::Info,
            &format!(
                "{why}; loading {url} again in {wait:?} and going on from {from} ({round} of {retries})"
            ),
        );
        sleep(wait).await;
        if self.stop.is_some_and(|stop| stop()) {
            return Err(FlowError::Stopped);
        }
        *self.last_action.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        match self
            .load(&url, self.profile.site.page_timeout, phase, label)
            .await
        {
            Ok(_) => {
                self.set_fresh(Some(url));
                Ok(Some(resume))
            }
            Err(Loaded::Stopped) => Err(FlowError::Stopped),
            // The page the steps go back to does not load: the failure stands.
            Err(Loaded::Failed(_)) => Ok(None),
        }
    }

    /// Nothing matched: the page may say why (out of stock, signed out); otherwise the
    /// profile no longer fits the page.
    async fn explain(&self, message: String) -> (ErrorClass, String, Option<Duration>) {
        if let Err(StepError::Class(class, why, after)) = self.check_errors().await {
            return (class, format!("{message}: {why}"), after);
        }
        match self.page_says().await {
            Some((ErrorClass::SessionExpired, t)) => (
                ErrorClass::SessionExpired,
                format!("the page says {t:?}: the session has ended ({message})"),
                None,
            ),
            Some((class, t)) => (
                class,
                format!("the storefront says {t:?} ({message})"),
                None,
            ),
            None => (ErrorClass::Profile, message, None),
        }
    }

    fn limit(&self, phase: Option<Phase>, step: &Step) -> Duration {
        let default = match phase {
            // The confirmation may take its time: the order is being created.
            Some(Phase::Confirm) => self.profile.site.confirm_timeout,
            _ => self.profile.site.step_timeout,
        };
        step.timeout.unwrap_or(default)
    }

    fn render(&self, t: &crate::profile::Template) -> Result<String, StepError> {
        t.render(&self.context)
            .map_err(|e| StepError::Class(ErrorClass::Business, e, None))
    }

    async fn step(
        &mut self,
        phase: Option<Phase>,
        step: &Step,
        label: &str,
    ) -> Result<Option<String>, StepError> {
        let limit = self.limit(phase, step);
        let started = Instant::now();
        if matches!(
            step.action,
            Action::Goto(_) | Action::Click(_) | Action::Press(_)
        ) {
            *self.last_action.lock().unwrap_or_else(|p| p.into_inner()) = started;
        }
        let pacing = self.profile.site.pacing;
        let fresh = std::mem::take(&mut *self.fresh.lock().unwrap_or_else(|p| p.into_inner()));
        match &step.action {
            Action::Goto(t) => {
                let target = self.render(t)?;
                let url = self.base_url.join(&target).map_err(|e| {
                    StepError::Class(
                        ErrorClass::Profile,
                        format!("{target:?} is not a URL: {e}"),
                        None,
                    )
                })?;
                if fresh.as_deref() == Some(url.as_str())
                    && self.session.url().await == url.as_str()
                {
                    self.set_fresh(Some(url.into()));
                    return Ok(Some(
                        "loaded by the step before, nothing done on it since".into(),
                    ));
                }
                let limit = step.timeout.unwrap_or(self.profile.site.page_timeout);
                let tried =
                    self.load(url.as_str(), limit, phase, label)
                        .await
                        .map_err(|e| match e {
                            Loaded::Stopped => StepError::Stopped,
                            Loaded::Failed(e) => net_error(e),
                        })?;
                self.set_fresh(Some(url.into()));
                Ok(if tried > 0 {
                    Some(format!("loaded after {tried} more tries"))
                } else {
                    None
                })
            }
            Action::Click(target) => {
                let spec = self.spec(target, "clickable", None, false, true, 0)?;
                if !self.session.click(&spec, limit).await? {
                    return Err(StepError::NotFound(format!(
                        "nothing to click: {} did not match a visible, enabled element within {limit:?}",
                        describe_target(target)
                    )));
                }
                self.session.settle(started, SETTLE.min(limit)).await;
                if !pacing.click.is_zero() {
                    sleep(pacing.click).await;
                }
                Ok(None)
            }
            Action::Fill { target, value } => {
                let value = self.render(value)?;
                let spec = self.spec(target, "visible", None, false, true, 0)?;
                if !self.session.fill(&spec, &value, limit).await? {
                    return Err(StepError::NotFound(format!(
                        "no field: {} did not match within {limit:?}",
                        describe_target(target)
                    )));
                }
                if !pacing.input.is_zero() {
                    sleep(pacing.input).await;
                }
                Ok(None)
            }
            Action::Select { target, value } => {
                let value = self.render(value)?;
                let spec = self.spec(target, "visible", None, false, true, 0)?;
                if !self.session.select(&spec, &value, limit).await? {
                    return Err(StepError::NotFound(format!(
                        "{} has no option {value:?} (or did not appear within {limit:?})",
                        describe_target(target)
                    )));
                }
                Ok(None)
            }
            Action::Press(key) => {
                self.session.press(key).await?;
                self.session.settle(started, SETTLE.min(limit)).await;
                Ok(None)
            }
            Action::WaitFor(condition) => {
                self.set_fresh(fresh);
                if !self.wait(condition, limit).await? {
                    return Err(StepError::NotFound(format!(
                        "waited {limit:?} for {}",
                        describe_condition(condition)
                    )));
                }
                Ok(None)
            }
            Action::Extract(extract) => {
                self.set_fresh(fresh);
                self.extract(extract, limit).await.map(Some)
            }
            Action::Assert {
                condition,
                fail,
                message,
            } => {
                self.set_fresh(fresh);
                // An assertion looks once: the page is expected to be ready (a wait_for comes first).
                if self.holds(condition).await? {
                    Ok(None)
                } else {
                    Err(StepError::Class(*fail, message.clone(), None))
                }
            }
            Action::Repeat { rounds, steps, max } => {
                self.set_fresh(fresh);
                self.repeat(phase, rounds, steps, *max, limit, label).await
            }
            Action::Pause(d) => {
                self.set_fresh(fresh);
                sleep(*d).await;
                Ok(None)
            }
        }
    }

    /// Opens `url`, loading it again in place (with backoff) while it answers 5xx, 408 or
    /// 429 or does not load, up to the site's `page_retries`; how many more loads it took.
    async fn load(
        &self,
        url: &str,
        limit: Duration,
        phase: Option<Phase>,
        label: &str,
    ) -> Result<u32, Loaded> {
        let retries = self.profile.site.page_retries;
        let mut tried = 0;
        loop {
            match self.session.goto(url, limit).await {
                Ok(()) => return Ok(tried),
                Err(e) if tried < retries && e.worth_loading_again() => {
                    tried += 1;
                    let wait = match &e {
                        NetworkError::TooMany { wait, .. } => *wait,
                        _ => Duration::from_millis(500 << (tried - 1).min(4)),
                    };
                    self.log.log(
                        phase,
                        Some(label),
                        Level::Info,
                        &format!("{e}; loading it again in {wait:?} ({tried} of {retries})"),
                    );
                    sleep(wait).await;
                    if self.stop.is_some_and(|stop| stop()) {
                        return Err(Loaded::Stopped);
                    }
                    // Only what the next load answers counts.
                    *self.last_action.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                }
                Err(e) => return Err(Loaded::Failed(e)),
            }
        }
    }

    fn set_fresh(&self, url: Option<String>) {
        *self.fresh.lock().unwrap_or_else(|p| p.into_inner()) = url;
    }

    async fn repeat(
        &mut self,
        phase: Option<Phase>,
        rounds: &Rounds,
        steps: &[Step],
        max: u32,
        limit: Duration,
        label: &str,
    ) -> Result<Option<String>, StepError> {
        let inner = |e: FlowError| match e {
            FlowError::Stopped => StepError::Stopped,
            FlowError::Failed(f) => StepError::Class(
                f.class,
                format!("step {}: {}", f.step.unwrap_or_default(), f.message),
                f.retry_after,
            ),
        };
        match rounds {
            Rounds::Times(t) => {
                let text = self.render(t)?;
                let n: u32 = text.trim().parse().map_err(|_| {
                    StepError::Class(
                        ErrorClass::Business,
                        format!("repeat times {text:?} is not a whole number"),
                        None,
                    )
                })?;
                if n > max {
                    return Err(StepError::Class(
                        ErrorClass::Business,
                        format!("repeat {n} times is above the step's max of {max}"),
                        None,
                    ));
                }
                for round in 1..=n {
                    Box::pin(self.steps(phase, steps, &format!("{label}.{round}.")))
                        .await
                        .map_err(inner)?;
                }
                Ok(Some(format!("{n} rounds")))
            }
            Rounds::WhilePresent(target) => {
                let spec = self.spec(target, "visible", None, false, false, 0)?;
                let mut rounds = 0;
                loop {
                    let count = self.session.find(&spec).await?.count;
                    if count == 0 {
                        // Gone from an error page proves nothing.
                        if let Some(load) = self.session.page_load()
                            && load.status >= 400
                        {
                            return Err(StepError::Class(
                                ErrorClass::Transient,
                                format!(
                                    "{} answered {}: that {} is not on it proves nothing",
                                    load.url,
                                    load.status,
                                    describe_target(target)
                                ),
                                None,
                            ));
                        }
                        return Ok(Some(format!("{rounds} rounds")));
                    }
                    if rounds >= max {
                        return Err(StepError::Class(
                            ErrorClass::Profile,
                            format!(
                                "{} still matched {count} times after {max} rounds",
                                describe_target(target)
                            ),
                            None,
                        ));
                    }
                    rounds += 1;
                    Box::pin(self.steps(phase, steps, &format!("{label}.{rounds}.")))
                        .await
                        .map_err(inner)?;
                    // Each round must take one away; wait for the page to show it.
                    let deadline = Instant::now() + limit;
                    loop {
                        let now = self.session.find(&spec).await?.count;
                        if now < count {
                            break;
                        }
                        self.check_errors().await?;
                        if Instant::now() >= deadline {
                            return Err(StepError::Class(
                                ErrorClass::Profile,
                                format!(
                                    "a round did not change the page: {} still matches {now} times",
                                    describe_target(target)
                                ),
                                None,
                            ));
                        }
                        sleep(POLL).await;
                    }
                }
            }
        }
    }

    async fn extract(&mut self, extract: &Extract, limit: Duration) -> Result<String, StepError> {
        let read = extract
            .attribute
            .as_ref()
            .map_or_else(|| "text".to_owned(), |a| format!("attribute:{a}"));
        let spec = self.spec(&extract.target, "any", Some(&read), extract.all, false, 0)?;
        let deadline = Instant::now() + limit;
        let found = loop {
            let left = deadline.saturating_duration_since(Instant::now()).max(POLL);
            let found = match tokio::time::timeout(left, self.session.find(&spec)).await {
                Ok(found) => found?,
                Err(_) => Default::default(),
            };
            // A list may be empty (an account with no orders); a single value must appear.
            if extract.all || found.count > 0 {
                break found;
            }
            self.check_errors().await?;
            if Instant::now() >= deadline {
                return Err(StepError::NotFound(format!(
                    "nothing to read: {} did not match within {limit:?}",
                    describe_target(&extract.target)
                )));
            }
            sleep(POLL).await;
        };
        let mut values = Vec::with_capacity(found.values.len());
        let mut amounts = Vec::new();
        for raw in &found.values {
            let text = match &extract.pattern {
                Some(re) => match re.captures(raw) {
                    Some(c) => c
                        .get(1)
                        .or_else(|| c.get(0))
                        .map_or("", |m| m.as_str())
                        .to_owned(),
                    None => {
                        return Err(StepError::Class(
                            ErrorClass::Profile,
                            format!("{raw:?} does not match the pattern {}", re.as_str()),
                            None,
                        ));
                    }
                },
                None => raw.trim().to_owned(),
            };
            let value = if extract.number {
                let (negative, amount) = parse_number(&text).ok_or_else(|| {
                    StepError::Class(
                        ErrorClass::Profile,
                        format!("{text:?} is not an amount like 1,299.50"),
                        None,
                    )
                })?;
                amounts.push(amount);
                json!(if negative {
                    -amount.as_f64()
                } else {
                    amount.as_f64()
                })
            } else {
                Value::String(text)
            };
            values.push(value);
        }
        let value = if extract.all {
            Value::Array(values)
        } else {
            values.into_iter().next().unwrap_or(Value::Null)
        };
        let shown = match &value {
            Value::Array(a) => format!("{} = {} values", extract.into, a.len()),
            v => format!("{} = {v}", extract.into),
        };
        if let Some(Value::Object(vars)) = self.context.get_mut("vars") {
            vars.insert(extract.into.clone(), value);
        }
        match amounts.first() {
            Some(amount) if !extract.all => {
                self.amounts.insert(extract.into.clone(), *amount);
            }
            _ => {
                self.amounts.remove(&extract.into);
            }
        }
        Ok(shown)
    }

    /// Waits until `condition` holds; false when `limit` passes first.
    async fn wait(&self, condition: &Condition, limit: Duration) -> Result<bool, StepError> {
        let deadline = Instant::now() + limit;
        let expression = self.condition_js(condition)?;
        loop {
            // The page looks by itself for a while; between those turns the site's answers
            // are checked for errors. A page busy navigating may not answer, or its wait ends
            // with the document: never wait past the deadline for it.
            let left = deadline.saturating_duration_since(Instant::now());
            let turn = left.clamp(POLL, WAIT_TURN);
            let started = Instant::now();
            match tokio::time::timeout(left.max(POLL), self.session.wait_until(&expression, turn))
                .await
            {
                // A condition met by an error page is not met: a URL reached by a 500.
                Ok(Ok(true)) => {
                    self.check_errors().await?;
                    return Ok(true);
                }
                Ok(Ok(false)) => {}
                // The document went away under the wait (a navigation): look again.
                Ok(Err(_)) | Err(_) => {
                    if started.elapsed() < POLL {
                        sleep(POLL).await;
                    }
                }
            }
            self.check_errors().await?;
            if Instant::now() >= deadline {
                return Ok(false);
            }
        }
    }

    /// A condition as a JavaScript expression evaluated in the page.
    fn condition_js(&self, condition: &Condition) -> Result<String, StepError> {
        let find = |spec: Value| Session::find_expression(&spec);
        Ok(match condition {
            Condition::Present(t) => format!(
                "{}.count > 0",
                find(self.spec(t, "visible", None, false, false, 0)?)
            ),
            Condition::Absent(t) => format!(
                "{}.count === 0",
                find(self.spec(t, "visible", None, false, false, 0)?)
            ),
            Condition::Filled(t) => format!(
                "(((({}).values || [])[0] || '').trim() !== '')",
                find(self.spec(t, "any", Some("value"), false, false, 0)?)
            ),
            Condition::Text(t) => {
                let want = Value::String(normalise(&self.render(t)?));
                format!(
                    "(document.body ? document.body.innerText : '').replace(/\\s+/g, ' ').trim().toLowerCase().includes({want})"
                )
            }
            Condition::Url(t) => {
                let want = Value::String(self.render(t)?);
                format!("location.href.includes({want})")
            }
            Condition::Any(targets) => {
                let mut alternatives = Vec::new();
                for t in targets {
                    alternatives.extend(self.selectors(t)?);
                }
                let spec = json!({ "alternatives": alternatives, "want": "visible", "read": null, "all": false, "mark": false });
                format!("{}.count > 0", find(spec))
            }
        })
    }

    /// The site answered the last action with an error: a 5xx means what a step waits for
    /// is not coming (transient); a 4xx means so when the page says why (out of stock, signed
    /// out), and is otherwise left to the step's own timeout.
    async fn check_errors(&self) -> Result<(), StepError> {
        let since = *self.last_action.lock().unwrap_or_else(|p| p.into_inner());
        match self.session.error_since(since) {
            Some((status, url)) if status >= 500 => Err(StepError::Class(
                ErrorClass::Transient,
                format!("{url} answered {status}"),
                None,
            )),
            Some((status, url)) => match self.page_says().await {
                Some((class, text)) => Err(StepError::Class(
                    class,
                    format!("{url} answered {status} and the page says {text:?}"),
                    None,
                )),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// The profile's error text the page shows, with its class.
    async fn page_says(&self) -> Option<(ErrorClass, String)> {
        let read = self
            .session
            .text("document.body ? document.body.innerText : ''");
        let text = tokio::time::timeout(Duration::from_secs(2), read)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let text = normalise(&text);
        let errors = &self.profile.errors;
        if let Some(t) = errors
            .session_expired
            .iter()
            .find(|t| text.contains(&normalise(t)))
        {
            return Some((ErrorClass::SessionExpired, t.clone()));
        }
        errors
            .business
            .iter()
            .find(|t| text.contains(&normalise(t)))
            .map(|t| (ErrorClass::Business, t.clone()))
    }

    async fn holds(&self, condition: &Condition) -> Result<bool, StepError> {
        Ok(match condition {
            Condition::Present(t) => {
                self.session
                    .find(&self.spec(t, "visible", None, false, false, 0)?)
                    .await?
                    .count
                    > 0
            }
            Condition::Absent(t) => {
                self.session
                    .find(&self.spec(t, "visible", None, false, false, 0)?)
                    .await?
                    .count
                    == 0
            }
            Condition::Filled(t) => {
                let found = self
                    .session
                    .find(&self.spec(t, "any", Some("value"), false, false, 0)?)
                    .await?;
                found.values.first().is_some_and(|v| !v.trim().is_empty())
            }
            Condition::Text(t) => {
                let want = Value::String(normalise(&self.render(t)?));
                self.session
                    .check(&format!(
                        "(document.body ? document.body.innerText : '').replace(/\\s+/g, ' ').trim().toLowerCase().includes({want})"
                    ))
                    .await?
            }
            Condition::Url(t) => {
                let want = self.render(t)?;
                self.session.url().await.contains(&want)
            }
            Condition::Any(targets) => {
                let mut alternatives = Vec::new();
                for t in targets {
                    alternatives.extend(self.selectors(t)?);
                }
                let spec = json!({ "alternatives": alternatives, "want": "visible", "read": null, "all": false, "mark": false });
                self.session.find(&spec).await?.count > 0
            }
        })
    }

    /// The finder's spec for `target`, templates filled.
    fn spec(
        &self,
        target: &Target,
        want: &str,
        read: Option<&str>,
        all: bool,
        mark: bool,
        index: usize,
    ) -> Result<Value, StepError> {
        Ok(json!({
            "alternatives": self.selectors(target)?,
            "want": want,
            "read": read,
            "all": all,
            "mark": mark,
            "index": index,
        }))
    }

    fn selectors(&self, target: &Target) -> Result<Vec<Value>, StepError> {
        target
            .alternatives
            .iter()
            .map(|s| self.selector(s))
            .collect()
    }

    fn selector(&self, selector: &Selector) -> Result<Value, StepError> {
        let within = |w: &Option<Box<Target>>| -> Result<Value, StepError> {
            Ok(match w {
                Some(t) => Value::Array(self.selectors(t)?),
                None => Value::Null,
            })
        };
        Ok(match selector {
            Selector::Css { css, within: w } => {
                json!({ "kind": "css", "css": css, "within": within(w)? })
            }
            Selector::XPath { xpath } => json!({ "kind": "xpath", "xpath": xpath }),
            Selector::Text {
                text,
                role,
                contains,
                within: w,
            } => json!({
                "kind": "text",
                "text": self.render(text)?,
                "role": role.map(|r| match r {
                    crate::profile::Role::Button => "button",
                    crate::profile::Role::Link => "link",
                    crate::profile::Role::Field => "field",
                }),
                "contains": contains,
                "within": within(w)?,
            }),
            Selector::Aria {
                label,
                contains,
                within: w,
            } => json!({
                "kind": "aria",
                "label": self.render(label)?,
                "contains": contains,
                "within": within(w)?,
            }),
        })
    }

    /// How many elements `target` matches now.
    pub async fn count(&self, target: &Target, want: &str) -> Result<usize, Failure> {
        let spec = self
            .spec(target, want, None, false, false, 0)
            .map_err(into_failure)?;
        Ok(self.session.find(&spec).await?.count)
    }

    /// Clicks the `index`-th clickable match of `target` (for coupon options), then lets the
    /// network settle.
    pub async fn click_nth(&self, target: &Target, index: usize) -> Result<bool, Failure> {
        let spec = self
            .spec(target, "clickable", None, false, true, index)
            .map_err(into_failure)?;
        let started = Instant::now();
        *self.last_action.lock().unwrap_or_else(|p| p.into_inner()) = started;
        self.set_fresh(None);
        let clicked = self
            .session
            .click(&spec, self.profile.site.step_timeout)
            .await?;
        if clicked {
            self.session.settle(started, SETTLE).await;
        }
        Ok(clicked)
    }
}

fn into_failure(e: StepError) -> Failure {
    match e {
        StepError::Class(class, message, after) => Failure {
            retry_after: after,
            ..Failure::new(class, message)
        },
        StepError::NotFound(message) => Failure::new(ErrorClass::Profile, message),
        StepError::Stopped => Failure::new(ErrorClass::Transient, "stopped"),
    }
}

/// Lower case, runs of whitespace as one space, trimmed.
fn normalise(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Reads a number the way shops print them (`₹1,299.50`, `Rs. 449`, `-₹50`): the amount
/// exactly ([`Money::from_page`]), and its sign.
pub fn parse_number(s: &str) -> Option<(bool, Money)> {
    let amount = Money::from_page(s)?;
    let start = s.find(|c: char| c.is_ascii_digit())?;
    Some((s[..start].contains('-'), amount))
}

/// A step in a few words, for logs.
pub fn describe(action: &Action) -> String {
    match action {
        Action::Goto(t) => format!("goto {t}"),
        Action::Click(t) => format!("click {}", describe_target(t)),
        Action::Fill { target, value } => format!("fill {} with {value}", describe_target(target)),
        Action::Select { target, value } => {
            format!("select {value} in {}", describe_target(target))
        }
        Action::Press(k) => format!("press {k}"),
        Action::WaitFor(c) => format!("wait for {}", describe_condition(c)),
        Action::Extract(e) => format!("extract {} from {}", e.into, describe_target(&e.target)),
        Action::Assert { condition, .. } => format!("assert {}", describe_condition(condition)),
        Action::Repeat {
            rounds: Rounds::Times(t),
            ..
        } => format!("repeat {t} times"),
        Action::Repeat {
            rounds: Rounds::WhilePresent(t),
            ..
        } => format!("repeat while {} is present", describe_target(t)),
        Action::Pause(d) => format!("pause {d:?}"),
    }
}

/// Whether a template holds a person's details (the address, the account).
fn private(t: &crate::profile::Template) -> bool {
    let text = t.to_string();
    text.contains("{{address.") || text.contains("{{account.")
}

fn describe_target(t: &Target) -> String {
    t.to_string()
}

fn describe_condition(c: &Condition) -> String {
    match c {
        Condition::Present(t) => format!("{t} present"),
        Condition::Absent(t) => format!("{t} gone"),
        Condition::Text(t) => format!("text \"{t}\""),
        Condition::Url(t) => format!("URL containing {t}"),
        Condition::Filled(t) => format!("{t} filled"),
        Condition::Any(ts) => format!(
            "any of {}",
            ts.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_shops_print_them() {
        let n = |s| parse_number(s).map(|(negative, m)| (negative, m.minor()));
        assert_eq!(n("₹1,299.50"), Some((false, 129_950)));
        assert_eq!(n("Rs. 449"), Some((false, 44_900)));
        assert_eq!(n("- ₹50"), Some((true, 5_000)));
        assert_eq!(n("Total: ₹ 2,00,000."), Some((false, 20_000_000)));
        assert_eq!(n("free"), None);
    }
}
