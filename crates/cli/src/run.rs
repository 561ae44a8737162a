//! `cartwright run`: submits a batch from the command line, runs it with this process's
//! workers (beside any others on the same database), shows its progress and ends with a
//! summary. Ctrl-C stops the batch cleanly: waiting orders are cancelled, running ones stop
//! after their current step, an order being placed completes.

use crate::{Settings, StartError};
use cartwright_core::batch::{BatchState, CartLine, CouponPolicy, NewBatch, Payment};
use cartwright_core::ids::{AddressId, ProductId};
use cartwright_core::money::Money;
use cartwright_core::order::{Level, Order, OrderState};
use cartwright_core::selection::{SelectBy, SelectionRequest};
use cartwright_core::values::{Slug, Text};
use cartwright_engine::{Engine, EventFilter};
use cartwright_store::{OrderFilter, PageRequest, ProductFilter, Store};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// What `cartwright run` (and `profile rehearse`) was asked.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Storefront by slug (default: the only one, or the one using --profile).
    #[arg(long)]
    pub storefront: Option<String>,
    /// Storefront by the name of its profile.
    #[arg(long)]
    pub profile: Option<String>,
    /// Accounts: positions `1-20`, `7`, `ids:3,9,12` or `tag:NAME`.
    #[arg(long)]
    pub accounts: String,
    /// A product: `id:N`, `sku:CODE`, or a bare SKU or URL (a SKU wins over an id; a bare
    /// number that is no SKU is an id), optionally `:QTY`; repeat for more lines.
    #[arg(long = "product", required = true)]
    pub products: Vec<String>,
    /// Units of each product given without `:QTY`.
    #[arg(long, default_value_t = 1)]
    pub qty: u32,
    /// `default` or an address id.
    #[arg(long, default_value = "default")]
    pub address: String,
    /// Coupon policy: none, first, best or required.
    #[arg(long, default_value = "none")]
    pub coupon: String,
    /// A coupon code to type in (the profile's `[coupons] code` steps); an order whose
    /// code the storefront refuses is not placed.
    #[arg(long)]
    pub coupon_code: Option<String>,
    /// The shipping method, as the storefront labels it (default: the profile's).
    #[arg(long)]
    pub shipping: Option<String>,
    /// No order is placed above this total (e.g. 1500 or 1499.50).
    #[arg(long)]
    pub max_total: String,
    /// Orders per account.
    #[arg(long, default_value_t = 1)]
    pub repetitions: u32,
    /// `cod` (cash on delivery) or `saved:LABEL` (a method the site keeps for the account).
    #[arg(long, default_value = "cod")]
    pub payment: String,
    /// Leave what is already in each cart.
    #[arg(long)]
    pub keep_cart: bool,
    /// Delete each account's saved addresses first.
    #[arg(long)]
    pub clear_addresses: bool,
    /// Most runs of one order before it fails (default: the `max_runs` setting); kept with
    /// the batch, whichever process runs it.
    #[arg(long)]
    pub max_runs: Option<u32>,
    /// Browser runs at once (default: the `workers` setting).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// A name for the batch.
    #[arg(long)]
    pub name: Option<String>,
}

/// Why `run` stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An argument is wrong.
    #[error("{0}")]
    Usage(String),
    /// Start-up failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] cartwright_store::StoreError),
}

pub(crate) fn usage(message: impl Into<String>) -> RunError {
    RunError::Usage(message.into())
}

/// How a run ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every order was placed.
    AllPlaced,
    /// Some orders did not get placed (failed, skipped, cancelled).
    SomeNotPlaced,
}

async fn storefront(
    store: &Store,
    args: &RunArgs,
) -> Result<cartwright_core::storefront::Storefront, RunError> {
    pick_storefront(store, args.storefront.as_deref(), args.profile.as_deref()).await
}

/// The storefront named by `--storefront SLUG`, or the one using `--profile NAME`, or the
/// only one.
pub(crate) async fn pick_storefront(
    store: &Store,
    slug: Option<&str>,
    profile: Option<&str>,
) -> Result<cartwright_core::storefront::Storefront, RunError> {
    let all = store.storefronts().await?;
    if let Some(slug) = slug {
        let slug = Slug::parse(slug).map_err(|m| usage(format!("--storefront {m}")))?;
        return store
            .storefront_by_slug(&slug)
            .await?
            .ok_or_else(|| usage(format!("--storefront: no storefront is called {slug}")));
    }
    let matching: Vec<_> = all
        .into_iter()
        .filter(|s| profile.is_none_or(|p| s.profile.as_str() == p))
        .collect();
    match matching.len() {
        1 => Ok(matching
            .into_iter()
            .next()
            .ok_or_else(|| usage("no storefront"))?),
        0 => Err(usage(match profile {
            Some(p) => format!("--profile: no storefront uses the profile {p}"),
            None => "there is no storefront yet: add one (or run `cartwright demo`)".into(),
        })),
        _ => Err(usage(
            "several storefronts match: name one with --storefront SLUG",
        )),
    }
}

/// How a `--product` names its product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProductKey {
    /// `id:N`.
    Id,
    /// `sku:CODE`.
    Sku,
    /// No prefix: a SKU or URL first, then a number as an id.
    Any,
}

/// Splits `--product` into how it names the product, what it names, and its quantity:
/// `id:N`, `sku:CODE` or a bare SKU, URL or id, each optionally `:QTY` (only a trailing
/// `:digits` is a quantity, so `https://` and `sku:123` stay whole).
fn product_arg(given: &str) -> Result<(ProductKey, &str, Option<u32>), RunError> {
    let (key, rest) = match given.split_once(':') {
        Some(("id", rest)) => (ProductKey::Id, rest),
        Some(("sku", rest)) => (ProductKey::Sku, rest),
        _ => (ProductKey::Any, given),
    };
    let (what, qty) = match rest.rsplit_once(':') {
        Some((what, q)) if !q.is_empty() && q.chars().all(|c| c.is_ascii_digit()) => (
            what,
            Some(
                q.parse()
                    .map_err(|_| usage(format!("--product {given}: bad quantity")))?,
            ),
        ),
        _ => (rest, None),
    };
    if what.is_empty() {
        return Err(usage(format!("--product {given}: names no product")));
    }
    Ok((key, what, qty))
}

async fn product(
    store: &Store,
    storefront: cartwright_core::ids::StorefrontId,
    key: ProductKey,
    given: &str,
) -> Result<ProductId, RunError> {
    let by_id = |id: i64| async move {
        match store.product(ProductId(id)).await {
            Ok(p) if p.storefront_id == storefront => Ok(p.id),
            Ok(_) | Err(cartwright_store::StoreError::NotFound { .. }) => Err(usage(format!(
                "--product id:{id}: this storefront has no product with this id"
            ))),
            Err(e) => Err(e.into()),
        }
    };
    if key == ProductKey::Id {
        let id = given
            .parse::<i64>()
            .map_err(|_| usage(format!("--product id:{given}: an id is a number")))?;
        return by_id(id).await;
    }
    if key == ProductKey::Any
        && let Some(p) = store.product_by_url(storefront, given).await?
    {
        return Ok(p.id);
    }
    let filter = ProductFilter {
        storefront_id: Some(storefront),
        in_stock: None,
        text: Some(given.to_owned()),
    };
    let page = store
        .products(
            &filter,
            PageRequest::number(1, 50).map_err(|e| usage(e.to_string()))?,
        )
        .await?;
    let exact: Vec<_> = page
        .items
        .iter()
        .filter(|p| p.sku.as_ref().is_some_and(|s| s.as_str() == given))
        .collect();
    match exact.as_slice() {
        [one] => Ok(one.id),
        [] if key == ProductKey::Sku => Err(usage(format!(
            "--product sku:{given}: no product has this SKU"
        ))),
        [] => match given.parse::<i64>() {
            Ok(id) => by_id(id).await,
            Err(_) => Err(usage(format!(
                "--product {given}: no product has this SKU or URL"
            ))),
        },
        _ => Err(usage(format!(
            "--product {given}: several products match; use id:N"
        ))),
    }
}

/// The selection `--accounts` describes: `1-20`, `7`, `ids:3,9`, `tag:vip`.
pub(crate) fn selection(
    storefront: cartwright_core::ids::StorefrontId,
    given: &str,
) -> Result<SelectionRequest, RunError> {
    let by = SelectBy::parse(given).map_err(|e| usage(format!("--accounts {}", e.message)))?;
    let mut accounts = SelectionRequest {
        storefront_id: storefront,
        range: None,
        ids: None,
        tag: None,
    };
    match by {
        SelectBy::Range { from, to } => {
            accounts.range = Some(cartwright_core::selection::PositionRange { from, to })
        }
        SelectBy::Ids { ids } => accounts.ids = Some(ids),
        SelectBy::Tag { tag } => accounts.tag = Some(tag),
    }
    Ok(accounts)
}

/// A progress bar of `len` steps drawn with `template` on standard error.
pub(crate) fn progress_bar(len: i64, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(u64::try_from(len).unwrap_or(0));
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Builds the batch the arguments describe.
pub async fn batch_from(store: &Store, args: &RunArgs) -> Result<NewBatch, RunError> {
    let storefront = storefront(store, args).await?;
    let accounts = selection(storefront.id, &args.accounts)?;
    if args.products.is_empty() {
        return Err(usage(
            "--product: give at least one product (id:N, sku:CODE, a SKU or a URL, optionally :QTY)",
        ));
    }
    let mut lines = Vec::new();
    for given in &args.products {
        let (key, what, qty) = product_arg(given)?;
        lines.push(CartLine {
            product_id: product(store, storefront.id, key, what).await?,
            quantity: qty.unwrap_or(args.qty),
        });
    }
    let address_id = match args.address.as_str() {
        "default" => None,
        id => Some(AddressId(id.parse().map_err(|_| {
            usage("--address must be `default` or an address id")
        })?)),
    };
    let coupon: CouponPolicy = args
        .coupon
        .parse()
        .map_err(|m: String| usage(format!("--coupon: {m}")))?;
    let text = |flag: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(Text::parse)
            .transpose()
            .map_err(|m| usage(format!("{flag} {m}")))
    };
    let coupon_code = text("--coupon-code", &args.coupon_code)?;
    let shipping = text("--shipping", &args.shipping)?;
    let max_total = Money::parse(&args.max_total).map_err(|m| usage(format!("--max-total {m}")))?;
    let payment = match args.payment.as_str() {
        "cod" | "cash_on_delivery" => Payment::CashOnDelivery,
        other => match other.strip_prefix("saved:") {
            Some(label) => Payment::Saved {
                label: Text::parse(label).map_err(|m| usage(format!("--payment {m}")))?,
            },
            None => {
                return Err(usage(
                    "--payment must be cod or saved:LABEL (card numbers are never taken)",
                ));
            }
        },
    };
    let name = args
        .name
        .as_deref()
        .map(Text::parse)
        .transpose()
        .map_err(|m| usage(format!("--name {m}")))?;
    Ok(NewBatch {
        name,
        accounts,
        lines,
        repetitions: args.repetitions,
        address_id,
        payment,
        coupon,
        coupon_code,
        shipping,
        max_total,
        clear_cart: !args.keep_cart,
        clear_addresses: args.clear_addresses,
        max_runs: args.max_runs,
    })
}

/// Runs the batch to its end, showing progress on standard error.
pub async fn run(settings: &Settings, args: RunArgs) -> Result<RunOutcome, RunError> {
    let key = crate::secret_key(settings)?;
    let store = crate::open_store(settings, &key).await?;
    let engine = Engine::new(store.clone(), settings.engine());
    let spec = batch_from(&store, &args).await?;
    let batch = engine
        .submit_batch(&spec, None)
        .await
        .map_err(|e| match e {
            cartwright_engine::BatchError::Store(e) => e.into(),
            e => usage(e.to_string()),
        })?;
    let mut worker_settings = settings.clone();
    worker_settings.workers = args.concurrency.unwrap_or(settings.workers).max(1);
    let workers = crate::start_workers(
        &worker_settings,
        &engine,
        &cartwright_commerce::Commerce::new(store.clone(), settings.commerce(settings.listen)),
    )
    .await?;
    eprintln!(
        "batch {} : {} orders ({} accounts × {}); this process runs {} at once (workers of other processes on the same database take its orders too)",
        batch.id,
        batch.counts.total,
        batch.counts.total / i64::from(spec.repetitions.max(1)),
        spec.repetitions,
        worker_settings.workers
    );
    let bar = progress_bar(
        batch.counts.total,
        "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
    );
    // Results and problems as they happen, above the bar.
    let lines = {
        let bar = bar.clone();
        let mut events = Box::pin(engine.events().stream(
            EventFilter {
                batch: Some(batch.id),
                min_level: Some(Level::Info),
                ..Default::default()
            },
            None,
        ));
        tokio::spawn(async move {
            while let Some(e) = events.next().await {
                let placed = e.message.starts_with("placed order");
                if e.level >= Level::Warn || placed {
                    let order = e
                        .order_id
                        .map(|o| format!("order {o}: "))
                        .unwrap_or_default();
                    bar.println(format!("{:5} {order}{}", e.level.as_str(), e.message));
                }
            }
        })
    };
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = &mut ctrl_c => {
                if stopping {
                    bar.abandon_with_message("quit: unfinished orders are picked up by the next worker");
                    workers.abandon().await;
                    return Ok(RunOutcome::SomeNotPlaced);
                }
                stopping = true;
                bar.println("stopping: waiting orders are cancelled; running ones finish their step (Ctrl-C again to quit at once)");
                if let Err(e) = engine.stop_batch(batch.id).await {
                    bar.println(format!("could not stop the batch: {e}"));
                }
                ctrl_c.set(tokio::signal::ctrl_c());
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let now = store.batch(batch.id).await?;
        let c = now.counts;
        bar.set_position(
            u64::try_from(c.placed + c.failed + c.cancelled + c.skipped + c.unresolved)
                .unwrap_or(0),
        );
        bar.set_message(format!(
            "placed {} failed {} running {}{}{}",
            c.placed,
            c.failed,
            c.running,
            if c.placing > 0 {
                format!(" settling {}", c.placing)
            } else {
                String::new()
            },
            if c.unresolved > 0 {
                format!(" NEED A PERSON {}", c.unresolved)
            } else {
                String::new()
            }
        ));
        let idle = c.running + c.placing == 0;
        if now.state == BatchState::Finished || (now.state != BatchState::Running && idle) {
            break;
        }
    }
    bar.finish_and_clear();
    workers.shutdown(crate::SHUTDOWN_GRACE).await;
    engine.shutdown().await;
    lines.abort();
    let orders = all_orders(&store, batch.id).await?;
    let stats = store.batch_stats(batch.id).await?;
    print_summary(&orders);
    let c = stats.counts;
    println!(
        "\nbatch {}: {} placed, {} failed, {} cancelled, {} skipped; placed value {}; median order {}",
        batch.id,
        c.placed,
        c.failed,
        c.cancelled,
        c.skipped,
        minor(Some(stats.placed_total_minor)),
        stats
            .duration_p50_ms
            .map_or("-".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
    );
    let settled: Vec<String> = orders
        .iter()
        .filter(|o| o.state == OrderState::Placed && o.settling.is_some())
        .map(|o| o.id.to_string())
        .collect();
    if !settled.is_empty() {
        println!(
            "{} placed order(s) had no confirmation and were found in the storefront's order history: {}",
            settled.len(),
            settled.join(", ")
        );
    }
    if c.unresolved > 0 {
        println!(
            "{} order(s) need a person: their final click went out and the storefront's order history cannot say whether they were placed. Check those accounts' orders on the storefront and settle each on its page (dashboard) or with POST /api/v1/orders/ID/resolve. None is clicked again by itself.",
            c.unresolved
        );
    }
    if let Some(reason) = store.batch(batch.id).await?.pause_reason {
        println!("the batch is paused: {reason}");
    }
    store.close().await;
    Ok(if c.placed == c.total {
        RunOutcome::AllPlaced
    } else {
        RunOutcome::SomeNotPlaced
    })
}

async fn all_orders(
    store: &Store,
    batch: cartwright_core::ids::BatchId,
) -> Result<Vec<Order>, RunError> {
    let filter = OrderFilter {
        batch: Some(batch),
        ..Default::default()
    };
    let mut page = PageRequest::number(1, 500).map_err(|e| usage(e.to_string()))?;
    let mut out = Vec::new();
    loop {
        let chunk = store.orders(&filter, &page).await?;
        out.extend(chunk.items);
        match chunk.next_cursor {
            Some(c) => page = PageRequest::after(&c, 500).map_err(|e| usage(e.to_string()))?,
            None => return Ok(out),
        }
    }
}

fn minor(m: Option<i64>) -> String {
    m.map_or_else(|| "-".into(), cartwright_core::money::show_minor)
}

/// The summary table: one row per order.
pub fn print_summary(orders: &[Order]) {
    let rows: Vec<[String; 6]> = orders
        .iter()
        .map(|o| {
            [
                o.id.to_string(),
                o.account
                    .clone()
                    .unwrap_or_else(|| o.account_id.to_string()),
                o.state.as_str().to_owned(),
                o.order_number.clone().unwrap_or_else(|| "-".into()),
                minor(o.total_minor),
                match o.state {
                    OrderState::Placed => {
                        let coupon = o.coupon.as_ref().map(|c| format!("coupon {c}"));
                        let settled = o
                            .settling
                            .as_ref()
                            .map(|s| format!("settled from the order history ({})", s.why));
                        let mut m = [coupon, settled]
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>()
                            .join("; ");
                        if m.chars().count() > 70 {
                            m = m.chars().take(69).collect::<String>() + "…";
                        }
                        m
                    }
                    _ => {
                        let class = o
                            .error_class
                            .map(|c| format!("[{}] ", c.as_str()))
                            .unwrap_or_default();
                        let mut m =
                            format!("{class}{}", o.error_message.clone().unwrap_or_default());
                        if m.chars().count() > 70 {
                            m = m.chars().take(69).collect::<String>() + "…";
                        }
                        m
                    }
                },
            ]
        })
        .collect();
    let head = ["order", "account", "state", "number", "total", "note"];
    let mut widths = head.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!("{}", line(head));
    for row in &rows {
        println!(
            "{}",
            line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]].map(String::as_str))
        );
    }
}

/// `cartwright worker`: runs jobs from the shared database until stopped.
pub async fn worker(
    settings: &Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let key = crate::secret_key(settings)?;
    let store = crate::open_store(settings, &key).await?;
    let engine: Arc<Engine> = Engine::new(store.clone(), settings.engine());
    let workers = crate::start_workers(
        settings,
        &engine,
        &cartwright_commerce::Commerce::new(store.clone(), settings.commerce(settings.listen)),
    )
    .await?;
    eprintln!(
        "worker {} running {} browser jobs at once; stop with Ctrl-C",
        settings.node(),
        settings.workers.max(1)
    );
    shutdown.await;
    tracing::info!(
        "stopping: running orders get {:?} to finish",
        crate::SHUTDOWN_GRACE
    );
    workers.shutdown(crate::SHUTDOWN_GRACE).await;
    engine.shutdown().await;
    store.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartwright_core::catalog::NewProduct;
    use cartwright_core::storefront::{Currency, NewStorefront};
    use cartwright_core::values::HttpUrl;

    #[test]
    fn product_arguments_split_prefix_name_and_quantity() {
        let key = |s| product_arg(s).map_err(|e| e.to_string());
        assert_eq!(
            key("40450002:2"),
            Ok((ProductKey::Any, "40450002", Some(2)))
        );
        assert_eq!(key("sku:123"), Ok((ProductKey::Sku, "123", None)));
        assert_eq!(key("sku:123:4"), Ok((ProductKey::Sku, "123", Some(4))));
        assert_eq!(key("id:7"), Ok((ProductKey::Id, "7", None)));
        assert_eq!(
            key("https://shop.example/p/kohl:3"),
            Ok((ProductKey::Any, "https://shop.example/p/kohl", Some(3)))
        );
        assert!(key("sku::2").unwrap_err().contains("names no product"));
    }

    #[tokio::test]
    async fn a_numeric_sku_wins_over_an_id_and_prefixes_say_which_is_meant() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(
            &cartwright_store::DbSettings {
                url: format!("sqlite://{}", dir.path().join("t.db").display()),
                max_connections: 2,
            },
            &cartwright_store::SecretKey::generate(),
        )
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let storefront = store
            .create_storefront(&NewStorefront {
                slug: Slug::parse("shop").unwrap(),
                name: Text::parse("Shop").unwrap(),
                profile: Slug::parse("demo").unwrap(),
                base_url: HttpUrl::parse("https://shop.example/").unwrap(),
                currency: Currency::parse("INR").unwrap(),
            })
            .await
            .unwrap()
            .id;
        let add = |name: &str, sku: Option<String>| NewProduct {
            storefront_id: storefront,
            name: Text::parse(name).unwrap(),
            url: HttpUrl::parse(&format!("https://shop.example/p/{name}")).unwrap(),
            variant: None,
            sku: sku.map(|s| Text::parse(&s).unwrap()),
            price: None,
            brand: None,
            category: None,
            in_stock: true,
            image_url: None,
        };
        let first = store.create_product(&add("kohl", None)).await.unwrap().id;
        // A SKU that reads as the first product's id.
        let numeric = store
            .create_product(&add("rose", Some(first.get().to_string())))
            .await
            .unwrap()
            .id;
        let find = |given: String| {
            let store = store.clone();
            async move {
                let (key, what, _) = product_arg(&given)?;
                product(&store, storefront, key, what).await
            }
        };
        let n = first.get();
        assert_eq!(find(n.to_string()).await.unwrap(), numeric, "a SKU wins");
        assert_eq!(find(format!("id:{n}")).await.unwrap(), first);
        assert_eq!(find(format!("sku:{n}:2")).await.unwrap(), numeric);
        assert_eq!(
            find("https://shop.example/p/kohl".into()).await.unwrap(),
            first
        );
        assert!(
            find("id:999".into())
                .await
                .unwrap_err()
                .to_string()
                .contains("no product with this id")
        );
        assert!(
            find("sku:NOPE".into())
                .await
                .unwrap_err()
                .to_string()
                .contains("no product has this SKU")
        );
    }
}
