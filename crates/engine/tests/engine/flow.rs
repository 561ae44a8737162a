//! The demo profile's phases, one by one, in Chromium.

use crate::kit::*;
use cartwright_engine::flow::Flow;
use cartwright_engine::order::placing::ClickPermit;
use cartwright_engine::profile::Phase;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_profile_places_an_order_step_by_step() {
    let shop = shop(|_| {}).await;
    let profile = demo_profile();
    let pool = pool();
    let session = signed_in(&pool, &shop, 1).await;
    let log = Lines::default();
    let product = &shop.shop.products()[0];
    let context = json!({
        "account": {"id": 1},
        "address": {"full_name": "Asha Rao", "phone": "9876543210", "line1": "Flat 4", "street": "Linking Road",
                    "landmark": "Near the sea", "postcode": "400050", "kind_label": "Home"},
        "payment": {"label": "Cash on Delivery"},
    });
    let base = url::Url::parse(&shop.url()).unwrap();
    let mut flow = Flow::new(&session, &profile, base, context, &log);
    let started = std::time::Instant::now();
    for phase in [Phase::CheckLogin, Phase::FindInHistory, Phase::ClearCart] {
        flow.phase(phase).await.unwrap_or_else(|e| panic!("{e}"));
    }
    flow.set(
        "line",
        json!({"url": format!("/p/{}", product.slug), "quantity": 2}),
    );
    flow.phase(Phase::AddItem)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    flow.phase(Phase::ReadTotal)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let total = flow.var("total").and_then(|v| v.as_f64()).unwrap();
    assert!(total > 0.0);
    for phase in [Phase::SetAddress, Phase::ChoosePayment] {
        flow.phase(phase).await.unwrap_or_else(|e| panic!("{e}"));
    }
    // The final click runs only under a permit: without one, nothing is clicked.
    let refused = flow.phase(Phase::Place).await.unwrap_err();
    assert!(refused.to_string().contains("final click"), "{refused}");
    assert!(shop.shop.orders().is_empty());
    flow.final_click(&ClickPermit::unrecorded())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let number = flow
        .var("order_number")
        .and_then(|v| v.as_str())
        .unwrap()
        .to_owned();
    flow.phase(Phase::FindInHistory)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let history = flow.var("history").unwrap().as_array().unwrap().clone();
    eprintln!("placed {number} in {:?}", started.elapsed());
    assert!(history.iter().any(|h| h == &json!(number)), "{history:?}");
    // check_login's page was the history read next; read_total's was the checkout page
    // set_address went on with: neither was loaded twice.
    assert_eq!(
        seen(&shop, "GET /profile/orders").await,
        2,
        "check_login + after placing"
    );
    assert_eq!(seen(&shop, "GET /checkout").await, 1);
    assert!(
        log.0
            .lock()
            .unwrap()
            .iter()
            .any(|(_, _, m)| m.contains("loaded by the step before")),
        "the log says why a navigation was skipped"
    );
    let orders = shop.shop.orders();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].number, number);
    assert_eq!(orders[0].customer, 1);
    assert_eq!(orders[0].lines[0].qty, 2);
    session.close().await;
    pool.shutdown().await;
}

/// The demo profile with its `read_profile` phase replaced by `steps`.
fn with_steps(steps: &str) -> cartwright_engine::profile::Profile {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles/demo.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let cut = text.find("read_profile = [").unwrap();
    let text = format!("{}read_profile = {steps}\n", &text[..cut]);
    cartwright_engine::profile::parse(&text, &path, "demo").unwrap_or_else(|e| panic!("{e}"))
}

/// A shop, a pool and a session signed in as the shop's first customer.
async fn customer_one() -> (
    cartwright_demo_shop::RunningShop,
    cartwright_engine::browser::BrowserPool,
    cartwright_engine::browser::Session,
) {
    let shop = shop(|_| {}).await;
    let pool = pool();
    let session = signed_in(&pool, &shop, 1).await;
    (shop, pool, session)
}

/// Runs `steps` in `session` as the demo profile's `read_profile` phase.
async fn run_steps(
    session: &cartwright_engine::browser::Session,
    shop: &cartwright_demo_shop::RunningShop,
    steps: &str,
) {
    let profile = with_steps(steps);
    let log = Lines::default();
    let base = url::Url::parse(&shop.url()).unwrap();
    Flow::new(session, &profile, base, json!({}), &log)
        .phase(Phase::ReadProfile)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_is_loaded_again_once_anything_was_done_on_it() {
    let (shop, pool, session) = customer_one().await;
    let page = format!("/p/{}", shop.shop.products()[0].slug);
    let get = format!("GET {page}");
    let loads = || seen(&shop, &get);
    // Looked at only: the second visit is the page already there.
    run_steps(
        &session,
        &shop,
        &format!(
            r#"[{{ goto = "{page}" }}, {{ wait_for = {{ present = "add_to_bag" }} }}, {{ goto = "{page}" }}]"#
        ),
    )
    .await;
    assert_eq!(loads().await, 1);
    // Clicked on (added to the bag): the page is loaded again.
    run_steps(
        &session,
        &shop,
        &format!(
            r#"[{{ click = "add_to_bag" }}, {{ goto = "{page}" }}, {{ wait_for = {{ present = "add_to_bag" }} }}]"#
        ),
    )
    .await;
    assert_eq!(loads().await, 2);
    session.close().await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_opened_ahead_carry_only_the_cookies_of_the_run_that_takes_them() {
    let shop = shop(|c| c.rotate_every = 0).await;
    let pool = pool();
    for customer in 1..=4 {
        let cookie = session_cookie(&shop, customer);
        let session = pool.session(options(vec![cookie.clone()])).await.unwrap();
        session
            .goto(
                &format!("{}/profile/orders", shop.url()),
                std::time::Duration::from_secs(15),
            )
            .await
            .unwrap();
        let cookies = session.cookies().await.unwrap();
        let sessions: Vec<_> = cookies.iter().filter(|c| c.name == "f.session").collect();
        assert_eq!(sessions.len(), 1, "{cookies:?}");
        assert_eq!(
            sessions[0].value, cookie.value,
            "run {customer} sees its own session only"
        );
        session.close().await;
        // Contexts wait for the next runs, none of them holding a cookie.
        assert!(pool.open_contexts() <= 2, "{} open", pool.open_contexts());
    }
    pool.shutdown().await;
    assert_eq!(
        pool.open_contexts(),
        0,
        "shutting down closes the contexts opened ahead"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_answered_from_the_cache_do_not_stay_in_flight() {
    // The shop's script and stylesheet are cached: every page after the first takes them
    // from the memory cache, whose start and end come at once. A request left in flight
    // would hold up every later click's wait for the network, to its limit.
    let shop = shop(|_| {}).await;
    let pool = pool();
    let session = signed_in(&pool, &shop, 1).await;
    let started = tokio::time::Instant::now();
    for product in shop.shop.products().iter().cycle().take(12) {
        session
            .goto(
                &format!("{}/p/{}", shop.url(), product.slug),
                std::time::Duration::from_secs(15),
            )
            .await
            .unwrap();
    }
    session
        .settle(started, std::time::Duration::from_secs(5))
        .await;
    assert_eq!(session.requests_in_flight(), 0);
    let log = requests(&shop).await;
    assert_eq!(
        log["static"], 2,
        "script and stylesheet fetched once: {log}"
    );
    session.close().await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pressed_key_reaches_the_page() {
    let (shop, pool, session) = customer_one().await;
    let page = format!("/p/{}", shop.shop.products()[0].slug);
    // The shop's drawers close on Escape, as a storefront's do.
    run_steps(
        &session,
        &shop,
        &format!(
            r#"[{{ goto = "{page}" }}, {{ click = "add_to_bag" }}, {{ wait_for = {{ present = "added_toast" }} }},
            {{ goto = "/cart" }}, {{ click = "open_coupons" }}, {{ wait_for = {{ present = "coupon_drawer" }} }},
            {{ press = "Escape", timeout = "5s" }}, {{ wait_for = {{ absent = "coupon_drawer" }}, timeout = "5s" }}]"#
        ),
    )
    .await;
    assert_eq!(
        session
            .text("String(document.querySelector(\"div[data-slider='coupons']\").hidden)")
            .await
            .unwrap(),
        "true"
    );
    session.close().await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_fails_to_load_is_loaded_again_in_place_until_its_retries_run_out() {
    let (shop, pool, session) = customer_one().await;
    let steps = r#"[
        { goto = "/profile/details" },
        { wait_for = { present = { css = "input[name='email']" } } },
    ]"#;
    let profile = with_steps(steps);
    let base = url::Url::parse(&shop.url()).unwrap();
    let down = cartwright_demo_shop::Faults {
        error_rate: 1.0,
        ..Default::default()
    };
    // Every request fails for 700 ms, within the retries' backoff (0.5 s, 1 s, 2 s): the page
    // is loaded again in the same run and the phase succeeds.
    shop.shop.set_faults(down.clone());
    let healer = {
        let shop = shop.shop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(700)).await;
            shop.set_faults(Default::default());
        })
    };
    let log = Lines::default();
    Flow::new(&session, &profile, base.clone(), json!({}), &log)
        .phase(Phase::ReadProfile)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    healer.await.unwrap();
    let loads = seen(&shop, "GET /profile/details").await;
    assert!((2..=4).contains(&loads), "loaded {loads} times");
    assert!(
        log.0
            .lock()
            .unwrap()
            .iter()
            .any(|(_, _, m)| m.contains("loading it again")),
        "the log says the page is loaded again"
    );
    // An outage longer than every retry fails the run as transient (a fresh run tries
    // later), after the first load and five more.
    shop.shop.set_faults(down);
    let failed = Flow::new(&session, &profile, base, json!({}), &Lines::default())
        .phase(Phase::ReadProfile)
        .await
        .unwrap_err();
    shop.shop.set_faults(Default::default());
    let cartwright_engine::flow::FlowError::Failed(failure) = failed else {
        panic!("{failed}")
    };
    assert_eq!(
        failure.class,
        cartwright_core::order::ErrorClass::Transient,
        "{failure}"
    );
    assert!(failure.message.contains("answered 50"), "{failure}");
    assert_eq!(seen(&shop, "GET /profile/details").await, loads + 6);
    session.close().await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_step_whose_element_is_not_there_is_skipped_without_a_warning() {
    let (shop, pool, session) = customer_one().await;
    let profile = with_steps(
        r##"[
        { goto = "/profile/details" },
        { click = { css = "#no-such-drawer" }, optional = true, timeout = "300ms" },
        { extract = { target = { css = "input[name='email']" }, into = "email", attribute = "value" } },
    ]"##,
    );
    let base = url::Url::parse(&shop.url()).unwrap();
    let log = Lines::default();
    let mut flow = Flow::new(&session, &profile, base, json!({}), &log);
    flow.phase(Phase::ReadProfile)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(flow.var("email").is_some(), "the steps after it ran");
    let lines = log.0.lock().unwrap().clone();
    let skipped: Vec<_> = lines
        .iter()
        .filter(|(_, _, m)| m.contains("skipped (optional)"))
        .collect();
    assert_eq!(skipped.len(), 1, "{lines:?}");
    assert_eq!(
        skipped[0].1,
        cartwright_core::order::Level::Info,
        "{lines:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|(_, l, _)| *l == cartwright_core::order::Level::Warn),
        "{lines:?}"
    );
    session.close().await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_a_click_posts_is_answered_before_the_next_page_is_opened() {
    // Every page answers after 800 ms: a navigation right after the click would cancel the
    // form's POST, and the sign-in would never happen.
    let shop = shop(|c| c.faults.latency_ms = 800).await;
    let pool = pool();
    let session = pool.session(options(Vec::new())).await.unwrap();
    let email = shop.shop.customers()[0].email.clone();
    let profile = with_steps(&format!(
        r#"[
        {{ goto = "/login" }},
        {{ fill = {{ target = {{ css = "input[name='email']" }}, value = "{email}" }} }},
        {{ fill = {{ target = {{ css = "input[name='password']" }}, value = "{password}" }} }},
        {{ click = {{ text = "Sign In", role = "button" }} }},
        {{ goto = "/profile/details" }},
        {{ extract = {{ target = {{ css = "input[name='email']" }}, into = "email", attribute = "value" }} }},
    ]"#,
        password = cartwright_demo_shop::CUSTOMER_PASSWORD,
    ));
    let base = url::Url::parse(&shop.url()).unwrap();
    let log = Lines::default();
    let mut flow = Flow::new(&session, &profile, base, json!({}), &log);
    flow.phase(Phase::ReadProfile)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        flow.var("email").and_then(|v| v.as_str()),
        Some(email.as_str())
    );
    assert_eq!(seen(&shop, "POST /login").await, 1);
    session.close().await;
    pool.shutdown().await;
}
