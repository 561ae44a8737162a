//! Delivery channels: their checked settings in the clear, their secret (a webhook's signing
//! key, an SMTP password) sealed and never read back out through a listing.

use crate::db::{Ts, read, write};
use crate::{Store, StoreError};
use cartwright_core::channel::{ChannelTarget, NewChannel};
use cartwright_core::ids::ChannelId;
use serde::Serialize;
use utoipa::ToSchema;

/// A channel as shown: its settings, never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Channel {
    /// Identifier.
    pub id: ChannelId,
    /// A name for people.
    pub name: String,
    /// What it is and where it sends.
    pub target: ChannelTarget,
    /// Whether new deliveries go through it.
    pub enabled: bool,
    /// Whether it holds a secret.
    pub has_secret: bool,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    name: String,
    settings: String,
    has_secret: bool,
    enabled: bool,
    created_at: Ts,
}

const COLUMNS: &str = "id, name, settings, secret IS NOT NULL AS has_secret, enabled, created_at";

impl TryFrom<Row> for Channel {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(Channel {
            id: ChannelId(r.id),
            name: r.name,
            target: serde_json::from_str(&r.settings)
                .map_err(|e| StoreError::Corrupt(format!("channels.settings: {e}")))?,
            enabled: r.enabled,
            has_secret: r.has_secret,
            created_at: r.created_at.0,
        })
    }
}

fn secret_context(id: i64) -> Vec<u8> {
    format!("cartwright/channel/{id}").into_bytes()
}

impl Store {
    /// Adds a channel (enabled); its secret is sealed.
    pub async fn create_channel(&self, new: &NewChannel) -> Result<Channel, StoreError> {
        let (target, secret) = new.check()?;
        let settings =
            serde_json::to_string(&target).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let now = Ts::now();
        let mut tx = self.begin().await?;
        let id: i64 = write!(&mut tx, |c| {
            sqlx::query_scalar(
                "INSERT INTO channels (kind, name, settings, enabled, created_at, updated_at) \
                 VALUES ($1, $2, $3, TRUE, $4, $4) RETURNING id",
            )
            .bind(target.kind().as_str())
            .bind(new.name.as_str())
            .bind(&settings)
            .bind(now)
            .fetch_one(c)
            .await
        })?;
        if let Some(secret) = secret {
            let sealed = self.goods.seal(secret.as_bytes(), &secret_context(id));
            write!(&mut tx, |c| {
                sqlx::query("UPDATE channels SET secret = $2 WHERE id = $1")
                    .bind(id)
                    .bind(sealed)
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        tx.commit().await?;
        self.channel(ChannelId(id)).await
    }

    /// One channel.
    pub async fn channel(&self, id: ChannelId) -> Result<Channel, StoreError> {
        let row: Option<Row> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM channels WHERE id = $1"
            )))
            .bind(id.get())
            .fetch_optional(c)
            .await
        })?;
        row.ok_or_else(|| StoreError::not_found("channel", id.get()))?
            .try_into()
    }

    /// Every channel, oldest first.
    pub async fn channels(&self) -> Result<Vec<Channel>, StoreError> {
        let rows: Vec<Row> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM channels ORDER BY id"
            )))
            .fetch_all(c)
            .await
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Switches a channel on or off for deliveries prepared from now on (sends already in its
    /// outbox go on).
    pub async fn set_channel_enabled(
        &self,
        id: ChannelId,
        enabled: bool,
    ) -> Result<Channel, StoreError> {
        let mut tx = self.begin().await?;
        let n = write!(&mut tx, |c| {
            sqlx::query("UPDATE channels SET enabled = $2, updated_at = $3 WHERE id = $1")
                .bind(id.get())
                .bind(enabled)
                .bind(Ts::now())
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(StoreError::not_found("channel", id.get()));
        }
        tx.commit().await?;
        self.channel(id).await
    }

    /// A channel's secret, opened: for the send that signs or logs in with it.
    pub async fn channel_secret(&self, id: ChannelId) -> Result<Option<String>, StoreError> {
        let sealed: Option<Option<Vec<u8>>> = read!(&self.db, |c| {
            sqlx::query_scalar("SELECT secret FROM channels WHERE id = $1")
                .bind(id.get())
                .fetch_optional(c)
                .await
        })?;
        let Some(sealed) = sealed.ok_or_else(|| StoreError::not_found("channel", id.get()))? else {
            return Ok(None);
        };
        let plain = self
            .goods
            .open(&sealed, &secret_context(id.get()))
            .map_err(|e| StoreError::Corrupt(format!("channels.secret: {e}")))?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}
