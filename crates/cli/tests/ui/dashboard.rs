//! A day at the dashboard in Chromium: sign in, import accounts, add a product and an address,
//! run a batch on the demo shop and watch it finish live, open a failed order's screenshot,
//! export the PDF, then look around as a viewer.

use crate::browser::Chrome;
use crate::helpers::{PASSWORD, ShopApp};
use std::time::Duration;

async fn sign_in(c: &Chrome, username: &str) {
    c.open("/").await;
    assert!(c.path().await.starts_with("/login"), "not signed in yet");
    c.fill("username", username).await;
    c.fill("password", PASSWORD).await;
    c.submit("Sign in").await;
    assert_eq!(c.path().await, "/");
}

async fn sign_out(c: &Chrome) {
    c.submit("Sign out").await;
    assert_eq!(c.path().await, "/login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_a_day_in_the_dashboard_and_a_viewer_only_looks() {
    crate::logs();
    let shots = crate::screenshot_dir("dashboard");
    let s = ShopApp::spawn(|_| {}).await;
    let c = Chrome::launch(&s.app.base, shots).await;

    c.open("/").await;
    c.shoot("login").await;
    sign_in(&c, "admin").await;
    c.wait_for(
        "the overview",
        "document.querySelector('h1').textContent.includes('Overview')",
    )
    .await;
    c.shoot("overview-empty").await;

    // Import accounts from CSV: three good rows and a bad one, reported by line.
    c.open("/accounts/import").await;
    c.set(
        "csv",
        "label,name,email,phone,tags\n\
         ui-1,Uma One,ui-1@example.com,9810000001,ui\n\
         ui-2,Uma Two,ui-2@example.com,9810000002,ui\n\
         ui-3,Uma Three,not-an-email,9810000003,ui\n\
         ui-4,Uma Four,ui-4@example.com,9810000004,ui\n",
    )
    .await;
    c.click("input[name=on_error][value=skip]").await;
    c.submit("Import").await;
    c.wait_for(
        "the import report",
        "!!document.getElementById('import-report')",
    )
    .await;
    assert_eq!(
        c.text("document.getElementById('report-created').textContent")
            .await,
        "3"
    );
    assert_eq!(
        c.text("document.getElementById('report-rejected').textContent")
            .await,
        "1"
    );
    let problems = c
        .text("document.querySelector('table.problems tbody').textContent")
        .await;
    assert!(problems.contains("must be an email address"), "{problems}");
    c.shoot("import-report").await;

    // The list finds them; the range selector previews who is in positions 1 to 3.
    c.open("/accounts?q=ui-").await;
    assert_eq!(
        c.text("String(document.querySelectorAll('table.accounts tbody tr').length)")
            .await,
        "3"
    );
    c.open("/accounts").await;
    c.fill("sel-to", "3").await;
    c.wait_for(
        "the live preview",
        "(document.querySelector('#range-preview .preview-summary') || {}).textContent === '3 selected'",
    )
    .await;
    c.shoot("accounts").await;
    // The export link hands the browser the CSV of what the list shows.
    c.open("/accounts?tag=ui").await;
    let export = c
        .text(
            "fetch(document.querySelector('a[download]').href).then(async r => \
             r.headers.get('content-type') + '\\n' + await r.text())",
        )
        .await;
    assert!(export.starts_with("text/csv"), "{export}");
    assert_eq!(export.matches("@example.com").count(), 3, "{export}");
    // Sorting by a column header.
    c.click("th a[href*='sort=email']").await;
    c.ready().await;
    c.wait_for("the sorted list", "location.search.includes('sort=email')")
        .await;
    assert_eq!(
        c.text("document.querySelector('th[aria-sort=ascending]').textContent")
            .await
            .trim(),
        "Email ▲"
    );

    // Paste cookies on an imported account, and queue its sign-in test.
    c.open("/accounts?q=ui-2").await;
    c.click("table.accounts tbody a").await;
    c.ready().await;
    c.wait_for(
        "the account page",
        "location.pathname.startsWith('/accounts/')",
    )
    .await;
    c.set("cookies", "f.session=abc123; theme=dark").await;
    c.submit("Save cookies").await;
    let cookies = c.text("document.querySelector('main').textContent").await;
    assert!(
        cookies.contains("Cookies saved") && cookies.contains("f.session"),
        "{cookies}"
    );
    c.submit("Test sign-in").await;
    assert!(
        c.text("document.querySelector('.alert.ok').textContent")
            .await
            .contains("queued")
    );
    c.shoot("account").await;

    // A product: refused inline when its page is on another site, then added.
    c.open("/products/new").await;
    c.fill("name", "UI Lip Balm").await;
    c.fill("url", "https://elsewhere.example.com/p/balm").await;
    c.fill("price", "149").await;
    c.submit("Add product").await;
    c.wait_for(
        "the inline URL error",
        "!!document.getElementById('url-error')",
    )
    .await;
    assert_eq!(
        c.text("document.getElementById('url').getAttribute('aria-invalid')")
            .await,
        "true"
    );
    c.shoot("product-form-error").await;
    let shop = s.shop.url();
    c.fill("url", &format!("{shop}/p/ui-lip-balm")).await;
    c.fill("variant", "Mini").await;
    c.submit("Add product").await;
    assert!(c.path().await.starts_with("/products?notice=created"));
    assert!(
        c.text("document.body.textContent")
            .await
            .contains("UI Lip Balm · Mini"),
        "the variant is shown with the name"
    );
    c.shoot("products").await;

    // An address: every missing field named, then added.
    c.open("/addresses/new").await;
    c.submit("Add address").await;
    c.wait_for(
        "inline address errors",
        "!!document.getElementById('full_name-error')",
    )
    .await;
    c.shoot("address-form-error").await;
    for (id, value) in [
        ("label", "Pune studio"),
        ("full_name", "Ira Das"),
        ("line1", "Studio 9, Lane 5"),
        ("postcode", "411001"),
        ("city", "Pune"),
        ("state", "Maharashtra"),
        ("phone", "9820099999"),
    ] {
        c.fill(id, value).await;
    }
    c.submit("Add address").await;
    assert!(c.path().await.starts_with("/addresses?notice=created"));
    assert!(
        c.text("document.body.textContent")
            .await
            .contains("Pune studio")
    );
    c.shoot("addresses").await;

    // A batch from the form: a mistake is shown beside its field, then it runs, live.
    let product = s.product(1).await;
    c.open("/batches/new").await;
    c.fill("from", "1").await;
    c.fill("to", "2").await;
    c.wait_for(
        "the batch form's preview",
        "(document.querySelector('#batch-preview .preview-summary') || {}).textContent === '2 selected'",
    )
    .await;
    c.set("line-product-0", &product.to_string()).await;
    c.fill("max_total", "").await;
    c.submit("Start batch").await;
    c.wait_for(
        "the cap's inline error",
        "!!document.getElementById('max_total-error')",
    )
    .await;
    c.shoot("new-batch-error").await;
    // A code with the "best" policy: which coupon would it be? Named beside the code.
    c.fill("max_total", "100000").await;
    c.set("coupon", "best").await;
    c.fill("coupon_code", "TRY50").await;
    c.submit("Start batch").await;
    c.wait_for(
        "the coupon code's inline error",
        "!!document.getElementById('coupon_code-error')",
    )
    .await;
    c.set("coupon", "none").await;
    c.fill("coupon_code", "").await;
    // One order rehearsed first: every step up to the final click, which is never made.
    c.submit("Rehearse one order").await;
    c.wait_long(
        "the rehearsal's report",
        "!!document.getElementById('rehearsal-outcome')",
        Duration::from_secs(120),
    )
    .await;
    let outcome = c
        .text("document.getElementById('rehearsal-outcome').textContent")
        .await;
    assert!(outcome.contains("Ready for the final click"), "{outcome}");
    assert!(
        c.text("String(document.querySelectorAll('#rehearsal-steps img').length)")
            .await
            .parse::<usize>()
            .unwrap()
            > 10,
        "a screenshot per step"
    );
    assert!(
        c.text("document.getElementById('rehearsal-steps').textContent")
            .await
            .contains("choose_payment"),
        "up to the payment"
    );
    assert!(
        s.shop.shop.orders().is_empty(),
        "the rehearsal placed nothing"
    );
    c.shoot("rehearsal").await;
    c.open("/batches/new").await;
    c.fill("from", "1").await;
    c.fill("to", "2").await;
    c.wait_for(
        "the batch form's preview again",
        "(document.querySelector('#batch-preview .preview-summary') || {}).textContent === '2 selected'",
    )
    .await;
    c.set("line-product-0", &product.to_string()).await;
    c.fill("name", "UI batch").await;
    c.fill("max_total", "100000").await;
    c.submit("Start batch").await;
    let batch_path = c.path().await;
    assert!(batch_path.starts_with("/batches/"), "{batch_path}");
    c.wait_long(
        "the batch to finish on the page, live",
        "document.getElementById('count-placed').textContent === '2' && \
         document.getElementById('batch-state').textContent === 'finished'",
        Duration::from_secs(120),
    )
    .await;
    c.wait_for(
        "log lines",
        "document.querySelectorAll('#log li').length > 3",
    )
    .await;
    // The batch is over: the stream said so with its end event and the page stopped
    // listening (it would otherwise reconnect for ever).
    c.wait_for(
        "the live log to say it is finished",
        "document.getElementById('live-status').textContent === 'finished'",
    )
    .await;
    // The log filters by level and text.
    c.set("log-level", "error").await;
    c.wait_for(
        "only errors",
        "[...document.querySelectorAll('#log li')].every(li => li.hidden || li.className === 'level-error')",
    )
    .await;
    c.set("log-level", "debug").await;
    c.set("log-search", "placed order").await;
    c.wait_for(
        "the search",
        "(() => { const shown = [...document.querySelectorAll('#log li')].filter(li => !li.hidden); \
         return shown.length >= 2 && shown.every(li => li.textContent.includes('placed order')); })()",
    )
    .await;
    c.shoot("batch-finished").await;

    // The PDF report is served to the signed-in browser.
    let pdf = c
        .text(
            "fetch(document.getElementById('pdf-link').href).then(async r => \
             r.headers.get('content-type') + ' ' + new TextDecoder().decode((await r.arrayBuffer()).slice(0, 4)))",
        )
        .await;
    assert_eq!(pdf, "application/pdf %PDF");

    // Stop and resume from the batch page (a long batch, submitted over the API).
    let long = s
        .app
        .post(
            "/api/v1/batches",
            &s.app.operator,
            serde_json::json!({
                "name": "UI long",
                "accounts": {"storefront_id": s.storefront, "range": {"from": 1, "to": 8}},
                "lines": [{"product_id": product, "quantity": 1}],
                "repetitions": 4,
                "max_total": 100_000,
            }),
        )
        .await
        .ok(201)["id"]
        .as_i64()
        .unwrap();
    c.open(&format!("/batches/{long}")).await;
    c.submit("Stop").await;
    c.wait_long(
        "the batch to stop",
        "document.getElementById('batch-state').textContent === 'stopped' && \
         Number(document.getElementById('count-other').textContent) > 0",
        Duration::from_secs(60),
    )
    .await;
    assert!(c.has("#resume").await && !c.has("#stop").await);
    c.shoot("batch-stopped").await;
    c.submit("Resume").await;
    c.wait_for(
        "the batch to run again",
        "document.getElementById('batch-state').textContent === 'running'",
    )
    .await;
    c.submit("Stop").await;

    // A batch whose cap refuses the cart: its order fails with a screenshot, in the drawer.
    c.open("/batches/new").await;
    c.fill("name", "UI capped").await;
    c.fill("from", "3").await;
    c.fill("to", "3").await;
    c.set("line-product-0", &product.to_string()).await;
    c.fill("max_total", "1").await;
    c.submit("Start batch").await;
    c.wait_long(
        "the failure to show live",
        "document.getElementById('count-failed').textContent === '1'",
        Duration::from_secs(120),
    )
    .await;
    c.wait_for(
        "the failed row",
        "document.querySelector('#orders [data-field=state]').textContent === 'failed'",
    )
    .await;
    c.click("#orders a[data-drawer]").await;
    c.wait_for("the drawer", "!document.getElementById('drawer').hidden")
        .await;
    c.wait_for(
        "the failure screenshot",
        "(document.getElementById('failure-screenshot') || {}).complete === true && \
         document.getElementById('failure-screenshot').naturalWidth > 100",
    )
    .await;
    assert!(c.has("#drawer .timeline li").await, "the step timeline");
    assert!(c.has("#snapshot-link").await, "the HTML snapshot link");
    let snapshot = c
        .text("fetch(document.getElementById('snapshot-link').href).then(r => r.status + ' ' + r.headers.get('content-type'))")
        .await;
    assert_eq!(snapshot, "200 text/html; charset=utf-8");
    c.shoot("order-drawer").await;
    c.click("#drawer-close").await;
    c.wait_for(
        "the drawer to close",
        "document.getElementById('drawer').hidden",
    )
    .await;
    let order_href = c
        .text("document.querySelector('#orders a[data-drawer]').getAttribute('href')")
        .await;
    c.open(&order_href).await;
    c.shoot("order").await;

    // A rewards run: started from the form, followed live to its total points.
    c.open("/rewards").await;
    c.fill("from", "1").await;
    c.fill("to", "4").await;
    c.wait_for(
        "the run's preview",
        "(document.querySelector('#run-preview .preview-summary') || {}).textContent === '4 selected'",
    )
    .await;
    c.submit("Start run").await;
    assert!(c.path().await.starts_with("/rewards/runs/"));
    c.wait_long(
        "the run to finish on the page, live",
        "document.getElementById('run-state').textContent === 'finished' && \
         document.querySelectorAll('#run-results tbody tr').length === 4",
        Duration::from_secs(120),
    )
    .await;
    let points = c
        .text("document.getElementById('run-points').textContent")
        .await;
    assert!(points != "0" && !points.is_empty(), "total points {points}");
    let csv = c
        .text("fetch(document.getElementById('csv-link').href).then(r => r.status + ' ' + r.headers.get('content-type'))")
        .await;
    assert!(csv.starts_with("200 text/csv"), "{csv}");
    c.shoot("rewards-run").await;
    c.open("/rewards").await;
    c.shoot("rewards").await;
    c.open("/accounts/1").await;
    c.wait_for(
        "the rewards chart",
        "!!document.querySelector('svg.chart polyline')",
    )
    .await;
    c.shoot("account-rewards").await;

    // A schedule: a bad pattern is named beside its field, then it is added.
    c.open("/rewards/schedules").await;
    c.fill("name", "Morning points").await;
    c.fill("cron", "every morning").await;
    c.submit("Add schedule").await;
    c.wait_for(
        "the pattern's inline error",
        "!!document.getElementById('cron-error')",
    )
    .await;
    c.shoot("schedule-error").await;
    c.fill("cron", "0 9 * * *").await;
    c.submit("Add schedule").await;
    let listed = c
        .text(
            "(document.querySelector('table.list') || document.querySelector('main')).textContent",
        )
        .await;
    assert!(
        listed.contains("Morning points") && listed.contains("0 9 * * *"),
        "{listed}"
    );
    c.shoot("schedules").await;

    // Every other main page, filled.
    for (path, name) in [
        ("/", "overview"),
        ("/batches", "batches"),
        ("/batches/new", "new-batch"),
        ("/accounts/import", "import"),
        ("/products/new", "product-form"),
        ("/addresses/new", "address-form"),
        ("/settings", "settings-profiles"),
        ("/settings/operators", "settings-operators"),
        ("/settings/tokens", "settings-tokens"),
        ("/no-such-page", "not-found"),
    ] {
        c.open(path).await;
        c.shoot(name).await;
    }
    assert!(
        c.text("document.body.textContent")
            .await
            .contains("Not found")
    );

    // An API token: the secret shown once.
    c.open("/settings/tokens").await;
    c.fill("token-name", "ui script").await;
    c.submit("Create token").await;
    let secret = c
        .text("document.getElementById('token-secret').textContent")
        .await;
    assert!(secret.starts_with("cwt_"), "{secret}");
    c.shoot("token-created").await;
    c.open("/settings/tokens").await;
    assert!(!c.has("#token-secret").await, "shown once");
    assert!(!c.text("document.body.textContent").await.contains(&secret));
    sign_out(&c).await;

    // A viewer sees everything and can change nothing.
    sign_in(&c, "viewer").await;
    assert!(
        !c.has("a[href='/batches/new']").await,
        "no New batch for viewers"
    );
    c.open("/accounts").await;
    assert!(!c.has("a[href='/accounts/import']").await);
    assert!(!c.has("form[action='/accounts/test-logins'] button").await);
    c.open(&batch_path).await;
    assert!(!c.has("#stop").await && !c.has("#resume").await);
    assert!(c.has("#pdf-link").await, "reading is allowed");
    c.open("/products/new").await;
    assert!(
        c.text("document.body.textContent")
            .await
            .contains("Not allowed")
    );
    c.shoot("viewer-forbidden").await;
    c.open("/settings/operators").await;
    assert!(
        c.text("document.querySelector('h1').textContent")
            .await
            .contains("Not allowed")
    );
    c.open("/rewards").await;
    assert!(!c.has("#run-form").await, "viewers start no runs");
    c.open("/rewards/schedules").await;
    assert!(!c.has("form[action='/rewards/schedules']").await);
    c.open("/").await;
    c.shoot("viewer-overview").await;
    c.close().await;
}
