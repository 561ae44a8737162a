//! Storefronts.

use crate::db::{Ts, Tx, read, stored, write};
use crate::{Store, StoreError};
use cartwright_core::ids::StorefrontId;
use cartwright_core::storefront::{Currency, NewStorefront, Storefront, StorefrontPatch};
use cartwright_core::values::{HttpUrl, Slug, Text};

#[derive(sqlx::FromRow)]
pub(crate) struct StorefrontRow {
    id: i64,
    slug: String,
    name: String,
    profile: String,
    base_url: String,
    currency: String,
    created_at: Ts,
}

pub(crate) const STOREFRONT_COLUMNS: &str =
    "id, slug, name, profile, base_url, currency, created_at";

impl TryFrom<StorefrontRow> for Storefront {
    type Error = StoreError;
    fn try_from(r: StorefrontRow) -> Result<Self, StoreError> {
        Ok(Storefront {
            id: StorefrontId(r.id),
            slug: stored("storefronts.slug", Slug::parse(&r.slug))?,
            name: stored("storefronts.name", Text::parse(&r.name))?,
            profile: stored("storefronts.profile", Slug::parse(&r.profile))?,
            base_url: stored("storefronts.base_url", HttpUrl::parse(&r.base_url))?,
            currency: stored("storefronts.currency", Currency::parse(&r.currency))?,
            created_at: r.created_at.0,
        })
    }
}

/// Adds a storefront inside `tx`.
pub(crate) async fn create_in(tx: &mut Tx, new: &NewStorefront) -> Result<Storefront, StoreError> {
    let row: StorefrontRow = write!(tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO storefronts (slug, name, profile, base_url, currency, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {STOREFRONT_COLUMNS}"
        )))
        .bind(new.slug.as_str())
        .bind(new.name.as_str())
        .bind(new.profile.as_str())
        .bind(new.base_url.as_str())
        .bind(new.currency.as_str())
        .bind(Ts::now())
        .fetch_one(c)
        .await
    })
    .map_err(StoreError::on_write("storefront", "id"))?;
    row.try_into()
}

/// The storefront with this slug, inside `tx`.
pub(crate) async fn by_slug_in(tx: &mut Tx, slug: &Slug) -> Result<Option<Storefront>, StoreError> {
    let row: Option<StorefrontRow> = write!(tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {STOREFRONT_COLUMNS} FROM storefronts WHERE slug = $1"
        )))
        .bind(slug.as_str())
        .fetch_optional(c)
        .await
    })?;
    row.map(TryInto::try_into).transpose()
}

impl Store {
    /// Adds a storefront.
    pub async fn create_storefront(&self, new: &NewStorefront) -> Result<Storefront, StoreError> {
        let mut tx = self.begin().await?;
        let storefront = create_in(&mut tx, new).await?;
        tx.commit().await?;
        Ok(storefront)
    }

    /// One storefront.
    pub async fn storefront(&self, id: StorefrontId) -> Result<Storefront, StoreError> {
        let row: StorefrontRow = self
            .db
            .row_by_id(STOREFRONT_COLUMNS, "storefronts", id.get(), "storefront")
            .await?;
        row.try_into()
    }

    /// The storefront with this slug.
    pub async fn storefront_by_slug(&self, slug: &Slug) -> Result<Option<Storefront>, StoreError> {
        let row: Option<StorefrontRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {STOREFRONT_COLUMNS} FROM storefronts WHERE slug = $1"
            )))
            .bind(slug.as_str())
            .fetch_optional(c)
            .await
        })?;
        row.map(TryInto::try_into).transpose()
    }

    /// All storefronts, by slug.
    pub async fn storefronts(&self) -> Result<Vec<Storefront>, StoreError> {
        let rows: Vec<StorefrontRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {STOREFRONT_COLUMNS} FROM storefronts ORDER BY slug"
            )))
            .fetch_all(c)
            .await
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Changes a storefront.
    pub async fn update_storefront(
        &self,
        id: StorefrontId,
        patch: &StorefrontPatch,
    ) -> Result<Storefront, StoreError> {
        let mut tx = self.begin().await?;
        let row: Option<StorefrontRow> = write!(&mut tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE storefronts SET name = COALESCE($2, name), profile = COALESCE($3, profile), \
                 base_url = COALESCE($4, base_url), currency = COALESCE($5, currency), updated_at = $6 \
                 WHERE id = $1 RETURNING {STOREFRONT_COLUMNS}"
            )))
            .bind(id.get())
            .bind(patch.name.as_ref().map(Text::as_str))
            .bind(patch.profile.as_ref().map(Slug::as_str))
            .bind(patch.base_url.as_ref().map(HttpUrl::as_str))
            .bind(patch.currency.as_ref().map(Currency::as_str))
            .bind(Ts::now())
            .fetch_optional(c)
            .await
        })?;
        tx.commit().await?;
        row.ok_or_else(|| StoreError::not_found("storefront", id.get()))?
            .try_into()
    }

    /// Deletes a storefront that has no accounts and no products left.
    pub async fn delete_storefront(&self, id: StorefrontId) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.delete_by_id("storefronts", id.get(), "storefront")
            .await
            .map_err(|e| match e {
                StoreError::Refused { field, .. } => StoreError::Refused {
                    field,
                    message: "the storefront still has accounts or products; delete them first"
                        .into(),
                },
                e => e,
            })?;
        tx.commit().await
    }
}
