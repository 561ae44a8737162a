//! The browser pool: one Chromium per process, one isolated browser context per run (its own
//! cookie jar, cache and storage), recycled after a number of contexts or when it crashes.
//! Chromium is driven over a DevTools pipe (see [`pipe`]), never a port another local user
//! could attach to, and runs with its sandbox wherever the machine allows it.

mod pipe;
mod session;

pub use session::{Found, NetworkError, PageLoad, Session, SessionOptions};

use crate::ratelimit::RateLimiter;
use chromiumoxide::browser::Browser;
use chromiumoxide::handler::HandlerConfig;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Why a browser could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrowserError {
    /// No Chromium where it was looked for.
    #[error(
        "Chromium was not found at {0}: install Debian's `chromium-headless-shell` package (apt-get install chromium-headless-shell; the `chromium` package works too, more slowly) or set chromium_path"
    )]
    Missing(String),
    /// Chromium did not start.
    #[error("Chromium did not start: {0}")]
    Launch(String),
    /// Chromium stopped or a DevTools call failed or timed out.
    #[error("{0}")]
    Cdp(String),
}

/// How browsers are started and recycled.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The Chromium executable; the usual places are tried when absent.
    pub executable: Option<PathBuf>,
    /// Start a fresh browser after this many contexts.
    pub recycle_after: usize,
    /// How long Chromium may take to start.
    pub launch_timeout: Duration,
    /// Window size of every page.
    pub window: (u32, u32),
    /// Most contexts open at once, runs' and those opened ahead together: contexts are not
    /// opened ahead beyond it. What memory allows (about 100 MB each) when absent.
    pub max_contexts: Option<usize>,
    /// Whether the pages' requests to this machine or a private network are refused (see
    /// [`crate::net`]). The engine sets it unless internal addresses are allowed.
    pub block_internal: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            executable: None,
            recycle_after: 200,
            launch_timeout: Duration::from_secs(60),
            window: (1280, 900),
            max_contexts: None,
            block_internal: false,
        }
    }
}

/// One running Chromium.
pub(crate) struct Live {
    /// The browser, its process and its profile directory; taken only to close them.
    owned: Option<Owned>,
    alive: Arc<AtomicBool>,
    served: AtomicUsize,
    handler: tokio::task::JoinHandle<()>,
    browsers: Arc<Browsers>,
    /// When requests inside are refused: what the hosts resolved to.
    pub(crate) inside: Option<Arc<crate::net::HostCheck>>,
}

impl Live {
    pub(crate) fn browser(&self) -> &Browser {
        match &self.owned {
            Some(owned) => &owned.browser,
            None => unreachable!("a browser is taken only by its close"),
        }
    }

    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire) && !self.handler.is_finished()
    }

    /// Asks Chromium to quit and waits for it; kills it when it does not.
    fn close(&mut self) -> impl Future<Output = ()> + Send + 'static {
        let owned = self.owned.take();
        let connection = self.handler.abort_handle();
        async move {
            if let Some(Owned {
                mut browser,
                mut child,
                profile,
            }) = owned
            {
                let closed = tokio::time::timeout(CLOSE_WAIT, async {
                    browser.close().await.map_err(|e| e.to_string())?;
                    child.wait().await;
                    Ok::<_, String>(())
                })
                .await;
                if !matches!(closed, Ok(Ok(_))) {
                    tracing::debug!(?closed, "Chromium did not quit when asked; killing it");
                    child.kill().await;
                }
                drop(profile);
            }
            connection.abort();
        }
    }
}

/// What a [`Live`] browser owns.
struct Owned {
    browser: Browser,
    child: pipe::Process,
    profile: tempfile::TempDir,
}

/// Chromium's switches besides headless mode, profile and window: quiet (no background
/// traffic, no first-run UI), and predictable for automation. `--enable-automation` stays:
/// Cartwright does not pretend to be a person.
const CHROMIUM_ARGS: &[&str] = &[
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-component-extensions-with-background-pages",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--disable-hang-monitor",
    "--disable-popup-blocking",
    "--disable-prompt-on-repost",
    "--disable-ipc-flooding-protection",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--enable-features=NetworkService,NetworkServiceInProcess",
    // Chromium starts a spare renderer ahead of every navigation, for the context used
    // last; with a context per run it is rarely the one that gets used, and each costs a
    // process start (a third of a run's renderer CPU here). Every context's window also
    // preloads two omnibox popups as WebUI pages in a renderer of their own (Chromium
    // 156.0.8078.114): a headless window never shows them, and they cost as much CPU as the
    // run's page.
    "--disable-features=TranslateUI,SpareRendererForSitePerProcess,WebUIOmniboxPopup,WebUIOmniboxAimPopup",
    "--force-color-profile=srgb",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--enable-automation",
    "--mute-audio",
    "--hide-scrollbars",
    "--lang=en-US",
];

/// Why Chromium cannot use its sandbox on this machine, if it cannot: it refuses to run as
/// root with it, and it needs unprivileged user namespaces.
pub fn sandbox_unavailable() -> Option<String> {
    if rustix::process::geteuid().is_root() {
        return Some(
            "Cartwright runs as root, where Chromium refuses its sandbox; run it as an \
             ordinary user"
                .into(),
        );
    }
    let setting = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_owned())
    };
    if setting("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some(
            "the kernel refuses unprivileged user namespaces (kernel.unprivileged_userns_clone = 0)"
                .into(),
        );
    }
    if setting("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some("the kernel allows no user namespaces (user.max_user_namespaces = 0)".into());
    }
    if setting("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return Some(
            "AppArmor restricts unprivileged user namespaces \
             (kernel.apparmor_restrict_unprivileged_userns = 1)"
                .into(),
        );
    }
    None
}

/// How long a browser gets to quit when asked before it is killed.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// How long a shutdown waits for contexts still in use to let their browser go: a context
/// being disposed holds it up to its DevTools timeout.
const RELEASE_WAIT: Duration = Duration::from_secs(15);

impl Drop for Live {
    fn drop(&mut self) {
        // The last context of a replaced or dead browser is gone. Without a runtime the
        // browser is killed as it drops.
        let close = self.close();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let task = runtime.spawn(close);
                let mut closing = lock(&self.browsers.closing);
                closing.retain(|t| !t.is_finished());
                closing.push(task);
            }
            Err(_) => self.handler.abort(),
        }
        self.browsers.held.fetch_sub(1, Ordering::AcqRel);
        self.browsers.released.notify_waiters();
    }
}

/// The browsers a pool started, until each has quit: its shutdown waits for them, so that
/// none outlives the process.
#[derive(Default)]
struct Browsers {
    /// How many of them are still held (by the pool or a context).
    held: AtomicUsize,
    /// Their closes under way.
    closing: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Woken when a browser is let go.
    released: tokio::sync::Notify,
}

impl Browsers {
    /// Waits until every browser is let go (contexts being disposed hold theirs up to their
    /// DevTools timeout) or `limit` passes, then until each has quit.
    async fn wait_closed(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.held.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                tracing::warn!("a browser is still in use at shutdown");
                break;
            }
        }
        let closing = std::mem::take(&mut *lock(&self.closing));
        for task in closing {
            // Asked to quit, then killed: each step has its own limit.
            let _ = tokio::time::timeout(CLOSE_WAIT * 2, task).await;
        }
    }
}

/// A mutex's guard; one poisoned by a panic elsewhere still guards plain data.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The pool.
pub struct BrowserPool {
    config: PoolConfig,
    current: tokio::sync::Mutex<Option<Arc<Live>>>,
    launches: AtomicUsize,
    limiter: Arc<RateLimiter>,
    contexts: Arc<AtomicUsize>,
    max_contexts: usize,
    spare: Arc<Spare>,
    browsers: Arc<Browsers>,
}

/// A context opened ahead of need: opening one (a renderer process started, a page attached,
/// interception switched on) takes a few hundred milliseconds that a run would otherwise
/// wait for. It holds no cookies until a run takes it.
#[derive(Default)]
struct Spare {
    ready: std::sync::Mutex<Vec<Session>>,
    filling: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    closed: AtomicBool,
}

/// How many contexts are kept open ahead: runs finishing close together each find one.
const SPARES: usize = 2;

impl Spare {
    fn take(&self) -> Option<Session> {
        lock(&self.ready).pop()
    }

    /// Whether to open another: fewer than [`SPARES`] are ready and one more keeps the open
    /// contexts within `max`.
    fn wanted(&self, open: usize, max: usize) -> bool {
        !self.closed.load(Ordering::Acquire) && open < max && lock(&self.ready).len() < SPARES
    }
}

impl BrowserPool {
    /// A pool that starts Chromium on first use. Requests from its pages go through `limiter`.
    pub fn new(config: PoolConfig, limiter: Arc<RateLimiter>) -> Self {
        let max_contexts = config
            .max_contexts
            .or_else(memory_cap)
            .unwrap_or(usize::MAX);
        Self {
            config,
            current: tokio::sync::Mutex::new(None),
            launches: AtomicUsize::new(0),
            limiter,
            contexts: Arc::default(),
            max_contexts,
            spare: Arc::default(),
            browsers: Arc::default(),
        }
    }

    /// How many times Chromium was started.
    pub fn launches(&self) -> usize {
        self.launches.load(Ordering::Relaxed)
    }

    /// Contexts open now.
    pub fn open_contexts(&self) -> usize {
        self.contexts.load(Ordering::Relaxed)
    }

    /// Whether contexts are being opened ahead of need right now.
    pub fn opening_ahead(&self) -> bool {
        lock(&self.spare.filling)
            .as_ref()
            .is_some_and(|f| !f.is_finished())
    }

    /// The executable that will be started.
    pub fn executable(&self) -> Result<PathBuf, BrowserError> {
        find_executable(self.config.executable.as_deref())
    }

    async fn launch(&self) -> Result<Arc<Live>, BrowserError> {
        let executable = self.executable()?;
        let profile = tempfile::Builder::new()
            .prefix("cartwright-chromium-")
            .tempdir()
            .map_err(|e| BrowserError::Launch(format!("creating a profile directory: {e}")))?;
        let (w, h) = self.config.window;
        // The headless shell has a single headless mode (plain `--headless`); the full
        // browser is asked for its new headless mode by name.
        let headless = if is_headless_shell(&executable) {
            "--headless"
        } else {
            "--headless=new"
        };
        let mut args: Vec<String> = vec![
            headless.into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={w},{h}"),
        ];
        args.extend(CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()));
        if small_dev_shm() {
            args.push("--disable-dev-shm-usage".into());
        }
        let sandbox = sandbox_unavailable();
        if let Some(why) = &sandbox {
            args.push("--no-sandbox".into());
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                tracing::warn!(
                    "Chromium runs without its sandbox: {why}. A storefront script that \
                     exploited the browser would run as Cartwright's user"
                );
            });
        }
        let piped = pipe::spawn(&executable, &args, self.config.launch_timeout).await?;
        let mut child = piped.process;
        let handler_config = HandlerConfig {
            viewport: None,
            request_timeout: Duration::from_secs(30),
            ..HandlerConfig::default()
        };
        let started = async {
            let (browser, handler) = Browser::connect_with_config(piped.ws_url, handler_config)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((browser, handler))
        };
        let (browser, mut handler) =
            match tokio::time::timeout(self.config.launch_timeout, started).await {
                Ok(Ok(pair)) => pair,
                failed => {
                    child.kill().await;
                    let why = match failed {
                        Ok(Err(e)) => e,
                        _ => format!("no answer within {:?}", self.config.launch_timeout),
                    };
                    return Err(BrowserError::Launch(format!(
                        "{} did not start: {why}",
                        executable.display()
                    )));
                }
            };
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        let handler = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if let Err(e) = event {
                    tracing::warn!(error = %e, "the browser connection ended");
                    break;
                }
            }
            flag.store(false, Ordering::Release);
        });
        // A browser that died is dead at once, even while its helper processes hold the pipe
        // open: the DevTools connection ends, and calls under way fail rather than time out.
        let mut exited = child.exited();
        let (flag, connection) = (alive.clone(), handler.abort_handle());
        tokio::spawn(async move {
            let _ = exited.wait_for(|e| *e).await;
            flag.store(false, Ordering::Release);
            connection.abort();
        });
        // The bridge answers even when the browser behind it died at once: ask the browser.
        if let Err(e) = tokio::time::timeout(self.config.launch_timeout, browser.version()).await {
            child.kill().await;
            handler.abort();
            return Err(BrowserError::Launch(format!(
                "{} did not answer: {e}",
                executable.display()
            )));
        }
        self.launches.fetch_add(1, Ordering::Relaxed);
        tracing::info!(sandbox = sandbox.is_none(), "started Chromium");
        self.browsers.held.fetch_add(1, Ordering::AcqRel);
        Ok(Arc::new(Live {
            owned: Some(Owned {
                browser,
                child,
                profile,
            }),
            alive,
            served: AtomicUsize::new(0),
            handler,
            browsers: self.browsers.clone(),
            inside: self
                .config
                .block_internal
                .then(|| Arc::new(crate::net::HostCheck::default())),
        }))
    }

    /// The browser new contexts go to: the current one, or a new one when there is none, it
    /// has served its share of contexts, or it died. A replaced browser closes once its last
    /// context is gone.
    async fn live(&self) -> Result<Arc<Live>, BrowserError> {
        let mut current = self.current.lock().await;
        if let Some(live) = current.as_ref()
            && live.is_alive()
            && live.served.load(Ordering::Relaxed) < self.config.recycle_after
        {
            return Ok(live.clone());
        }
        if current.as_ref().is_some_and(|l| !l.is_alive()) {
            tracing::warn!("Chromium stopped; starting a new one");
        }
        let live = self.launch().await?;
        *current = Some(live.clone());
        Ok(live)
    }

    /// Opens an isolated context with one page, the given cookies loaded. Without a proxy
    /// it is the context opened ahead of time when there is one, and another is opened
    /// ahead for the next run.
    pub async fn session(&self, options: SessionOptions) -> Result<Session, BrowserError> {
        let live = self.live().await?;
        let warm = match (&options.proxy, self.spare.take()) {
            (None, Some(s)) if Arc::ptr_eq(s.live(), &live) && live.is_alive() => Some(s),
            _ => None,
        };
        let mut session = match warm {
            Some(mut session) => {
                session.set_call_timeout(options.call_timeout);
                session
            }
            None => {
                live.served.fetch_add(1, Ordering::Relaxed);
                Session::open_blank(
                    live.clone(),
                    options.proxy.as_deref(),
                    options.call_timeout,
                    self.limiter.clone(),
                    self.contexts.clone(),
                )
                .await?
            }
        };
        if options.proxy.is_none() {
            self.open_spare(&live, options.call_timeout);
        }
        session.load_cookies(&options.cookies).await?;
        Ok(session)
    }

    /// Opens contexts for the next runs in the background, unless enough are ready or on
    /// their way, or the browser is due to be replaced.
    fn open_spare(&self, live: &Arc<Live>, call_timeout: Duration) {
        let mut filling = lock(&self.spare.filling);
        let max = self.max_contexts;
        if filling.as_ref().is_some_and(|f| !f.is_finished())
            || !self.spare.wanted(self.open_contexts(), max)
        {
            return;
        }
        let (live, spare) = (live.clone(), self.spare.clone());
        let (limiter, contexts) = (self.limiter.clone(), self.contexts.clone());
        let recycle_after = self.config.recycle_after;
        *filling = Some(tokio::spawn(async move {
            while spare.wanted(contexts.load(Ordering::Relaxed), max)
                && live.is_alive()
                && live.served.fetch_add(1, Ordering::Relaxed) < recycle_after
            {
                let opened = Session::open_blank(
                    live.clone(),
                    None,
                    call_timeout,
                    limiter.clone(),
                    contexts.clone(),
                )
                .await;
                match opened {
                    Ok(session) if !spare.closed.load(Ordering::Acquire) => {
                        let mut ready = lock(&spare.ready);
                        // Spares left from a replaced browser are closed by their drop.
                        ready.retain(|s| Arc::ptr_eq(s.live(), &live));
                        ready.push(session);
                    }
                    Ok(session) => session.close().await,
                    Err(e) => {
                        tracing::debug!(error = %e, "opening a context ahead of time failed");
                        return;
                    }
                }
            }
        }));
    }

    /// Closes the pool's browsers: waits for contexts still in use to let theirs go (up to 15
    /// s), then for each browser to quit, so that none outlives the process.
    pub async fn shutdown(&self) {
        self.spare.closed.store(true, Ordering::Release);
        let filling = lock(&self.spare.filling).take();
        if let Some(mut filling) = filling
            && tokio::time::timeout(Duration::from_secs(10), &mut filling)
                .await
                .is_err()
        {
            filling.abort();
        }
        while let Some(spare) = self.spare.take() {
            spare.close().await;
        }
        drop(self.current.lock().await.take());
        self.browsers.wait_closed(RELEASE_WAIT).await;
    }
}

/// Debian's `chromium-headless-shell`: Chromium built for automation. It has none of the
/// windows, tab strips and omniboxes that the full browser draws off screen for every
/// context, so an order costs less CPU and memory (README: `chromium_path`). The binary
/// itself: `/usr/bin/chromium-headless-shell` is a script that runs it without `exec`, so
/// stopping the script would leave the browser running.
pub const HEADLESS_SHELL: &str = "/usr/lib/chromium/chromium-headless-shell";
const HEADLESS_SHELL_SCRIPT: &str = "/usr/bin/chromium-headless-shell";

/// The browser to start: `configured` when given, else the headless shell, else the full
/// browser in its usual places.
pub fn find_executable(configured: Option<&Path>) -> Result<PathBuf, BrowserError> {
    if let Some(path) = configured {
        if !path.exists() {
            return Err(BrowserError::Missing(path.display().to_string()));
        }
        // Debian's script for the headless shell keeps running beside the browser instead
        // of becoming it: the browser would outlive its stop.
        let canonical = |p: &Path| std::fs::canonicalize(p).ok();
        if canonical(path).is_some_and(|c| Some(c) == canonical(Path::new(HEADLESS_SHELL_SCRIPT)))
            && Path::new(HEADLESS_SHELL).exists()
        {
            return Ok(HEADLESS_SHELL.into());
        }
        return Ok(path.to_path_buf());
    }
    [
        HEADLESS_SHELL,
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
        "/usr/bin/google-chrome-stable",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .ok_or_else(|| BrowserError::Missing(HEADLESS_SHELL.into()))
}

/// Whether `/dev/shm` has less room than Chromium's shared memory may take (Debian's
/// wrapper for the full browser draws the line at 3.8 GB; a container may have 64 MB):
/// renderers then crash. Chromium is told to use the temporary directory instead.
fn small_dev_shm() -> bool {
    rustix::fs::statvfs("/dev/shm").map_or(true, |s| {
        s.f_bavail.saturating_mul(s.f_frsize) < 4_080_218_931
    })
}

/// Whether `executable` is a build of the headless shell (Debian's or Google's
/// `chrome-headless-shell`).
fn is_headless_shell(executable: &Path) -> bool {
    executable
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains("headless-shell") || n.contains("headless_shell"))
}

/// How many browser contexts this machine's memory allows at about 100 MB each, keeping
/// 512 MB for everything else; `None` when the memory cannot be read.
pub fn memory_cap() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(((kb / 1024).saturating_sub(512) / 100).max(1) as usize)
}
