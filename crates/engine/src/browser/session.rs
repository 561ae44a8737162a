//! One run's browser session: an isolated context and its page, with every request to the
//! site paced by the shared rate limiter, the site's answers watched (5xx, 429), and the
//! primitives the flow runner uses: navigate, find, click, type, read, wait for the network to
//! settle, cookies, screenshots.

use super::{BrowserError, Live};
use crate::ratelimit::RateLimiter;
use cartwright_core::cookies::{Cookie, SameSite};
use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::fetch::{
    self, EventRequestPaused, RequestPattern, RequestStage,
};
use chromiumoxide::cdp::browser_protocol::input::{
    DispatchKeyEventParams, DispatchKeyEventType, InsertTextParams,
};
use chromiumoxide::cdp::browser_protocol::network::{
    self, CookieParam, CookieSameSite, EventLoadingFailed, EventLoadingFinished,
    EventRequestWillBeSent, EventResponseReceived, ResourceType, TimeSinceEpoch,
};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::browser_protocol::storage;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::page::ScreenshotParams;
use futures::StreamExt;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{Instant, sleep, timeout};

const FIND_JS: &str = include_str!("find.js");
/// How long the network must be quiet before an action counts as settled.
const QUIET: Duration = Duration::from_millis(60);
/// Longest wait for a script on the page: a page in the middle of a navigation may not answer.
const EVAL: Duration = Duration::from_secs(10);
/// How often a condition is looked at again while waiting for it.
const POLL: Duration = Duration::from_millis(40);

/// What a session needs to know.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Cookies to load before the first request.
    pub cookies: Vec<Cookie>,
    /// A proxy for this context only (`http://host:port`).
    pub proxy: Option<String>,
    /// Longest wait for a DevTools call.
    pub call_timeout: Duration,
}

/// Why a navigation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetworkError {
    /// The site answered with an error status.
    #[error("{url} answered {status}")]
    Status {
        /// The status.
        status: u16,
        /// The URL.
        url: String,
    },
    /// The site asked us to slow down.
    #[error("{url} answered 429 (too many requests); waiting {wait:?}")]
    TooMany {
        /// The URL.
        url: String,
        /// How long it asked us to wait.
        wait: Duration,
    },
    /// The page did not load in time or the connection failed.
    #[error("{0}")]
    Failed(String),
}

impl NetworkError {
    /// Whether loading the page again may help: a 5xx, a 408 or 429, a page that did not
    /// load. A 4xx is the site's answer, not a hiccup.
    pub fn worth_loading_again(&self) -> bool {
        match self {
            NetworkError::Status { status, .. } => *status >= 500 || *status == 408,
            NetworkError::TooMany { .. } | NetworkError::Failed(_) => true,
        }
    }
}

/// What `find` saw.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Found {
    /// How many elements matched the first alternative that matched.
    pub count: usize,
    /// The values read.
    pub values: Vec<String>,
}

#[derive(Default)]
struct Net {
    /// Requests sent and not yet answered: id → (URL, when sent).
    in_flight: HashMap<String, (String, Instant)>,
    /// Requests whose end was seen before their start (each kind of event comes on a stream
    /// of its own): their start, when it comes, is not put in flight.
    ended_early: HashSet<String>,
    last_document: Option<(u16, String, Option<u64>)>,
    /// A page load of the tab sent and not yet answered (a form's POST a click started):
    /// its request id and when it was sent.
    navigating: Option<(String, Instant)>,
    /// The latest 4xx and 5xx answers to pages and scripts' requests: (status, URL, when).
    http_errors: Vec<(u16, String, Instant)>,
    /// Whether the tab's latest page request is a GET (the hop after a redirect is).
    page_get: bool,
    /// The tab's latest page answer.
    page: Option<PageLoad>,
    /// The tab's latest page that answered with success: where to go back to.
    good_page: Option<String>,
    /// How many pages the tab has received.
    pages: u64,
}

/// The answer to the tab's latest page load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageLoad {
    /// Its status.
    pub status: u16,
    /// Its URL.
    pub url: String,
    /// Whether it was a GET, so loading it again asks for nothing but the page: after a form
    /// that redirected, the page it led to.
    pub get: bool,
    /// Its number: the tab's pages are counted.
    pub seq: u64,
}

/// A live session. Close it with [`Session::close`]; dropping it closes it in the background.
pub struct Session {
    live: Arc<Live>,
    context: Option<BrowserContextId>,
    page: Page,
    net: Arc<Mutex<Net>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    contexts: Arc<AtomicUsize>,
    call_timeout: Duration,
}

fn cdp(e: impl std::fmt::Display) -> BrowserError {
    BrowserError::Cdp(e.to_string())
}

async fn within<T, E: std::fmt::Display>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, BrowserError> {
    match timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(BrowserError::Cdp(format!("{what}: {e}"))),
        Err(_) => Err(BrowserError::Cdp(format!(
            "{what}: no answer from the browser within {limit:?}"
        ))),
    }
}

fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.host_str().map(str::to_owned)
}

fn retry_after(headers: &network::Headers) -> Option<u64> {
    let map = headers.inner().as_object()?;
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| {
            v.as_str()
                .and_then(|s| s.trim().parse().ok())
                .or_else(|| v.as_u64())
        })
}

fn to_param(c: &Cookie) -> CookieParam {
    let mut p = CookieParam::new(c.name.clone(), c.value.clone());
    if c.domain.starts_with('.') {
        p.domain = Some(c.domain.clone());
    } else {
        // No leading dot: a host-only cookie, which CDP sets through a URL.
        let scheme = if c.secure { "https" } else { "http" };
        p.url = Some(format!("{scheme}://{}{}", c.domain, c.path));
    }
    p.path = Some(c.path.clone());
    p.secure = Some(c.secure);
    p.http_only = Some(c.http_only);
    p.same_site = Some(match c.same_site {
        SameSite::Strict => CookieSameSite::Strict,
        SameSite::Lax => CookieSameSite::Lax,
        SameSite::None => CookieSameSite::None,
    });
    p.expires = c.expires.map(|s| TimeSinceEpoch::new(s as f64));
    p
}

fn from_cdp(c: &network::Cookie) -> Cookie {
    Cookie {
        name: c.name.clone(),
        value: c.value.clone(),
        domain: c.domain.clone(),
        path: c.path.clone(),
        expires: (!c.session && c.expires > 0.0).then_some(c.expires as i64),
        http_only: c.http_only,
        secure: c.secure,
        same_site: match c.same_site {
            Some(CookieSameSite::Strict) => SameSite::Strict,
            Some(CookieSameSite::None) => SameSite::None,
            _ => SameSite::Lax,
        },
    }
}

/// JavaScript statements that run the finder with `spec` and leave the element it marked, or
/// null, in `el`.
fn marked_element(spec: &serde_json::Value) -> String {
    format!(
        "const found = ({FIND_JS})({spec}); \
         const el = found.ref ? document.querySelector(`[data-cw-ref=\"${{found.ref}}\"]`) : null;"
    )
}

impl Session {
    /// A context with one blank page whose requests already go through the limiter, and no
    /// cookies yet: what the pool keeps warm.
    pub(super) async fn open_blank(
        live: Arc<Live>,
        proxy: Option<&str>,
        call_timeout: Duration,
        limiter: Arc<RateLimiter>,
        contexts: Arc<AtomicUsize>,
    ) -> Result<Session, BrowserError> {
        let t = call_timeout;
        let mut params = CreateBrowserContextParams::builder().dispose_on_detach(true);
        if let Some(proxy) = proxy {
            params = params.proxy_server(proxy);
        }
        let context = within(
            t,
            "creating a browser context",
            live.browser().create_browser_context(params.build()),
        )
        .await?;
        contexts.fetch_add(1, Ordering::Relaxed);
        let page = live.browser().new_page(CreateTargetParams {
            browser_context_id: Some(context.clone()),
            ..CreateTargetParams::new("about:blank")
        });
        let page = match within(t, "opening a page", page).await {
            Ok(page) => page,
            Err(e) => {
                let _ = timeout(t, live.browser().dispose_browser_context(context)).await;
                contexts.fetch_sub(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let mut session = Session {
            live,
            context: Some(context),
            page,
            net: Arc::default(),
            tasks: Vec::new(),
            contexts,
            call_timeout: t,
        };
        session.watch_network(limiter).await?;
        Ok(session)
    }

    /// Loads the account's cookies into the context, before its first request.
    pub(super) async fn load_cookies(&mut self, cookies: &[Cookie]) -> Result<(), BrowserError> {
        if cookies.is_empty() {
            return Ok(());
        }
        within(
            self.call_timeout,
            "loading cookies",
            self.live.browser().execute(storage::SetCookiesParams {
                cookies: cookies.iter().map(to_param).collect(),
                browser_context_id: self.context.clone(),
            }),
        )
        .await?;
        Ok(())
    }

    /// The browser this session lives in.
    pub(super) fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// Sets the longest wait for a DevTools call.
    pub(super) fn set_call_timeout(&mut self, t: Duration) {
        self.call_timeout = t;
    }

    /// A stream of the page's `T` events, subscribed under the DevTools call timeout.
    async fn listen<T: chromiumoxide::cdp::IntoEventKind>(
        &self,
    ) -> Result<chromiumoxide::listeners::EventStream<T>, BrowserError> {
        within(
            self.call_timeout,
            "listening to the page's events",
            self.page.event_listener::<T>(),
        )
        .await
    }

    /// Pauses every request until the rate limiter lets it go, and keeps track of requests in
    /// flight and of the documents' answers.
    async fn watch_network(&mut self, limiter: Arc<RateLimiter>) -> Result<(), BrowserError> {
        let t = self.call_timeout;
        let mut paused = self.listen::<EventRequestPaused>().await?;
        let mut sent = self.listen::<EventRequestWillBeSent>().await?;
        let mut finished = self.listen::<EventLoadingFinished>().await?;
        let mut failed = self.listen::<EventLoadingFailed>().await?;
        let mut responses = self.listen::<EventResponseReceived>().await?;
        let pattern = RequestPattern {
            url_pattern: Some("*".into()),
            resource_type: None,
            request_stage: Some(RequestStage::Request),
        };
        within(
            t,
            "intercepting requests",
            self.page.execute(fetch::EnableParams {
                patterns: Some(vec![pattern]),
                handle_auth_requests: None,
            }),
        )
        .await?;

        let page = self.page.clone();
        let gate = limiter.clone();
        let inside = self.live.inside.clone();
        self.tasks.push(tokio::spawn(async move {
            while let Some(event) = paused.next().await {
                let (page, gate, inside) = (page.clone(), gate.clone(), inside.clone());
                tokio::spawn(async move {
                    // A page (or a redirect) that leads to this machine or a private network
                    // gets nothing: what it would show ends up in screenshots others read.
                    if let Some(inside) = inside
                        && inside.inside(&event.request.url).await
                    {
                        tracing::warn!(
                            url = %event.request.url,
                            "refused a request to an internal address (allow_internal_addresses is off)"
                        );
                        let _ = page
                            .execute(fetch::FailRequestParams::new(
                                event.request_id.clone(),
                                network::ErrorReason::AddressUnreachable,
                            ))
                            .await;
                        return;
                    }
                    if let Some(host) = host_of(&event.request.url) {
                        gate.acquire(&host).await;
                    }
                    let _ = page
                        .execute(fetch::ContinueRequestParams::new(event.request_id.clone()))
                        .await;
                });
            }
        }));
        let net = self.net.clone();
        let main_frame = self.page.target_id().clone();
        self.tasks.push(tokio::spawn(async move {
            let lock = || net.lock().unwrap_or_else(|p| p.into_inner());
            let end = |id: &str| {
                let mut net = lock();
                if net.navigating.as_ref().is_some_and(|(n, _)| n == id) {
                    net.navigating = None;
                }
                if net.in_flight.remove(id).is_none() {
                    if net.ended_early.len() >= 256 {
                        net.ended_early.clear();
                    }
                    net.ended_early.insert(id.to_owned());
                }
            };
            loop {
                // Starts first: of two events both waiting, the start is the older one. A
                // resource from the memory cache starts and ends at once, and an end taken
                // before its start left the request in flight for good.
                tokio::select! {
                    biased;
                    Some(e) = sent.next() => {
                        // Page loads are awaited by the steps that follow; settling waits
                        // for what scripts send.
                        let id = e.request_id.inner();
                        let mut net = lock();
                        if e.r#type == Some(ResourceType::Document) {
                            // A new page in the tab (the main frame's id is the target's)
                            // cancels what the old one had in flight, not always with an
                            // end for each (a favicon).
                            if e.frame_id.as_ref().map(|f| f.inner()) == Some(main_frame.inner()) {
                                net.in_flight.clear();
                                net.navigating = Some((id.to_owned(), Instant::now()));
                                net.page_get = e.request.method.eq_ignore_ascii_case("GET");
                            }
                        } else if e.r#type == Some(ResourceType::Other)
                            && e.initiator.r#type == network::InitiatorType::Other
                        {
                            // The browser's own (a favicon): not the page's doing, and its
                            // end is not always reported.
                        } else if !net.ended_early.remove(id) {
                            net.in_flight.insert(id.clone(), (e.request.url.clone(), Instant::now()));
                        }
                    }
                    Some(e) = finished.next() => end(e.request_id.inner()),
                    Some(e) = failed.next() => end(e.request_id.inner()),
                    Some(e) = responses.next() => {
                        let status = u16::try_from(e.response.status).unwrap_or(0);
                        let wait = retry_after(&e.response.headers);
                        if status == 429 && let Some(host) = host_of(&e.response.url) {
                            limiter.pause(&host, Duration::from_secs(wait.unwrap_or(1).clamp(1, 600)));
                        }
                        let mut net = lock();
                        if e.r#type == ResourceType::Document {
                            net.last_document = Some((status, e.response.url.clone(), wait));
                            if e.frame_id.as_ref().map(|f| f.inner()) == Some(main_frame.inner()) {
                                net.pages += 1;
                                if status < 400 {
                                    net.good_page = Some(e.response.url.clone());
                                }
                                net.page = Some(PageLoad {
                                    status,
                                    url: e.response.url.clone(),
                                    get: net.page_get,
                                    seq: net.pages,
                                });
                            }
                            // Answered: what was sent reached the site; a next load no
                            // longer cancels it.
                            if net.navigating.as_ref().is_some_and(|(n, _)| n == e.request_id.inner()) {
                                net.navigating = None;
                            }
                        }
                        if (status >= 500 || (400..500).contains(&status) && status != 429)
                            && matches!(e.r#type, ResourceType::Document | ResourceType::Xhr | ResourceType::Fetch)
                        {
                            if net.http_errors.len() >= 16 {
                                net.http_errors.remove(0);
                            }
                            net.http_errors.push((status, e.response.url.clone(), Instant::now()));
                        }
                    }
                    else => break,
                }
            }
        }));
        Ok(())
    }

    /// Opens `url` and waits for it to load; a 5xx, a 429 (the limiter then pauses the host)
    /// or any other error status is an error.
    pub async fn goto(&self, url: &str, limit: Duration) -> Result<(), NetworkError> {
        self.net
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_document = None;
        match timeout(limit, self.page.goto(url)).await {
            Err(_) => {
                return Err(NetworkError::Failed(format!(
                    "{url} did not load within {limit:?}"
                )));
            }
            Ok(Err(e)) => return Err(NetworkError::Failed(format!("{url} did not load: {e}"))),
            Ok(Ok(_)) => {}
        }
        let last = self
            .net
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_document
            .clone();
        match last {
            Some((429, url, wait)) => Err(NetworkError::TooMany {
                url,
                wait: Duration::from_secs(wait.unwrap_or(1).max(1)),
            }),
            Some((status, url, _)) if status >= 400 => Err(NetworkError::Status { status, url }),
            _ => Ok(()),
        }
    }

    /// Runs the element finder with `spec` (see `find.js`).
    pub async fn find(&self, spec: &serde_json::Value) -> Result<Found, BrowserError> {
        let js = format!("({FIND_JS})({spec})");
        let result = within(
            self.call_timeout.min(EVAL),
            "finding an element",
            self.page.evaluate_expression(js),
        )
        .await?;
        result.into_value::<Found>().map_err(cdp)
    }

    /// The finder's expression for `spec`, for conditions evaluated in the page.
    pub fn find_expression(spec: &serde_json::Value) -> String {
        format!("({FIND_JS})({spec})")
    }

    /// Waits in the page, for at most `budget`, until the JavaScript expression `condition`
    /// is true: the page looks every 40 ms by itself, so a wait costs one DevTools call
    /// rather than one per look. A navigation under way ends the wait early with `false`.
    pub async fn wait_until(
        &self,
        condition: &str,
        budget: Duration,
    ) -> Result<bool, BrowserError> {
        let ms = budget.as_millis();
        let js = format!(
            "(async () => {{ const until = Date.now() + {ms}; \
             for (;;) {{ try {{ if ({condition}) return true; }} catch (e) {{}} \
             if (Date.now() >= until) return false; \
             await new Promise(r => setTimeout(r, 40)); }} }})()"
        );
        let result = within(
            budget + self.call_timeout.min(EVAL),
            "waiting in the page",
            self.page.evaluate_expression(js),
        )
        .await?;
        Ok(result.into_value::<bool>().unwrap_or(false))
    }

    /// Evaluates a JavaScript expression that yields a boolean.
    pub async fn check(&self, js: &str) -> Result<bool, BrowserError> {
        let result = within(
            self.call_timeout.min(EVAL),
            "checking the page",
            self.page.evaluate_expression(js),
        )
        .await?;
        Ok(result.into_value::<bool>().unwrap_or(false))
    }

    /// Evaluates a JavaScript expression that yields a string.
    pub async fn text(&self, js: &str) -> Result<String, BrowserError> {
        let result = within(
            self.call_timeout.min(EVAL),
            "reading the page",
            self.page.evaluate_expression(js),
        )
        .await?;
        Ok(result.into_value::<String>().unwrap_or_default())
    }

    /// The page's URL.
    pub async fn url(&self) -> String {
        self.text("location.href").await.unwrap_or_default()
    }

    /// Clicks the element `spec` finds once it is clickable: visible, enabled, standing still
    /// and not covered. Returns false when `limit` passes first.
    pub async fn click(
        &self,
        spec: &serde_json::Value,
        limit: Duration,
    ) -> Result<bool, BrowserError> {
        // One round trip finds the element and decides whether it can take the click:
        // scrolled into view, not moving between two frames (a drawer sliding in), and on top
        // at its centre (not under an overlay or a toast). Then the mouse goes there as a
        // person's would.
        let js = format!(
            "(async () => {{ {find} if (!el) return null; \
             el.scrollIntoView({{block: 'center', inline: 'center'}}); \
             const a = el.getBoundingClientRect(); \
             await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))); \
             const b = el.getBoundingClientRect(); \
             if (Math.abs(a.x - b.x) > 0.5 || Math.abs(a.y - b.y) > 0.5 || b.width <= 0 || b.height <= 0) return null; \
             const x = b.x + b.width / 2, y = b.y + b.height / 2; \
             const top = document.elementFromPoint(x, y); \
             return top && (top === el || el.contains(top)) ? [x, y] : null; }})()",
            find = marked_element(spec)
        );
        let Some([x, y]) = self
            .poll::<[f64; 2]>(&js, "finding what to click", limit)
            .await?
        else {
            return Ok(false);
        };
        within(
            self.call_timeout,
            "clicking",
            self.page.click(chromiumoxide::layout::Point { x, y }),
        )
        .await?;
        Ok(true)
    }

    /// Replaces the value of the field `spec` finds with `value`, typed as text input.
    pub async fn fill(
        &self,
        spec: &serde_json::Value,
        value: &str,
        limit: Duration,
    ) -> Result<bool, BrowserError> {
        // Found, focused and cleared in the page, in one round trip: going through DevTools'
        // DOM domain would take five and make the page report every DOM change from then on.
        let js = format!(
            "(() => {{ {find} if (!el) return null; el.focus(); if (el.select) el.select(); \
             el.value = ''; el.dispatchEvent(new Event('input', {{ bubbles: true }})); \
             return document.activeElement === el || null; }})()",
            find = marked_element(spec)
        );
        if self
            .poll::<bool>(&js, "finding the field", limit)
            .await?
            .is_none()
        {
            return Ok(false);
        }
        if !value.is_empty() {
            within(
                self.call_timeout,
                "typing",
                self.page.execute(InsertTextParams::new(value)),
            )
            .await?;
        }
        Ok(true)
    }

    /// Chooses the option of the `<select>` `spec` finds whose text or value is `value`.
    pub async fn select(
        &self,
        spec: &serde_json::Value,
        value: &str,
        limit: Duration,
    ) -> Result<bool, BrowserError> {
        let js = format!(
            "(() => {{ {find} if (!el) return null; const want = {v}.trim().toLowerCase(); \
             const o = [...el.options].find(o => o.value.toLowerCase() === want || o.text.trim().toLowerCase() === want); \
             if (!o) return null; el.value = o.value; \
             el.dispatchEvent(new Event('input', {{ bubbles: true }})); el.dispatchEvent(new Event('change', {{ bubbles: true }})); return true; }})()",
            find = marked_element(spec),
            v = serde_json::Value::String(value.to_owned())
        );
        Ok(self
            .poll::<bool>(&js, "choosing an option", limit)
            .await?
            .is_some())
    }

    /// Evaluates `js` until it yields a value other than null, or `limit` passes (`None`):
    /// how click, fill and select wait for their element.
    async fn poll<T: serde::de::DeserializeOwned>(
        &self,
        js: &str,
        what: &str,
        limit: Duration,
    ) -> Result<Option<T>, BrowserError> {
        let deadline = Instant::now() + limit;
        loop {
            let value = within(
                self.call_timeout.min(EVAL),
                what,
                self.page.evaluate_expression(js),
            )
            .await?
            .into_value::<Option<T>>()
            .ok()
            .flatten();
            if value.is_some() || Instant::now() >= deadline {
                return Ok(value);
            }
            sleep(POLL).await;
        }
    }

    /// Presses a key on whatever has focus.
    pub async fn press(&self, key: &str) -> Result<(), BrowserError> {
        // Key events go to whatever has the focus, so nothing needs finding (going through
        // DevTools' DOM domain would also make the page report every DOM change from then on).
        let def = chromiumoxide::keys::get_key_definition(key)
            .ok_or_else(|| BrowserError::Cdp(format!("{key:?} is not a key name")))?;
        let text = def
            .text
            .or((def.key.chars().count() == 1).then_some(def.key));
        let event = |kind: DispatchKeyEventType| {
            let mut e = DispatchKeyEventParams::new(kind);
            e.key = Some(def.key.into());
            e.code = Some(def.code.into());
            e.windows_virtual_key_code = Some(def.key_code);
            e.native_virtual_key_code = Some(def.key_code);
            e
        };
        let mut down = event(match text {
            Some(_) => DispatchKeyEventType::KeyDown,
            None => DispatchKeyEventType::RawKeyDown,
        });
        down.text = text.map(Into::into);
        let t = self.call_timeout;
        within(t, "pressing a key", self.page.execute(down)).await?;
        within(
            t,
            "releasing a key",
            self.page.execute(event(DispatchKeyEventType::KeyUp)),
        )
        .await?;
        Ok(())
    }

    /// Waits until no request sent since `since` has been in flight for a moment, or `limit`
    /// passes: how a click that sends a request is known to have been answered. A page load
    /// the action started counts until it is answered, so the next step's navigation cannot
    /// cancel a form's POST. Requests older than the action (a long poll, a beacon) do not
    /// hold it up.
    pub async fn settle(&self, since: Instant, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut quiet_since: Option<Instant> = None;
        while Instant::now() < deadline {
            let busy = {
                let net = self.net.lock().unwrap_or_else(|p| p.into_inner());
                net.in_flight.values().any(|(_, sent)| *sent >= since)
                    || net
                        .navigating
                        .as_ref()
                        .is_some_and(|(_, sent)| *sent >= since)
            };
            match (busy, quiet_since) {
                (true, _) => quiet_since = None,
                (false, None) => quiet_since = Some(Instant::now()),
                (false, Some(at)) if at.elapsed() >= QUIET => return,
                (false, Some(_)) => {}
            }
            sleep(Duration::from_millis(15)).await;
        }
        let pending: Vec<String> = self
            .net
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .in_flight
            .values()
            .filter(|(_, sent)| *sent >= since)
            .map(|(url, _)| url.clone())
            .collect();
        tracing::debug!(?pending, "the network did not settle within {limit:?}");
    }

    /// The answer to the tab's latest page load, if one came.
    pub fn page_load(&self) -> Option<PageLoad> {
        self.net
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .page
            .clone()
    }

    /// The tab's latest page that answered with success.
    pub fn good_page(&self) -> Option<String> {
        self.net
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .good_page
            .clone()
    }

    /// How many of the page's requests (other than pages) are sent and not yet answered.
    pub fn requests_in_flight(&self) -> usize {
        self.net
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .in_flight
            .len()
    }

    /// The first error (4xx or 5xx, not 429) the site answered a page or a script's request
    /// with since `since`: a step waiting for the result of an action that failed there can
    /// stop waiting.
    pub fn error_since(&self, since: Instant) -> Option<(u16, String)> {
        let net = self.net.lock().unwrap_or_else(|p| p.into_inner());
        net.http_errors
            .iter()
            .find(|(_, _, at)| *at >= since)
            .map(|(s, u, _)| (*s, u.clone()))
    }

    /// Every cookie of this context, as the site left them (refreshed values included).
    pub async fn cookies(&self) -> Result<Vec<Cookie>, BrowserError> {
        let result = within(
            self.call_timeout,
            "reading cookies",
            self.live.browser().execute(storage::GetCookiesParams {
                browser_context_id: self.context.clone(),
            }),
        )
        .await?;
        Ok(result.result.cookies.iter().map(from_cdp).collect())
    }

    /// A PNG of the whole page.
    pub async fn screenshot(&self) -> Result<Vec<u8>, BrowserError> {
        let params = ScreenshotParams::builder()
            .format(CaptureScreenshotFormat::Png)
            .full_page(true)
            .build();
        within(
            self.call_timeout,
            "taking a screenshot",
            self.page.screenshot(params),
        )
        .await
    }

    /// The page's HTML.
    pub async fn html(&self) -> Result<String, BrowserError> {
        within(
            self.call_timeout,
            "reading the page's HTML",
            self.page.content(),
        )
        .await
    }

    /// Closes the context and its page.
    pub async fn close(mut self) {
        self.dispose().await;
    }

    async fn dispose(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Some(context) = self.context.take() {
            let _ = timeout(
                self.call_timeout,
                self.live.browser().dispose_browser_context(context),
            )
            .await;
            self.contexts.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Some(context) = self.context.take() {
            let (live, contexts) = (self.live.clone(), self.contexts.clone());
            tokio::spawn(async move {
                let _ = timeout(
                    Duration::from_secs(10),
                    live.browser().dispose_browser_context(context),
                )
                .await;
                contexts.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }
}
