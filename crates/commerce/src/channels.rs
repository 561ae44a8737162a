//! Sending one row of the outbox through its channel: a signed webhook, e-mail over SMTP, or
//! the marketplace's seller chat. Each send carries its idempotency key (a header, the
//! e-mail's Message-ID) so a receiver can tell a repeat; a refusal fails it for good, anything
//! else is tried again with backoff (`cartwright_core::channel::send_backoff`).

use crate::Commerce;
use crate::shopee;
use cartwright_core::channel::ChannelTarget;
use cartwright_core::ids::SendId;
use cartwright_jobs::{BoxFuture, Handler, Outcome};
use cartwright_store::{Job, MarketOrder, SendWork, StoreError};
use hmac::{KeyInit, Mac};
use std::sync::Arc;
use std::time::Duration;

/// The header carrying a webhook's signature: `sha256=` and the hex HMAC-SHA256, under the
/// channel's key, of the timestamp header's value, a dot, and the body.
pub const SIGNATURE_HEADER: &str = "x-cartwright-signature";
/// The header carrying the unix time a webhook was signed at.
pub const TIMESTAMP_HEADER: &str = "x-cartwright-timestamp";
/// The header carrying a send's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Runs `delivery_send` jobs.
pub struct SendHandler(pub Arc<Commerce>);

/// Why a send failed.
#[derive(Debug)]
pub(crate) struct SendError {
    error: String,
    answer: Option<String>,
    permanent: bool,
}

impl SendError {
    fn transient(error: impl Into<String>) -> Self {
        SendError {
            error: error.into(),
            answer: None,
            permanent: false,
        }
    }
    fn permanent(error: impl Into<String>) -> Self {
        SendError {
            error: error.into(),
            answer: None,
            permanent: true,
        }
    }
}

impl From<StoreError> for SendError {
    fn from(e: StoreError) -> Self {
        SendError::transient(format!("the database failed: {e}"))
    }
}

impl Handler for SendHandler {
    fn run(&self, job: Job) -> BoxFuture<Outcome> {
        let commerce = self.0.clone();
        Box::pin(async move {
            let Some(id) = job.payload.get("send").and_then(serde_json::Value::as_i64) else {
                return Outcome::Fail {
                    error: format!("the job's payload names no send: {}", job.payload),
                };
            };
            match commerce.send_one(SendId(id)).await {
                Ok(outcome) => outcome,
                Err(e) => Outcome::Retry {
                    error: format!("the database failed: {e}"),
                    after: Duration::from_secs(1),
                },
            }
        })
    }
}

impl Commerce {
    /// Makes one attempt at a send and records it.
    pub async fn send_one(&self, id: SendId) -> Result<Outcome, StoreError> {
        let Some(work) = self.store.send_work(id).await? else {
            return Ok(Outcome::Done);
        };
        let result = match &work.target {
            ChannelTarget::Webhook { url } => self.webhook(&work, url).await,
            ChannelTarget::Email { url, from, subject } => {
                self.email(&work, url, from, subject).await
            }
            ChannelTarget::Chat => self.chat(&work).await,
        };
        let channel = work.target.kind();
        Ok(match result {
            Ok(answer) => {
                self.store.send_succeeded(id, answer.as_deref()).await?;
                tracing::info!(send = %id, delivery = %work.send.delivery_id, %channel, "sent");
                Outcome::Done
            }
            Err(e) => {
                let retry = self
                    .store
                    .send_failed(id, &e.error, e.answer.as_deref(), e.permanent)
                    .await?;
                tracing::warn!(send = %id, delivery = %work.send.delivery_id, %channel, error = %e.error, "a send failed");
                match retry {
                    Some(after) => Outcome::Retry {
                        error: e.error,
                        after,
                    },
                    None => Outcome::Fail { error: e.error },
                }
            }
        })
    }

    async fn webhook(&self, work: &SendWork, url: &str) -> Result<Option<String>, SendError> {
        let secret = work
            .secret
            .as_deref()
            .ok_or_else(|| SendError::permanent("the webhook has no signing key"))?;
        let order = self.store.market_order(work.order_id).await?;
        let delivery = self.store.delivery(work.send.delivery_id).await?;
        let product = match delivery.product_id {
            Some(p) => Some(self.store.digital_product_definition(p).await?),
            None => None,
        };
        let items = self.store.delivery_items(delivery.id).await?;
        let link = self.delivery_link(&self.store.delivery_token(delivery.id).await?);
        let body = serde_json::json!({
            "event": "delivery",
            "idempotency_key": work.send.idempotency_key,
            "delivery": { "id": delivery.id, "line": delivery.line_no, "units": delivery.units },
            "order": {
                "marketplace": order.marketplace,
                "shop_id": order.shop_id,
                "number": order.external_id,
                "buyer": order.buyer,
            },
            "product": product.as_ref().map(|p| serde_json::json!({ "sku": p.sku, "name": p.name })),
            "items": items,
            "message": work.message,
            "link": link,
        })
        .to_string();
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(
                SIGNATURE_HEADER,
                format!("sha256={}", webhook_signature(secret, &timestamp, &body)),
            )
            .header(IDEMPOTENCY_HEADER, &work.send.idempotency_key)
            .timeout(Duration::from_secs(30))
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::transient(format!("the webhook could not be reached: {e}")))?;
        let status = response.status();
        let answer = response.text().await.unwrap_or_default();
        let answer = format!("{} {}", status.as_u16(), answer.trim());
        if status.is_success() {
            return Ok(Some(answer));
        }
        let permanent = status.is_client_error() && !matches!(status.as_u16(), 408 | 425 | 429);
        Err(SendError {
            error: format!("the webhook answered {status}"),
            answer: Some(answer),
            permanent,
        })
    }

    async fn email(
        &self,
        work: &SendWork,
        url: &str,
        from: &str,
        subject: &str,
    ) -> Result<Option<String>, SendError> {
        use lettre::AsyncTransport as _;
        let order = self.store.market_order(work.order_id).await?;
        let to = order
            .buyer
            .email
            .as_deref()
            .ok_or_else(|| SendError::permanent("the buyer has no e-mail address"))?;
        let delivery = self.store.delivery(work.send.delivery_id).await?;
        let product = match delivery.product_id {
            Some(p) => self.store.digital_product_definition(p).await?.name,
            None => String::new(),
        };
        let subject = subject
            .replace("{{order.number}}", &order.external_id)
            .replace("{{product.name}}", &product);
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            SendError::permanent(format!("{what} is not a usable address: {e}"))
        };
        let message = lettre::Message::builder()
            .from(from.parse().map_err(|e| bad("the sender", &e))?)
            .to(to.parse().map_err(|e| bad("the buyer's e-mail", &e))?)
            .subject(subject)
            .message_id(Some(format!("<{}@cartwright>", work.send.idempotency_key)))
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(work.message.clone())
            .map_err(|e| SendError::permanent(format!("the e-mail could not be built: {e}")))?;
        let transport = smtp_transport(url, work.secret.as_deref())?;
        match transport.send(message).await {
            Ok(response) => Ok(Some(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            ))),
            Err(e) => Err(SendError {
                error: format!("the mail server refused or failed: {e}"),
                answer: None,
                permanent: e.is_permanent(),
            }),
        }
    }

    async fn chat(&self, work: &SendWork) -> Result<Option<String>, SendError> {
        let order: MarketOrder = self.store.market_order(work.order_id).await?;
        let (Some(connection), Some(buyer)) = (order.connection_id, order.buyer.id.as_deref())
        else {
            return Err(SendError::permanent(
                "the order has no marketplace connection or buyer id to write to",
            ));
        };
        let client = match self.client(connection).await {
            Ok(client) => client,
            Err(e) => return Err(SendError::transient(e.to_string())),
        };
        match client.send_message(buyer, &work.message).await {
            Ok(id) => Ok(Some(format!("message {id}"))),
            Err(shopee::ShopeeError::Refused { error, message }) => {
                let transient = ["busy", "server", "timeout", "inner"]
                    .iter()
                    .any(|w| error.contains(w));
                Err(SendError {
                    error: format!("the marketplace refused: {error}: {message}"),
                    answer: Some(format!("{error}: {message}")),
                    permanent: !transient,
                })
            }
            Err(e) => Err(SendError::transient(e.to_string())),
        }
    }
}

/// Hex HMAC-SHA256 of `timestamp.body` under `secret`: what a webhook receiver recomputes.
pub fn webhook_signature(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

type Smtp = lettre::AsyncSmtpTransport<lettre::Tokio1Executor>;

/// The transport a channel's `smtp://`, `smtps://` or `smtp+plain://` address describes.
fn smtp_transport(url: &str, password: Option<&str>) -> Result<Smtp, SendError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| SendError::permanent(format!("the SMTP address does not read: {e}")))?;
    let host = parsed.host_str().unwrap_or_default();
    let tls = |e: lettre::transport::smtp::Error| {
        SendError::permanent(format!("TLS could not be set up for {host}: {e}"))
    };
    let builder = match parsed.scheme() {
        "smtps" => Smtp::relay(host)
            .map_err(tls)?
            .port(parsed.port().unwrap_or(465)),
        "smtp" => Smtp::starttls_relay(host)
            .map_err(tls)?
            .port(parsed.port().unwrap_or(587)),
        "smtp+plain" => Smtp::builder_dangerous(host).port(parsed.port().unwrap_or(25)),
        other => {
            return Err(SendError::permanent(format!(
                "unknown SMTP scheme {other:?}"
            )));
        }
    };
    let builder = builder.timeout(Some(Duration::from_secs(30)));
    let builder = match (parsed.username(), password) {
        ("", _) | (_, None) => builder,
        (user, Some(password)) => {
            builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
                user.to_owned(),
                password.to_owned(),
            ))
        }
    };
    Ok(builder.build())
}
