//! Products on a storefront, as operators enter them for carts.

use crate::ids::{ProductId, StorefrontId};
use crate::money::Money;
use crate::patch::Patch;
use crate::values::{HttpUrl, Text};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A product as submitted.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// Storefront that sells it.
    pub storefront_id: StorefrontId,
    /// Product name.
    pub name: Text,
    /// Product page; unique per storefront and on the storefront's site.
    pub url: HttpUrl,
    /// The variant (a size, a shade) the page offers it in: the same page with another
    /// variant is another product. Unique with the URL per storefront.
    #[serde(default)]
    pub variant: Option<Text>,
    /// Storefront's stock-keeping unit; unique per storefront when given.
    #[serde(default)]
    pub sku: Option<Text>,
    /// Listed price.
    #[serde(default)]
    pub price: Option<Money>,
    /// Brand.
    #[serde(default)]
    pub brand: Option<Text>,
    /// Category.
    #[serde(default)]
    pub category: Option<Text>,
    /// Whether it can be bought now.
    #[serde(default = "in_stock_by_default")]
    pub in_stock: bool,
    /// Picture for the dashboard.
    #[serde(default)]
    pub image_url: Option<HttpUrl>,
}

fn in_stock_by_default() -> bool {
    true
}

/// A partial update of a product. Absent fields are kept; `null` clears an optional one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProductPatch {
    /// New name.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub name: Option<Text>,
    /// New product page.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub url: Option<HttpUrl>,
    /// New variant, or `null`.
    #[schema(value_type = Option<String>)]
    pub variant: Patch<Text>,
    /// New SKU, or `null`.
    #[schema(value_type = Option<String>)]
    pub sku: Patch<Text>,
    /// New price, or `null`.
    #[schema(value_type = Option<f64>)]
    pub price: Patch<Money>,
    /// New brand, or `null`.
    #[schema(value_type = Option<String>)]
    pub brand: Patch<Text>,
    /// New category, or `null`.
    #[schema(value_type = Option<String>)]
    pub category: Patch<Text>,
    /// New stock state.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub in_stock: Option<bool>,
    /// New picture, or `null`.
    #[schema(value_type = Option<String>)]
    pub image_url: Patch<HttpUrl>,
}

/// A product as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Product {
    /// Identifier.
    pub id: ProductId,
    /// Storefront that sells it.
    pub storefront_id: StorefrontId,
    /// Product name.
    pub name: Text,
    /// Product page.
    pub url: HttpUrl,
    /// The variant the page offers it in (`{{line.variant}}` in profiles).
    pub variant: Option<Text>,
    /// Stock-keeping unit.
    pub sku: Option<Text>,
    /// Listed price.
    pub price: Option<Money>,
    /// Brand.
    pub brand: Option<Text>,
    /// Category.
    pub category: Option<Text>,
    /// Whether it can be bought now.
    pub in_stock: bool,
    /// Picture.
    pub image_url: Option<HttpUrl>,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}
