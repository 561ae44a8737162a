//! `cartwright storefront add`, `product add`/`import`, `address add`: what a batch needs,
//! without the API. Values are checked as the API checks them; a wrong one is named by its
//! flag (or its file line and column).

use crate::Settings;
use crate::run::{RunError, pick_storefront, usage};
use cartwright_core::address::{AddressKind, NewAddress};
use cartwright_core::catalog::NewProduct;
use cartwright_core::money::Money;
use cartwright_core::storefront::{Currency, NewStorefront, Storefront};
use cartwright_core::values::{HttpUrl, Phone, Postcode, Slug, Text};
use cartwright_store::{Store, StoreError};
use std::path::Path;

/// `storefront add`.
#[derive(Debug, Clone, clap::Args)]
pub struct StorefrontArgs {
    /// Short unique name (`myshop`).
    #[arg(long)]
    pub slug: String,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// The profile that drives it (built in, or a file in the data directory's profiles/).
    #[arg(long)]
    pub profile: String,
    /// Where the site lives.
    #[arg(long)]
    pub base_url: String,
    /// ISO 4217 currency of its prices.
    #[arg(long, default_value = "INR")]
    pub currency: String,
}

/// `product add`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProductArgs {
    /// Storefront by slug (default: the only one).
    #[arg(long)]
    pub storefront: Option<String>,
    /// Product name.
    #[arg(long)]
    pub name: String,
    /// Product page, on the storefront's site.
    #[arg(long)]
    pub url: String,
    /// The variant the page sells it in (a size, a shade): another variant of the same page
    /// is another product.
    #[arg(long)]
    pub variant: Option<String>,
    /// The storefront's SKU.
    #[arg(long)]
    pub sku: Option<String>,
    /// Listed price.
    #[arg(long)]
    pub price: Option<String>,
}

/// `address add`.
#[derive(Debug, Clone, clap::Args)]
pub struct AddressArgs {
    /// Recipient.
    #[arg(long)]
    pub full_name: String,
    /// Flat, house, building.
    #[arg(long)]
    pub line1: String,
    /// Street or area.
    #[arg(long)]
    pub street: Option<String>,
    /// Landmark.
    #[arg(long)]
    pub landmark: Option<String>,
    /// PIN code.
    #[arg(long)]
    pub postcode: String,
    /// City.
    #[arg(long)]
    pub city: String,
    /// State.
    #[arg(long)]
    pub state: String,
    /// Phone.
    #[arg(long)]
    pub phone: String,
    /// home, work or other.
    #[arg(long, default_value = "home")]
    pub kind: String,
    /// A name for operators.
    #[arg(long)]
    pub label: Option<String>,
    /// Make it the default address.
    #[arg(long)]
    pub default: bool,
}

fn text(flag: &str, value: &str) -> Result<Text, RunError> {
    Text::parse(value).map_err(|m| usage(format!("{flag} {m}")))
}

fn optional(flag: &str, value: Option<&str>) -> Result<Option<Text>, RunError> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| text(flag, v))
        .transpose()
}

/// A store error as the command's: a conflict or refusal names its field.
fn refused(e: StoreError) -> RunError {
    match e {
        StoreError::Conflict { .. } | StoreError::Refused { .. } | StoreError::Invalid(_) => {
            usage(e.to_string())
        }
        e => e.into(),
    }
}

async fn open(settings: &Settings) -> Result<Store, RunError> {
    let key = crate::secret_key(settings)?;
    Ok(crate::open_store(settings, &key).await?)
}

/// Adds a storefront whose profile loads.
pub async fn add_storefront(settings: &Settings, a: StorefrontArgs) -> Result<(), RunError> {
    let new = NewStorefront {
        slug: Slug::parse(&a.slug).map_err(|m| usage(format!("--slug {m}")))?,
        name: text("--name", &a.name)?,
        profile: Slug::parse(&a.profile).map_err(|m| usage(format!("--profile {m}")))?,
        base_url: HttpUrl::parse(&a.base_url).map_err(|m| usage(format!("--base-url {m}")))?,
        currency: Currency::parse(&a.currency).map_err(|m| usage(format!("--currency {m}")))?,
    };
    let profiles =
        cartwright_engine::profile::registry::Profiles::new(settings.engine().profiles_dir);
    profiles
        .get(new.profile.as_str())
        .map_err(|e| usage(format!("--profile: {e}")))?;
    if let Ok(url) = url::Url::parse(new.base_url.as_str())
        && let Err(cartwright_engine::net::Unreachable::Internal(e)) =
            cartwright_engine::net::ensure_public(&url, settings.allow_internal_addresses).await
    {
        return Err(usage(format!("--base-url: {e}")));
    }
    let store = open(settings).await?;
    let created = store.create_storefront(&new).await.map_err(refused);
    store.close().await;
    let s = created?;
    println!("storefront {} ({}) added: {}", s.id, s.slug, s.base_url);
    Ok(())
}

/// A product from its fields, checked against its storefront.
fn product(
    storefront: &Storefront,
    name: &str,
    url: &str,
    variant: Option<&str>,
    sku: Option<&str>,
    price: Option<&str>,
    flag: impl Fn(&str) -> String,
) -> Result<NewProduct, RunError> {
    let url = HttpUrl::parse(url).map_err(|m| usage(format!("{} {m}", flag("url"))))?;
    storefront
        .check_owns("url", &url)
        .map_err(|e| usage(format!("{} {}", flag("url"), e.message)))?;
    Ok(NewProduct {
        storefront_id: storefront.id,
        name: Text::parse(name).map_err(|m| usage(format!("{} {m}", flag("name"))))?,
        url,
        variant: optional(&flag("variant"), variant)?,
        sku: optional(&flag("sku"), sku)?,
        price: price
            .filter(|p| !p.trim().is_empty())
            .map(Money::parse)
            .transpose()
            .map_err(|m| usage(format!("{} {m}", flag("price"))))?,
        brand: None,
        category: None,
        in_stock: true,
        image_url: None,
    })
}

/// Adds one product.
pub async fn add_product(settings: &Settings, a: ProductArgs) -> Result<(), RunError> {
    let store = open(settings).await?;
    let result = async {
        let storefront = pick_storefront(&store, a.storefront.as_deref(), None).await?;
        let new = product(
            &storefront,
            &a.name,
            &a.url,
            a.variant.as_deref(),
            a.sku.as_deref(),
            a.price.as_deref(),
            |f| format!("--{f}"),
        )?;
        store.create_product(&new).await.map_err(refused)
    }
    .await;
    store.close().await;
    let p = result?;
    println!(
        "product {} added: {}{}",
        p.id,
        p.name,
        p.variant
            .as_ref()
            .map(|v| format!(" ({v})"))
            .unwrap_or_default()
    );
    Ok(())
}

/// Adds the products of a CSV file with a header naming its columns: `name`, `url`, and
/// optionally `variant`, `sku`, `price`. Every row is checked first; a file with a bad row
/// adds nothing. Rows already in the catalogue (same URL and variant, or SKU) are reported
/// and skipped. True when every row was added.
pub async fn import_products(
    settings: &Settings,
    storefront: Option<&str>,
    file: &Path,
) -> Result<bool, RunError> {
    let mut reader =
        csv::Reader::from_path(file).map_err(|e| usage(format!("{}: {e}", file.display())))?;
    let headers = reader
        .headers()
        .map_err(|e| usage(format!("{}: {e}", file.display())))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(name_at), Some(url_at)) = (column("name"), column("url")) else {
        return Err(usage(format!(
            "{}: the first line must name the columns, with at least `name` and `url` (and optionally variant, sku, price)",
            file.display()
        )));
    };
    let (variant_at, sku_at, price_at) = (column("variant"), column("sku"), column("price"));
    let store = open(settings).await?;
    let result = async {
        let storefront = pick_storefront(&store, storefront, None).await?;
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            let record =
                record.map_err(|e| usage(format!("{} line {line}: {e}", file.display())))?;
            let cell = |at: Option<usize>| at.and_then(|a| record.get(a)).map(str::trim);
            rows.push(product(
                &storefront,
                cell(Some(name_at)).unwrap_or_default(),
                cell(Some(url_at)).unwrap_or_default(),
                cell(variant_at),
                cell(sku_at),
                cell(price_at),
                |f| format!("{} line {line}, column {f}:", file.display()),
            )?);
        }
        let (mut added, mut skipped) = (0, 0);
        for (i, row) in rows.iter().enumerate() {
            match store.create_product(row).await {
                Ok(_) => added += 1,
                Err(e @ StoreError::Conflict { .. }) => {
                    skipped += 1;
                    println!("line {}: skipped: {e}", i + 2);
                }
                Err(e) => return Err(e.into()),
            }
        }
        println!("{added} products added, {skipped} already in the catalogue");
        Ok(skipped == 0)
    }
    .await;
    store.close().await;
    result
}

/// Adds a delivery address.
pub async fn add_address(settings: &Settings, a: AddressArgs) -> Result<(), RunError> {
    let new = NewAddress {
        label: optional("--label", a.label.as_deref())?,
        full_name: text("--full-name", &a.full_name)?,
        line1: text("--line1", &a.line1)?,
        street: optional("--street", a.street.as_deref())?,
        landmark: optional("--landmark", a.landmark.as_deref())?,
        postcode: Postcode::parse(&a.postcode).map_err(|m| usage(format!("--postcode {m}")))?,
        city: text("--city", &a.city)?,
        state: text("--state", &a.state)?,
        phone: Phone::parse(&a.phone).map_err(|m| usage(format!("--phone {m}")))?,
        kind: a
            .kind
            .parse::<AddressKind>()
            .map_err(|m| usage(format!("--kind {m}")))?,
        is_default: a.default,
    };
    let store = open(settings).await?;
    let created = store.create_address(&new).await.map_err(refused);
    store.close().await;
    let address = created?;
    println!(
        "address {} added{}",
        address.id,
        if address.is_default {
            " (the default)"
        } else {
            ""
        }
    );
    Ok(())
}
