//! Digital products and their stock. Items are sealed at rest like account cookies, found
//! again by a keyed fingerprint of what makes them unique (so a duplicate is refused without
//! opening anything, and the fingerprint says nothing of the item), shown only masked, and
//! revealed whole only with an audit entry.

use crate::db::{Arg, Sql, Ts, read, write};
use crate::{Page, PageRequest, PageStart, Store, StoreError};
use cartwright_core::Invalid;
use cartwright_core::digital::{
    DigitalProduct, ImportLine, MessageTemplate, NewDigitalProduct, StockCounts, StockItem,
    StockRead, read_stock,
};
use cartwright_core::ids::{DigitalProductId, StockItemId};
use serde::Serialize;
use utoipa::ToSchema;

/// What an import did, or would do (a dry run), line by line.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct StockImport {
    /// Whether the items were written.
    pub applied: bool,
    /// Items imported (or that would be).
    pub imported: usize,
    /// Lines whose item is already in the file or in stock.
    pub duplicates: usize,
    /// Lines that are not items.
    pub invalid: usize,
    /// Every line not imported, and why.
    pub lines: Vec<ImportLine>,
    /// The product's stock afterwards.
    pub stock: StockCounts,
}

/// A stock item as lists show it: never whole.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StockItemView {
    /// Identifier.
    pub id: StockItemId,
    /// `available`, `reserved`, `delivered` or `revoked`.
    pub state: String,
    /// The item, masked (`ABCD-…-WXYZ`).
    pub masked: String,
    /// The delivery it went to.
    pub delivery_id: Option<i64>,
    /// When it was imported.
    #[serde(with = "time::serde::rfc3339")]
    pub imported_at: time::OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: i64,
    sku: String,
    name: String,
    kind: String,
    message: String,
    has_content: bool,
    low_stock: i64,
    link_days: Option<i64>,
    reveal_once: bool,
    created_at: Ts,
    available: i64,
    reserved: i64,
    delivered: i64,
    revoked: i64,
}

/// Products with their stock counts, one statement.
const PRODUCT_SELECT: &str = "SELECT p.id, p.sku, p.name, p.kind, p.message, p.content IS NOT NULL AS has_content, \
     p.low_stock, p.link_days, p.reveal_once, p.created_at, \
     COALESCE(SUM(CASE WHEN s.state = 'available' THEN 1 ELSE 0 END), 0) AS available, \
     COALESCE(SUM(CASE WHEN s.state = 'reserved' THEN 1 ELSE 0 END), 0) AS reserved, \
     COALESCE(SUM(CASE WHEN s.state = 'delivered' THEN 1 ELSE 0 END), 0) AS delivered, \
     COALESCE(SUM(CASE WHEN s.state = 'revoked' THEN 1 ELSE 0 END), 0) AS revoked \
     FROM digital_products p LEFT JOIN stock_items s ON s.product_id = p.id";
const PRODUCT_GROUP: &str = " GROUP BY p.id, p.sku, p.name, p.kind, p.message, p.content, p.low_stock, p.link_days, p.reveal_once, p.created_at";

impl TryFrom<ProductRow> for DigitalProduct {
    type Error = StoreError;
    fn try_from(r: ProductRow) -> Result<Self, StoreError> {
        Ok(DigitalProduct {
            id: DigitalProductId(r.id),
            sku: r.sku,
            name: r.name,
            kind: r.kind.parse().map_err(StoreError::Corrupt)?,
            message: MessageTemplate::from_stored(r.message),
            has_content: r.has_content,
            low_stock: u32::try_from(r.low_stock).unwrap_or(0),
            page: cartwright_core::digital::PageRules {
                expires_after_days: r.link_days.and_then(|d| u32::try_from(d).ok()),
                reveal_once: r.reveal_once,
            },
            stock: StockCounts {
                available: r.available,
                reserved: r.reserved,
                delivered: r.delivered,
                revoked: r.revoked,
            },
            created_at: r.created_at.0,
        })
    }
}

/// Context bound into a product's sealed items and content: a sealed value cannot be moved to
/// another product's row.
fn goods_context(product: DigitalProductId) -> Vec<u8> {
    format!("cartwright/digital-goods/{product}").into_bytes()
}

impl Store {
    /// Adds a digital product; its message is checked against its kind.
    pub async fn create_digital_product(
        &self,
        new: &NewDigitalProduct,
    ) -> Result<DigitalProduct, StoreError> {
        let message = new.check()?;
        let now = Ts::now();
        let mut tx = self.begin().await?;
        let id: i64 = write!(&mut tx, |c| {
            sqlx::query_scalar(
                "INSERT INTO digital_products (sku, name, kind, message, low_stock, link_days, reveal_once, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
            )
            .bind(new.sku.as_str())
            .bind(new.name.as_str())
            .bind(new.kind.as_str())
            .bind(message.as_str())
            .bind(i64::from(new.low_stock))
            .bind(new.page.expires_after_days.map(i64::from))
            .bind(new.page.reveal_once)
            .bind(now)
            .fetch_one(c)
            .await
        })
        .map_err(StoreError::on_write("digital product", "sku"))?;
        let id = DigitalProductId(id);
        if let Some(content) = new
            .content
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            let sealed = self.goods.seal(content.as_bytes(), &goods_context(id));
            write!(&mut tx, |c| {
                sqlx::query("UPDATE digital_products SET content = $2 WHERE id = $1")
                    .bind(id.get())
                    .bind(sealed)
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        tx.commit().await?;
        self.digital_product(id).await
    }

    /// Every digital product with its stock, by name.
    pub async fn digital_products(&self) -> Result<Vec<DigitalProduct>, StoreError> {
        let sql = format!("{PRODUCT_SELECT}{PRODUCT_GROUP} ORDER BY p.name, p.id");
        let rows: Vec<ProductRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(c).await
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// After a claim of `product`'s items: when its available count is at its low-stock
    /// threshold or below, records the alert event (phase `stock`) and returns it, once until
    /// stock is imported again; a product without a threshold never alerts.
    pub async fn note_low_stock(
        &self,
        product: DigitalProductId,
    ) -> Result<Option<cartwright_core::order::Event>, StoreError> {
        let row: Option<(String, String, i64, bool)> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT name, sku, low_stock, low_alerted FROM digital_products WHERE id = $1",
            )
            .bind(product.get())
            .fetch_optional(c)
            .await
        })?;
        let Some((name, sku, low, alerted)) = row else {
            return Ok(None);
        };
        if low == 0 || alerted {
            return Ok(None);
        }
        // Counts at most `low + 1` items: enough to tell, whatever the stock.
        let left: i64 = read!(&self.db, |c| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT 1 FROM stock_items WHERE product_id = $1 AND state = 'available' LIMIT $2) x",
            )
            .bind(product.get())
            .bind(low + 1)
            .fetch_one(c)
            .await
        })?;
        if left > low {
            return Ok(None);
        }
        let mut tx = self.begin().await?;
        let first = write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE digital_products SET low_alerted = TRUE WHERE id = $1 AND low_alerted = FALSE",
            )
            .bind(product.get())
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        if first == 0 {
            return Ok(None);
        }
        let p = (name, sku);
        let event = cartwright_core::order::NewEvent {
            batch_id: None,
            order_id: None,
            rewards_run_id: None,
            account_id: None,
            phase: Some("stock".into()),
            step: Some(p.1.clone()),
            level: cartwright_core::order::Level::Warn,
            message: format!(
                "{} ({}) is low on stock: {left} left, the alert is at {low}; import more before orders wait",
                p.0, p.1
            ),
            at: time::OffsetDateTime::now_utc(),
        };
        Ok(self.insert_events(&[event]).await?.pop())
    }

    /// One digital product with its stock.
    pub async fn digital_product(
        &self,
        id: DigitalProductId,
    ) -> Result<DigitalProduct, StoreError> {
        let sql = format!("{PRODUCT_SELECT} WHERE p.id = $1{PRODUCT_GROUP}");
        let row: Option<ProductRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id.get())
                .fetch_optional(c)
                .await
        })?;
        row.ok_or_else(|| StoreError::not_found("digital product", id.get()))?
            .try_into()
    }

    /// One digital product's definition, its stock not counted (the counts read zero): what
    /// a delivery needs, without a count over every item on each one.
    pub async fn digital_product_definition(
        &self,
        id: DigitalProductId,
    ) -> Result<DigitalProduct, StoreError> {
        let row: Option<ProductRow> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT p.id, p.sku, p.name, p.kind, p.message, p.content IS NOT NULL AS has_content, \
                 p.low_stock, p.link_days, p.reveal_once, p.created_at, \
                 CAST(0 AS BIGINT) AS available, CAST(0 AS BIGINT) AS reserved, \
                 CAST(0 AS BIGINT) AS delivered, CAST(0 AS BIGINT) AS revoked \
                 FROM digital_products p WHERE p.id = $1",
            )
            .bind(id.get())
            .fetch_optional(c)
            .await
        })?;
        row.ok_or_else(|| StoreError::not_found("digital product", id.get()))?
            .try_into()
    }

    /// The digital product with this SKU.
    pub async fn digital_product_by_sku(
        &self,
        sku: &str,
    ) -> Result<Option<DigitalProduct>, StoreError> {
        let sql = format!("{PRODUCT_SELECT} WHERE p.sku = $1{PRODUCT_GROUP}");
        let row: Option<ProductRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(sku.trim())
                .fetch_optional(c)
                .await
        })?;
        row.map(TryInto::try_into).transpose()
    }

    /// A shared product's content, opened.
    pub async fn digital_product_content(
        &self,
        id: DigitalProductId,
    ) -> Result<Option<String>, StoreError> {
        let sealed: Option<Option<Vec<u8>>> = read!(&self.db, |c| {
            sqlx::query_scalar("SELECT content FROM digital_products WHERE id = $1")
                .bind(id.get())
                .fetch_optional(c)
                .await
        })?;
        let Some(sealed) = sealed else {
            return Err(StoreError::not_found("digital product", id.get()));
        };
        sealed
            .map(|s| {
                let plain = self
                    .goods
                    .open(&s, &goods_context(id))
                    .map_err(|e| StoreError::Corrupt(format!("digital_products.content: {e}")))?;
                String::from_utf8(plain).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .transpose()
    }

    /// Imports stock items for a product from pasted text, a file with one item a line, or
    /// CSV for credentials. Items already in the text or in stock are reported per line and
    /// not imported; the rest is written in one transaction (or only counted: `dry_run`).
    pub async fn import_stock(
        &self,
        product: DigitalProductId,
        text: &str,
        dry_run: bool,
    ) -> Result<StockImport, StoreError> {
        let kind = self.digital_product(product).await?.kind;
        let StockRead { items, mut report } =
            read_stock(text, kind).map_err(|e| Invalid::new("items", e.message))?;
        let invalid = report.iter().filter(|l| l.outcome == "invalid").count();
        let mut duplicates = report.len() - invalid;
        let fingerprinted: Vec<(usize, StockItem, Vec<u8>)> = items
            .into_iter()
            .map(|(line, item)| {
                let print = self.fingerprint(product, &item);
                (line, item, print)
            })
            .collect();
        let mut tx = self.begin().await?;
        // What is in stock already: found by fingerprint, 500 at a time.
        let mut existing = std::collections::HashSet::new();
        for chunk in fingerprinted.chunks(500) {
            let mut sql = Sql::new("SELECT fingerprint FROM stock_items WHERE product_id = ");
            sql.arg(Arg::Int(product.get()))
                .push(" AND fingerprint IN (");
            for (i, (_, _, print)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.arg(Arg::Bytes(print.clone()));
            }
            sql.push(")");
            let found: Vec<Vec<u8>> = write!(&mut tx, |c| {
                crate::db::bind_args!(
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.text.clone())),
                    &sql.args
                )
                .fetch_all(c)
                .await
            })?;
            existing.extend(found);
        }
        let mut fresh = Vec::with_capacity(fingerprinted.len());
        for (line, item, print) in fingerprinted {
            if existing.contains(&print) {
                duplicates += 1;
                report.push(ImportLine {
                    line,
                    outcome: "duplicate_in_stock",
                    message: Some("this item is in the product's stock already".into()),
                    item: Some(item.masked()),
                });
            } else {
                fresh.push((item, print));
            }
        }
        report.sort_by_key(|l| l.line);
        let imported = fresh.len();
        if !dry_run && !fresh.is_empty() {
            let now = Ts::now();
            let context = goods_context(product);
            for chunk in fresh.chunks(400) {
                let mut sql = Sql::new(
                    "INSERT INTO stock_items (product_id, secret, fingerprint, masked, imported_at) VALUES ",
                );
                for (i, (item, print)) in chunk.iter().enumerate() {
                    let plain = serde_json::to_vec(item)
                        .map_err(|e| StoreError::Corrupt(format!("stock item: {e}")))?;
                    sql.values_row(
                        i == 0,
                        [
                            Some(Arg::Int(product.get())),
                            Some(Arg::Bytes(self.goods.seal(&plain, &context))),
                            Some(Arg::Bytes(print.clone())),
                            Some(Arg::Text(item.masked())),
                            Some(Arg::Ts(now.0)),
                        ],
                    );
                }
                tx.execute(&sql)
                    .await
                    .map_err(|e| match e {
                        // Another import of the same item committed meanwhile.
                        StoreError::Conflict { .. } => Invalid::new(
                            "items",
                            "another import of some of these items ran at the same time: import again to see which",
                        )
                        .into(),
                        e => e,
                    })?;
            }
            // Orders waiting for this stock get their delivery job with it.
            let waiting: Vec<i64> = write!(&mut tx, |c| {
                sqlx::query_scalar(
                    "SELECT DISTINCT order_id FROM deliveries WHERE product_id = $1 AND state = 'waiting'",
                )
                .bind(product.get())
                .fetch_all(c)
                .await
            })?;
            for order in waiting {
                crate::jobs::enqueue_delivery_job(&mut tx, order).await?;
            }
            // New stock: the next fall to the threshold alerts again.
            write!(&mut tx, |c| {
                sqlx::query("UPDATE digital_products SET low_alerted = FALSE WHERE id = $1")
                    .bind(product.get())
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            tx.commit().await?;
        }
        let stock = self.digital_product(product).await?.stock;
        Ok(StockImport {
            applied: !dry_run,
            imported,
            duplicates,
            invalid,
            lines: report,
            stock,
        })
    }

    /// A product's stock items, masked, oldest first.
    pub async fn stock_items(
        &self,
        product: DigitalProductId,
        page: &PageRequest,
    ) -> Result<Page<StockItemView>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            state: String,
            masked: String,
            delivery_id: Option<i64>,
            imported_at: Ts,
        }
        let total: i64 = read!(&self.db, |c| {
            sqlx::query_scalar("SELECT COUNT(*) FROM stock_items WHERE product_id = $1")
                .bind(product.get())
                .fetch_one(c)
                .await
        })?;
        let mut sql = Sql::new(
            "SELECT id, state, masked, delivery_id, imported_at FROM stock_items WHERE product_id = ",
        );
        sql.arg(Arg::Int(product.get()));
        if let PageStart::After(cursor) = &page.start {
            sql.push(" AND id > ").arg(Arg::Int(cursor.id));
        }
        sql.push(" ORDER BY id LIMIT ")
            .arg(Arg::Int(i64::from(page.per_page)));
        if let Some(offset) = page.offset() {
            sql.push(" OFFSET ").arg(Arg::Int(offset));
        }
        let rows: Vec<Row> = self.db.rows(&sql).await?;
        let next = rows.last().map(|r| crate::Cursor {
            sort: "id".into(),
            descending: false,
            value: None,
            id: r.id,
        });
        let items = rows
            .into_iter()
            .map(|r| StockItemView {
                id: StockItemId(r.id),
                state: r.state,
                masked: r.masked,
                delivery_id: r.delivery_id,
                imported_at: r.imported_at.0,
            })
            .collect();
        Ok(page.page_of(items, total, next))
    }

    /// One stock item, whole: an audited action.
    pub async fn reveal_stock_item(
        &self,
        id: StockItemId,
        actor: &crate::audit::Actor,
    ) -> Result<StockItem, StoreError> {
        let mut tx = self.begin().await?;
        let row: Option<(i64, Vec<u8>)> = write!(&mut tx, |c| {
            sqlx::query_as("SELECT product_id, secret FROM stock_items WHERE id = $1")
                .bind(id.get())
                .fetch_optional(c)
                .await
        })?;
        let (product, sealed) = row.ok_or_else(|| StoreError::not_found("stock item", id.get()))?;
        let item = self.open_item(DigitalProductId(product), &sealed)?;
        crate::audit::record(
            &mut tx,
            actor,
            "stock.reveal",
            &format!("stock_item:{}", id.get()),
            &serde_json::json!({"product_id": product}),
        )
        .await?;
        tx.commit().await?;
        Ok(item)
    }

    /// The product a stock item belongs to.
    pub async fn stock_item_product(
        &self,
        id: StockItemId,
    ) -> Result<DigitalProductId, StoreError> {
        let product: Option<i64> = read!(&self.db, |c| {
            sqlx::query_scalar("SELECT product_id FROM stock_items WHERE id = $1")
                .bind(id.get())
                .fetch_optional(c)
                .await
        })?;
        product
            .map(DigitalProductId)
            .ok_or_else(|| StoreError::not_found("stock item", id.get()))
    }

    pub(crate) fn open_item(
        &self,
        product: DigitalProductId,
        sealed: &[u8],
    ) -> Result<StockItem, StoreError> {
        let plain = self
            .goods
            .open(sealed, &goods_context(product))
            .map_err(|e| StoreError::Corrupt(format!("stock_items.secret: {e}")))?;
        serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt(format!("stock item: {e}")))
    }

    /// The keyed fingerprint of what makes an item unique within a product.
    fn fingerprint(&self, product: DigitalProductId, item: &StockItem) -> Vec<u8> {
        use hmac::{KeyInit, Mac};
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.fingerprints)
            .expect("HMAC takes a key of any length");
        mac.update(product.get().to_be_bytes().as_slice());
        mac.update(item.identity().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}
