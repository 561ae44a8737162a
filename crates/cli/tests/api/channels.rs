//! Every delivery channel end to end through the real server and workers: a signed webhook to
//! a local receiver that fails twice first (retried with the same idempotency key, its answer
//! kept), e-mail through a local SMTP sink, and the demo marketplace's seller chat; a refused
//! webhook leaves the order for an operator, whose re-send carries the same item under a new
//! key; a cancellation after delivery revokes the item until an operator returns it to stock.

use crate::helpers::TestApp;
use cartwright_demo_shop::marketplace::{Item, MarketplaceConfig, Status};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A request the receiver got: its headers (lower-case names) and body.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
}

/// A local HTTP receiver answering each request with the next of `plan` (then with its last).
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    plan: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    async fn start(plan: Vec<u16>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/delivery", listener.local_addr().unwrap());
        let r = Receiver {
            url,
            got: Arc::default(),
            plan: Arc::new(Mutex::new(plan)),
        };
        let me = r.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move { me.serve(socket).await });
            }
        });
        r
    }

    fn answer_next(&self, status: u16) {
        *self.plan.lock().unwrap() = vec![status];
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    async fn serve(&self, socket: tokio::net::TcpStream) {
        let mut reader = BufReader::new(socket);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let mut headers = HashMap::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).await.unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).await.unwrap();
            let status = {
                let mut plan = self.plan.lock().unwrap();
                if plan.len() > 1 {
                    plan.remove(0)
                } else {
                    plan[0]
                }
            };
            self.got.lock().unwrap().push(Received {
                headers,
                body: String::from_utf8(body).unwrap(),
            });
            let text = format!("{{\"status\":{status}}}");
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                text.len()
            );
            reader.get_mut().write_all(reply.as_bytes()).await.unwrap();
        }
    }
}

/// A local SMTP sink: takes every message and keeps its DATA.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = mails.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut s = BufReader::new(socket);
                s.get_mut().write_all(b"220 sink ESMTP\r\n").await.unwrap();
                loop {
                    let mut line = String::new();
                    if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 sink\r\n",
                        "DATA" => {
                            s.get_mut().write_all(b"354 go on\r\n").await.unwrap();
                            let mut data = String::new();
                            loop {
                                let mut l = String::new();
                                s.read_line(&mut l).await.unwrap();
                                if l == ".\r\n" {
                                    break;
                                }
                                data.push_str(&l);
                            }
                            kept.lock().unwrap().push(data);
                            b"250 2.0.0 queued as 42\r\n"
                        }
                        "QUIT" => {
                            s.get_mut().write_all(b"221 bye\r\n").await.unwrap();
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    s.get_mut().write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, mails)
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> Option<Value>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn order_by_number(app: &TestApp, number: &str) -> Value {
    until(&format!("order {number} arrives"), async || {
        let list = app.get("/api/v1/market/orders", &app.admin).await;
        let id = list
            .ok(200)
            .as_array()?
            .iter()
            .find(|o| o["external_id"] == number)?["id"]
            .as_i64()?;
        Some(
            app.get(&format!("/api/v1/market/orders/{id}"), &app.admin)
                .await
                .ok(200)
                .clone(),
        )
    })
    .await
}

/// The order's detail once `ready` holds of it.
async fn order_when(
    app: &TestApp,
    number: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let id = order_by_number(app, number).await["order"]["id"]
        .as_i64()
        .unwrap();
    until(&format!("{number}: {what}"), async || {
        let d = app
            .get(&format!("/api/v1/market/orders/{id}"), &app.admin)
            .await
            .ok(200)
            .clone();
        ready(&d).then_some(d)
    })
    .await
}

fn send<'a>(detail: &'a Value, channel: &str) -> &'a Value {
    detail["sends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["channel"] == channel)
        .unwrap_or_else(|| panic!("no {channel} send in {detail}"))
}

/// Connects the demo marketplace `shop` runs as a Shopee shop; returns the connection's id.
pub async fn connect_demo(app: &TestApp, shop: &cartwright_demo_shop::RunningShop) -> i64 {
    let market = MarketplaceConfig::default();
    let connection = app
        .post(
            "/api/v1/market/connections",
            &app.admin,
            json!({"marketplace": "shopee", "name": "Demo shop", "shop_id": market.shop_id.to_string(),
                   "base_url": shop.url(), "partner_id": market.partner_id.to_string(),
                   "partner_key": market.partner_key, "access_token": market.access_token,
                   "refresh_token": market.refresh_token}),
        )
        .await;
    connection.ok(201)["id"].as_i64().unwrap()
}

const SECRET: &str = "whsec-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_email_and_chat_each_deliver_and_a_refused_send_is_sent_again_with_the_same_item() {
    let shop = cartwright_demo_shop::start(
        "127.0.0.1:0".parse().unwrap(),
        cartwright_demo_shop::ShopConfig::default(),
    )
    .await
    .unwrap();
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![503, 502, 200]).await;
    let (smtp_port, mails) = smtp_sink().await;

    // Channels: bad settings are refused by name; secrets are never shown.
    let bad = app
        .post(
            "/api/v1/channels",
            &app.admin,
            json!({"kind": "webhook", "name": "Shop system", "url": receiver.url, "secret": "short"}),
        )
        .await;
    assert_eq!(bad.error(422, "invalid").as_deref(), Some("secret"));
    let bad = app
        .post(
            "/api/v1/channels",
            &app.admin,
            json!({"kind": "email", "name": "Mail", "url": "smtp://u:pw@mail.example", "from": "shop@example.com"}),
        )
        .await;
    assert_eq!(bad.error(422, "invalid").as_deref(), Some("url"));
    app.post(
        "/api/v1/channels",
        &app.operator,
        json!({"kind": "chat", "name": "Chat"}),
    )
    .await
    .error(403, "forbidden");
    let webhook = app
        .post(
            "/api/v1/channels",
            &app.admin,
            json!({"kind": "webhook", "name": "Shop system", "url": receiver.url, "secret": SECRET}),
        )
        .await;
    let webhook = webhook.ok(201).clone();
    assert_eq!(webhook["has_secret"], true);
    assert!(!webhook.to_string().contains(SECRET), "{webhook}");
    let email = app
        .post(
            "/api/v1/channels",
            &app.admin,
            json!({"kind": "email", "name": "Mail", "url": format!("smtp+plain://127.0.0.1:{smtp_port}"),
                   "from": "Demo Keys <keys@demo.example>"}),
        )
        .await;
    let email = email.ok(201)["id"].as_i64().unwrap();
    let chat = app
        .post(
            "/api/v1/channels",
            &app.admin,
            json!({"kind": "chat", "name": "Seller chat"}),
        )
        .await;
    let chat = chat.ok(201)["id"].as_i64().unwrap();
    let listed = app.get("/api/v1/channels", &app.viewer).await;
    assert_eq!(listed.ok(200).as_array().unwrap().len(), 3);
    assert!(!listed.text().contains(SECRET));

    // The demo marketplace, a product with stock, a listing.
    let market = MarketplaceConfig::default();
    let connection = connect_demo(&app, &shop).await;
    let product = app
        .post(
            "/api/v1/digital-products",
            &app.operator,
            json!({"sku": "OFF-2021", "name": "Office 2021", "kind": "code",
                   "message": "Hi {{buyer.name}}, your Office key: {{item.code}}"}),
        )
        .await;
    let product = product.ok(201)["id"].as_i64().unwrap();
    app.post_raw(
        &format!("/api/v1/digital-products/{product}/stock"),
        &app.operator,
        "text/plain",
        b"OFF-KEY-0001\nOFF-KEY-0002\nOFF-KEY-0003\nOFF-KEY-0004\n",
    )
    .await
    .ok(200);
    app.post(
        "/api/v1/market/listings",
        &app.operator,
        json!({"connection_id": connection, "seller_sku": "OFF-2021", "product_id": product}),
    )
    .await
    .ok(201);
    shop.shop.market().set_push_url(Some(format!(
        "{}/api/v1/market/push/{connection}",
        app.base
    )));
    let items = || {
        Some(vec![Item {
            item_id: 3_100_301,
            name: "Office 2021 key".into(),
            sku: "OFF-2021".into(),
            qty: 1,
            price: 199_000,
        }])
    };

    // A marketplace order: the chat delivers it, the webhook gets it on its third try, the
    // e-mail is skipped (the marketplace gives no address).
    let number = shop
        .shop
        .market()
        .create_order(Some("dewi.lestari"), items());
    shop.shop.market().set_status(&number, Status::ReadyToShip);
    let detail = order_when(&app, &number, "delivered and the webhook sent", |d| {
        d["order"]["state"] == "delivered"
            && d["sends"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| s["channel"] == "webhook" && s["state"] == "sent")
            })
    })
    .await;
    let hook = send(&detail, "webhook");
    assert_eq!(hook["attempts"], 3, "{hook}");
    assert!(
        hook["answer"].as_str().unwrap().starts_with("200"),
        "the receiver's answer is kept: {hook}"
    );
    assert_eq!(send(&detail, "chat")["state"], "sent");
    assert_eq!(send(&detail, "page")["state"], "sent");
    let mail = send(&detail, "email");
    assert_eq!(mail["state"], "skipped");
    assert!(mail["last_error"].as_str().unwrap().contains("e-mail"));
    let calls = receiver.got();
    assert_eq!(calls.len(), 3);
    let key = hook["idempotency_key"].as_str().unwrap();
    for call in &calls {
        assert_eq!(
            call.headers["idempotency-key"], key,
            "the same key on every try"
        );
        let want = cartwright_commerce::channels::webhook_signature(
            SECRET,
            &call.headers["x-cartwright-timestamp"],
            &call.body,
        );
        assert_eq!(
            call.headers["x-cartwright-signature"],
            format!("sha256={want}")
        );
    }
    let body: Value = serde_json::from_str(&calls[2].body).unwrap();
    assert_eq!(body["order"]["number"], number.as_str());
    let code = body["items"][0]["code"].as_str().unwrap().to_owned();
    assert!(code.starts_with("OFF-KEY-"), "{body}");
    assert!(body["message"].as_str().unwrap().contains(&code));
    assert!(body["link"].as_str().unwrap().contains("/d/"));
    let said = shop.shop.market().orders();
    let said = said.iter().find(|o| o.order_sn == number).unwrap();
    assert!(
        said.messages
            .iter()
            .any(|m| m.from == "seller" && m.text.contains(&code)),
        "the key is in the buyer's chat: {:?}",
        said.messages
    );

    // An order reported with the buyer's e-mail: it goes out by mail too.
    let token = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "shop system", "scopes": ["webhook"]}),
        )
        .await;
    let token = token.ok(201)["secret"].as_str().unwrap().to_owned();
    app.post(
        "/api/v1/market/orders",
        &token,
        json!({"marketplace": "shopee", "shop_id": market.shop_id.to_string(), "external_id": "261207MAIL0001",
               "buyer": {"name": "Rina", "email": "rina@buyer.example"},
               "lines": [{"item_id": "3100301", "seller_sku": "OFF-2021", "name": "Office 2021 key", "quantity": 1}],
               "status": "paid", "updated_at": "2026-12-07T01:00:00Z"}),
    )
    .await
    .ok(200);
    let detail = order_when(&app, "261207MAIL0001", "mailed", |d| {
        d["sends"].as_array().is_some_and(|s| {
            s.iter()
                .any(|s| s["channel"] == "email" && s["state"] == "sent")
        })
    })
    .await;
    assert_eq!(detail["order"]["state"], "delivered");
    assert_eq!(
        send(&detail, "chat")["state"],
        "skipped",
        "no buyer id to write to"
    );
    let mail_key = send(&detail, "email")["idempotency_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mail = mails.lock().unwrap().last().cloned().unwrap();
    assert!(mail.contains("To: rina@buyer.example"), "{mail}");
    assert!(mail.contains(&format!("<{mail_key}@cartwright>")), "{mail}");
    assert!(mail.contains("OFF-KEY-"), "{mail}");

    // The webhook refuses (400) and the other channels are off: the order waits for an
    // operator; a re-send after the fix carries the same item under a new key.
    for id in [email, chat] {
        app.patch(
            &format!("/api/v1/channels/{id}"),
            &app.admin,
            json!({"enabled": false}),
        )
        .await
        .ok(200);
    }
    receiver.answer_next(400);
    let refused = shop
        .shop
        .market()
        .create_order(Some("andi.wijaya"), items());
    shop.shop.market().set_status(&refused, Status::ReadyToShip);
    let detail = order_when(&app, &refused, "needs attention", |d| {
        d["order"]["state"] == "needs_attention"
    })
    .await;
    let hook = send(&detail, "webhook");
    assert_eq!(
        (hook["state"].as_str(), hook["attempts"].as_i64()),
        (Some("failed"), Some(1)),
        "a refusal is not retried: {hook}"
    );
    assert!(
        detail["deliveries"][0]["attention"]
            .as_str()
            .unwrap()
            .contains("no channel could send it")
    );
    let first_key = hook["idempotency_key"].as_str().unwrap().to_owned();
    let before = receiver.got().len();
    let first_body: Value = serde_json::from_str(&receiver.got()[before - 1].body).unwrap();
    receiver.answer_next(200);
    let delivery = detail["deliveries"][0]["id"].as_i64().unwrap();
    app.post(
        &format!("/api/v1/deliveries/{delivery}/resend"),
        &app.viewer,
        json!({}),
    )
    .await
    .error(403, "forbidden");
    let resent = app
        .post(
            &format!("/api/v1/deliveries/{delivery}/resend"),
            &app.operator,
            json!({}),
        )
        .await;
    resent.ok(202);
    let detail = order_when(&app, &refused, "delivered after the re-send", |d| {
        d["order"]["state"] == "delivered"
    })
    .await;
    let hook = send(&detail, "webhook");
    assert_eq!(hook["state"], "sent");
    assert_ne!(
        hook["idempotency_key"],
        first_key.as_str(),
        "a re-send is a new send"
    );
    let again: Value = serde_json::from_str(&receiver.got().last().unwrap().body).unwrap();
    assert_eq!(
        again["items"], first_body["items"],
        "the same item, never a new one"
    );
    let stock = app
        .get(&format!("/api/v1/digital-products/{product}"), &app.viewer)
        .await;
    assert_eq!(
        (
            stock.ok(200)["stock"]["delivered"].as_i64(),
            stock.ok(200)["stock"]["available"].as_i64()
        ),
        (Some(3), Some(1))
    );

    // Cancelled after delivery (a refund, once anything went out): its item is revoked, never
    // sold again, until an operator returns it to stock.
    shop.shop.market().set_status(&refused, Status::Cancelled);
    order_when(&app, &refused, "refunded", |d| {
        d["order"]["state"] == "refunded"
    })
    .await;
    let items = app
        .get(
            &format!("/api/v1/digital-products/{product}/stock"),
            &app.viewer,
        )
        .await;
    let revoked = items.ok(200)["items"]
        .as_array()
        .or(items.ok(200).as_array())
        .unwrap()
        .iter()
        .find(|i| i["state"] == "revoked")
        .cloned()
        .unwrap_or_else(|| panic!("no revoked item: {}", items.text()));
    let id = revoked["id"].as_i64().unwrap();
    let again = app
        .post(
            &format!("/api/v1/deliveries/{delivery}/resend"),
            &app.operator,
            json!({}),
        )
        .await;
    assert_eq!(
        again.error(409, "refused").as_deref(),
        Some("state"),
        "{}",
        again.text()
    );
    app.post(
        &format!("/api/v1/stock-items/{id}/return"),
        &app.operator,
        json!({}),
    )
    .await
    .ok(204);
    let stock = app
        .get(&format!("/api/v1/digital-products/{product}"), &app.viewer)
        .await;
    assert_eq!(
        (
            stock.ok(200)["stock"]["revoked"].as_i64(),
            stock.ok(200)["stock"]["available"].as_i64()
        ),
        (Some(0), Some(2))
    );
    let twice = app
        .post(
            &format!("/api/v1/stock-items/{id}/return"),
            &app.operator,
            json!({}),
        )
        .await;
    assert_eq!(twice.error(409, "refused").as_deref(), Some("state"));
}
