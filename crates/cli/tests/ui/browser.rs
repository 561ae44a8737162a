//! Driving the dashboard in real headless Chromium the way a person does: find things by their
//! labels and ids, wait for what should appear (never a fixed pause), and keep a screenshot of
//! each page at desktop and phone width.

use chromiumoxide::Page;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::page::ScreenshotParams;
use futures::StreamExt;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::{Instant, sleep, timeout};

pub const WAIT: Duration = Duration::from_secs(20);

/// A headless Chromium with a fresh profile, and one page in it.
pub struct Chrome {
    pub browser: Browser,
    pub page: Page,
    pub base: String,
    shots: PathBuf,
    task: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chrome {
    pub async fn launch(base: &str, shots: PathBuf) -> Chrome {
        let profile = tempfile::tempdir().unwrap();
        let config = BrowserConfig::builder()
            .chrome_executable(
                std::env::var("CARTWRIGHT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            )
            .new_headless_mode()
            .no_sandbox()
            .args([
                "disable-gpu",
                "no-first-run",
                "disable-background-networking",
                "disable-component-update",
                "disable-sync",
            ])
            .user_data_dir(profile.path())
            .launch_timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let (browser, mut handler) = Browser::launch(config)
            .await
            .expect("Chromium starts (install Debian's chromium package)");
        let task = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if event.is_err() {
                    break;
                }
            }
        });
        let page = browser.new_page("about:blank").await.unwrap();
        let chrome = Chrome {
            browser,
            page,
            base: base.to_owned(),
            shots,
            task,
            _profile: profile,
        };
        chrome.viewport(1280, 900).await;
        chrome
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.task.abort();
    }

    async fn viewport(&self, width: i64, height: i64) {
        self.page
            .execute(SetDeviceMetricsOverrideParams::new(
                width,
                height,
                1.0,
                width < 600,
            ))
            .await
            .unwrap();
    }

    /// Opens a path of the dashboard and waits for the page to be ready.
    pub async fn open(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        timeout(WAIT, self.page.goto(url.as_str()))
            .await
            .expect("navigation in time")
            .unwrap();
        self.ready().await;
    }

    /// Waits until the document has loaded.
    pub async fn ready(&self) {
        self.wait_for("the page to load", "document.readyState === 'complete'")
            .await;
    }

    /// Evaluates `js` until it yields `true`.
    pub async fn wait_for(&self, what: &str, js: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(r) = self.page.evaluate_expression(js).await
                && r.into_value::<bool>().unwrap_or(false)
            {
                return;
            }
            if Instant::now() >= deadline {
                let state = self
                    .page
                    .evaluate_expression(
                        "location.pathname + ' ' + window.innerWidth + 'x' + window.innerHeight + ' ' + document.readyState",
                    )
                    .await
                    .map(|r| r.into_value::<String>().unwrap_or_default());
                panic!("timed out waiting for {what}: {state:?}");
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// Like `wait_for`, with a longer limit: for batches running in the browser.
    pub async fn wait_long(&self, what: &str, js: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(r) = self.page.evaluate_expression(js).await
                && r.into_value::<bool>().unwrap_or(false)
            {
                return;
            }
            if Instant::now() >= deadline {
                let body = self.text("document.querySelector('main').innerText").await;
                let _ = self
                    .page
                    .save_screenshot(
                        ScreenshotParams::builder().full_page(true).build(),
                        self.shots.join("timeout.png"),
                    )
                    .await;
                panic!("timed out waiting for {what}; the page says:\n{body}");
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// A JavaScript expression's string value.
    pub async fn text(&self, js: &str) -> String {
        self.page
            .evaluate_expression(js)
            .await
            .unwrap()
            .into_value::<String>()
            .unwrap_or_default()
    }

    /// The current path and query.
    pub async fn path(&self) -> String {
        self.text("location.pathname + location.search").await
    }

    /// Types into the field with this id, replacing what it held (real key presses, so the
    /// page's input handlers run).
    pub async fn fill(&self, id: &str, value: &str) {
        self.page
            .evaluate_expression(format!(
                "(() => {{ const el = document.getElementById({id:?}); el.value = ''; el.focus(); return true; }})()"
            ))
            .await
            .unwrap();
        let element = self.page.find_element(format!("#{id}")).await.unwrap();
        if !value.is_empty() {
            element.type_str(value).await.unwrap();
        }
    }

    /// Sets a field's value directly (selects, long text) and tells the page it changed.
    pub async fn set(&self, id: &str, value: &str) {
        let ok = self
            .page
            .evaluate_expression(format!(
                "(() => {{ const el = document.getElementById({id:?}); if (!el) return false; el.value = {value:?}; \
                 el.dispatchEvent(new Event('input', {{bubbles: true}})); el.dispatchEvent(new Event('change', {{bubbles: true}})); return el.value === {value:?}; }})()"
            ))
            .await
            .unwrap()
            .into_value::<bool>()
            .unwrap_or(false);
        assert!(ok, "could not set #{id} to {value:?}");
    }

    /// Clicks the element `css` selects, waiting until it is there.
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(element) = self.page.find_element(css).await
                && element.scroll_into_view().await.is_ok()
                && element.click().await.is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "no clickable {css}");
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks a button by its text and waits for the next page to load.
    pub async fn submit(&self, button_text: &str) {
        let before: String = self.text("String(performance.timeOrigin)").await;
        let xpath = format!("//button[normalize-space(.)={button_text:?}]");
        let element = self
            .page
            .find_xpath(xpath.as_str())
            .await
            .unwrap_or_else(|_| panic!("no button {button_text:?}"));
        element.scroll_into_view().await.unwrap();
        element.click().await.unwrap();
        self.wait_for(
            &format!("the page after {button_text:?}"),
            &format!(
                "String(performance.timeOrigin) !== {before:?} && document.readyState === 'complete'"
            ),
        )
        .await;
    }

    /// Whether a selector matches anything.
    pub async fn has(&self, css: &str) -> bool {
        self.page
            .evaluate_expression(format!("document.querySelector({css:?}) !== null"))
            .await
            .unwrap()
            .into_value::<bool>()
            .unwrap_or(false)
    }

    /// Saves the page at 1280 and 375 pixels wide, whole length.
    pub async fn shoot(&self, name: &str) {
        for (width, height) in [(1280, 900), (375, 812)] {
            self.viewport(width, height).await;
            self.wait_for(
                "a frame at the new width",
                &format!("window.innerWidth === {width} || document.documentElement.scrollWidth > {width}"),
            )
            .await;
            // Bars and meters glide to their value: shoot once they are there.
            self.wait_for(
                "transitions to end",
                "document.getAnimations().every(a => a.playState !== 'running') && \
                 !document.querySelector('[aria-busy]')",
            )
            .await;
            // A phone must not need sideways scrolling for the page itself.
            if width == 375 {
                let overflow = self
                    .text("String(document.documentElement.scrollWidth)")
                    .await;
                let overflow: i64 = overflow.parse().unwrap_or(0);
                if overflow > 380 {
                    let culprits = self
                        .text(
                            "(() => { const clipped = e => { for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) \
                             { if (getComputedStyle(p).overflowX !== 'visible') return true; } return false; }; \
                             return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 380 && !clipped(e)) \
                             .slice(-5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join(', '); })()",
                        )
                        .await;
                    let _ = self
                        .page
                        .save_screenshot(
                            ScreenshotParams::builder().build(),
                            self.shots.join(format!("{name}-375-overflow.png")),
                        )
                        .await;
                    panic!("{name} is {overflow}px wide at 375px: {culprits}");
                }
            }
            let params = ScreenshotParams::builder().full_page(true).build();
            let path = self.shots.join(format!("{name}-{width}.png"));
            self.page.save_screenshot(params, &path).await.unwrap();
        }
        self.viewport(1280, 900).await;
    }
}
