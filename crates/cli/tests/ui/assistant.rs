//! The assistant in Chromium: an operator answers a handed-off question and makes the answer a
//! FAQ entry in the same step, tries a question and reads why it would be answered (each
//! retriever's scores), and imports a FAQ file with a bad entry (nothing kept, the problem
//! named by line).

use crate::browser::Chrome;
use crate::helpers::{PASSWORD, TestApp};
use serde_json::json;

const FAQ: &str = include_str!("../../../../eval/faq/entries.md");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_answers_the_queue_tries_a_question_and_imports_the_faq() {
    crate::logs();
    let shots = crate::screenshot_dir("assistant");
    let app = TestApp::spawn().await;
    app.post_raw(
        "/api/v1/faq/import",
        &app.operator,
        "text/markdown",
        FAQ.as_bytes(),
    )
    .await
    .ok(200);
    let connection = app
        .post(
            "/api/v1/market/connections",
            &app.admin,
            json!({"marketplace": "shopee", "name": "Shop", "shop_id": "5", "base_url": "https://partner.example",
                   "partner_id": "1", "partner_key": "k", "access_token": "t"}),
        )
        .await;
    let connection = connection.ok(201)["id"].as_i64().unwrap();
    let asked = app
        .post(
            &format!("/api/v1/chat/{connection}/buyers/901/messages"),
            &app.admin,
            json!({"text": "do you sell PlayStation Plus vouchers", "buyer_name": "Rizky"}),
        )
        .await;
    assert_eq!(asked.ok(200)["answer"]["state"], "waiting");

    let c = Chrome::launch(&app.base, shots).await;
    c.open("/").await;
    c.fill("username", "operator").await;
    c.fill("password", PASSWORD).await;
    c.submit("Sign in").await;
    c.open("/assistant").await;
    c.wait_for("the queue", "!!document.getElementById('handoffs')")
        .await;
    assert!(
        c.text("document.getElementById('handoffs').innerText")
            .await
            .contains("PlayStation Plus"),
        "the question waits with its buyer"
    );
    c.shoot("assistant-queue").await;
    c.set(
        "text-1",
        "We only sell the vouchers listed in the shop: no PlayStation Plus.",
    )
    .await;
    c.click("input[name=make_faq]").await;
    c.set("key-1", "playstation-plus").await;
    c.submit("Send to the buyer").await;
    assert_eq!(c.path().await, "/assistant");
    assert!(!c.has("#handoffs").await, "the queue is empty");

    // The new entry answers the next buyer at once, and the page says why.
    c.fill("question", "is there PlayStation Plus for sale")
        .await;
    c.submit("Try").await;
    let verdict = c
        .text("document.getElementById('verdict').textContent")
        .await;
    assert!(verdict.contains("Answered from the FAQ"), "{verdict}");
    let first = c
        .text("document.querySelector('#scores tbody tr').innerText")
        .await;
    assert!(first.contains("playstation-plus"), "{first}");
    c.shoot("assistant-try").await;

    // The FAQ page: the entry is listed; a file with a bad entry imports nothing.
    c.open("/assistant/faq").await;
    assert!(c.has("tr[data-key='playstation-plus']").await);
    c.set(
        "faq-text",
        "## Fine?\nkey: fine\n\nYes.\n\n## Broken\nkey: Not A Key\n\nNo.\n",
    )
    .await;
    c.submit("Import").await;
    let error = c
        .text("document.querySelector('.alert.error').textContent")
        .await;
    assert!(error.contains("line 6: key"), "{error}");
    assert!(
        !c.has("tr[data-key='fine']").await,
        "nothing of a bad file is kept"
    );
    c.shoot("assistant-faq").await;
    c.close().await;
}
