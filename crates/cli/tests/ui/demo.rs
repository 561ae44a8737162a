//! `cartwright demo` opens on a dashboard full of demo data.

use crate::browser::Chrome;
use cartwright::demo::{DEMO_PASSWORD, DEMO_USERNAME};
use std::time::Duration;
use tokio::time::{Instant, sleep};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_opens_on_a_dashboard_full_of_its_data() {
    crate::logs();
    let shots = crate::screenshot_dir("demo");
    let dir = tempfile::tempdir().unwrap();
    let settings = cartwright::Settings {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        ..Default::default()
    };
    let demo = cartwright::demo::start(&settings, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let c = Chrome::launch(&format!("http://{}", demo.server.addr), shots).await;
    c.open("/").await;
    c.fill("username", DEMO_USERNAME).await;
    c.fill("password", DEMO_PASSWORD).await;
    c.submit("Sign in").await;

    // The seeded batches and rewards run finish on their own; the overview shows them.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        c.open("/").await;
        let ready = c
            .text(
                "String(document.querySelectorAll('table.batches .state-finished').length >= 4 && \
                 !!document.querySelector('svg.chart polyline'))",
            )
            .await;
        if ready == "true" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the demo's batches and rewards run did not finish"
        );
        sleep(Duration::from_millis(500)).await;
    }
    let body = c.text("document.querySelector('main').innerText").await;
    assert!(body.contains("Demo: first orders") && body.contains("Demo: cap too low"));
    assert_ne!(
        c.text("document.getElementById('tile-points').textContent")
            .await,
        "0"
    );
    c.shoot("overview").await;
    c.open("/batches").await;
    c.shoot("batches").await;
    c.open("/rewards").await;
    assert!(c.has("a[href^='/rewards/runs/']").await);
    c.shoot("rewards").await;
    c.open("/accounts").await;
    c.shoot("accounts").await;
    c.close().await;
    demo.server.stop().await.unwrap();
}
