//! A whole purchase in real headless Chromium, clicked through by hand-written steps (not the
//! engine): product pages, the bag, a coupon from the drawer, a new address whose city fills
//! itself from the PIN code, cash on delivery, Buy Now, the confirmation and the history.

use crate::kit::{control, shop};
use chromiumoxide::Page;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::network::{CookieParam, TimeSinceEpoch};
use chromiumoxide::cdp::browser_protocol::storage;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;
use tokio::time::{Instant, sleep, timeout};

const WAIT: Duration = Duration::from_secs(15);

async fn launch() -> (Browser, tokio::task::JoinHandle<()>, tempfile::TempDir) {
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
    (browser, task, profile)
}

/// Evaluates a JavaScript expression, retrying until it yields `true`.
async fn wait_for(page: &Page, what: &str, js: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(r) = page.evaluate_expression(js).await
            && r.into_value::<bool>().unwrap_or(false)
        {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(50)).await;
    }
}

/// Evaluates a JavaScript expression that yields a string.
async fn text(page: &Page, js: &str) -> String {
    page.evaluate_expression(js)
        .await
        .unwrap()
        .into_value::<String>()
        .unwrap_or_default()
}

/// Clicks an element once it stands still (not sliding in) and nothing covers its centre: the
/// checks a person makes with their eyes before clicking.
async fn click_when_ready(element: &chromiumoxide::Element) -> bool {
    if element.scroll_into_view().await.is_err() {
        return false;
    }
    let Ok(first) = element.bounding_box().await else {
        return false;
    };
    sleep(Duration::from_millis(40)).await;
    let Ok(second) = element.bounding_box().await else {
        return false;
    };
    let still =
        (first.x - second.x).abs() < 0.5 && (first.y - second.y).abs() < 0.5 && second.width > 0.0;
    if !still {
        return false;
    }
    let hit = element
        .call_js_fn(
            "function() { const r = this.getBoundingClientRect(); \
             const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2); \
             return !!top && (top === this || this.contains(top)); }",
            false,
        )
        .await
        .ok()
        .and_then(|r| r.result.value)
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    hit && element.click().await.is_ok()
}

/// Clicks the first visible, enabled element of `tag` whose trimmed text is `label`, found by
/// text the way operators describe buttons (never by the hashed class names).
async fn click(page: &Page, tag: &str, label: &str) {
    let xpath = format!(
        "//{tag}[normalize-space(.)={label:?} and not(@disabled) and not(ancestor-or-self::*[@hidden])]"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(element) = page.find_xpath(xpath.as_str()).await
            && click_when_ready(&element).await
        {
            return;
        }
        assert!(Instant::now() < deadline, "no clickable {tag} {label:?}");
        sleep(Duration::from_millis(50)).await;
    }
}

async fn click_css(page: &Page, css: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(element) = page.find_element(css).await
            && click_when_ready(&element).await
        {
            return;
        }
        assert!(Instant::now() < deadline, "no clickable {css}");
        sleep(Duration::from_millis(50)).await;
    }
}

async fn type_into(page: &Page, css: &str, value: &str) {
    let element = page.find_element(css).await.unwrap();
    element.click().await.unwrap();
    element.type_str(value).await.unwrap();
}

async fn goto(page: &Page, url: &str) {
    timeout(WAIT, page.goto(url))
        .await
        .expect("navigation in time")
        .unwrap();
}

#[tokio::test]
async fn a_purchase_clicked_through_in_chromium() {
    let shop = shop(|c| {
        c.rotate_every = 4;
        c.rotation_grace = Duration::ZERO;
        c.pincode_delay = Duration::from_millis(400);
    })
    .await;
    let base = shop.url();
    let customer = shop.shop.customers()[0].clone();
    let first_cookie = shop.shop.sign_in(customer.id).unwrap();

    let (browser, handler, _profile) = launch().await;
    let context = browser
        .create_browser_context(
            CreateBrowserContextParams::builder()
                .dispose_on_detach(true)
                .build(),
        )
        .await
        .unwrap();
    let mut cookie = CookieParam::new("f.session", first_cookie.clone());
    cookie.url = Some(format!("{base}/"));
    cookie.expires = Some(TimeSinceEpoch::new(
        (time::OffsetDateTime::now_utc().unix_timestamp() + 86_400) as f64,
    ));
    browser
        .execute(storage::SetCookiesParams {
            cookies: vec![cookie],
            browser_context_id: Some(context.clone()),
        })
        .await
        .unwrap();
    let page = timeout(
        WAIT,
        browser.new_page(CreateTargetParams {
            browser_context_id: Some(context.clone()),
            ..CreateTargetParams::new("about:blank")
        }),
    )
    .await
    .unwrap()
    .unwrap();

    // Signed in: the header greets the customer.
    goto(&page, &format!("{base}/")).await;
    wait_for(
        &page,
        "the greeting",
        &format!(
            "document.body.innerText.includes('Hi, {}')",
            customer.first_name
        ),
    )
    .await;

    // Two products into the bag, each confirmed by the toast.
    for slug in ["vitamin-c-serum", "hydrating-lip-gloss"] {
        goto(&page, &format!("{base}/p/{slug}")).await;
        click(&page, "button", "Add to Bag").await;
        wait_for(&page, "the toast", "document.querySelector('[role=status]').innerText === 'Added to bag' && !document.querySelector('[role=status]').hidden").await;
        page.evaluate_expression("document.querySelector('[role=status]').hidden = true")
            .await
            .unwrap();
    }

    // The bag: one more unit of the first line, then a coupon from the drawer.
    goto(&page, &format!("{base}/cart")).await;
    wait_for(
        &page,
        "two lines",
        "document.querySelectorAll('[class*=\"bag-item\"]').length === 2",
    )
    .await;
    click_css(&page, "[aria-label='Increase Quantity']").await;
    wait_for(
        &page,
        "quantity 2",
        "document.querySelector('[class*=\"quantityAmount\"]').innerText.trim() === '2'",
    )
    .await;
    let total = |page: &Page| {
        let page = page.clone();
        async move {
            text(
                &page,
                "document.querySelector('[data-total]').dataset.total",
            )
            .await
            .parse::<i64>()
            .unwrap()
        }
    };
    let before_coupon = total(&page).await;
    click(&page, "button", "Apply Coupons").await;
    wait_for(
        &page,
        "the drawer",
        "document.querySelector('div[data-slider=coupons]').classList.contains('open')",
    )
    .await;
    click(&page, "button", "Apply").await;
    wait_for(
        &page,
        "the coupon applied",
        "document.body.innerText.includes('applied')",
    )
    .await;
    // The message and the new total are separate updates: wait for the total as well.
    let lowered =
        format!("Number(document.querySelector('[data-total]').dataset.total) < {before_coupon}");
    wait_for(&page, "the total to drop", &lowered).await;
    let after_coupon = total(&page).await;
    assert!(
        after_coupon < before_coupon,
        "the coupon lowered the total: {before_coupon} → {after_coupon}"
    );

    // Checkout: a new address; the city and state fill themselves from the PIN code.
    click(&page, "a", "Proceed to Checkout").await;
    wait_for(&page, "the checkout", "location.pathname === '/checkout'").await;
    click(&page, "button", "Add Address").await;
    type_into(&page, "input[name='name']", "Asha Rao").await;
    type_into(&page, "input[name='phone']", "9800000000").await;
    type_into(&page, "input[name='address']", "Flat 4, Sea View").await;
    type_into(&page, "input[name='area']", "Linking Road").await;
    type_into(&page, "#pincode", "400050").await;
    wait_for(
        &page,
        "the city from the PIN code",
        "document.querySelector('input[name=city]').value === 'Mumbai'",
    )
    .await;
    assert_eq!(
        text(&page, "document.querySelector('input[name=state]').value").await,
        "Maharashtra"
    );
    click(&page, "button", "Home").await;
    click(&page, "button", "Save Address").await;
    wait_for(
        &page,
        "the saved address",
        "!!document.querySelector('input[name=address_id]:checked')",
    )
    .await;
    click(&page, "button", "Review Order Detail").await;
    click(&page, "button", "Select Payment Method").await;
    wait_for(
        &page,
        "the payment drawer",
        "document.querySelector('div[data-slider=payment]').classList.contains('open')",
    )
    .await;
    click(&page, "button", "Cash on Delivery").await;
    click_css(&page, "div[data-slider=payment] [aria-label='Close']").await;
    wait_for(
        &page,
        "the drawer closed",
        "document.querySelector('div[data-slider=payment]').hidden",
    )
    .await;
    click(&page, "button", "Buy Now").await;
    wait_for(
        &page,
        "the confirmation",
        "location.pathname.startsWith('/order-confirmation/')",
    )
    .await;
    wait_for(
        &page,
        "the order number",
        "!!document.querySelector('[data-order-number]')",
    )
    .await;
    let number = text(
        &page,
        "document.querySelector('[data-order-number]').innerText",
    )
    .await;

    // The shop has exactly this order, for this customer, at the total we saw.
    let orders = control(&shop, Method::GET, "/_control/orders", None).await;
    assert_eq!(orders.as_array().unwrap().len(), 1);
    assert_eq!(orders[0]["number"], number.as_str());
    assert_eq!(orders[0]["account"], customer.email.as_str());
    assert_eq!(orders[0]["total"], after_coupon);
    assert_eq!(orders[0]["pincode"], "400050");
    goto(&page, &format!("{base}/profile/orders")).await;
    wait_for(
        &page,
        "the history",
        &format!("document.body.innerText.includes('{number}')"),
    )
    .await;

    // Saved addresses: Edit, then Delete, then the dialog's Remove.
    goto(&page, &format!("{base}/profile/address")).await;
    wait_for(
        &page,
        "the saved address",
        "document.querySelectorAll('[data-address]').length === 1",
    )
    .await;
    click_css(&page, "[aria-label='Edit address']").await;
    click(&page, "button", "Delete").await;
    wait_for(
        &page,
        "the confirmation dialog",
        "!document.querySelector('[role=dialog][data-confirm]').hidden",
    )
    .await;
    click(&page, "button", "Remove").await;
    wait_for(
        &page,
        "the address gone",
        "document.querySelectorAll('[data-address]').length === 0",
    )
    .await;

    // The session cookie was refreshed while browsing; the browser kept the new value.
    let jar = browser
        .execute(storage::GetCookiesParams {
            browser_context_id: Some(context.clone()),
        })
        .await
        .unwrap();
    let current = jar
        .result
        .cookies
        .iter()
        .find(|c| c.name == "f.session")
        .unwrap()
        .value
        .clone();
    assert_ne!(current, first_cookie, "the shop rotated the session cookie");
    let rewards = |value: String| {
        let base = base.clone();
        async move {
            reqwest::Client::new()
                .get(format!(
                    "{base}/ext/reward-engine/application/api/v1.0/user/account"
                ))
                .header("cookie", format!("f.session={value}"))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        rewards(first_cookie).await.status(),
        401,
        "the first value no longer works"
    );
    let fresh = rewards(current).await;
    assert_eq!(fresh.status(), 200);
    assert_eq!(fresh.json::<Value>().await.unwrap()["success"], true);

    browser.dispose_browser_context(context).await.unwrap();
    let mut browser = browser;
    let _ = timeout(Duration::from_secs(10), browser.close()).await;
    let _ = timeout(Duration::from_secs(5), handler).await;
    let _ = browser.wait().await;
}
