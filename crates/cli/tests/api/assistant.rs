//! The buyer assistant through the real server: the FAQ (CRUD, import and export, the index
//! following every change), questions answered from the FAQ, by the LLM fallback (a local
//! fake speaking the OpenAI protocol, streaming and not, failing and slow) or handed to a
//! person, and the interaction graph's queries.

use crate::helpers::TestApp;
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FAQ: &str = include_str!("../../../../eval/faq/entries.md");

/// What the fake LLM does with the next requests.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Stream,
    Json,
    Fail,
    Slow,
}

/// A request the fake received: its `Authorization` and body.
type Seen = (Option<String>, Value);

#[derive(Clone)]
struct Fake {
    behaviour: Arc<Mutex<Behaviour>>,
    requests: Arc<Mutex<Vec<Seen>>>,
}

async fn fake_llm() -> (String, Fake) {
    let fake = Fake {
        behaviour: Arc::new(Mutex::new(Behaviour::Stream)),
        requests: Arc::new(Mutex::new(Vec::new())),
    };
    let state = fake.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(
            move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                let state = state.clone();
                async move {
                    use axum::response::IntoResponse;
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    state.requests.lock().unwrap().push((auth, body));
                    let behaviour = *state.behaviour.lock().unwrap();
                    match behaviour {
                        Behaviour::Stream => {
                            let words = ["Generated: ", "a person ", "will confirm ", "soon."];
                            let mut sse = String::new();
                            for w in words {
                                sse.push_str(&format!(
                                    "data: {}\n\n",
                                    json!({"choices": [{"delta": {"content": w}, "index": 0}]})
                                ));
                            }
                            sse.push_str("data: [DONE]\n\n");
                            ([("content-type", "text/event-stream")], sse).into_response()
                        }
                        Behaviour::Json => axum::Json(json!({
                            "choices": [{"message": {"role": "assistant", "content": "Generated in one piece."}}]
                        }))
                        .into_response(),
                        Behaviour::Fail => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            axum::Json(json!({"error": {"message": "model overloaded"}})),
                        )
                            .into_response(),
                        Behaviour::Slow => {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            "too late".into_response()
                        }
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), fake)
}

async fn connection(app: &TestApp, shop: &str) -> i64 {
    let c = app
        .post(
            "/api/v1/market/connections",
            &app.admin,
            json!({"marketplace": "shopee", "name": "Shop", "shop_id": shop, "base_url": "https://partner.example",
                   "partner_id": "1", "partner_key": "secret-key", "access_token": "token"}),
        )
        .await;
    c.ok(201)["id"].as_i64().unwrap()
}

async fn order(app: &TestApp, shop: &str, number: &str, buyer: &str, sku: &str) -> i64 {
    let o = app
        .post(
            "/api/v1/market/orders",
            &app.admin,
            json!({
                "marketplace": "shopee", "shop_id": shop, "external_id": number,
                "buyer": {"name": buyer, "id": buyer},
                "lines": [{"item_id": "1", "seller_sku": sku, "name": sku, "quantity": 1, "unit_price_minor": 18600000}],
                "payment_method": "ShopeePay", "status": "paid", "updated_at": "2026-12-07T01:00:00Z"
            }),
        )
        .await;
    o.ok(200)["order_id"].as_i64().unwrap()
}

/// An answer's source and state.
fn outcome(asked: &Value) -> (Option<&str>, Option<&str>) {
    (
        asked["answer"]["source"].as_str(),
        asked["answer"]["state"].as_str(),
    )
}

async fn try_top(app: &TestApp, question: &str) -> (String, bool) {
    let r = app
        .post(
            "/api/v1/assistant/try",
            &app.viewer,
            json!({"question": question}),
        )
        .await;
    let r = r.ok(200);
    (
        r["hits"][0]["key"].as_str().unwrap_or_default().to_owned(),
        r["confident"].as_bool().unwrap(),
    )
}

#[tokio::test]
async fn the_faq_is_managed_whole_and_the_index_follows_every_change() {
    let app = TestApp::spawn().await;
    let import = app
        .post_raw(
            "/api/v1/faq/import",
            &app.operator,
            "text/markdown",
            FAQ.as_bytes(),
        )
        .await;
    assert_eq!(import.ok(200)["created"], 46);
    let again = app
        .post_raw(
            "/api/v1/faq/import",
            &app.operator,
            "text/markdown",
            FAQ.as_bytes(),
        )
        .await;
    assert_eq!(
        again.ok(200)["unchanged"],
        46,
        "an import is idempotent by key"
    );
    let bad = app
        .post_raw(
            "/api/v1/faq/import",
            &app.operator,
            "text/markdown",
            b"## Fine?\nkey: fine\n\nYes.\n\n## Broken\nkey: Not A Key\n\nNo.\n",
        )
        .await;
    let message = bad.error(422, "invalid").expect("the problems are named");
    assert!(message.contains("line 6: key"), "{message}");
    assert_eq!(
        app.get("/api/v1/faq", &app.viewer)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len(),
        46,
        "nothing of a bad file is kept"
    );
    app.post_raw(
        "/api/v1/faq/import",
        &app.operator,
        "application/pdf",
        b"%PDF",
    )
    .await
    .error(415, "unsupported_media_type");

    let markdown = app.get("/api/v1/faq/export", &app.viewer).await.text();
    let csv = app
        .get("/api/v1/faq/export?format=csv", &app.viewer)
        .await
        .text();
    assert_eq!(
        cartwright_core::faq::parse_markdown(&markdown).unwrap(),
        cartwright_core::faq::parse_csv(&csv).unwrap(),
        "both exports hold the same entries"
    );
    assert_eq!(
        cartwright_core::faq::parse_markdown(&markdown)
            .unwrap()
            .len(),
        46
    );

    assert_eq!(
        try_top(&app, "I paid already but the code never came")
            .await
            .0,
        "code-not-received"
    );
    let question = "can you ship my order to the space station";
    let (_, confident) = try_top(&app, question).await;
    assert!(!confident, "nothing in the FAQ is about space stations");
    app.post(
        "/api/v1/faq",
        &app.viewer,
        json!({"key": "space", "question": "Do you ship to the space station?", "answer": "No."}),
    )
    .await
    .error(403, "forbidden");
    let created = app
        .post(
            "/api/v1/faq",
            &app.operator,
            json!({"key": "space", "question": "Do you ship to the space station?",
                   "phrasings": ["delivery to orbit"], "answer": "Not yet: only within Indonesia."}),
        )
        .await;
    let id = created.ok(201)["id"].as_i64().unwrap();
    app.post(
        "/api/v1/faq",
        &app.operator,
        json!({"key": "space", "question": "Again?", "answer": "No."}),
    )
    .await
    .error(409, "conflict");
    let (top, confident) = try_top(&app, question).await;
    assert_eq!(
        (top.as_str(), confident),
        ("space", true),
        "a new entry is found at once"
    );
    let changed = app
        .put(
            &format!("/api/v1/faq/{id}"),
            &app.operator,
            json!({"key": "space", "question": "Do you sell moon rocks?", "answer": "No."}),
        )
        .await;
    changed.ok(200);
    assert_ne!(
        try_top(&app, question).await.0,
        "space",
        "a changed entry is indexed as changed"
    );
    assert_eq!(try_top(&app, "do you sell moon rocks").await.0, "space");
    app.delete(&format!("/api/v1/faq/{id}"), &app.operator)
        .await
        .ok(204);
    assert_ne!(
        try_top(&app, "do you sell moon rocks").await.0,
        "space",
        "a deleted entry is gone"
    );
    app.get(&format!("/api/v1/faq/{id}"), &app.viewer)
        .await
        .error(404, "not_found");
}

#[tokio::test]
async fn questions_are_answered_from_the_faq_by_the_llm_or_by_a_person_and_kept_as_a_graph() {
    let app = TestApp::spawn().await;
    app.post_raw(
        "/api/v1/faq/import",
        &app.operator,
        "text/markdown",
        FAQ.as_bytes(),
    )
    .await
    .ok(200);
    let shop = connection(&app, "77").await;
    let mine = order(&app, "77", "261207AAAA0001", "555", "NFX-1M").await;
    let theirs = order(&app, "77", "261207BBBB0002", "666", "WIN11-PRO").await;
    let ask = |text: &str, extra: Value| {
        let mut body = json!({"text": text, "buyer_name": "Ayu"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    };
    let path = format!("/api/v1/chat/{shop}/buyers/555/messages");

    // Suggest-only (the default): the FAQ's answer is proposed, not sent.
    let first = app
        .post(
            &path,
            &app.admin,
            ask(
                "I paid but my Netflix code still hasn't arrived",
                json!({"order_id": mine, "message_id": "m-1"}),
            ),
        )
        .await;
    let first = first.ok(200).clone();
    assert_eq!(first["answer"]["source"], "faq");
    assert_eq!(first["answer"]["state"], "suggested");
    assert!(first["reply"].is_null());
    assert!(
        first["answer"]["explanation"]["hits"][0]["words"].is_number(),
        "why it was chosen is kept"
    );
    let repeat = app
        .post(
            &path,
            &app.admin,
            ask(
                "I paid but my Netflix code still hasn't arrived",
                json!({"message_id": "m-1"}),
            ),
        )
        .await;
    let repeat = repeat.ok(200);
    assert_eq!(
        repeat["repeated"], true,
        "the same marketplace message is one question"
    );
    assert_eq!(repeat["answer"]["id"], first["answer"]["id"]);
    app.post(
        &path,
        &app.admin,
        ask("where is my order", json!({"order_id": theirs})),
    )
    .await
    .error(422, "invalid");

    // Automatic replies: a confident answer goes out.
    app.put(
        &format!("/api/v1/connections/{shop}/assistant"),
        &app.operator,
        json!({"mode": "auto"}),
    )
    .await
    .error(403, "forbidden");
    app.put(
        &format!("/api/v1/connections/{shop}/assistant"),
        &app.admin,
        json!({"mode": "auto"}),
    )
    .await
    .ok(200);
    let sent = app
        .post(
            &path,
            &app.admin,
            ask(
                "does the netflix account work outside indonesia, I'm in Malaysia",
                json!({"order_id": mine}),
            ),
        )
        .await;
    let sent = sent.ok(200).clone();
    assert_eq!(outcome(&sent), (Some("faq"), Some("sent")));
    assert!(sent["reply"].as_str().is_some_and(|r| !r.is_empty()));

    // No LLM: what the FAQ cannot answer goes to a person.
    let unknown = app
        .post(
            &path,
            &app.admin,
            ask("do you sell PlayStation Plus vouchers", json!({})),
        )
        .await;
    let unknown = unknown.ok(200).clone();
    assert_eq!(outcome(&unknown), (Some("handed_off"), Some("waiting")));
    let queue = app.get("/api/v1/assistant/handoffs", &app.viewer).await;
    let queue = queue.ok(200).clone();
    assert_eq!(queue.as_array().unwrap().len(), 1);
    assert_eq!(
        queue[0]["message"]["text"],
        "do you sell PlayStation Plus vouchers"
    );
    let answer = unknown["answer"]["id"].as_i64().unwrap();
    app.post(
        &format!("/api/v1/assistant/answers/{answer}/reply"),
        &app.viewer,
        json!({"text": "No."}),
    )
    .await
    .error(403, "forbidden");
    let replied = app
        .post(
            &format!("/api/v1/assistant/answers/{answer}/reply"),
            &app.operator,
            json!({"text": "We do not sell PlayStation Plus, only the vouchers listed in the shop.",
                   "faq": {"key": "playstation-plus", "question": "Do you sell PlayStation Plus?"}}),
        )
        .await;
    let replied = replied.ok(200).clone();
    assert_eq!(outcome(&replied), (Some("operator"), Some("sent")));
    assert_eq!(
        replied["faq"]["key"], "playstation-plus",
        "the answer became an entry in one step"
    );
    app.post(
        &format!("/api/v1/assistant/answers/{answer}/reply"),
        &app.operator,
        json!({"text": "Again"}),
    )
    .await
    .error(409, "refused");
    let next = app
        .post(
            &format!("/api/v1/chat/{shop}/buyers/777/messages"),
            &app.admin,
            ask("Do you sell PlayStation Plus?", json!({})),
        )
        .await;
    assert_eq!(
        next.ok(200)["answer"]["source"],
        "faq",
        "the next buyer gets the new entry at once"
    );

    // The LLM fallback: streamed, in one document, failing, too slow.
    let (llm, fake) = fake_llm().await;
    let settings = app.put("/api/v1/assistant/settings", &app.admin, json!({"instructions": "Be kind.", "llm": {"base_url": llm, "model": "tiny", "key": "sk-test-123", "timeout_ms": 1500}}))
        .await;
    let settings = settings.ok(200).clone();
    assert_eq!(settings["llm"]["has_key"], true);
    assert!(
        !settings.to_string().contains("sk-test-123"),
        "the key is never shown"
    );
    let generated = app
        .post(
            &path,
            &app.admin,
            ask(
                "can I pay for the voucher in bitcoin or dogecoin",
                json!({"order_id": mine}),
            ),
        )
        .await;
    let generated = generated.ok(200).clone();
    assert_eq!(
        outcome(&generated),
        (Some("generated"), Some("suggested")),
        "a generated answer is proposed, marked as generated, not sent"
    );
    assert_eq!(
        generated["answer"]["text"],
        "Generated: a person will confirm soon."
    );
    {
        let requests = fake.requests.lock().unwrap();
        let (auth, body) = requests.last().unwrap();
        assert_eq!(auth.as_deref(), Some("Bearer sk-test-123"));
        assert_eq!(body["model"], "tiny");
        assert_eq!(body["stream"], true);
        let prompt = body["messages"].to_string();
        assert!(prompt.contains("Be kind."), "the seller's instructions");
        assert!(prompt.contains("261207AAAA0001"), "the buyer's own order");
        assert!(
            !prompt.contains("261207BBBB0002"),
            "never another buyer's order"
        );
        assert!(
            prompt.contains("I paid but my Netflix code"),
            "the recent interactions"
        );
        assert_eq!(
            body["messages"].as_array().unwrap().last().unwrap()["content"],
            "can I pay for the voucher in bitcoin or dogecoin"
        );
    }
    *fake.behaviour.lock().unwrap() = Behaviour::Json;
    let whole = app
        .post(
            &path,
            &app.admin,
            ask("is there a loyalty programme with points", json!({})),
        )
        .await;
    assert_eq!(whole.ok(200)["answer"]["text"], "Generated in one piece.");
    for (behaviour, question) in [
        (Behaviour::Fail, "can I visit your physical store"),
        (Behaviour::Slow, "do you sell car tyres"),
    ] {
        *fake.behaviour.lock().unwrap() = behaviour;
        let failed = app.post(&path, &app.admin, ask(question, json!({}))).await;
        let failed = failed.ok(200).clone();
        assert_eq!(
            outcome(&failed),
            (Some("handed_off"), Some("waiting")),
            "an LLM failure or timeout goes to a person"
        );
        assert!(failed["answer"]["explanation"]["fallback_error"].is_string());
    }
    let dismissed = app.get("/api/v1/assistant/handoffs", &app.viewer).await;
    let waiting = dismissed.ok(200).as_array().unwrap().len();
    assert_eq!(waiting, 2);
    let with_suggested = app
        .get("/api/v1/assistant/handoffs?suggested=true", &app.viewer)
        .await;
    assert_eq!(
        with_suggested.ok(200).as_array().unwrap().len(),
        5,
        "2 waiting, 2 generated, the first proposed"
    );
    let first_answer = first["answer"]["id"].as_i64().unwrap();
    let approved = app
        .post(
            &format!("/api/v1/assistant/answers/{first_answer}/reply"),
            &app.operator,
            json!({}),
        )
        .await;
    assert_eq!(
        approved.ok(200)["answer"]["state"],
        "sent",
        "a proposed answer is approved as it is"
    );

    // The graph.
    let history = app
        .get(
            &format!("/api/v1/chat/{shop}/buyers/555/history"),
            &app.viewer,
        )
        .await;
    let history = history.ok(200).clone();
    assert_eq!(
        history.as_array().unwrap().len(),
        7,
        "every question of this buyer, none of another's"
    );
    assert_eq!(
        history[6]["message"]["text"],
        "I paid but my Netflix code still hasn't arrived"
    );
    assert_eq!(history[6]["answer"]["state"], "sent");
    let conversation = app.get(&path, &app.viewer).await;
    let senders: Vec<String> = conversation
        .ok(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sender"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(senders.iter().filter(|s| *s == "buyer").count(), 7);
    assert_eq!(
        senders.iter().filter(|s| *s == "assistant").count(),
        2,
        "the sent FAQ answer and the approved one"
    );
    let insights = app.get("/api/v1/assistant/insights", &app.viewer).await;
    let insights = insights.ok(200).clone();
    let most = &insights["most_asked"];
    assert!(
        most.as_array()
            .unwrap()
            .iter()
            .any(|r| r["product"] == "NFX-1M" && r["questions"].as_i64() >= Some(1)),
        "{most}"
    );
    let not_from_faq = insights["not_from_faq"].as_array().unwrap();
    assert_eq!(
        not_from_faq.len(),
        5,
        "handed off (3, one answered by a person) and generated (2)"
    );
    let unused = insights["unused"].as_array().unwrap();
    assert!(unused.iter().any(|e| e["key"] == "makeup-shade"));
    assert!(
        !unused.iter().any(|e| e["key"] == "playstation-plus"),
        "used by the next buyer's answer"
    );
    assert_eq!(
        app.count_sql("SELECT COUNT(*) FROM graph_edges WHERE kind = 'placed'")
            .await,
        1,
        "one buyer placed the orders their questions were about"
    );
}

/// Waits until the demo marketplace's chat of order `sn` holds a seller message containing
/// `text`.
async fn seller_wrote(market: &cartwright_demo_shop::marketplace::Market, sn: &str, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let orders = market.orders();
        let chat = &orders
            .iter()
            .find(|o| o.order_sn == sn)
            .expect("the order")
            .messages;
        if chat
            .iter()
            .any(|m| m.from == "seller" && m.text.contains(text))
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no seller message with {text:?} in {chat:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_marketplace_chat_is_answered_automatically_or_by_approval() {
    let shop = cartwright_demo_shop::start(
        "127.0.0.1:0".parse().unwrap(),
        cartwright_demo_shop::ShopConfig::default(),
    )
    .await
    .unwrap();
    let app = TestApp::spawn().await;
    app.post_raw(
        "/api/v1/faq/import",
        &app.operator,
        "text/markdown",
        FAQ.as_bytes(),
    )
    .await
    .ok(200);
    let connection = crate::channels::connect_demo(&app, &shop).await;
    let market = shop.shop.market();
    market.set_push_url(Some(format!(
        "{}/api/v1/market/push/{connection}",
        app.base
    )));
    app.put(
        &format!("/api/v1/connections/{connection}/assistant"),
        &app.admin,
        json!({"mode": "auto"}),
    )
    .await
    .ok(200);
    let sn = market.create_order(Some("dewi.lestari"), None);
    let buyer = market
        .orders()
        .iter()
        .find(|o| o.order_sn == sn)
        .unwrap()
        .buyer_user_id
        .to_string();
    // The order comes in by its push; the buyer's question by the chat push.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app
        .count_sql(&format!(
            "SELECT COUNT(*) FROM market_orders WHERE external_id = '{sn}'"
        ))
        .await
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the order never came in"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    market
        .buyer_says(&sn, "kak sudah bayar tapi kode belum masuk")
        .expect("the order exists");
    seller_wrote(market, &sn, "Please check these first").await;
    let history = app
        .get(
            &format!("/api/v1/chat/{connection}/buyers/{buyer}/history"),
            &app.viewer,
        )
        .await;
    let history = history.ok(200).clone();
    assert_eq!(history[0]["answer"]["source"], "faq");
    assert_eq!(history[0]["answer"]["state"], "sent");
    assert!(
        history[0]["message"]["order_id"].is_i64(),
        "the question is tied to the buyer's order"
    );

    // Suggest only: nothing goes out until the seller approves.
    app.put(
        &format!("/api/v1/connections/{connection}/assistant"),
        &app.admin,
        json!({"mode": "suggest"}),
    )
    .await
    .ok(200);
    market
        .buyer_says(&sn, "does the netflix account work in Malaysia?")
        .expect("the order exists");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let proposed = loop {
        let queue = app
            .get("/api/v1/assistant/handoffs?suggested=true", &app.viewer)
            .await;
        let queue = queue.ok(200).clone();
        if let Some(q) = queue.as_array().unwrap().first() {
            break q.clone();
        }
        assert!(std::time::Instant::now() < deadline, "nothing proposed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(proposed["answer"]["state"], "suggested");
    let sellers = |market: &cartwright_demo_shop::marketplace::Market| {
        market
            .orders()
            .iter()
            .find(|o| o.order_sn == sn)
            .unwrap()
            .messages
            .iter()
            .filter(|m| m.from == "seller")
            .count()
    };
    assert_eq!(sellers(market), 1, "a proposal is not sent");
    let id = proposed["answer"]["id"].as_i64().unwrap();
    app.post(
        &format!("/api/v1/assistant/answers/{id}/reply"),
        &app.operator,
        json!({"text": "Yes, it works in Malaysia too (approved)."}),
    )
    .await
    .ok(200);
    seller_wrote(market, &sn, "(approved)").await;

    // The chat read again from the start (a lost cursor): nothing is asked or sent twice.
    app.exec_sql("UPDATE market_connections SET chat_cursor = NULL")
        .await;
    app.store().queue_polls().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app
        .count_sql("SELECT COUNT(*) FROM market_connections WHERE chat_cursor IS NULL")
        .await
        > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the poll never read the chat"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.count_sql("SELECT COUNT(*) FROM chat_messages WHERE sender = 'buyer'")
            .await,
        2
    );
    assert_eq!(sellers(market), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_gives_the_buyer_their_own_delivery_link_again_and_nobody_elses() {
    let app = TestApp::spawn().await;
    let shop = connection(&app, "88").await;
    let product = app
        .post(
            "/api/v1/digital-products",
            &app.operator,
            json!({"sku": "NFX-1M", "name": "Netflix 1 month", "kind": "code", "message": "Code: {{item.code}}"}),
        )
        .await;
    let product = product.ok(201)["id"].as_i64().unwrap();
    app.post_raw(
        &format!("/api/v1/digital-products/{product}/stock"),
        &app.operator,
        "text/plain",
        b"NFX-LINK-0001\nNFX-LINK-0002\n",
    )
    .await
    .ok(200);
    app.post(
        "/api/v1/market/listings",
        &app.operator,
        json!({"connection_id": shop, "seller_sku": "NFX-1M", "product_id": product}),
    )
    .await
    .ok(201);
    let mut links = Vec::new();
    for (number, buyer) in [("261208LINK0001", "555"), ("261208LINK0002", "556")] {
        let id = order(&app, "88", number, buyer, "NFX-1M").await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let delivery = loop {
            let o = app
                .get(&format!("/api/v1/market/orders/{id}"), &app.viewer)
                .await;
            let o = o.ok(200).clone();
            if o["order"]["state"] == "delivered" {
                break o["deliveries"][0]["id"].as_i64().unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "never delivered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let link = app
            .post(
                &format!("/api/v1/deliveries/{delivery}/link"),
                &app.operator,
                json!({}),
            )
            .await;
        links.push(link.ok(200)["link"].as_str().unwrap().to_owned());
    }
    app.post(
        "/api/v1/faq",
        &app.operator,
        json!({"key": "link-again", "question": "Can you send my delivery link again?",
               "phrasings": ["I lost my code, send it again"],
               "answer": "Your order {{order}} was delivered at {{delivered_at}}. Here is your page again: {{delivery_link}}"}),
    )
    .await
    .ok(201);
    app.put(
        &format!("/api/v1/connections/{shop}/assistant"),
        &app.admin,
        json!({"mode": "auto"}),
    )
    .await
    .ok(200);
    for (buyer, own, other) in [("555", &links[0], &links[1]), ("556", &links[1], &links[0])] {
        let asked = app
            .post(
                &format!("/api/v1/chat/{shop}/buyers/{buyer}/messages"),
                &app.admin,
                json!({"text": "can you send my delivery link again please", "message_id": format!("q-{buyer}")}),
            )
            .await;
        let asked = asked.ok(200).clone();
        let reply = asked["reply"].as_str().expect("answered from the FAQ");
        assert!(reply.contains(own.as_str()), "their own page: {reply}");
        assert!(
            !reply.contains(other.as_str()),
            "never another buyer's: {reply}"
        );
        assert!(!reply.contains("{{"), "{reply}");
        assert!(
            asked["answer"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("{{delivery_link}}") && !t.contains("/d/")),
            "the link is not kept in the answer: {asked}"
        );
    }
    let conversation = app
        .get(
            &format!("/api/v1/chat/{shop}/buyers/555/messages"),
            &app.viewer,
        )
        .await;
    assert!(
        !conversation.text().contains("/d/"),
        "what viewers read holds no link"
    );
    let audited = app
        .count_sql(
            "SELECT COUNT(*) FROM audit WHERE action = 'delivery.link' AND actor = 'assistant'",
        )
        .await;
    assert!(
        audited >= 2,
        "reading a link is audited (each reply's, and each try to send it into the chat): {audited}"
    );
    // Another buyer reusing a marketplace message id gets neither the message nor its answer.
    let reused = app
        .post(
            &format!("/api/v1/chat/{shop}/buyers/999/messages"),
            &app.admin,
            json!({"text": "can you send my delivery link again please", "message_id": "q-555"}),
        )
        .await;
    reused.error(409, "conflict");
    let stranger = app
        .post(
            &format!("/api/v1/chat/{shop}/buyers/999/messages"),
            &app.admin,
            json!({"text": "can you send my delivery link again please"}),
        )
        .await;
    let stranger = stranger.ok(200).clone();
    assert_eq!(
        outcome(&stranger),
        (Some("handed_off"), Some("waiting")),
        "a buyer with no delivered order gets no link, never another's"
    );
    assert!(!stranger.to_string().contains("/d/"));
}

/// The next frame of a chat socket, as JSON.
async fn next<S>(socket: &mut S) -> Value
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures::StreamExt;
    let frame = tokio::time::timeout(Duration::from_secs(30), socket.next())
        .await
        .expect("a frame in time")
        .expect("open")
        .expect("a frame");
    serde_json::from_str(frame.to_text().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_websocket_answers_and_brings_a_persons_reply() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = TestApp::spawn().await;
    app.post_raw(
        "/api/v1/faq/import",
        &app.operator,
        "text/markdown",
        FAQ.as_bytes(),
    )
    .await
    .ok(200);
    let shop = connection(&app, "99").await;
    let url = |token: &str| {
        format!(
            "{}/api/v1/chat/{shop}/buyers/321/ws?access_token={token}",
            app.base.replace("http", "ws")
        )
        .into_client_request()
        .unwrap()
    };
    let refused = tokio_tungstenite::connect_async(url(&app.viewer)).await;
    assert!(
        matches!(refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 403),
        "a viewer may read but not ask"
    );
    let extension = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "chat widget", "scopes": ["extension"]}),
        )
        .await;
    let extension = extension.ok(201)["secret"].as_str().unwrap().to_owned();
    let (mut socket, _) = tokio_tungstenite::connect_async(url(&extension))
        .await
        .unwrap();
    socket.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(next(&mut socket).await["type"], "error");
    socket
        .send(Message::Text(
            json!({"text": "does spotify premium work outside indonesia", "message_id": "ws-1"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let answered = next(&mut socket).await;
    assert_eq!(answered["type"], "answered");
    assert_eq!(answered["answer"]["source"], "faq");
    socket
        .send(Message::Text(
            json!({"text": "can I pay with bitcoin"}).to_string().into(),
        ))
        .await
        .unwrap();
    let handed = next(&mut socket).await;
    assert_eq!(handed["answer"]["state"], "waiting");
    let id = handed["answer"]["id"].as_i64().unwrap();
    app.post(
        &format!("/api/v1/assistant/answers/{id}/reply"),
        &app.operator,
        json!({"text": "Only the marketplace's own payment methods, sorry."}),
    )
    .await
    .ok(200);
    let reply = next(&mut socket).await;
    assert_eq!(reply["type"], "message");
    assert_eq!(reply["sender"], "operator");
    assert!(reply["text"].as_str().unwrap().contains("payment methods"));
}
