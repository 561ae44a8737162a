//! Products.

use crate::db::{Arg, Sql, Ts, bind_args, read, stored, stored_opt, write};
use crate::{Page, PageRequest, Store, StoreError};
use cartwright_core::Invalid;
use cartwright_core::catalog::{NewProduct, Product, ProductPatch};
use cartwright_core::ids::{ProductId, StorefrontId};
use cartwright_core::money::Money;
use cartwright_core::values::{HttpUrl, Text};

/// Which products a list covers.
#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    /// Only this storefront's.
    pub storefront_id: Option<StorefrontId>,
    /// Only those in (or out of) stock.
    pub in_stock: Option<bool>,
    /// Text in name, SKU, brand or category (case-insensitive).
    pub text: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ProductRow {
    id: i64,
    storefront_id: i64,
    name: String,
    url: String,
    variant: String,
    sku: Option<String>,
    price_minor: Option<i64>,
    brand: Option<String>,
    category: Option<String>,
    in_stock: bool,
    image_url: Option<String>,
    created_at: Ts,
    updated_at: Ts,
}

pub(crate) const PRODUCT_COLUMNS: &str = "id, storefront_id, name, url, variant, sku, price_minor, brand, category, \
    in_stock, image_url, created_at, updated_at";

impl TryFrom<ProductRow> for Product {
    type Error = StoreError;
    fn try_from(r: ProductRow) -> Result<Self, StoreError> {
        Ok(Product {
            id: ProductId(r.id),
            storefront_id: StorefrontId(r.storefront_id),
            name: stored("products.name", Text::parse(&r.name))?,
            url: stored("products.url", HttpUrl::parse(&r.url))?,
            variant: stored_opt(
                "products.variant",
                Some(r.variant).filter(|v| !v.is_empty()),
                Text::parse,
            )?,
            sku: stored_opt("products.sku", r.sku, Text::parse)?,
            price: r
                .price_minor
                .map(|m| stored("products.price_minor", Money::from_minor(m)))
                .transpose()?,
            brand: stored_opt("products.brand", r.brand, Text::parse)?,
            category: stored_opt("products.category", r.category, Text::parse)?,
            in_stock: r.in_stock,
            image_url: stored_opt("products.image_url", r.image_url, HttpUrl::parse)?,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

impl Store {
    /// Adds a product. The caller checks that its URL is on the storefront's site.
    pub async fn create_product(&self, new: &NewProduct) -> Result<Product, StoreError> {
        let mut tx = self.begin().await?;
        let row: ProductRow = write!(&mut tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "INSERT INTO products (storefront_id, name, url, sku, price_minor, brand, category, \
                 in_stock, image_url, created_at, updated_at, variant) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11) RETURNING {PRODUCT_COLUMNS}"
            )))
            .bind(new.storefront_id.get())
            .bind(new.name.as_str())
            .bind(new.url.as_str())
            .bind(new.sku.as_ref().map(Text::as_str))
            .bind(new.price.map(Money::minor))
            .bind(new.brand.as_ref().map(Text::as_str))
            .bind(new.category.as_ref().map(Text::as_str))
            .bind(new.in_stock)
            .bind(new.image_url.as_ref().map(HttpUrl::as_str))
            .bind(Ts::now())
            .bind(new.variant.as_ref().map_or("", Text::as_str))
            .fetch_one(c)
            .await
        })
        .map_err(StoreError::on_write("product", "storefront_id"))?;
        tx.commit().await?;
        row.try_into()
    }

    /// One product.
    pub async fn product(&self, id: ProductId) -> Result<Product, StoreError> {
        let row: ProductRow = self
            .db
            .row_by_id(PRODUCT_COLUMNS, "products", id.get(), "product")
            .await?;
        row.try_into()
    }

    /// The storefront's product at `url` (with or without a trailing slash), if any.
    pub async fn product_by_url(
        &self,
        storefront: StorefrontId,
        url: &str,
    ) -> Result<Option<Product>, StoreError> {
        let bare = url.trim_end_matches('/');
        let mut sql = Sql::new(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE storefront_id = "
        ));
        sql.arg(Arg::Int(storefront.get()))
            .push(" AND (url = ")
            .arg(Arg::Text(bare.to_owned()))
            .push(" OR url = ")
            .arg(Arg::Text(format!("{bare}/")))
            .push(")");
        let rows: Vec<ProductRow> = self.db.rows(&sql).await?;
        rows.into_iter().next().map(Product::try_from).transpose()
    }

    /// A page of products, by name.
    pub async fn products(
        &self,
        filter: &ProductFilter,
        page: PageRequest,
    ) -> Result<Page<Product>, StoreError> {
        let mut clause = Sql::new(" WHERE TRUE");
        if let Some(id) = filter.storefront_id {
            clause.push(" AND storefront_id = ").arg(Arg::Int(id.get()));
        }
        if let Some(in_stock) = filter.in_stock {
            clause.push(" AND in_stock = ").arg(Arg::Bool(in_stock));
        }
        clause.text_search(
            filter.text.as_deref(),
            &["name", "sku", "brand", "category"],
        );
        let count = format!("SELECT COUNT(*) FROM products{}", clause.text);
        let mut list = Sql {
            text: format!("SELECT {PRODUCT_COLUMNS} FROM products{}", clause.text),
            args: clause.args.clone(),
        };
        list.push(" ORDER BY name, id LIMIT ")
            .arg(Arg::Int(i64::from(page.per_page)))
            .push(" OFFSET ")
            .arg(Arg::Int(page.offset().ok_or_else(|| {
                Invalid::new("cursor", "products are paged by number")
            })?));
        let (total, rows): (i64, Vec<ProductRow>) = read!(&self.db, |c| {
            let total = bind_args!(
                sqlx::query_scalar(sqlx::AssertSqlSafe(count.clone())),
                &clause.args
            )
            .fetch_one(c)
            .await?;
            let rows = bind_args!(
                sqlx::query_as(sqlx::AssertSqlSafe(list.text.clone())),
                &list.args
            )
            .fetch_all(c)
            .await?;
            Ok::<_, sqlx::Error>((total, rows))
        })?;
        let items = rows
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<_, _>>()?;
        Ok(page.page_of(items, total, None))
    }

    /// Changes a product. The caller checks a new URL against the storefront.
    pub async fn update_product(
        &self,
        id: ProductId,
        patch: &ProductPatch,
    ) -> Result<Product, StoreError> {
        let mut tx = self.begin().await?;
        let current: Product = tx
            .row_by_id::<ProductRow>(PRODUCT_COLUMNS, "products", id.get(), "product")
            .await?
            .try_into()?;
        let row: ProductRow =
            write!(&mut tx, |c| {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE products SET name = $2, url = $3, sku = $4, price_minor = $5, brand = $6, \
                 category = $7, in_stock = $8, image_url = $9, updated_at = $10, variant = $11 \
                 WHERE id = $1 RETURNING {PRODUCT_COLUMNS}"
            )))
            .bind(id.get())
            .bind(patch.name.as_ref().unwrap_or(&current.name).as_str())
            .bind(patch.url.as_ref().unwrap_or(&current.url).as_str())
            .bind(patch.sku.clone().apply(current.sku).as_ref().map(Text::as_str))
            .bind(patch.price.clone().apply(current.price).map(Money::minor))
            .bind(patch.brand.clone().apply(current.brand).as_ref().map(Text::as_str))
            .bind(patch.category.clone().apply(current.category).as_ref().map(Text::as_str))
            .bind(patch.in_stock.unwrap_or(current.in_stock))
            .bind(patch.image_url.clone().apply(current.image_url).as_ref().map(HttpUrl::as_str))
            .bind(Ts::now())
            .bind(patch.variant.clone().apply(current.variant).as_ref().map_or("", Text::as_str))
            .fetch_one(c)
            .await
            })
            .map_err(StoreError::on_write("product", "storefront_id"))?;
        tx.commit().await?;
        row.try_into()
    }

    /// Deletes a product.
    pub async fn delete_product(&self, id: ProductId) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.delete_by_id("products", id.get(), "product").await?;
        tx.commit().await
    }
}
