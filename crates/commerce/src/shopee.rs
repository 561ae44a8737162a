//! Shopee's Open Platform (v2), seller side, as far as orders go: requests signed with the
//! partner key, the order list by update time, order details mapped to an [`IncomingOrder`],
//! and the check of a push's signature. The demo marketplace speaks the same API.

use cartwright_core::market::{Buyer, IncomingLine, IncomingOrder, shopee_status};
use cartwright_store::{Connection, ConnectionKeys};
use hmac::{KeyInit, Mac};
use serde_json::Value;
use std::time::Duration;

/// Why a call to the marketplace failed.
#[derive(Debug, thiserror::Error)]
pub enum ShopeeError {
    /// It could not be reached, or answered with an error status.
    #[error("the marketplace could not be reached: {0}")]
    Http(#[from] reqwest::Error),
    /// It answered with an error.
    #[error("the marketplace refused: {error}: {message}")]
    Refused {
        /// Its error code.
        error: String,
        /// Its message.
        message: String,
    },
    /// Its answer did not have the expected shape.
    #[error("the marketplace's answer did not read: {0}")]
    Shape(String),
}

/// Hex HMAC-SHA256 of `message` under `key`.
pub fn sign(key: &str, message: &str) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(message.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a push's `Authorization` is the hex HMAC-SHA256 of `url|body` under the partner
/// key, compared in constant time.
pub fn push_is_signed(key: &str, url: &str, body: &[u8], authorization: &str) -> bool {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    mac.update(b"|");
    mac.update(body);
    let Some(given) = decode_hex(authorization.trim()) else {
        return false;
    };
    mac.verify_slice(&given).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

async fn answer(request: reqwest::RequestBuilder) -> Result<Value, ShopeeError> {
    let answer: Value = request
        .timeout(Duration::from_secs(20))
        .send()
        .await?
        .json()
        .await?;
    match answer["error"].as_str() {
        None | Some("") => Ok(answer),
        Some(error) => Err(ShopeeError::Refused {
            error: error.to_owned(),
            message: answer["message"].as_str().unwrap_or_default().to_owned(),
        }),
    }
}

/// A signed client of one connection.
pub struct Client {
    http: reqwest::Client,
    connection: Connection,
    keys: ConnectionKeys,
}

/// A buyer's chat message as the marketplace gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingChat {
    /// The marketplace's id for it (increasing).
    pub message_id: String,
    /// The buyer's id.
    pub buyer_id: String,
    /// The buyer's user name.
    pub buyer_name: Option<String>,
    /// The order the chat is about, when it is about one.
    pub order_sn: Option<String>,
    /// What the buyer wrote.
    pub text: String,
}

/// One page of the order list.
pub struct OrderPage {
    /// Order numbers on it.
    pub orders: Vec<String>,
    /// Where the next page starts, when there is one.
    pub next: Option<String>,
}

impl Client {
    /// A client for `connection`.
    pub fn new(http: reqwest::Client, connection: Connection, keys: ConnectionKeys) -> Self {
        Client {
            http,
            connection,
            keys,
        }
    }

    /// The common parameters of a signed call to `path`: partner, time, token, shop, sign.
    fn signed(&self, path: &str) -> Vec<(&'static str, String)> {
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let c = &self.connection;
        let base = format!(
            "{}{path}{timestamp}{}{}",
            c.partner_id, self.keys.access_token, c.shop_id
        );
        vec![
            ("partner_id", c.partner_id.clone()),
            ("timestamp", timestamp.to_string()),
            ("access_token", self.keys.access_token.clone()),
            ("shop_id", c.shop_id.clone()),
            ("sign", sign(&self.keys.partner_key, &base)),
        ]
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.connection.base_url.trim_end_matches('/'))
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ShopeeError> {
        let mut params = self.signed(path);
        params.extend(query.iter().cloned());
        let request = self.http.get(self.url(path)).query(&params);
        answer(request).await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, ShopeeError> {
        let request = self
            .http
            .post(self.url(path))
            .query(&self.signed(path))
            .json(body);
        answer(request).await
    }

    /// Trades the refresh token for new tokens: (access token, refresh token, seconds the
    /// access token lasts). Signed at partner level (`partner_id + path + timestamp`).
    pub async fn refresh(&self) -> Result<(String, String, i64), ShopeeError> {
        const PATH: &str = "/api/v2/auth/access_token/get";
        let refresh_token = self
            .keys
            .refresh_token
            .clone()
            .ok_or_else(|| ShopeeError::Shape("the connection has no refresh token".into()))?;
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let c = &self.connection;
        let number = |what: &str, v: &str| {
            v.parse::<i64>()
                .map_err(|_| ShopeeError::Shape(format!("the {what} {v:?} is not a number")))
        };
        let body = serde_json::json!({
            "refresh_token": refresh_token,
            "partner_id": number("partner id", &c.partner_id)?,
            "shop_id": number("shop id", &c.shop_id)?,
        });
        let request = self
            .http
            .post(self.url(PATH))
            .query(&[
                ("partner_id", c.partner_id.clone()),
                ("timestamp", timestamp.to_string()),
                (
                    "sign",
                    sign(
                        &self.keys.partner_key,
                        &format!("{}{PATH}{timestamp}", c.partner_id),
                    ),
                ),
            ])
            .json(&body);
        let answer = answer(request).await?;
        let text = |k: &str| {
            answer[k]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| ShopeeError::Shape(format!("the token answer has no {k}")))
        };
        Ok((
            text("access_token")?,
            text("refresh_token")?,
            answer["expire_in"].as_i64().unwrap_or(14_400),
        ))
    }

    /// Sends a text to a buyer through the seller chat; returns the marketplace's message id.
    pub async fn send_message(&self, buyer_id: &str, text: &str) -> Result<String, ShopeeError> {
        let to_id: i64 = buyer_id
            .parse()
            .map_err(|_| ShopeeError::Shape(format!("buyer id {buyer_id:?} is not a number")))?;
        let answer = self
            .post(
                "/api/v2/sellerchat/send_message",
                &serde_json::json!({
                    "to_id": to_id,
                    "message_type": "text",
                    "content": { "text": text },
                }),
            )
            .await?;
        let id = &answer["response"]["message_id"];
        Ok(id
            .as_str()
            .map(str::to_owned)
            .or_else(|| id.as_i64().map(|n| n.to_string()))
            .unwrap_or_default())
    }

    /// Buyers' chat messages after `since` (a message id), oldest first, a page at a time;
    /// with whether more follow.
    pub async fn chat_messages(
        &self,
        since: Option<&str>,
    ) -> Result<(Vec<IncomingChat>, bool), ShopeeError> {
        let answer = self
            .get(
                "/api/v2/sellerchat/get_message_list",
                &[
                    ("since_id", since.unwrap_or_default().to_owned()),
                    ("page_size", "100".into()),
                ],
            )
            .await?;
        let r = &answer["response"];
        let text = |v: &Value| {
            v.as_str()
                .map(str::to_owned)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
        };
        let messages = r["messages"]
            .as_array()
            .ok_or_else(|| ShopeeError::Shape("no messages".into()))?
            .iter()
            .filter_map(|m| {
                Some(IncomingChat {
                    message_id: text(&m["message_id"])?,
                    buyer_id: text(&m["from_id"])?,
                    buyer_name: text(&m["from_user_name"]),
                    order_sn: text(&m["order_sn"]).filter(|s| !s.is_empty()),
                    text: m["content"]["text"].as_str()?.to_owned(),
                })
            })
            .collect();
        Ok((messages, r["more"].as_bool().unwrap_or(false)))
    }

    /// Orders changed between `from` and `to` (unix seconds; at most 15 days apart), a page
    /// at a time.
    pub async fn changed_orders(
        &self,
        from: i64,
        to: i64,
        cursor: Option<&str>,
    ) -> Result<OrderPage, ShopeeError> {
        let answer = self
            .get(
                "/api/v2/order/get_order_list",
                &[
                    ("time_range_field", "update_time".into()),
                    ("time_from", from.to_string()),
                    ("time_to", to.to_string()),
                    ("page_size", "100".into()),
                    ("cursor", cursor.unwrap_or_default().to_owned()),
                ],
            )
            .await?;
        let r = &answer["response"];
        let orders = r["order_list"]
            .as_array()
            .ok_or_else(|| ShopeeError::Shape("no order_list".into()))?
            .iter()
            .filter_map(|o| o["order_sn"].as_str().map(str::to_owned))
            .collect();
        let next = r["more"]
            .as_bool()
            .unwrap_or(false)
            .then(|| r["next_cursor"].as_str().unwrap_or_default().to_owned())
            .filter(|c| !c.is_empty());
        Ok(OrderPage { orders, next })
    }

    /// The details of up to 50 orders, as Cartwright takes them in.
    pub async fn orders(&self, numbers: &[String]) -> Result<Vec<IncomingOrder>, ShopeeError> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let answer = self
            .get(
                "/api/v2/order/get_order_detail",
                &[
                    ("order_sn_list", numbers.join(",")),
                    (
                        "response_optional_fields",
                        "buyer_username,buyer_user_id,pay_time,total_amount,item_list".into(),
                    ),
                ],
            )
            .await?;
        answer["response"]["order_list"]
            .as_array()
            .ok_or_else(|| ShopeeError::Shape("no order_list".into()))?
            .iter()
            .map(|o| self.incoming(o))
            .collect()
    }

    fn incoming(&self, o: &Value) -> Result<IncomingOrder, ShopeeError> {
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let sn = o["order_sn"]
            .as_str()
            .ok_or_else(|| ShopeeError::Shape("an order without order_sn".into()))?;
        let cod = o["cod"].as_bool().unwrap_or(false);
        let status = o["order_status"].as_str().unwrap_or_default();
        let status = shopee_status(status, cod)
            .ok_or_else(|| ShopeeError::Shape(format!("unknown order status {status:?}")))?;
        let updated = o["update_time"]
            .as_i64()
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .ok_or_else(|| ShopeeError::Shape(format!("order {sn} without update_time")))?;
        let minor = |v: &Value| v.as_f64().map(|x| (x * 100.0).round() as i64);
        let lines = o["item_list"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|i| IncomingLine {
                        item_id: text(&i["item_id"]).unwrap_or_default(),
                        model_id: text(&i["model_id"])
                            .filter(|m| m != "0")
                            .unwrap_or_default(),
                        seller_sku: i["item_sku"].as_str().unwrap_or_default().to_owned(),
                        name: i["item_name"].as_str().unwrap_or("item").to_owned(),
                        quantity: i["model_quantity_purchased"]
                            .as_u64()
                            .and_then(|q| u32::try_from(q).ok())
                            .unwrap_or(1),
                        unit_price_minor: minor(&i["model_discounted_price"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(IncomingOrder {
            marketplace: self.connection.marketplace.clone(),
            shop_id: self.connection.shop_id.clone(),
            external_id: sn.to_owned(),
            buyer: Buyer {
                name: o["buyer_username"].as_str().map(str::to_owned),
                id: text(&o["buyer_user_id"]),
                email: None,
            },
            lines,
            total_minor: minor(&o["total_amount"]),
            currency: o["currency"].as_str().map(str::to_owned),
            payment_method: Some(if cod { "cod" } else { "online" }.to_owned()),
            status,
            updated_at: updated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_are_checked_against_url_and_body() {
        let key = "partner-key";
        let url = "https://cw.example/api/v1/market/push/1";
        let body = br#"{"code":3}"#;
        let good = sign(
            key,
            &format!("{url}|{}", std::str::from_utf8(body).unwrap_or_default()),
        );
        assert!(push_is_signed(key, url, body, &good));
        assert!(push_is_signed(key, url, body, &good.to_uppercase()));
        assert!(!push_is_signed(key, url, b"{\"code\":4}", &good));
        assert!(!push_is_signed("other", url, body, &good));
        assert!(!push_is_signed(key, url, body, "zz"));
        assert!(!push_is_signed(key, url, body, ""));
    }
}
