//! `cartwright demo`: everything a newcomer needs to see Cartwright working, with one command:
//! the server, the demo shop beside it, and Cartwright seeded with the shop's storefront,
//! accounts (signed in, cookies and all), products and addresses.

use crate::{Server, Settings, StartError};
use cartwright_core::account_csv::{AccountRow, ParsedImport};
use cartwright_core::address::{AddressKind, NewAddress};
use cartwright_core::catalog::NewProduct;
use cartwright_core::cookies::CookieJar;
use cartwright_core::digital::ProductKind;
use cartwright_core::money::Money;
use cartwright_core::operator::{NewOperator, Role};
use cartwright_core::storefront::{Currency, NewStorefront, StorefrontPatch};
use cartwright_core::values::{
    Email, HttpUrl, Password, Phone, Postcode, Slug, Tags, Text, Username,
};
use cartwright_demo_shop::{RunningShop, ShopConfig};
use cartwright_store::{ImportOptions, Store, StoreError};
use std::net::SocketAddr;

/// The demo admin's sign-in name.
pub const DEMO_USERNAME: &str = "admin";
/// The demo admin's password. The demo keeps its data in its own directory.
pub const DEMO_PASSWORD: &str = "cartwright-demo";
/// How many of the shop's customers become Cartwright accounts.
pub const DEMO_ACCOUNTS: usize = 50;
/// The demo storefront's slug.
pub const DEMO_STOREFRONT: &str = "demo";

/// One storefront of the demo: its shop flavour and how Cartwright knows it.
pub struct StorefrontSeed {
    /// Slug in Cartwright.
    pub slug: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Its profile.
    pub profile: &'static str,
    /// Product pages are `/{path}/{slug}`.
    pub path: &'static str,
    /// SKU prefix.
    pub sku: &'static str,
    /// How many of the shop's customers become accounts.
    pub accounts: usize,
    /// Sizes of the first products offered as products of their own.
    pub variants: &'static [&'static str],
}

/// Demo Beauty (profiles/demo.toml).
pub const BEAUTY: StorefrontSeed = StorefrontSeed {
    slug: DEMO_STOREFRONT,
    name: "Demo Beauty",
    profile: "demo",
    path: "p",
    sku: "DB",
    accounts: DEMO_ACCOUNTS,
    variants: &[],
};

/// Demo Threads (profiles/threads.toml): form posts, sizes, a three-page checkout.
pub const THREADS: StorefrontSeed = StorefrontSeed {
    slug: "threads",
    name: "Demo Threads",
    profile: "threads",
    path: "products",
    sku: "DT",
    accounts: 20,
    variants: &["Mini", "Large"],
};

/// The running demo: Cartwright and the shop.
pub struct Demo {
    /// Cartwright.
    pub server: Server,
    /// The demo shop.
    pub shop: RunningShop,
    /// The demo shop's Threads storefront (the next port).
    pub threads: RunningShop,
    /// The demo marketplace's connection: where its pushes go.
    pub push_url: String,
}

/// The demo's digital products: the demo marketplace's catalogue, each with its kind and
/// how many items to seed (Steam runs out, to show an order waiting for stock).
const DEMO_GOODS: &[(&str, &str, ProductKind, usize)] = &[
    (
        "NFX-1M",
        "Netflix Premium 1 Month Voucher",
        ProductKind::Code,
        40,
    ),
    (
        "SPT-3M",
        "Spotify Premium 3 Months Code",
        ProductKind::Code,
        40,
    ),
    (
        "WIN11-PRO",
        "Windows 11 Pro Licence Key",
        ProductKind::Code,
        40,
    ),
    (
        "OFF-2021",
        "Microsoft Office 2021 Key",
        ProductKind::Code,
        40,
    ),
    (
        "CANVA-1Y",
        "Canva Pro 1 Year Invite",
        ProductKind::Credential,
        30,
    ),
    (
        "GPLAY-100",
        "Google Play Gift Card 100k",
        ProductKind::Code,
        40,
    ),
    ("STEAM-120", "Steam Wallet 120k", ProductKind::Code, 3),
    (
        "COURSE-XL",
        "Online Course: Excel Basics (link)",
        ProductKind::Shared,
        0,
    ),
];

/// How often the demo marketplace gets a new order.
const DEMO_ORDER_EVERY: std::time::Duration = std::time::Duration::from_secs(12);

/// Creates the demo admin unless an operator exists already. Returns whether it did.
pub async fn ensure_admin(store: &Store) -> Result<bool, StartError> {
    if store.count_operators().await? > 0 {
        return Ok(false);
    }
    let (Ok(username), Ok(password)) = (
        Username::parse(DEMO_USERNAME),
        Password::parse(DEMO_PASSWORD),
    ) else {
        unreachable!("the demo credentials are valid constants");
    };
    let hash = cartwright_web::auth::password::hash_blocking(DEMO_PASSWORD).map_err(|_| {
        StartError::Io {
            what: "hashing the demo password".into(),
            source: std::io::Error::other("argon2"),
        }
    })?;
    store
        .create_operator(
            &NewOperator {
                username,
                email: None,
                password,
                role: Role::Admin,
            },
            &hash,
        )
        .await?;
    Ok(true)
}

/// Starts the shop on `shop_addr` and Cartwright as `settings` says, then seeds Cartwright from
/// the shop (or, on a later start, points it at the shop again and refreshes the cookies:
/// the shop keeps its sessions in memory).
pub async fn start(settings: &Settings, shop_addr: SocketAddr) -> Result<Demo, StartError> {
    // The demo's shops listen on this machine.
    let settings = &Settings {
        allow_internal_addresses: true,
        ..settings.clone()
    };
    let mut config = ShopConfig::default();
    config.marketplace.auto_advance = Some(std::time::Duration::from_secs(90));
    let shop = cartwright_demo_shop::start(shop_addr, config)
        .await
        .map_err(|source| StartError::Io {
            what: format!("starting the demo shop on {shop_addr}"),
            source,
        })?;
    // The Threads storefront on the next port (any free one when the shop's was).
    let threads_addr = SocketAddr::new(
        shop_addr.ip(),
        match shop_addr.port() {
            0 => 0,
            p => p.saturating_add(1),
        },
    );
    let threads = cartwright_demo_shop::start(
        threads_addr,
        ShopConfig {
            flavour: cartwright_demo_shop::Flavour::Threads,
            ..ShopConfig::default()
        },
    )
    .await
    .map_err(|source| StartError::Io {
        what: format!("starting the demo shop's Threads storefront on {threads_addr}"),
        source,
    })?;
    let server = Server::start(settings).await?;
    ensure_admin(&server.store).await?;
    seed(&server.store, &shop).await?;
    seed_storefront(&server.store, &threads, &THREADS).await?;
    seed_batches(&server).await?;
    let push_url = seed_goods(&server, &shop).await?;
    shop.shop.market().set_push_url(Some(push_url.clone()));
    keep_orders_coming(shop.shop.market());
    tracing::info!(url = %format!("http://{}/", server.addr), "dashboard ready; sign in as {DEMO_USERNAME}");
    Ok(Demo {
        server,
        shop,
        threads,
        push_url,
    })
}

/// Connects the demo marketplace (once) and seeds the digital products of its catalogue with
/// stock and listings; returns where its pushes go.
pub async fn seed_goods(server: &Server, shop: &RunningShop) -> Result<String, StartError> {
    let store = &server.store;
    let market = shop.shop.market().config().clone();
    let connection = match store
        .connections()
        .await?
        .into_iter()
        .find(|c| c.marketplace == "shopee" && c.shop_id == market.shop_id.to_string())
    {
        Some(c) => {
            // A restarted demo marketplace is a new one: its address and tokens are its own.
            let shop_tokens = shop.shop.market().access_token();
            if store.connection_keys(c.id).await?.access_token != shop_tokens {
                store
                    .set_connection_tokens(
                        c.id,
                        &shop_tokens,
                        &market.refresh_token,
                        time::OffsetDateTime::now_utc() + time::Duration::hours(4),
                    )
                    .await?;
            }
            if c.base_url.trim_end_matches('/') == shop.url().trim_end_matches('/') {
                c
            } else {
                store.set_connection_base_url(c.id, &shop.url()).await?
            }
        }
        None => {
            store
                .create_connection(&cartwright_store::NewConnection {
                    marketplace: "shopee".into(),
                    name: "Demo marketplace shop".into(),
                    shop_id: market.shop_id.to_string(),
                    base_url: shop.url(),
                    partner_id: market.partner_id.to_string(),
                    partner_key: market.partner_key.clone(),
                    access_token: market.access_token.clone(),
                    refresh_token: Some(market.refresh_token.clone()),
                })
                .await?
        }
    };
    let push_url = server.commerce.push_url(connection.id);
    if !store.digital_products().await?.is_empty() {
        return Ok(push_url);
    }
    // Deliveries go to the buyer's marketplace chat (and the buyer's page).
    if store.channels().await?.is_empty() {
        let chat: cartwright_core::channel::NewChannel = serde_json::from_value(
            serde_json::json!({"kind": "chat", "name": "Demo marketplace chat"}),
        )
        .map_err(|e| demo_error("channel", e.to_string()))?;
        store.create_channel(&chat).await?;
    }
    for (i, (sku, name, kind, items)) in DEMO_GOODS.iter().enumerate() {
        let message = match kind {
            ProductKind::Credential => {
                "Hi {{buyer.name}}, thanks for order {{order.number}}!\nYour {{product.name}} account:\nlogin: {{item.login}}\npassword: {{item.password}}\n{{item.notes}}\nAlso on your page: {{delivery.link}}"
            }
            ProductKind::Shared => {
                "Hi {{buyer.name}}, thanks for order {{order.number}}!\nYour course: {{content}}\nAlso on your page: {{delivery.link}}"
            }
            _ => {
                "Hi {{buyer.name}}, thanks for order {{order.number}}!\nYour {{product.name}}: {{item.code}}\nAlso on your page: {{delivery.link}}"
            }
        };
        let product = store
            .create_digital_product(&cartwright_core::digital::NewDigitalProduct {
                sku: Text::parse(sku).map_err(|m| demo_error("sku", m))?,
                name: Text::parse(name).map_err(|m| demo_error("name", m))?,
                kind: *kind,
                message: message.into(),
                content: (*kind == ProductKind::Shared)
                    .then(|| "https://learn.demo.example/excel-basics?invite=DEMO".into()),
                low_stock: if *items > 0 { 5 } else { 0 },
                page: Default::default(),
            })
            .await?;
        if *items > 0 {
            let stock: String = (0..*items)
                .map(|n| match kind {
                    ProductKind::Credential => {
                        format!(
                            "canva.demo{n:02}@mail.demo.example,Pw-{:08x},team seat {n}\n",
                            (i * 7_919 + n) * 104_729
                        )
                    }
                    _ => format!(
                        "{}-{:04X}-{:04X}-{:04X}\n",
                        &sku[..3],
                        (i * 131 + n * 7) % 65_536,
                        (n * 4_099 + 17) % 65_536,
                        (i * 9_973 + n * 31) % 65_536
                    ),
                })
                .collect();
            store.import_stock(product.id, &stock, false).await?;
        }
        store
            .create_listing(connection.id, "", "", sku, product.id, 1)
            .await?;
    }
    Ok(push_url)
}

/// Keeps demo orders coming on the marketplace: a new one every few seconds, paid shortly
/// after (one in six cancelled instead), so deliveries happen live on the dashboard.
fn keep_orders_coming(market: &std::sync::Arc<cartwright_demo_shop::marketplace::Market>) {
    use cartwright_demo_shop::marketplace::Status;
    let market = std::sync::Arc::downgrade(market);
    tokio::spawn(async move {
        let mut n: u64 = 0;
        loop {
            tokio::time::sleep(DEMO_ORDER_EVERY).await;
            let Some(m) = market.upgrade() else {
                return;
            };
            n += 1;
            let order = m.create_order(None, None);
            drop(m);
            let market = market.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(4)).await;
                if let Some(m) = market.upgrade() {
                    let next = if n.is_multiple_of(6) {
                        Status::Cancelled
                    } else {
                        Status::ReadyToShip
                    };
                    m.set_status(&order, next);
                }
            });
        }
    });
}

/// On the first start, two batches for the dashboard to show: one whose orders go through,
/// one whose cap refuses every cart (failures with their screenshots).
pub async fn seed_batches(server: &Server) -> Result<(), StartError> {
    let store = &server.store;
    let page = |n| {
        cartwright_store::PageRequest::number(1, n).map_err(|e| demo_error("page", e.to_string()))
    };
    if store.batches(&page(1)?).await?.total > 0 {
        return Ok(());
    }
    let slug = Slug::parse(DEMO_STOREFRONT).map_err(|m| demo_error("slug", m))?;
    let Some(storefront) = store.storefront_by_slug(&slug).await? else {
        return Ok(());
    };
    let filter = cartwright_store::ProductFilter {
        storefront_id: Some(storefront.id),
        in_stock: Some(true),
        ..Default::default()
    };
    let products = store.products(&filter, page(2)?).await?.items;
    let [first, second] = products.as_slice() else {
        return Ok(());
    };
    for (name, from, to, lines, cap) in [
        (
            "Demo: first orders",
            1,
            6,
            vec![(first.id, 1), (second.id, 2)],
            "100000",
        ),
        ("Demo: cap too low", 7, 9, vec![(first.id, 1)], "1"),
    ] {
        let spec: cartwright_core::batch::NewBatch = serde_json::from_value(serde_json::json!({
            "name": name,
            "accounts": {"storefront_id": storefront.id, "range": {"from": from, "to": to}},
            "lines": lines.iter().map(|(id, q)| serde_json::json!({"product_id": id, "quantity": q})).collect::<Vec<_>>(),
            "max_total": cap,
        }))
        .map_err(|e| demo_error("batch", e.to_string()))?;
        server
            .engine
            .submit_batch(&spec, None)
            .await
            .map_err(|e| demo_error("batch", e.to_string()))?;
    }
    // And the accounts' reward points, for the overview's chart.
    if store.rewards_runs(None, None, 1).await?.is_empty() {
        let run: cartwright_core::rewards::NewRewardsRun =
            serde_json::from_value(serde_json::json!({
                "accounts": {"storefront_id": storefront.id, "range": {"from": 1, "to": DEMO_ACCOUNTS}},
            }))
            .map_err(|e| demo_error("rewards run", e.to_string()))?;
        server.engine.start_rewards_run(&run, None).await?;
    }
    Ok(())
}

fn demo_error(what: &str, message: String) -> StartError {
    StartError::Store(StoreError::Corrupt(format!("demo data: {what}: {message}")))
}

/// Seeds (or refreshes) the demo storefront, accounts, products and addresses.
pub async fn seed(store: &Store, shop: &RunningShop) -> Result<(), StartError> {
    seed_storefront(store, shop, &BEAUTY).await
}

/// Seeds (or refreshes) one storefront of the demo from its shop: the storefront, its
/// accounts signed in, its products (once), and the addresses (once).
pub async fn seed_storefront(
    store: &Store,
    shop: &RunningShop,
    seed: &StorefrontSeed,
) -> Result<(), StartError> {
    let slug = Slug::parse(seed.slug).map_err(|m| demo_error("slug", m))?;
    let base_url =
        HttpUrl::parse(&format!("{}/", shop.url())).map_err(|m| demo_error("shop URL", m))?;
    let storefront = match store.storefront_by_slug(&slug).await? {
        Some(existing) => {
            let patch = StorefrontPatch {
                base_url: Some(base_url.clone()),
                ..StorefrontPatch::default()
            };
            store.update_storefront(existing.id, &patch).await?
        }
        None => {
            store
                .create_storefront(&NewStorefront {
                    slug,
                    name: Text::parse(seed.name).map_err(|m| demo_error("name", m))?,
                    profile: Slug::parse(seed.profile).map_err(|m| demo_error("profile", m))?,
                    base_url: base_url.clone(),
                    currency: Currency::parse("INR").map_err(|m| demo_error("currency", m))?,
                })
                .await?
        }
    };
    let host = storefront.host();

    // Accounts: the shop's first customers, signed in, their session cookies imported.
    let mut rows = Vec::with_capacity(seed.accounts);
    for (i, c) in shop.shop.customers().iter().take(seed.accounts).enumerate() {
        let cookie = shop
            .shop
            .sign_in(c.id)
            .ok_or_else(|| demo_error("sign-in", c.email.clone()))?;
        let jar = CookieJar::parse(&format!("f.session={cookie}"), &host)
            .map_err(|e| demo_error("cookie", e.to_string()))?;
        let batch = if i < seed.accounts / 2 {
            "batch-a"
        } else {
            "batch-b"
        };
        rows.push(AccountRow {
            line: i + 1,
            label: Some(
                Text::parse(&format!("{}-{:02}", seed.slug, i + 1))
                    .map_err(|m| demo_error("label", m))?,
            ),
            name: Some(
                Text::parse(&format!("{} {}", c.first_name, c.last_name))
                    .map_err(|m| demo_error("name", m))?,
            ),
            email: Some(Email::parse(&c.email).map_err(|m| demo_error("email", m))?),
            phone: Some(Phone::parse(&c.phone).map_err(|m| demo_error("phone", m))?),
            tags: Some(
                Tags::parse_list(&format!("demo, {batch}")).map_err(|m| demo_error("tags", m))?,
            ),
            active: None,
            cookies: Some(jar),
        });
    }
    let report = store
        .import_accounts(
            storefront.id,
            ParsedImport {
                rows,
                ..ParsedImport::default()
            },
            ImportOptions::default(),
        )
        .await?;
    if let Some(e) = report.errors.first() {
        return Err(demo_error(
            "accounts",
            format!("line {}: {} {}", e.line, e.field, e.message),
        ));
    }

    // Products and addresses only once: the operator may have changed them since.
    let existing = store
        .products(
            &cartwright_store::ProductFilter {
                storefront_id: Some(storefront.id),
                ..Default::default()
            },
            cartwright_store::PageRequest::number(1, 1)
                .map_err(|e| demo_error("page", e.to_string()))?,
        )
        .await?;
    if existing.total == 0 {
        for (i, p) in shop.shop.products().iter().enumerate() {
            // The first few also in each size of their own (same page, another variant).
            let sizes = if i < 4 { seed.variants } else { &[] };
            for size in std::iter::once(None).chain(sizes.iter().map(Some)) {
                let product = NewProduct {
                    storefront_id: storefront.id,
                    name: Text::parse(&p.name).map_err(|m| demo_error("product", m))?,
                    url: HttpUrl::parse(&format!("{}/{}/{}", shop.url(), seed.path, p.slug))
                        .map_err(|m| demo_error("product URL", m))?,
                    variant: size
                        .map(|s| Text::parse(s))
                        .transpose()
                        .map_err(|m| demo_error("variant", m))?,
                    sku: Some(
                        Text::parse(&format!(
                            "{}-{:04}{}",
                            seed.sku,
                            p.id,
                            size.map(|s| format!("-{}", s.to_uppercase()))
                                .unwrap_or_default()
                        ))
                        .map_err(|m| demo_error("sku", m))?,
                    ),
                    price: Some(Money::from_minor(p.price).map_err(|m| demo_error("price", m))?),
                    brand: Text::parse(&p.brand).ok(),
                    category: Text::parse(&p.category).ok(),
                    in_stock: p.stock > 0,
                    image_url: None,
                };
                store.create_product(&product).await?;
            }
        }
    } else {
        // Same products, new port: point their URLs at the shop as it runs now.
        for page in 1.. {
            let request = cartwright_store::PageRequest::number(page, 100)
                .map_err(|e| demo_error("page", e.to_string()))?;
            let filter = cartwright_store::ProductFilter {
                storefront_id: Some(storefront.id),
                ..Default::default()
            };
            let list = store.products(&filter, request).await?;
            for p in &list.items {
                let marker = format!("/{}/", seed.path);
                let Some(path) = p
                    .url
                    .as_str()
                    .split_once(&marker)
                    .map(|(_, slug)| slug.to_owned())
                else {
                    continue;
                };
                if let Ok(url) = HttpUrl::parse(&format!("{}{marker}{path}", shop.url()))
                    && url != p.url
                {
                    let patch = cartwright_core::catalog::ProductPatch {
                        url: Some(url),
                        ..Default::default()
                    };
                    store.update_product(p.id, &patch).await?;
                }
            }
            if list.items.len() < 100 {
                break;
            }
        }
    }
    if store.addresses().await?.is_empty() {
        for (label, name, line1, street, pincode, city, state, default) in [
            (
                "Mumbai office",
                "Asha Rao",
                "Flat 4, Sea View",
                "Linking Road, Bandra West",
                "400050",
                "Mumbai",
                "Maharashtra",
                true,
            ),
            (
                "Bengaluru home",
                "Dev Iyer",
                "No. 12, 2nd Cross",
                "Indiranagar",
                "560038",
                "Bengaluru",
                "Karnataka",
                false,
            ),
        ] {
            let address = NewAddress {
                label: Text::parse(label).ok(),
                full_name: Text::parse(name).map_err(|m| demo_error("address", m))?,
                line1: Text::parse(line1).map_err(|m| demo_error("address", m))?,
                street: Text::parse(street).ok(),
                landmark: None,
                postcode: Postcode::parse(pincode).map_err(|m| demo_error("address", m))?,
                city: Text::parse(city).map_err(|m| demo_error("address", m))?,
                state: Text::parse(state).map_err(|m| demo_error("address", m))?,
                phone: Phone::parse("9820012345").map_err(|m| demo_error("address", m))?,
                kind: AddressKind::Home,
                is_default: default,
            };
            store.create_address(&address).await?;
        }
    }
    Ok(())
}
