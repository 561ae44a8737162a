//! Marketplace orders: ingested from any path (a push, the reconciliation poll, the API, the
//! browser extension) idempotently on (marketplace, shop, order number); an older report never
//! overwrites a newer one; every report and move is kept with where it came from. Becoming
//! paid gives the order one delivery per line and a delivery job, in the same transaction.

use crate::db::{Arg, Sql, Ts, Tx, read, write};
use crate::{Store, StoreError};
use cartwright_core::digital::DeliveryState;
use cartwright_core::ids::{ConnectionId, DeliveryId, DigitalProductId, ListingId, MarketOrderId};
use cartwright_core::market::{
    IncomingOrder, MarketMove, MarketOrderState, Reported, Source, report_applies,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The job kind that delivers a marketplace order's goods.
pub const DELIVERY_JOB: &str = "delivery";
/// The job kind that takes in one push from the inbox.
pub const PUSH_JOB: &str = "market_push";
/// The job kind that reconciles one connection's orders with the marketplace's order list.
pub const POLL_JOB: &str = "market_poll";

/// A marketplace order as stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MarketOrder {
    /// Identifier.
    pub id: MarketOrderId,
    /// The connection it came through, when one.
    pub connection_id: Option<ConnectionId>,
    /// The marketplace.
    pub marketplace: String,
    /// The shop on it.
    pub shop_id: String,
    /// The marketplace's order number.
    pub external_id: String,
    /// The buyer.
    pub buyer: cartwright_core::market::Buyer,
    /// The total, in minor units.
    pub total_minor: Option<i64>,
    /// Its currency.
    pub currency: Option<String>,
    /// How it is paid.
    pub payment_method: Option<String>,
    /// Where it stands.
    pub state: MarketOrderState,
    /// What the marketplace last said of its payment.
    pub reported: Reported,
    /// The marketplace's time of that report.
    #[serde(with = "time::serde::rfc3339")]
    pub reported_at: time::OffsetDateTime,
    /// Why it needs an operator, when it does.
    pub attention: Option<String>,
    /// When it was paid.
    #[serde(with = "time::serde::rfc3339::option")]
    pub paid_at: Option<time::OffsetDateTime>,
    /// When its last goods went out.
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<time::OffsetDateTime>,
    /// When Cartwright first heard of it.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// One line of a marketplace order's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// When Cartwright heard it or made it.
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    /// Where it came from.
    pub source: Source,
    /// What the marketplace said of its payment, when this was a report.
    pub reported: Option<Reported>,
    /// Where the order stood after it.
    pub state: Option<MarketOrderState>,
    /// Anything else worth saying (an older report that changed nothing).
    pub note: Option<String>,
}

/// What ingesting a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Ingested {
    /// The order.
    pub order_id: MarketOrderId,
    /// It was new.
    pub created: bool,
    /// The report changed what Cartwright holds (false: the same or an older report).
    pub changed: bool,
    /// Where the order stands now.
    pub state: MarketOrderState,
}

/// How deliveries went over a period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryStats {
    /// Orders whose goods all went out.
    pub delivered: i64,
    /// Median time from paid to delivered, in milliseconds.
    pub p50_ms: Option<i64>,
    /// 95th percentile of that time.
    pub p95_ms: Option<i64>,
}

/// A listing: a marketplace item (or the seller's SKU) mapped to a product.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Listing {
    /// Identifier.
    pub id: ListingId,
    /// Its connection.
    pub connection_id: ConnectionId,
    /// The marketplace's item id ('' when matched by SKU).
    pub item_id: String,
    /// The model (variant) id ('' for every model).
    pub model_id: String,
    /// The seller's SKU ('' when matched by item).
    pub seller_sku: String,
    /// The product delivered.
    pub product_id: DigitalProductId,
    /// Units of the product per unit sold.
    pub units: u32,
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: i64,
    connection_id: Option<i64>,
    marketplace: String,
    shop_id: String,
    external_id: String,
    buyer_name: Option<String>,
    buyer_id: Option<String>,
    buyer_email: Option<String>,
    total_minor: Option<i64>,
    currency: Option<String>,
    payment_method: Option<String>,
    state: String,
    reported: String,
    reported_at: Ts,
    attention: Option<String>,
    paid_at: Option<Ts>,
    delivered_at: Option<Ts>,
    created_at: Ts,
}

pub(crate) const ORDER_COLUMNS: &str = "id, connection_id, marketplace, shop_id, external_id, buyer_name, buyer_id, \
     buyer_email, total_minor, currency, payment_method, state, reported, reported_at, attention, paid_at, \
     delivered_at, created_at";

fn reported_from(s: &str) -> Result<Reported, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| StoreError::Corrupt(format!("market_orders.reported: {s:?}")))
}

fn reported_name(r: Reported) -> &'static str {
    match r {
        Reported::Unpaid => "unpaid",
        Reported::Paid => "paid",
        Reported::Cancelled => "cancelled",
        Reported::Refunded => "refunded",
    }
}

impl TryFrom<OrderRow> for MarketOrder {
    type Error = StoreError;
    fn try_from(r: OrderRow) -> Result<Self, StoreError> {
        Ok(MarketOrder {
            id: MarketOrderId(r.id),
            connection_id: r.connection_id.map(ConnectionId),
            marketplace: r.marketplace,
            shop_id: r.shop_id,
            external_id: r.external_id,
            buyer: cartwright_core::market::Buyer {
                name: r.buyer_name,
                id: r.buyer_id,
                email: r.buyer_email,
            },
            total_minor: r.total_minor,
            currency: r.currency,
            payment_method: r.payment_method,
            state: r.state.parse().map_err(StoreError::Corrupt)?,
            reported: reported_from(&r.reported)?,
            reported_at: r.reported_at.0,
            attention: r.attention,
            paid_at: r.paid_at.map(|t| t.0),
            delivered_at: r.delivered_at.map(|t| t.0),
            created_at: r.created_at.0,
        })
    }
}

/// A connection to a marketplace shop to create; its keys are sealed at rest.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    /// The marketplace (`shopee`).
    pub marketplace: String,
    /// A name for people.
    pub name: String,
    /// The shop's id on the marketplace.
    pub shop_id: String,
    /// The Open Platform's address (`https://partner.shopeemobile.com`).
    pub base_url: String,
    /// The partner id.
    pub partner_id: String,
    /// The partner key: signs requests and verifies pushes.
    pub partner_key: String,
    /// The shop's access token.
    pub access_token: String,
    /// The shop's refresh token, where the marketplace has one: access tokens are then
    /// renewed before they expire (Shopee's last 4 hours).
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// A marketplace connection as shown: its keys never are.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Connection {
    /// Identifier.
    pub id: ConnectionId,
    /// The marketplace.
    pub marketplace: String,
    /// Its name.
    pub name: String,
    /// The shop's id.
    pub shop_id: String,
    /// The Open Platform's address.
    pub base_url: String,
    /// The partner id.
    pub partner_id: String,
    /// The update time the next reconciliation poll starts from.
    #[serde(with = "time::serde::rfc3339::option")]
    pub polled_to: Option<time::OffsetDateTime>,
}

/// A connection's keys, opened: for signing requests and checking pushes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionKeys {
    /// The partner key.
    pub partner_key: String,
    /// The shop's access token.
    pub access_token: String,
    /// The refresh token that renews it, when there is one.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// When the access token expires, when known (unknown with a refresh token: renewed at
    /// first use).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<time::OffsetDateTime>,
}

impl ConnectionKeys {
    /// Whether the access token should be renewed now: it has a refresh token and expires
    /// within ten minutes, or its expiry is unknown.
    pub fn due(&self, now: time::OffsetDateTime) -> bool {
        self.refresh_token.is_some()
            && self
                .expires_at
                .is_none_or(|t| t - now < time::Duration::minutes(10))
    }
}

fn keys_context(id: i64) -> Vec<u8> {
    format!("cartwright/market-connection/{id}").into_bytes()
}

impl Store {
    /// Adds a marketplace connection; its keys are sealed.
    pub async fn create_connection(&self, new: &NewConnection) -> Result<Connection, StoreError> {
        use cartwright_core::Invalid;
        for (field, value) in [
            ("marketplace", &new.marketplace),
            ("name", &new.name),
            ("shop_id", &new.shop_id),
            ("partner_id", &new.partner_id),
            ("partner_key", &new.partner_key),
            ("access_token", &new.access_token),
        ] {
            if value.trim().is_empty() || value.len() > 500 {
                return Err(Invalid::new(field, "must be 1 to 500 characters").into());
            }
        }
        cartwright_core::values::HttpUrl::parse(&new.base_url)
            .map_err(|m| Invalid::new("base_url", m))?;
        let now = Ts::now();
        let mut tx = self.begin().await?;
        let id: i64 = write!(&mut tx, |c| {
            sqlx::query_scalar(
                "INSERT INTO market_connections (marketplace, name, shop_id, base_url, partner_id, secrets, created_at, updated_at)                  VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
            )
            .bind(new.marketplace.trim())
            .bind(new.name.trim())
            .bind(new.shop_id.trim())
            .bind(new.base_url.trim())
            .bind(new.partner_id.trim())
            .bind(Vec::<u8>::new())
            .bind(now)
            .fetch_one(c)
            .await
        })
        .map_err(StoreError::on_write("connection", "shop_id"))?;
        let keys = ConnectionKeys {
            partner_key: new.partner_key.trim().to_owned(),
            access_token: new.access_token.trim().to_owned(),
            refresh_token: new
                .refresh_token
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            expires_at: None,
        };
        self.seal_keys(&mut tx, id, &keys).await?;
        tx.commit().await?;
        self.connection(ConnectionId(id)).await
    }

    async fn seal_keys(
        &self,
        tx: &mut Tx,
        id: i64,
        keys: &ConnectionKeys,
    ) -> Result<(), StoreError> {
        let plain = serde_json::to_vec(keys).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sealed = self.goods.seal(&plain, &keys_context(id));
        write!(tx, |c| {
            sqlx::query("UPDATE market_connections SET secrets = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(sealed)
                .bind(Ts::now())
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Stores a connection's renewed tokens (sealed), its partner key kept.
    pub async fn set_connection_tokens(
        &self,
        id: ConnectionId,
        access_token: &str,
        refresh_token: &str,
        expires_at: time::OffsetDateTime,
    ) -> Result<ConnectionKeys, StoreError> {
        let mut keys = self.connection_keys(id).await?;
        keys.access_token = access_token.to_owned();
        keys.refresh_token = Some(refresh_token.to_owned());
        keys.expires_at = Some(expires_at);
        let mut tx = self.begin().await?;
        self.seal_keys(&mut tx, id.get(), &keys).await?;
        tx.commit().await?;
        Ok(keys)
    }

    /// One connection.
    pub async fn connection(&self, id: ConnectionId) -> Result<Connection, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            marketplace: String,
            name: String,
            shop_id: String,
            base_url: String,
            partner_id: String,
            polled_to: Option<Ts>,
        }
        let row: Option<Row> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT id, marketplace, name, shop_id, base_url, partner_id, polled_to FROM market_connections WHERE id = $1",
            )
            .bind(id.get())
            .fetch_optional(c)
            .await
        })?;
        let r = row.ok_or_else(|| StoreError::not_found("connection", id.get()))?;
        Ok(Connection {
            id: ConnectionId(r.id),
            marketplace: r.marketplace,
            name: r.name,
            shop_id: r.shop_id,
            base_url: r.base_url,
            partner_id: r.partner_id,
            polled_to: r.polled_to.map(|t| t.0),
        })
    }

    /// A connection's keys, opened.
    pub async fn connection_keys(&self, id: ConnectionId) -> Result<ConnectionKeys, StoreError> {
        let sealed: Option<Vec<u8>> = read!(&self.db, |c| {
            sqlx::query_scalar("SELECT secrets FROM market_connections WHERE id = $1")
                .bind(id.get())
                .fetch_optional(c)
                .await
        })?;
        let sealed = sealed.ok_or_else(|| StoreError::not_found("connection", id.get()))?;
        let plain = self
            .goods
            .open(&sealed, &keys_context(id.get()))
            .map_err(|e| StoreError::Corrupt(format!("market_connections.secrets: {e}")))?;
        serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// The connection of a marketplace's shop, when there is one.
    pub async fn connection_for(
        &self,
        marketplace: &str,
        shop_id: &str,
    ) -> Result<Option<ConnectionId>, StoreError> {
        let id: Option<i64> = read!(&self.db, |c| {
            sqlx::query_scalar(
                "SELECT id FROM market_connections WHERE marketplace = $1 AND shop_id = $2 ORDER BY id LIMIT 1",
            )
            .bind(marketplace)
            .bind(shop_id)
            .fetch_optional(c)
            .await
        })?;
        Ok(id.map(ConnectionId))
    }

    /// Every connection.
    pub async fn connections(&self) -> Result<Vec<Connection>, StoreError> {
        let ids: Vec<i64> = read!(&self.db, |c| {
            sqlx::query_scalar("SELECT id FROM market_connections ORDER BY id")
                .fetch_all(c)
                .await
        })?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.connection(ConnectionId(id)).await?);
        }
        Ok(out)
    }

    /// Keeps pushes received together, each with its job, in one transaction (one commit for
    /// all: what lets the receiver answer many senders quickly). Returns their ids, in order.
    pub async fn keep_pushes(
        &self,
        pushes: &[(ConnectionId, &str)],
    ) -> Result<Vec<i64>, StoreError> {
        let now = time::OffsetDateTime::now_utc();
        let mut tx = self.begin().await?;
        let mut ids = Vec::with_capacity(pushes.len());
        // Two statements per 100 pushes: a multi-row insert of the pushes, then of their jobs.
        for chunk in pushes.chunks(100) {
            let mut sql = crate::db::Sql::new(
                "INSERT INTO market_inbox (connection_id, received_at, body) VALUES ",
            );
            for (i, (connection, body)) in chunk.iter().enumerate() {
                sql.values_row(
                    i == 0,
                    [
                        Some(crate::db::Arg::Int(connection.get())),
                        Some(crate::db::Arg::Ts(now)),
                        Some(crate::db::Arg::Text((*body).to_owned())),
                    ],
                );
            }
            sql.push(" RETURNING id");
            let mut kept = tx.ints(&sql).await?;
            kept.sort_unstable();
            let jobs: Vec<crate::jobs::NewJob> = kept
                .iter()
                .map(|id| crate::jobs::NewJob {
                    priority: 40,
                    max_attempts: 50,
                    ..crate::jobs::NewJob::new(PUSH_JOB, serde_json::json!({ "push": id }))
                })
                .collect();
            crate::jobs::enqueue_plain_in(&mut tx, &jobs).await?;
            ids.extend(kept);
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// A kept push: its connection and body.
    pub async fn push(&self, id: i64) -> Result<(ConnectionId, String), StoreError> {
        let row: Option<(Option<i64>, String)> = read!(&self.db, |c| {
            sqlx::query_as("SELECT connection_id, body FROM market_inbox WHERE id = $1")
                .bind(id)
                .fetch_optional(c)
                .await
        })?;
        match row {
            Some((Some(connection), body)) => Ok((ConnectionId(connection), body)),
            _ => Err(StoreError::not_found("push", id)),
        }
    }

    /// Marks a push taken in (or why it could not be).
    pub async fn push_done(&self, id: i64, error: Option<&str>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        write!(&mut tx, |c| {
            sqlx::query("UPDATE market_inbox SET processed_at = $2, error = $3 WHERE id = $1")
                .bind(id)
                .bind(Ts::now())
                .bind(error)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await
    }

    /// Gives every connection its reconciliation poll job (one waiting or running stays).
    pub async fn queue_polls(&self) -> Result<usize, StoreError> {
        let ids: Vec<i64> = read!(&self.db, |c| {
            sqlx::query_scalar("SELECT id FROM market_connections")
                .fetch_all(c)
                .await
        })?;
        let jobs: Vec<crate::jobs::NewJob> = ids
            .iter()
            .map(|id| crate::jobs::NewJob {
                priority: 5,
                max_attempts: 3,
                unique_key: Some(format!("poll:{id}")),
                ..crate::jobs::NewJob::new(POLL_JOB, serde_json::json!({ "connection": id }))
            })
            .collect();
        self.enqueue_many(&jobs).await
    }

    /// Records how far a connection's reconciliation poll has read.
    pub async fn polled_to(
        &self,
        connection: ConnectionId,
        to: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE market_connections SET polled_to = $2, updated_at = $3 WHERE id = $1",
            )
            .bind(connection.get())
            .bind(Ts::from(to))
            .bind(Ts::now())
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await
    }

    /// Points a connection at a new API address (the marketplace moved, or the demo's shop
    /// restarted on another port); checked like a new connection's.
    pub async fn set_connection_base_url(
        &self,
        connection: ConnectionId,
        base_url: &str,
    ) -> Result<Connection, StoreError> {
        cartwright_core::values::HttpUrl::parse(base_url)
            .map_err(|m| cartwright_core::Invalid::new("base_url", m))?;
        let mut tx = self.begin().await?;
        let n = write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE market_connections SET base_url = $2, updated_at = $3 WHERE id = $1",
            )
            .bind(connection.get())
            .bind(base_url)
            .bind(Ts::now())
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(StoreError::not_found("connection", connection.get()));
        }
        tx.commit().await?;
        self.connection(connection).await
    }

    /// Maps a marketplace item (or the seller's SKU) to a product: what each unit sold
    /// delivers.
    pub async fn create_listing(
        &self,
        connection: ConnectionId,
        item_id: &str,
        model_id: &str,
        seller_sku: &str,
        product: DigitalProductId,
        units: u32,
    ) -> Result<Listing, StoreError> {
        let (item_id, model_id, seller_sku) = (item_id.trim(), model_id.trim(), seller_sku.trim());
        if item_id.is_empty() && seller_sku.is_empty() {
            return Err(cartwright_core::Invalid::new(
                "item_id",
                "a listing names the marketplace's item_id, or the seller_sku",
            )
            .into());
        }
        if !(1..=1_000).contains(&units) {
            return Err(
                cartwright_core::Invalid::new("units", "must be between 1 and 1,000").into(),
            );
        }
        let mut tx = self.begin().await?;
        let id: i64 = write!(&mut tx, |c| {
            sqlx::query_scalar(
                "INSERT INTO listings (connection_id, item_id, model_id, seller_sku, product_id, units, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(connection.get())
            .bind(item_id)
            .bind(model_id)
            .bind(seller_sku)
            .bind(product.get())
            .bind(i64::from(units))
            .bind(Ts::now())
            .fetch_one(c)
            .await
        })
        .map_err(StoreError::on_write("listing", "product_id"))?;
        tx.commit().await?;
        Ok(Listing {
            id: ListingId(id),
            connection_id: connection,
            item_id: item_id.to_owned(),
            model_id: model_id.to_owned(),
            seller_sku: seller_sku.to_owned(),
            product_id: product,
            units,
        })
    }

    /// Every listing, by connection and item.
    pub async fn listings(&self) -> Result<Vec<Listing>, StoreError> {
        let rows: Vec<(i64, i64, String, String, String, i64, i64)> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT id, connection_id, item_id, model_id, seller_sku, product_id, units FROM listings \
                 ORDER BY connection_id, item_id, model_id, seller_sku",
            )
            .fetch_all(c)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(id, connection, item_id, model_id, seller_sku, product, units)| Listing {
                    id: ListingId(id),
                    connection_id: ConnectionId(connection),
                    item_id,
                    model_id,
                    seller_sku,
                    product_id: DigitalProductId(product),
                    units: u32::try_from(units).unwrap_or(1),
                },
            )
            .collect())
    }

    /// Deliveries since `since`: how many orders went out, and the time from paid to
    /// delivered (p50, p95).
    pub async fn delivery_stats(
        &self,
        since: time::OffsetDateTime,
    ) -> Result<DeliveryStats, StoreError> {
        let rows: Vec<(Ts, Ts)> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT paid_at, delivered_at FROM market_orders WHERE delivered_at >= $1 AND paid_at IS NOT NULL \
                 ORDER BY delivered_at DESC LIMIT 100000",
            )
            .bind(Ts::from(since))
            .fetch_all(c)
            .await
        })?;
        let mut ms: Vec<i64> = rows
            .iter()
            .map(|(paid, done)| {
                i64::try_from((done.0 - paid.0).whole_milliseconds())
                    .unwrap_or(0)
                    .max(0)
            })
            .collect();
        ms.sort_unstable();
        let at = |p: usize| (!ms.is_empty()).then(|| ms[(ms.len() - 1) * p / 100]);
        Ok(DeliveryStats {
            delivered: ms.len() as i64,
            p50_ms: at(50),
            p95_ms: at(95),
        })
    }

    /// Takes in a report of an order from any path. New → written with its lines; known →
    /// updated only when the report is newer ([`report_applies`]); either way the report is
    /// kept in the order's history with its source. Becoming paid gives it its deliveries and
    /// its delivery job; a cancellation or refund takes back what was reserved or sent.
    pub async fn ingest_order(
        &self,
        order: &IncomingOrder,
        source: Source,
        connection: Option<ConnectionId>,
    ) -> Result<Ingested, StoreError> {
        order.check()?;
        let now = Ts::now();
        let mut tx = self.begin().await?;
        let lock = crate::db::RowLock::Update.sql(tx.backend());
        let existing: Option<(i64, String, String, Ts)> = write!(&mut tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id, state, reported, reported_at FROM market_orders \
                 WHERE marketplace = $1 AND shop_id = $2 AND external_id = $3{lock}"
            )))
            .bind(order.marketplace.trim())
            .bind(order.shop_id.trim())
            .bind(order.external_id.trim())
            .fetch_optional(c)
            .await
        })?;
        let (id, created, held) = match existing {
            Some((id, state, reported, at)) => {
                let state: MarketOrderState = state.parse().map_err(StoreError::Corrupt)?;
                (id, false, Some((state, reported_from(&reported)?, at.0)))
            }
            None => {
                let id: Option<i64> = write!(&mut tx, |c| {
                    sqlx::query_scalar(
                        "INSERT INTO market_orders (connection_id, marketplace, shop_id, external_id, \
                         buyer_name, buyer_id, buyer_email, total_minor, currency, payment_method, state, \
                         reported, reported_at, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'unpaid', 'unpaid', $11, $12, $12) \
                         ON CONFLICT DO NOTHING RETURNING id",
                    )
                    .bind(connection.map(|c| c.get()))
                    .bind(order.marketplace.trim())
                    .bind(order.shop_id.trim())
                    .bind(order.external_id.trim())
                    .bind(order.buyer.name.as_deref())
                    .bind(order.buyer.id.as_deref())
                    .bind(order.buyer.email.as_deref())
                    .bind(order.total_minor)
                    .bind(order.currency.as_deref())
                    .bind(order.payment_method.as_deref())
                    .bind(Ts::from(order.updated_at - time::Duration::seconds(1)))
                    .bind(now)
                    .fetch_optional(c)
                    .await
                })?;
                // Another path inserted it at the same moment: take that one in turn.
                let Some(id) = id else {
                    drop(tx);
                    return Box::pin(self.ingest_order(order, source, connection)).await;
                };
                (id, true, None)
            }
        };
        let id = MarketOrderId(id);
        let (state, held_reported, held_at) = held.unwrap_or((
            MarketOrderState::Unpaid,
            Reported::Unpaid,
            order.updated_at - time::Duration::seconds(1),
        ));
        // Lines and buyer fill in whenever they were missing (a push brings the status only).
        if !order.lines.is_empty() {
            insert_lines(&mut tx, id, order).await?;
        }
        fill_order(&mut tx, id, order).await?;
        let applies = report_applies(held_reported, held_at, order.status, order.updated_at);
        let mut state_now = state;
        if applies {
            write!(&mut tx, |c| {
                sqlx::query(
                    "UPDATE market_orders SET reported = $2, reported_at = $3, updated_at = $4 WHERE id = $1",
                )
                .bind(id.get())
                .bind(reported_name(order.status))
                .bind(Ts::from(order.updated_at))
                .bind(now)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
            })?;
            let wanted = match order.status {
                Reported::Unpaid => None,
                Reported::Paid => Some(MarketMove::Pay),
                // Once goods went out (or are going), a cancellation takes them back: a refund.
                Reported::Cancelled
                    if matches!(
                        state,
                        MarketOrderState::Delivering
                            | MarketOrderState::Delivered
                            | MarketOrderState::PartiallyDelivered
                    ) =>
                {
                    Some(MarketMove::Refund)
                }
                Reported::Cancelled => Some(MarketMove::Cancel),
                Reported::Refunded => Some(MarketMove::Refund),
            };
            if let Some(by) = wanted
                && self.move_market_order(&mut tx, id, by).await?
            {
                state_now = by.to();
                match by {
                    MarketMove::Pay => self.open_deliveries(&mut tx, id).await?,
                    MarketMove::Cancel | MarketMove::Refund => {
                        crate::deliveries::take_back(&mut tx, id).await?;
                    }
                    _ => {}
                }
            }
        }
        history(
            &mut tx,
            id,
            source,
            Some(order.status),
            Some(state_now),
            (!applies).then_some("older than what is known: it changed nothing"),
        )
        .await?;
        tx.commit().await?;
        Ok(Ingested {
            order_id: id,
            created,
            changed: applies && (created || Some(order.status) != Some(held_reported)),
            state: state_now,
        })
    }

    /// Moves a marketplace order by `by` when it is in one of the move's source states; false
    /// when it was not.
    pub(crate) async fn move_market_order(
        &self,
        tx: &mut Tx,
        id: MarketOrderId,
        by: MarketMove,
    ) -> Result<bool, StoreError> {
        Ok(!self.move_market_orders(tx, &[id], by).await?.is_empty())
    }

    /// [`Store::move_market_order`] for many orders in one statement: those that moved.
    pub(crate) async fn move_market_orders(
        &self,
        tx: &mut Tx,
        ids: &[MarketOrderId],
        by: MarketMove,
    ) -> Result<Vec<MarketOrderId>, StoreError> {
        let stamp = match by {
            MarketMove::Pay => ", paid_at = COALESCE(paid_at, $2)",
            MarketMove::Deliver => ", delivered_at = $2, attention = NULL",
            MarketMove::StartDelivery => ", attention = NULL",
            _ => "",
        };
        let mut sql = Sql::new("UPDATE market_orders SET state = ");
        sql.arg(Arg::Text(by.to().as_str().into()))
            .push(", updated_at = ")
            .arg(Arg::Ts(Ts::now().0))
            .push(stamp)
            .push(" WHERE id IN ")
            .list(ids.iter().map(|i| i.get()));
        sql.push(&format!(" AND state IN ({}) RETURNING id", by.from_sql()));
        let mut moved = tx.ints(&sql).await?;
        moved.sort_unstable();
        Ok(moved.into_iter().map(MarketOrderId).collect())
    }

    /// One delivery per line of a newly paid order (its product found through the listings),
    /// and the order's delivery job.
    async fn open_deliveries(&self, tx: &mut Tx, order: MarketOrderId) -> Result<(), StoreError> {
        #[derive(sqlx::FromRow)]
        struct Line {
            line_no: i64,
            quantity: i64,
            product_id: Option<i64>,
            units: Option<i64>,
        }
        // The most specific listing wins: item and model, then item, then the seller's SKU.
        let lines: Vec<Line> = write!(tx, |c| {
            sqlx::query_as(
                "SELECT l.line_no, l.quantity, \
                 (SELECT li.product_id FROM listings li JOIN market_orders o ON o.id = l.order_id \
                  WHERE (li.connection_id = o.connection_id OR o.connection_id IS NULL) \
                  AND ((li.item_id = l.item_id AND l.item_id <> '' AND (li.model_id = l.model_id OR li.model_id = '')) \
                       OR (li.seller_sku = l.seller_sku AND l.seller_sku <> '')) \
                  ORDER BY li.model_id DESC, li.item_id DESC LIMIT 1) AS product_id, \
                 (SELECT li.units FROM listings li JOIN market_orders o ON o.id = l.order_id \
                  WHERE (li.connection_id = o.connection_id OR o.connection_id IS NULL) \
                  AND ((li.item_id = l.item_id AND l.item_id <> '' AND (li.model_id = l.model_id OR li.model_id = '')) \
                       OR (li.seller_sku = l.seller_sku AND l.seller_sku <> '')) \
                  ORDER BY li.model_id DESC, li.item_id DESC LIMIT 1) AS units \
                 FROM market_order_lines l WHERE l.order_id = $1 ORDER BY l.line_no",
            )
            .bind(order.get())
            .fetch_all(c)
            .await
        })?;
        for line in &lines {
            let units = line.quantity * line.units.unwrap_or(1);
            crate::deliveries::open_delivery(
                self,
                tx,
                order,
                line.line_no,
                line.product_id.map(DigitalProductId),
                units,
            )
            .await?;
        }
        crate::jobs::enqueue_delivery_job(tx, order.get()).await
    }

    /// One marketplace order, read inside `tx` (a transaction never waits for a second
    /// connection).
    pub(crate) async fn market_order_in(
        &self,
        tx: &mut Tx,
        id: MarketOrderId,
    ) -> Result<MarketOrder, StoreError> {
        let row: Option<OrderRow> = write!(tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ORDER_COLUMNS} FROM market_orders WHERE id = $1"
            )))
            .bind(id.get())
            .fetch_optional(c)
            .await
        })?;
        row.ok_or_else(|| StoreError::not_found("marketplace order", id.get()))?
            .try_into()
    }

    /// One marketplace order.
    pub async fn market_order(&self, id: MarketOrderId) -> Result<MarketOrder, StoreError> {
        let row: Option<OrderRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ORDER_COLUMNS} FROM market_orders WHERE id = $1"
            )))
            .bind(id.get())
            .fetch_optional(c)
            .await
        })?;
        row.ok_or_else(|| StoreError::not_found("marketplace order", id.get()))?
            .try_into()
    }

    /// These marketplace orders (those that exist), by id.
    pub async fn market_orders_by_id(
        &self,
        ids: &[MarketOrderId],
    ) -> Result<Vec<MarketOrder>, StoreError> {
        let mut sql = Sql::new(&format!(
            "SELECT {ORDER_COLUMNS} FROM market_orders WHERE id IN "
        ));
        sql.list(ids.iter().map(|i| i.get())).push(" ORDER BY id");
        let rows: Vec<OrderRow> = self.db.rows(&sql).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Marketplace orders, newest first, optionally in one state.
    pub async fn market_orders(
        &self,
        state: Option<MarketOrderState>,
        limit: u32,
    ) -> Result<Vec<MarketOrder>, StoreError> {
        let rows: Vec<OrderRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ORDER_COLUMNS} FROM market_orders WHERE ($1 IS NULL OR state = $1) ORDER BY id DESC LIMIT $2"
            )))
            .bind(state.map(|s| s.as_str()))
            .bind(i64::from(limit.clamp(1, 1_000)))
            .fetch_all(c)
            .await
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// How many marketplace orders are in each state.
    pub async fn market_order_counts(&self) -> Result<Vec<(MarketOrderState, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = read!(&self.db, |c| {
            sqlx::query_as("SELECT state, COUNT(*) FROM market_orders GROUP BY state")
                .fetch_all(c)
                .await
        })?;
        rows.into_iter()
            .map(|(s, n)| Ok((s.parse().map_err(StoreError::Corrupt)?, n)))
            .collect()
    }

    /// An order's history, oldest first.
    pub async fn market_order_history(
        &self,
        id: MarketOrderId,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            at: Ts,
            source: String,
            reported: Option<String>,
            state: Option<String>,
            note: Option<String>,
        }
        let rows: Vec<Row> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT at, source, reported, state, note FROM market_order_history WHERE order_id = $1 ORDER BY id",
            )
            .bind(id.get())
            .fetch_all(c)
            .await
        })?;
        rows.into_iter()
            .map(|r| {
                Ok(HistoryEntry {
                    at: r.at.0,
                    source: r.source.parse().map_err(StoreError::Corrupt)?,
                    reported: r.reported.as_deref().map(reported_from).transpose()?,
                    state: r
                        .state
                        .map(|s| s.parse().map_err(StoreError::Corrupt))
                        .transpose()?,
                    note: r.note,
                })
            })
            .collect()
    }

    /// Deliveries of an order, by line.
    pub async fn order_deliveries(
        &self,
        order: MarketOrderId,
    ) -> Result<Vec<(DeliveryId, i64, DeliveryState)>, StoreError> {
        let rows: Vec<(i64, i64, String)> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT id, line_no, state FROM deliveries WHERE order_id = $1 ORDER BY line_no",
            )
            .bind(order.get())
            .fetch_all(c)
            .await
        })?;
        rows.into_iter()
            .map(|(id, line, s)| {
                Ok((
                    DeliveryId(id),
                    line,
                    s.parse().map_err(StoreError::Corrupt)?,
                ))
            })
            .collect()
    }
}

async fn insert_lines(
    tx: &mut Tx,
    id: MarketOrderId,
    order: &IncomingOrder,
) -> Result<(), StoreError> {
    let has: bool = write!(tx, |c| {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM market_order_lines WHERE order_id = $1)")
            .bind(id.get())
            .fetch_one(c)
            .await
    })?;
    if has {
        return Ok(());
    }
    for (i, line) in order.lines.iter().enumerate() {
        write!(tx, |c| {
            sqlx::query(
                "INSERT INTO market_order_lines (order_id, line_no, item_id, model_id, seller_sku, name, quantity, unit_price_minor) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id.get())
            .bind(i as i64 + 1)
            .bind(line.item_id.trim())
            .bind(line.model_id.trim())
            .bind(line.seller_sku.trim())
            .bind(line.name.trim())
            .bind(i64::from(line.quantity))
            .bind(line.unit_price_minor)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// Fills in what an earlier report did not have (the buyer, the totals).
async fn fill_order(
    tx: &mut Tx,
    id: MarketOrderId,
    order: &IncomingOrder,
) -> Result<(), StoreError> {
    write!(tx, |c| {
        sqlx::query(
            "UPDATE market_orders SET buyer_name = COALESCE(buyer_name, $2), buyer_id = COALESCE(buyer_id, $3), \
             buyer_email = COALESCE(buyer_email, $4), total_minor = COALESCE(total_minor, $5), \
             currency = COALESCE(currency, $6), payment_method = COALESCE(payment_method, $7) WHERE id = $1",
        )
        .bind(id.get())
        .bind(order.buyer.name.as_deref())
        .bind(order.buyer.id.as_deref())
        .bind(order.buyer.email.as_deref())
        .bind(order.total_minor)
        .bind(order.currency.as_deref())
        .bind(order.payment_method.as_deref())
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Keeps one line of an order's history.
pub(crate) async fn history(
    tx: &mut Tx,
    id: MarketOrderId,
    source: Source,
    reported: Option<Reported>,
    state: Option<MarketOrderState>,
    note: Option<&str>,
) -> Result<(), StoreError> {
    write!(tx, |c| {
        sqlx::query(
            "INSERT INTO market_order_history (order_id, at, source, reported, state, note) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.get())
        .bind(Ts::now())
        .bind(source.as_str())
        .bind(reported.map(reported_name))
        .bind(state.map(|s| s.as_str()))
        .bind(note)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// The same line of history for each of these orders, in one statement.
pub(crate) async fn histories(
    tx: &mut Tx,
    ids: &[MarketOrderId],
    source: Source,
    state: Option<MarketOrderState>,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let now = Ts::now();
    let mut sql =
        Sql::new("INSERT INTO market_order_history (order_id, at, source, state) VALUES ");
    for (i, id) in ids.iter().enumerate() {
        sql.values_row(
            i == 0,
            [
                Some(Arg::Int(id.get())),
                Some(Arg::Ts(now.0)),
                Some(Arg::Text(source.as_str().into())),
                state.map(|s| Arg::Text(s.as_str().into())),
            ],
        );
    }
    tx.execute(&sql).await.map(drop)
}
