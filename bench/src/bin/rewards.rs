//! `bench/rewards`: rewards checks of N accounts on the demo shop (in this process) through
//! the engine: accounts/s with no rate limit, then the achieved rate under a limit (and the
//! busiest second, which must not pass it), then the old app's way on a few accounts (a whole
//! browser per account, 3 at once, a 3 s warm-up and a 3 s sleep each) and the ratio.

use cartwright::Settings;
use cartwright_core::account_csv::{AccountRow, ParsedImport};
use cartwright_core::cookies::CookieJar;
use cartwright_core::rewards::{NewRewardsRun, RunState};
use cartwright_core::values::{Email, Text};
use cartwright_engine::Engine;
use cartwright_engine::browser::SessionOptions;
use cartwright_store::ImportOptions;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    accounts: usize,
    concurrency: u32,
    rate: f64,
    baseline: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        accounts: 10_000,
        concurrency: 64,
        rate: 1_000.0,
        baseline: 30,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--accounts" => args.accounts = value.parse()?,
            "--concurrency" => args.concurrency = value.parse()?,
            "--rate" => args.rate = value.parse()?,
            "--baseline" => args.baseline = value.parse()?,
            other => anyhow::bail!(
                "unknown flag {other}; flags: --accounts N --concurrency K --rate R (0 skips) --baseline N (0 skips)"
            ),
        }
    }
    anyhow::ensure!(args.accounts > 0, "--accounts must be above 0");
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let shop = cartwright_demo_shop::start(
        "127.0.0.1:0".parse()?,
        cartwright_demo_shop::ShopConfig {
            customers: args.accounts.max(args.baseline),
            rotate_every: 0,
            ..Default::default()
        },
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        secret_key: Some("0".repeat(64)),
        database_url: std::env::var("CARTWRIGHT_BENCH_DATABASE_URL").ok(),
        ..Settings::default()
    };
    let key = cartwright::secret_key(&settings)?;
    let store = cartwright::open_store(&settings, &key).await?;
    cartwright::demo::seed(&store, &shop).await?;
    let storefront = store.storefronts().await?.remove(0);
    let host = storefront.host();
    // Every customer of the shop as an account, signed in.
    let mut rows = Vec::with_capacity(args.accounts);
    for (i, c) in shop.shop.customers().iter().enumerate() {
        let Some(cookie) = shop.shop.sign_in(c.id) else {
            anyhow::bail!("the shop would not sign in {}", c.email);
        };
        rows.push(AccountRow {
            line: i + 1,
            label: Text::parse(&format!("bench-{:05}", i + 1)).ok(),
            name: None,
            email: Some(Email::parse(&c.email).map_err(anyhow::Error::msg)?),
            phone: None,
            tags: None,
            active: None,
            cookies: Some(CookieJar::parse(&format!("f.session={cookie}"), &host)?),
        });
    }
    let loaded = Instant::now();
    store
        .import_accounts(
            storefront.id,
            ParsedImport {
                rows,
                ..ParsedImport::default()
            },
            ImportOptions::default(),
        )
        .await?;
    eprintln!(
        "bench/rewards: {} accounts loaded in {:.1} s on {:?}",
        args.accounts,
        loaded.elapsed().as_secs_f64(),
        store.backend()
    );
    let engine = Engine::new(store.clone(), settings.engine());
    // The demo profile without its per-domain limit: the run's own limit is what is measured.
    let mut profile = (*engine.profiles().get("demo")?).clone();
    profile.site.rate_limit = 1.0e9;
    engine.profiles().insert(profile);
    let workers = engine.workers("bench", 1).start();

    let run = |to: usize, rate: Option<f64>| NewRewardsRun {
        accounts: serde_json::from_value(serde_json::json!({
            "storefront_id": storefront.id.get(), "range": {"from": 1, "to": to}
        }))
        .unwrap_or_else(|_| unreachable!("a literal selection")),
        concurrency: Some(args.concurrency),
        rate_limit: rate,
    };
    let wait = async |id| -> anyhow::Result<cartwright_core::rewards::RewardsRun> {
        loop {
            let r = store.rewards_run(id).await?;
            if r.state != RunState::Running {
                return Ok(r);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };

    let started = Instant::now();
    let done = wait(
        engine
            .start_rewards_run(&run(args.accounts, None), None)
            .await?
            .id,
    )
    .await?;
    let wall = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        done.ok == done.total,
        "not every check read points: {done:?}"
    );
    let unlimited = done.checked as f64 / wall;
    println!(
        "engine    {:>6} accounts in {:>6.2} s  {:>8.0} accounts/s  (concurrency {}, no rate limit)",
        done.checked, wall, unlimited, args.concurrency
    );

    if args.rate > 0.0 {
        let n = ((args.rate * 8.0) as usize).clamp(1, args.accounts);
        let before = shop_requests(&shop).await?.len();
        let started = Instant::now();
        let done = wait(
            engine
                .start_rewards_run(&run(n, Some(args.rate)), None)
                .await?
                .id,
        )
        .await?;
        let wall = started.elapsed().as_secs_f64();
        let mut at: Vec<u64> = shop_requests(&shop).await?.split_off(before);
        at.sort_unstable();
        let busiest = at
            .iter()
            .enumerate()
            .map(|(i, start)| at[i..].iter().take_while(|t| **t < start + 1000).count())
            .max()
            .unwrap_or(0);
        // From the first request to the last: n requests span n - 1 intervals.
        let span =
            (at.last().copied().unwrap_or(0) - at.first().copied().unwrap_or(0)) as f64 / 1000.0;
        let achieved = (at.len().saturating_sub(1)) as f64 / span.max(1e-9);
        println!(
            "limited   {:>6} accounts in {:>6.2} s  {:>8.1} requests/s at a limit of {} ({:+.1}%), busiest second {} requests",
            done.checked,
            wall,
            achieved,
            args.rate,
            (achieved / args.rate - 1.0) * 100.0,
            busiest
        );
    }
    workers.shutdown(Duration::from_secs(5)).await;

    if args.baseline > 0 {
        let per_second = baseline(&engine, &shop, &host, args.baseline).await?;
        println!(
            "baseline  {:>6} accounts                {:>8.3} accounts/s  (a browser per account, 3 at once, 3 s warm-up + 3 s sleep)",
            args.baseline, per_second
        );
        println!("ratio     {:.0}x", unlimited / per_second);
    }
    engine.shutdown().await;
    store.close().await;
    Ok(())
}

/// When the shop saw each request, in milliseconds since it started.
async fn shop_requests(shop: &cartwright_demo_shop::RunningShop) -> anyhow::Result<Vec<u64>> {
    let log: serde_json::Value = reqwest::get(format!("{}/_control/requests", shop.url()))
        .await?
        .json()
        .await?;
    Ok(log["requests"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| {
                    r["path"]
                        .as_str()
                        .is_some_and(|p| p.contains("reward-engine"))
                })
                .filter_map(|r| r["at_ms"].as_u64())
                .collect()
        })
        .unwrap_or_default())
}

/// The old app's way: a whole browser per account, at most 3 at once; load the home page,
/// sleep 3 s, load the rewards endpoint, sleep 3 s.
async fn baseline(
    engine: &Arc<Engine>,
    shop: &cartwright_demo_shop::RunningShop,
    host: &str,
    n: usize,
) -> anyhow::Result<f64> {
    let mut config = cartwright::Settings::default().engine().browser;
    config.recycle_after = 1;
    let pool = Arc::new(cartwright_engine::browser::BrowserPool::new(
        config,
        engine.limiter().clone(),
    ));
    let permits = Arc::new(tokio::sync::Semaphore::new(3));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in shop.shop.customers().iter().take(n) {
        let Some(value) = shop.shop.sign_in(c.id) else {
            anyhow::bail!("the shop would not sign in {}", c.email);
        };
        let jar = CookieJar::parse(&format!("f.session={value}"), host)?;
        let (pool, permits, base) = (pool.clone(), permits.clone(), shop.url());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let session = pool
                .session(SessionOptions {
                    cookies: jar.cookies().to_vec(),
                    proxy: None,
                    call_timeout: Duration::from_secs(30),
                })
                .await?;
            let limit = Duration::from_secs(30);
            session.goto(&format!("{base}/"), limit).await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            session
                .goto(
                    &format!("{base}/ext/reward-engine/application/api/v1.0/user/account"),
                    limit,
                )
                .await?;
            let html = session.html().await?;
            anyhow::ensure!(html.contains("available"), "no points on the page");
            tokio::time::sleep(Duration::from_secs(3)).await;
            session.close().await;
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let per_second = n as f64 / started.elapsed().as_secs_f64();
    pool.shutdown().await;
    Ok(per_second)
}
