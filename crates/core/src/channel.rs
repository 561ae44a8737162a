//! Delivery channels: how a delivery's message reaches the buyer (or the seller's own system),
//! and the rules every send follows. A delivery goes out through its outbox: one send per
//! channel, each with its own idempotency key, attempts and answer; a delivery is delivered
//! once one channel confirmed.

use crate::Invalid;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use utoipa::ToSchema;

/// A kind of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// The buyer's delivery page: ready the moment the message is stored. It confirms a
    /// delivery only when no other channel is configured (the seller passes links on).
    Page,
    /// A signed POST to the seller's own system.
    Webhook,
    /// E-mail to the buyer's address, over SMTP.
    Email,
    /// The marketplace's chat with the buyer (or, without a chat API, the browser extension).
    Chat,
}

impl ChannelKind {
    /// Every kind.
    pub const ALL: [ChannelKind; 4] = [
        ChannelKind::Page,
        ChannelKind::Webhook,
        ChannelKind::Email,
        ChannelKind::Chat,
    ];

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Page => "page",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Email => "email",
            ChannelKind::Chat => "chat",
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChannelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ChannelKind::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown channel {s:?}"))
    }
}

/// Where one send of a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SendState {
    /// To be sent (or sent again after a failure).
    Pending,
    /// The channel confirmed.
    Sent,
    /// Failed for good (a refusal, or every attempt used): an operator may re-send.
    Failed,
    /// The channel cannot reach this buyer (no e-mail address, no chat): not tried.
    Skipped,
    /// Waiting for the browser extension to send it through the marketplace's pages.
    Queued,
}

impl SendState {
    /// Every state.
    pub const ALL: [SendState; 5] = [
        SendState::Pending,
        SendState::Sent,
        SendState::Failed,
        SendState::Skipped,
        SendState::Queued,
    ];

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            SendState::Pending => "pending",
            SendState::Sent => "sent",
            SendState::Failed => "failed",
            SendState::Skipped => "skipped",
            SendState::Queued => "queued",
        }
    }
}

impl fmt::Display for SendState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SendState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SendState::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown send state {s:?}"))
    }
}

/// How many times a send is tried before it fails for good.
pub const SEND_ATTEMPTS: u32 = 8;

/// How long to wait after failed attempt `attempt` (1-based): 1 s, 2 s, 4 s … up to 5
/// minutes; `None` once every attempt is used (about 4 minutes in all).
pub fn send_backoff(attempt: u32) -> Option<Duration> {
    (attempt < SEND_ATTEMPTS).then(|| {
        Duration::from_secs(1u64 << attempt.saturating_sub(1).min(16)).min(Duration::from_secs(300))
    })
}

/// A channel to create. Secrets (the webhook's signing key, the SMTP password) are sealed at
/// rest and never shown again.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// `webhook`, `email` or `chat` (the page needs no setting up).
    pub kind: ChannelKind,
    /// A name for people.
    pub name: crate::values::Text,
    /// Webhook: the `https://` (or `http://`) address to POST to. E-mail: the SMTP server,
    /// `smtp://user@host:587` (STARTTLS), `smtps://user@host:465` (TLS) or
    /// `smtp+plain://host:25` (no encryption: a local relay).
    #[serde(default)]
    pub url: Option<String>,
    /// Webhook: the signing key (at least 16 characters). E-mail: the SMTP password.
    #[serde(default)]
    pub secret: Option<String>,
    /// E-mail: the sender's address.
    #[serde(default)]
    pub from: Option<String>,
    /// E-mail: the subject; `{{order.number}}` and `{{product.name}}` are filled in.
    #[serde(default)]
    pub subject: Option<String>,
}

/// A channel's settings once checked (its secret apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChannelTarget {
    /// POST to `url`.
    Webhook {
        /// The receiver.
        url: String,
    },
    /// SMTP through `url`, from `from`.
    Email {
        /// The server (its password apart).
        url: String,
        /// The sender's address.
        from: String,
        /// The subject template.
        subject: String,
    },
    /// The marketplace chat.
    Chat,
}

impl ChannelTarget {
    /// The channel's kind.
    pub fn kind(&self) -> ChannelKind {
        match self {
            ChannelTarget::Webhook { .. } => ChannelKind::Webhook,
            ChannelTarget::Email { .. } => ChannelKind::Email,
            ChannelTarget::Chat => ChannelKind::Chat,
        }
    }
}

/// The subject an e-mail gets when its channel names none.
pub const DEFAULT_SUBJECT: &str = "Your order {{order.number}}: {{product.name}}";

impl NewChannel {
    /// Checks the settings against the kind; returns them with the secret.
    pub fn check(&self) -> Result<(ChannelTarget, Option<String>), Invalid> {
        let none = |field: &str, v: &Option<String>| match text(v) {
            Some(_) => Err(Invalid::new(
                field,
                format!("a {} channel has no {field}", self.kind.as_str()),
            )),
            None => Ok(()),
        };
        match self.kind {
            ChannelKind::Page => Err(Invalid::new(
                "kind",
                "the delivery page is always there: create a webhook, email or chat channel",
            )),
            ChannelKind::Webhook => {
                none("from", &self.from)?;
                none("subject", &self.subject)?;
                let url = text(&self.url)
                    .ok_or_else(|| Invalid::new("url", "a webhook needs the address to POST to"))?;
                let parsed = url::Url::parse(url)
                    .map_err(|e| Invalid::new("url", format!("not an address: {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(Invalid::new(
                        "url",
                        "must be an http:// or https:// address",
                    ));
                }
                let secret = text(&self.secret).ok_or_else(|| {
                    Invalid::new(
                        "secret",
                        "a webhook needs a signing key: its receiver checks every request with it",
                    )
                })?;
                if secret.chars().count() < 16 {
                    return Err(Invalid::new("secret", "must be at least 16 characters"));
                }
                Ok((
                    ChannelTarget::Webhook {
                        url: parsed.to_string(),
                    },
                    Some(secret.to_owned()),
                ))
            }
            ChannelKind::Email => {
                let url = text(&self.url).ok_or_else(|| {
                    Invalid::new("url", "an e-mail channel needs its SMTP server, e.g. smtp://user@mail.example.com:587")
                })?;
                let parsed = url::Url::parse(url)
                    .map_err(|e| Invalid::new("url", format!("not an address: {e}")))?;
                if !matches!(parsed.scheme(), "smtp" | "smtps" | "smtp+plain")
                    || parsed.host_str().is_none_or(str::is_empty)
                {
                    return Err(Invalid::new(
                        "url",
                        "must be smtp://host[:port], smtps://host[:port] or smtp+plain://host[:port]",
                    ));
                }
                if parsed.password().is_some() {
                    return Err(Invalid::new(
                        "url",
                        "put the password in `secret`, not in the address: the address is shown, the secret never",
                    ));
                }
                let from = text(&self.from).ok_or_else(|| {
                    Invalid::new("from", "an e-mail channel needs the sender's address")
                })?;
                if !looks_like_mailbox(from) {
                    return Err(Invalid::new(
                        "from",
                        "not an e-mail address (`keys@shop.example` or `Shop <keys@shop.example>`)",
                    ));
                }
                let subject = text(&self.subject).unwrap_or(DEFAULT_SUBJECT);
                if subject.chars().count() > 200 || subject.contains(['\r', '\n']) {
                    return Err(Invalid::new(
                        "subject",
                        "must be one line of at most 200 characters",
                    ));
                }
                Ok((
                    ChannelTarget::Email {
                        url: parsed.to_string(),
                        from: from.to_owned(),
                        subject: subject.to_owned(),
                    },
                    text(&self.secret).map(str::to_owned),
                ))
            }
            ChannelKind::Chat => {
                for (field, v) in [
                    ("url", &self.url),
                    ("secret", &self.secret),
                    ("from", &self.from),
                    ("subject", &self.subject),
                ] {
                    none(field, v)?;
                }
                Ok((ChannelTarget::Chat, None))
            }
        }
    }
}

fn text(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// An address alone, or a display name with the address in angle brackets.
pub fn looks_like_mailbox(s: &str) -> bool {
    match s.trim().strip_suffix('>').and_then(|r| r.rsplit_once('<')) {
        Some((name, address)) => {
            !name.contains(['<', '>', '\n', '\r']) && looks_like_email(address.trim())
        }
        None => looks_like_email(s.trim()),
    }
}

/// A plain check that `s` is one address (`local@domain.tld`, no spaces or angle brackets):
/// the SMTP server has the last word.
pub fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.len() <= 254
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(kind: ChannelKind) -> NewChannel {
        NewChannel {
            kind,
            name: crate::values::Text::parse("n").unwrap(),
            url: None,
            secret: None,
            from: None,
            subject: None,
        }
    }

    #[test]
    fn each_kind_takes_only_its_settings() {
        let mut w = new(ChannelKind::Webhook);
        assert_eq!(w.check().unwrap_err().field, "url");
        w.url = Some("ftp://x.test/".into());
        assert_eq!(w.check().unwrap_err().field, "url");
        w.url = Some("https://seller.test/hook".into());
        w.secret = Some("short".into());
        assert_eq!(w.check().unwrap_err().field, "secret");
        w.secret = Some("0123456789abcdef".into());
        let (target, secret) = w.check().unwrap();
        assert_eq!(target.kind(), ChannelKind::Webhook);
        assert_eq!(secret.as_deref(), Some("0123456789abcdef"));

        let mut e = new(ChannelKind::Email);
        e.url = Some("smtp://u:pw@mail.test:587".into());
        e.from = Some("shop@seller.test".into());
        assert!(e.check().unwrap_err().message.contains("secret"));
        e.url = Some("smtp://u@mail.test:587".into());
        let (target, _) = e.check().unwrap();
        assert!(
            matches!(target, ChannelTarget::Email { subject, .. } if subject == DEFAULT_SUBJECT)
        );
        e.from = Some("not an address".into());
        assert_eq!(e.check().unwrap_err().field, "from");

        let mut c = new(ChannelKind::Chat);
        assert_eq!(c.check().unwrap().0, ChannelTarget::Chat);
        c.url = Some("https://x.test".into());
        assert_eq!(c.check().unwrap_err().field, "url");
        assert_eq!(new(ChannelKind::Page).check().unwrap_err().field, "kind");
    }

    #[test]
    fn sends_back_off_and_then_stop() {
        assert_eq!(send_backoff(1), Some(Duration::from_secs(1)));
        assert_eq!(send_backoff(3), Some(Duration::from_secs(4)));
        assert_eq!(send_backoff(SEND_ATTEMPTS), None);
        let total: Duration = (1..SEND_ATTEMPTS).filter_map(send_backoff).sum();
        assert!(total < Duration::from_secs(600), "{total:?}");
        assert!(
            looks_like_email("a.b@c.de")
                && !looks_like_email("a@b")
                && !looks_like_email("a b@c.de")
        );
    }
}
