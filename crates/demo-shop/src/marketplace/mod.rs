//! A marketplace seller centre shaped like Shopee's: order cards with status labels in English
//! or Indonesian, statuses that move on (by control endpoint or on a timer), the Open Platform
//! order API with signed requests, status-change pushes signed like Shopee's, and a buyer chat
//! per order. Cartwright's digital-goods work is built against it.

mod open_api;
mod seller;

use crate::{Shop, lock};

use axum::Router;
use hmac::{Hmac, KeyInit, Mac};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The seller centre's settings.
#[derive(Debug, Clone)]
pub struct MarketplaceConfig {
    /// Open Platform partner id.
    pub partner_id: i64,
    /// Partner key that signs requests and pushes.
    pub partner_key: String,
    /// The seller's shop id.
    pub shop_id: i64,
    /// The shop's first access token (a refresh replaces it).
    pub access_token: String,
    /// The shop's first refresh token.
    pub refresh_token: String,
    /// Seller centre sign-in.
    pub seller_username: String,
    /// Seller centre password.
    pub seller_password: String,
    /// Where status-change pushes go.
    pub push_url: Option<String>,
    /// Orders to seed.
    pub orders: usize,
    /// Move every open order one status on at this interval (none: only on request).
    pub auto_advance: Option<Duration>,
}

impl Default for MarketplaceConfig {
    fn default() -> Self {
        Self {
            partner_id: 2_001_887,
            partner_key: "demo-partner-key-7d1f3a9c5e2b8046".into(),
            shop_id: 14_701_711,
            access_token: "59777174636562737266615546704c6d".into(),
            refresh_token: "4b4a6e7a52766b5a7a6e6c5a4e4b4c70".into(),
            seller_username: "seller".into(),
            seller_password: "seller-demo".into(),
            push_url: None,
            orders: 12,
            auto_advance: None,
        }
    }
}

/// Order statuses of the Open Platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Placed, not paid.
    Unpaid,
    /// Paid; the seller can ship.
    ReadyToShip,
    /// Shipment arranged.
    Processed,
    /// With the carrier.
    Shipped,
    /// Delivered, awaiting the buyer's confirmation.
    ToConfirmReceive,
    /// Done.
    Completed,
    /// Cancellation requested.
    InCancel,
    /// Cancelled.
    Cancelled,
}

impl Status {
    /// The status name on the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unpaid => "UNPAID",
            Status::ReadyToShip => "READY_TO_SHIP",
            Status::Processed => "PROCESSED",
            Status::Shipped => "SHIPPED",
            Status::ToConfirmReceive => "TO_CONFIRM_RECEIVE",
            Status::Completed => "COMPLETED",
            Status::InCancel => "IN_CANCEL",
            Status::Cancelled => "CANCELLED",
        }
    }

    /// Parses an API status name.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }

    /// The label on an order card, in English or Indonesian.
    pub fn label(self, indonesian: bool) -> &'static str {
        match (self, indonesian) {
            (Status::Unpaid, false) => "Unpaid",
            (Status::Unpaid, true) => "Belum Bayar",
            (Status::ReadyToShip | Status::Processed, false) => "To Ship",
            (Status::ReadyToShip | Status::Processed, true) => "Perlu Dikirim",
            (Status::Shipped | Status::ToConfirmReceive, false) => "Shipping",
            (Status::Shipped | Status::ToConfirmReceive, true) => "Dikirim",
            (Status::Completed, false) => "Completed",
            (Status::Completed, true) => "Selesai",
            (Status::InCancel | Status::Cancelled, false) => "Cancelled",
            (Status::InCancel | Status::Cancelled, true) => "Batal",
        }
    }

    /// The next status in the happy path, if any.
    pub fn next(self) -> Option<Status> {
        match self {
            Status::Unpaid => Some(Status::ReadyToShip),
            Status::ReadyToShip | Status::Processed => Some(Status::Shipped),
            Status::Shipped | Status::ToConfirmReceive => Some(Status::Completed),
            Status::InCancel => Some(Status::Cancelled),
            Status::Completed | Status::Cancelled => None,
        }
    }
}

/// One item of a marketplace order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    /// Item id.
    pub item_id: i64,
    /// Name.
    pub name: String,
    /// SKU.
    pub sku: String,
    /// Units.
    pub qty: u32,
    /// Unit price, whole rupiah.
    pub price: i64,
}

/// A chat message on an order.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// The message's id: increasing across the shop.
    pub id: u64,
    /// `buyer` or `seller`.
    pub from: &'static str,
    /// What was said.
    pub text: String,
    /// Unix seconds.
    pub at: i64,
}

/// A marketplace order.
#[derive(Debug, Clone, Serialize)]
pub struct MarketOrder {
    /// Order number: YYMMDD and eight upper-case letters or digits.
    pub order_sn: String,
    /// Buyer's username.
    pub buyer_username: String,
    /// Buyer's id.
    pub buyer_user_id: i64,
    /// What was bought.
    pub items: Vec<Item>,
    /// Current status.
    pub status: Status,
    /// Unix seconds.
    pub create_time: i64,
    /// Unix seconds of the last status change.
    pub update_time: i64,
    /// Unix seconds of payment.
    pub pay_time: Option<i64>,
    /// The chat with the buyer.
    pub messages: Vec<Message>,
}

impl MarketOrder {
    /// Total in whole rupiah.
    pub fn total(&self) -> i64 {
        self.items.iter().map(|i| i.price * i64::from(i.qty)).sum()
    }
}

/// A push sent (or tried) to the configured URL.
#[derive(Debug, Clone, Serialize)]
pub struct Push {
    /// Where it went.
    pub url: String,
    /// The exact body sent.
    pub body: String,
    /// The `Authorization` header sent.
    pub authorization: String,
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

struct MarketData {
    orders: Vec<MarketOrder>,
    pushes: Vec<Push>,
    seller_sessions: Vec<String>,
    rng: StdRng,
    push_url: Option<String>,
    /// The access and refresh tokens in force (Shopee's expire after 4 hours).
    tokens: (String, String),
    /// The last chat message's id.
    last_message: u64,
}

const GOODS: &[(&str, &str, i64)] = &[
    ("Netflix Premium 1 Month Voucher", "NFX-1M", 186_000),
    ("Spotify Premium 3 Months Code", "SPT-3M", 159_000),
    ("Windows 11 Pro Licence Key", "WIN11-PRO", 249_000),
    ("Microsoft Office 2021 Key", "OFF-2021", 299_000),
    ("Canva Pro 1 Year Invite", "CANVA-1Y", 99_000),
    ("Google Play Gift Card 100k", "GPLAY-100", 105_000),
    ("Steam Wallet 120k", "STEAM-120", 125_000),
    ("Online Course: Excel Basics (link)", "COURSE-XL", 49_000),
];

const BUYERS: &[&str] = &[
    "budi.santoso",
    "siti_rahma",
    "andi88",
    "dewi.lestari",
    "rizky_p",
    "nurul.h",
    "agus.w",
    "putri_ayu",
];

/// The seller centre's state and settings.
pub struct Market {
    config: MarketplaceConfig,
    data: Mutex<MarketData>,
    base_url: Mutex<String>,
    http: reqwest::Client,
}

/// `hex(HMAC-SHA256(key, message))`, lower case: how the Open Platform signs.
pub fn sign(key: &str, message: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(message.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Market {
    /// A seller centre seeded with `config.orders` orders.
    pub fn new(config: &MarketplaceConfig, seed: u64) -> Self {
        let mut data = MarketData {
            orders: Vec::new(),
            pushes: Vec::new(),
            seller_sessions: Vec::new(),
            rng: StdRng::seed_from_u64(seed ^ 0x5b09),
            push_url: config.push_url.clone(),
            tokens: (config.access_token.clone(), config.refresh_token.clone()),
            last_message: 0,
        };
        let start = now() - 6 * 3600;
        for i in 0..config.orders {
            let status = [
                Status::Unpaid,
                Status::ReadyToShip,
                Status::ReadyToShip,
                Status::Shipped,
                Status::Completed,
                Status::Cancelled,
            ][i % 6];
            let created = start + i as i64 * 1_200;
            let order = new_order(&mut data.rng, created, None, status);
            data.orders.push(order);
        }
        Self {
            config: config.clone(),
            data: Mutex::new(data),
            base_url: Mutex::new("http://127.0.0.1".into()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &MarketplaceConfig {
        &self.config
    }

    pub(crate) fn set_base_url(&self, url: &str) {
        *lock(&self.base_url) = url.to_owned();
    }

    /// Every order, oldest first.
    pub fn orders(&self) -> Vec<MarketOrder> {
        lock(&self.data).orders.clone()
    }

    /// Pushes sent so far.
    pub fn pushes(&self) -> Vec<Push> {
        lock(&self.data).pushes.clone()
    }

    /// Sends status pushes here from now on.
    pub fn set_push_url(&self, url: Option<String>) {
        lock(&self.data).push_url = url;
    }

    /// Creates an unpaid order; returns its number.
    pub fn create_order(self: &Arc<Self>, buyer: Option<&str>, items: Option<Vec<Item>>) -> String {
        let sn = {
            let mut data = lock(&self.data);
            let mut order = new_order(&mut data.rng, now(), buyer, Status::Unpaid);
            if let Some(items) = items.filter(|i| !i.is_empty()) {
                order.items = items;
            }
            let sn = order.order_sn.clone();
            data.orders.push(order);
            sn
        };
        self.push(&sn, Status::Unpaid);
        sn
    }

    /// Moves an order to `status` and pushes the change. `None` when there is no such order.
    pub fn set_status(self: &Arc<Self>, sn: &str, status: Status) -> Option<()> {
        {
            let mut data = lock(&self.data);
            let order = data.orders.iter_mut().find(|o| o.order_sn == sn)?;
            if order.status == status {
                return Some(());
            }
            order.status = status;
            order.update_time = now();
            if status == Status::ReadyToShip && order.pay_time.is_none() {
                order.pay_time = Some(order.update_time);
            }
        }
        self.push(sn, status);
        Some(())
    }

    /// Moves every open order one step along the happy path; returns how many moved.
    pub fn advance_all(self: &Arc<Self>) -> usize {
        let moves: Vec<(String, Status)> = lock(&self.data)
            .orders
            .iter()
            .filter_map(|o| o.status.next().map(|s| (o.order_sn.clone(), s)))
            .collect();
        for (sn, status) in &moves {
            self.set_status(sn, *status);
        }
        moves.len()
    }

    /// The access token in force.
    pub fn access_token(&self) -> String {
        lock(&self.data).tokens.0.clone()
    }

    /// Trades the refresh token in force for new tokens (both replaced, as Shopee does);
    /// `None` when it is not the one in force.
    pub fn refresh_tokens(&self, refresh_token: &str) -> Option<(String, String)> {
        use rand::RngCore;
        let mut data = lock(&self.data);
        if data.tokens.1 != refresh_token {
            return None;
        }
        let mut fresh = || format!("{:016x}{:016x}", data.rng.next_u64(), data.rng.next_u64());
        let tokens = (fresh(), fresh());
        data.tokens = tokens.clone();
        Some(tokens)
    }

    /// Adds a buyer's message to an order's chat and pushes a chat notice (code 10, as
    /// Shopee's webchat push); returns the message's id.
    pub fn buyer_says(self: &Arc<Self>, sn: &str, text: &str) -> Option<u64> {
        let id = {
            let mut data = lock(&self.data);
            data.last_message += 1;
            let id = data.last_message;
            let order = data.orders.iter_mut().find(|o| o.order_sn == sn)?;
            order.messages.push(Message {
                id,
                from: "buyer",
                text: text.to_owned(),
                at: now(),
            });
            id
        };
        self.send_push(serde_json::json!({
            "data": {"type": "message", "message_id": id.to_string(), "order_sn": sn},
            "shop_id": self.config.shop_id,
            "code": 10,
            "timestamp": now(),
        }));
        Some(id)
    }

    /// The buyers' messages after `since` (an id), oldest first, at most `limit`: with each
    /// one's order and buyer.
    pub fn buyer_messages(&self, since: u64, limit: usize) -> Vec<(Message, String, i64, String)> {
        let data = lock(&self.data);
        let mut out: Vec<(Message, String, i64, String)> = data
            .orders
            .iter()
            .flat_map(|o| {
                o.messages
                    .iter()
                    .filter(|m| m.from == "buyer" && m.id > since)
                    .map(|m| {
                        (
                            m.clone(),
                            o.order_sn.clone(),
                            o.buyer_user_id,
                            o.buyer_username.clone(),
                        )
                    })
            })
            .collect();
        out.sort_by_key(|(m, ..)| m.id);
        out.truncate(limit);
        out
    }

    /// The seller writes to a buyer through the chat API: the message lands in the chat of
    /// the buyer's latest order. Returns that order's number and the message's id.
    pub fn seller_writes(&self, buyer_user_id: i64, text: &str) -> Option<(String, String)> {
        let mut data = lock(&self.data);
        data.last_message += 1;
        let id = data.last_message;
        let order = data
            .orders
            .iter_mut()
            .filter(|o| o.buyer_user_id == buyer_user_id)
            .max_by_key(|o| o.create_time)?;
        order.messages.push(Message {
            id,
            from: "seller",
            text: text.to_owned(),
            at: now(),
        });
        let id = format!("{}{:04}", order.order_sn, order.messages.len());
        Some((order.order_sn.clone(), id))
    }

    fn seller_says(&self, sn: &str, text: &str) -> Option<()> {
        let mut data = lock(&self.data);
        data.last_message += 1;
        let id = data.last_message;
        let order = data.orders.iter_mut().find(|o| o.order_sn == sn)?;
        order.messages.push(Message {
            id,
            from: "seller",
            text: text.to_owned(),
            at: now(),
        });
        Some(())
    }

    /// Sends the "order status update" push (code 3) for `sn`.
    fn push(self: &Arc<Self>, sn: &str, status: Status) {
        self.send_push(serde_json::json!({
            "data": {"items": [], "ordersn": sn, "status": status.as_str(), "completed_scenario": "", "update_time": now()},
            "shop_id": self.config.shop_id,
            "code": 3,
            "timestamp": now(),
        }));
    }

    /// Sends a push to the configured URL, signed as `url|body`.
    fn send_push(self: &Arc<Self>, body: serde_json::Value) {
        let Some(url) = lock(&self.data).push_url.clone() else {
            return;
        };
        let body = body.to_string();
        let authorization = sign(&self.config.partner_key, &format!("{url}|{body}"));
        let market = self.clone();
        tokio::spawn(async move {
            let result = market
                .http
                .post(&url)
                .header("content-type", "application/json")
                .header("authorization", &authorization)
                .body(body.clone())
                .send()
                .await;
            let (status, error) = match result {
                Ok(r) => (Some(r.status().as_u16()), None),
                Err(e) => (None, Some(e.to_string())),
            };
            lock(&market.data).pushes.push(Push {
                url,
                body,
                authorization,
                status,
                error,
            });
        });
    }

    fn seller_session(&self) -> String {
        let mut data = lock(&self.data);
        let token: String = (0..32)
            .map(|_| format!("{:x}", data.rng.random_range(0..16u8)))
            .collect();
        data.seller_sessions.push(token.clone());
        token
    }

    fn is_seller(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| lock(&self.data).seller_sessions.iter().any(|s| s == t))
    }
}

fn new_order(rng: &mut StdRng, created: i64, buyer: Option<&str>, status: Status) -> MarketOrder {
    const SN: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXY0123456789";
    let date = time::OffsetDateTime::from_unix_timestamp(created)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let suffix: String = (0..8)
        .map(|_| SN[rng.random_range(0..SN.len())] as char)
        .collect();
    let order_sn = format!(
        "{:02}{:02}{:02}{suffix}",
        date.year() % 100,
        u8::from(date.month()),
        date.day()
    );
    let (name, sku, price) = GOODS[rng.random_range(0..GOODS.len())];
    let buyer = buyer.map_or_else(
        || BUYERS[rng.random_range(0..BUYERS.len())].to_owned(),
        str::to_owned,
    );
    MarketOrder {
        order_sn,
        buyer_user_id: 1_170_000_000 + rng.random_range(0..9_999_999),
        buyer_username: buyer,
        items: vec![Item {
            item_id: 22_000_000_000 + price,
            name: name.into(),
            sku: sku.into(),
            qty: 1,
            price,
        }],
        status,
        create_time: created,
        update_time: created,
        pay_time: (status != Status::Unpaid && status != Status::Cancelled).then_some(created + 60),
        messages: Vec::new(),
    }
}

/// The seller centre's routes: pages and the Open Platform API.
pub fn router() -> Router<Arc<Shop>> {
    seller::router().merge(open_api::router())
}

/// Starts moving orders on by themselves, when configured; stops when the market is dropped.
pub fn spawn_auto_advance(market: &Arc<Market>) {
    let Some(every) = market.config.auto_advance else {
        return;
    };
    let market = Arc::downgrade(market);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(market) = market.upgrade() else {
                return;
            };
            market.advance_all();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_official_example_shape() {
        let s = sign(
            "key",
            "2001887/api/v2/shop/get_shop_info165571443159777174636562737266615546704c6d14701711",
        );
        assert_eq!(s.len(), 64);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(Status::parse("READY_TO_SHIP"), Some(Status::ReadyToShip));
        assert_eq!(Status::ReadyToShip.label(true), "Perlu Dikirim");
        assert_eq!(Status::Unpaid.next(), Some(Status::ReadyToShip));
    }

    #[test]
    fn order_numbers_have_the_marketplace_shape() {
        let mut rng = StdRng::seed_from_u64(1);
        let o = new_order(&mut rng, 1_795_300_000, None, Status::Unpaid);
        assert_eq!(o.order_sn.len(), 14);
        assert!(o.order_sn.starts_with("261121"));
        assert!(
            o.order_sn
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
    }
}
