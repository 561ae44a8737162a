//! Test helpers: a shop on a free port and a small HTTP client that carries its cookie.

use cartwright_demo_shop::{RunningShop, ShopConfig};
use reqwest::StatusCode;
use serde_json::Value;

pub async fn shop(adjust: impl FnOnce(&mut ShopConfig)) -> RunningShop {
    let mut config = ShopConfig {
        customers: 8,
        pincode_delay: std::time::Duration::from_millis(150),
        ..ShopConfig::default()
    };
    adjust(&mut config);
    cartwright_demo_shop::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

/// A shopper: one `f.session` value, kept up to date from `Set-Cookie` like a browser would.
pub struct Shopper {
    pub base: String,
    pub cookie: Option<String>,
    http: reqwest::Client,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

impl Shopper {
    pub fn new(shop: &RunningShop, cookie: Option<String>) -> Self {
        Self {
            base: shop.url(),
            cookie,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    pub async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("f.session={c}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        for v in headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            if let Some(rest) = v.strip_prefix("f.session=") {
                self.cookie = Some(rest.split(';').next().unwrap().to_owned());
            }
        }
        Answer {
            status,
            headers,
            text: r.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&mut self, path: &str, body: Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
}

/// The control API.
pub async fn control(
    shop: &RunningShop,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", shop.url()));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}
