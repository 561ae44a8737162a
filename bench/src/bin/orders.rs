//! `bench/orders`: real orders on the demo shop in Chromium. N orders across M accounts at
//! concurrency K through the engine (one browser, a context per run), then the same work the
//! way the old app did it (a browser per account, at most 3 at once, fixed sleeps: 4 s per
//! page load, 1 s per click, 0.5 s per input, 1.5 s between products, 3 s before checkout).
//! Prints orders per minute, p50/p95 order time and the peak memory (PSS) of the browser
//! process tree for both, and the ratio.

use anyhow::Context;
use cartwright::Settings;
use cartwright_core::batch::{BatchState, NewBatch};
use cartwright_core::storefront::StorefrontPatch;
use cartwright_core::values::Slug;
use cartwright_engine::Engine;
use cartwright_engine::profile::{Action, Phase, Profile, Step};
use cartwright_store::{PageRequest, ProductFilter};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    orders: usize,
    accounts: usize,
    concurrency: usize,
    baseline_orders: usize,
    products: usize,
    /// The browser both modes run; the pool's choice when absent.
    chromium: Option<PathBuf>,
}

struct Figures {
    label: String,
    placed: i64,
    failed: i64,
    elapsed: Duration,
    p50_ms: i64,
    p95_ms: i64,
    peak_mb: f64,
    launches: usize,
}

impl Figures {
    fn per_minute(&self) -> f64 {
        self.placed as f64 / self.elapsed.as_secs_f64() * 60.0
    }

    fn print(&self) {
        println!(
            "{:<9} {:>4} placed {:>3} failed in {:>6.1} s  {:>6.1} orders/min  p50 {:>5.2} s  p95 {:>5.2} s  browser tree peak {:>6.0} MB  ({} Chromium starts)",
            self.label,
            self.placed,
            self.failed,
            self.elapsed.as_secs_f64(),
            self.per_minute(),
            self.p50_ms as f64 / 1000.0,
            self.p95_ms as f64 / 1000.0,
            self.peak_mb,
            self.launches,
        );
    }
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        orders: 60,
        accounts: 20,
        concurrency: 4,
        baseline_orders: 6,
        products: 2,
        chromium: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--chromium" {
            let path = it.next().context("--chromium needs a path")?;
            args.chromium = Some(path.into());
            continue;
        }
        let mut value = || -> anyhow::Result<usize> { Ok(it.next().unwrap_or_default().parse()?) };
        match flag.as_str() {
            "--orders" => args.orders = value()?,
            "--accounts" => args.accounts = value()?,
            "--concurrency" => args.concurrency = value()?,
            "--baseline-orders" => args.baseline_orders = value()?,
            "--products" => args.products = value()?,
            other => anyhow::bail!(
                "unknown flag {other}; flags: --orders N --accounts M --concurrency K --baseline-orders N (0 skips) --products P --chromium PATH"
            ),
        }
    }
    anyhow::ensure!(
        args.orders > 0 && args.accounts > 0 && args.concurrency > 0,
        "N, M and K must be above 0"
    );
    Ok(args)
}

/// The demo profile as the old app ran it: a fixed sleep after every page load, click and
/// input, between products and before checkout.
fn baseline_profile(demo: &Profile) -> Profile {
    let mut p = demo.clone();
    p.name = "demo-baseline".into();
    p.site.pacing.click = Duration::from_secs(1);
    p.site.pacing.input = Duration::from_millis(500);
    fn sleep_after_loads(steps: &[Step]) -> Vec<Step> {
        let mut out = Vec::new();
        for step in steps {
            let mut step = step.clone();
            if let Action::Repeat { steps, .. } = &mut step.action {
                *steps = sleep_after_loads(steps);
            }
            let is_load = matches!(step.action, Action::Goto(_));
            let line = step.line;
            out.push(step);
            if is_load {
                out.push(Step {
                    line,
                    action: Action::Pause(Duration::from_secs(4)),
                    optional: false,
                    timeout: None,
                    if_present: None,
                });
            }
        }
        out
    }
    for steps in p.phases.values_mut() {
        *steps = sleep_after_loads(steps);
    }
    let pause = |d| Step {
        line: 0,
        action: Action::Pause(d),
        optional: false,
        timeout: None,
        if_present: None,
    };
    p.phases
        .entry(Phase::AddItem)
        .or_default()
        .push(pause(Duration::from_millis(1500)));
    p.phases
        .entry(Phase::SetAddress)
        .or_default()
        .insert(0, pause(Duration::from_secs(3)));
    p
}

/// Every process below this one, with their parents.
fn descendants() -> Vec<u32> {
    let me = std::process::id();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The command is in parentheses and may hold spaces: the parent comes after it.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
                continue;
            };
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![me];
    let mut seen = HashSet::new();
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).map_or(&[][..], Vec::as_slice) {
            if seen.insert(child) {
                out.push(child);
                stack.push(child);
            }
        }
    }
    out
}

/// Proportional set size in kB (shared pages split among their users), or RSS when PSS
/// cannot be read.
fn pss_kb(pid: u32) -> u64 {
    let field = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        && let Some(kb) = field(&text, "Pss:")
    {
        return kb;
    }
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| field(&t, "VmRSS:"))
        .unwrap_or(0)
}

/// Samples the browser tree's memory until `stop`; returns the peak in kB. Once a second:
/// reading a renderer's PSS walks its page tables, and at five times a second the sampling
/// took a tenth of the machine from what it measures.
fn sample_memory(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let peak = AtomicU64::new(0);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let total: u64 = descendants().into_iter().map(pss_kb).sum();
            peak.fetch_max(total, Ordering::Relaxed);
            let next = std::time::Instant::now() + Duration::from_secs(1);
            while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < next {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        peak.load(Ordering::Relaxed)
    })
}

async fn run(
    label: &str,
    orders: usize,
    accounts: usize,
    concurrency: usize,
    products: usize,
    baseline: bool,
    chromium: Option<&Path>,
) -> anyhow::Result<Figures> {
    let accounts = accounts.min(orders).max(1);
    let repetitions = orders.div_ceil(accounts);
    let shop = cartwright_demo_shop::start(
        "127.0.0.1:0".parse()?,
        cartwright_demo_shop::ShopConfig {
            customers: accounts.max(2),
            ..Default::default()
        },
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        secret_key: Some("0".repeat(64)),
        ..Settings::default()
    };
    let key = cartwright::secret_key(&settings)?;
    let store = cartwright::open_store(&settings, &key).await?;
    cartwright::demo::seed(&store, &shop).await?;
    let storefront = store.storefronts().await?.remove(0);
    let mut config = settings.engine();
    config.browser.executable = chromium.map(Path::to_path_buf);
    if baseline {
        // A whole browser for every account's run.
        config.browser.recycle_after = 1;
    }
    let engine = Engine::new(store.clone(), config);
    if baseline {
        let demo = engine.profiles().get("demo")?;
        engine.profiles().insert(baseline_profile(&demo));
        let patch = StorefrontPatch {
            profile: Some(Slug::parse("demo-baseline").map_err(anyhow::Error::msg)?),
            ..Default::default()
        };
        store.update_storefront(storefront.id, &patch).await?;
    }
    let in_stock = store
        .products(
            &ProductFilter {
                storefront_id: Some(storefront.id),
                in_stock: Some(true),
                text: None,
            },
            PageRequest::number(1, 50)?,
        )
        .await?;
    let lines: Vec<_> = in_stock
        .items
        .iter()
        .take(products)
        .map(|p| serde_json::json!({"product_id": p.id.get(), "quantity": 1}))
        .collect();
    let spec: NewBatch = serde_json::from_value(serde_json::json!({
        "name": label,
        "accounts": {"storefront_id": storefront.id.get(), "range": {"from": 1, "to": accounts}},
        "lines": lines,
        "repetitions": repetitions,
        "max_total": 10_000_000,
    }))?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_memory(stop.clone());
    let started = Instant::now();
    let batch = engine.submit_batch(&spec, None).await?;
    let workers = engine
        .workers(format!("bench-{label}"), concurrency)
        .start();
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let b = store.batch(batch.id).await?;
        if last.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  {label}: {} placed, {} failed, {} running",
                b.counts.placed,
                b.counts.failed,
                b.counts.running + b.counts.placing
            );
            last = Instant::now();
        }
        if b.state != BatchState::Running {
            break;
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak_kb = sampler.join().unwrap_or(0);
    workers.shutdown(Duration::from_secs(10)).await;
    let launches = engine.browsers().launches();
    engine.shutdown().await;
    let stats = store.batch_stats(batch.id).await?;
    if std::env::var_os("BENCH_PHASES").is_some() {
        let orders = store
            .orders(
                &cartwright_store::OrderFilter {
                    batch: Some(batch.id),
                    ..Default::default()
                },
                &PageRequest::number(1, 500)?,
            )
            .await?;
        let mut sums: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        for o in &orders.items {
            for (phase, ms) in &o.timings {
                let e = sums.entry(phase.clone()).or_default();
                e.0 += ms;
                e.1 += 1;
            }
        }
        for (phase, (ms, n)) in sums {
            eprintln!("  {label} {phase:<16} mean {:>6} ms", ms / n.max(1));
        }
        // The slowest orders, phase by phase: where the tail of the distribution comes from.
        // Their add_item and place lines are kept from the pass over the batch's events below.
        let mut slowest: Vec<_> = orders.items.iter().collect();
        slowest.sort_by_key(|o| std::cmp::Reverse(o.timings.values().sum::<u64>()));
        slowest.truncate(3);
        let mut slow_logs: std::collections::HashMap<_, Vec<String>> =
            slowest.iter().map(|o| (o.id, Vec::new())).collect();
        // Each step's log line ends with "(N ms)": the mean per phase and step.
        let mut steps: std::collections::BTreeMap<(String, String), (String, u64, u64)> =
            Default::default();
        let mut after = None;
        loop {
            let page = store
                .events(&cartwright_store::EventQuery {
                    batch: Some(batch.id),
                    after,
                    limit: 5_000,
                    ..Default::default()
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for e in &page {
                if let Some(lines) = e.order_id.and_then(|id| slow_logs.get_mut(&id))
                    && matches!(e.phase.as_deref(), Some("place" | "add_item"))
                {
                    lines.push(e.message.clone());
                }
                let ms = e
                    .message
                    .rsplit_once(" (")
                    .and_then(|(_, t)| t.strip_suffix(" ms)"))
                    .and_then(|t| t.parse::<u64>().ok());
                if let (Some(phase), Some(step), Some(ms)) = (&e.phase, &e.step, ms) {
                    let what = e.message.chars().take(50).collect();
                    let entry = steps
                        .entry((phase.clone(), step.clone()))
                        .or_insert((what, 0, 0));
                    entry.1 += ms;
                    entry.2 += 1;
                }
            }
        }
        for o in &slowest {
            let phases: Vec<String> = o
                .timings
                .iter()
                .map(|(p, ms)| format!("{p} {ms}"))
                .collect();
            eprintln!(
                "  slow order {}: {} ms: {}",
                o.id,
                o.timings.values().sum::<u64>(),
                phases.join(", ")
            );
            for line in slow_logs.get(&o.id).into_iter().flatten() {
                eprintln!("      {line}");
            }
        }
        let seen: serde_json::Value = reqwest::get(format!("{}/_control/requests", shop.url()))
            .await?
            .json()
            .await?;
        let total = seen["total"].as_u64().unwrap_or(0);
        eprintln!(
            "  the shop saw {total} requests, {:.1} per order",
            total as f64 / orders.items.len().max(1) as f64
        );
        if let Some(counts) = seen["counts"].as_object() {
            let mut by_path: Vec<_> = counts.iter().collect();
            by_path.sort_by_key(|(_, n)| std::cmp::Reverse(n.as_u64()));
            for (path, n) in by_path.iter().take(20) {
                eprintln!("    {n:>5} {path}");
            }
        }
        for ((phase, step), (what, ms, n)) in steps {
            eprintln!(
                "  {phase:<16} {step:<6} mean {:>5} ms  {what}",
                ms / n.max(1)
            );
        }
    }
    store.close().await;
    shop.stop().await?;
    Ok(Figures {
        label: label.into(),
        placed: stats.counts.placed,
        failed: stats.counts.failed,
        elapsed,
        p50_ms: stats.duration_p50_ms.unwrap_or(0),
        p95_ms: stats.duration_p95_ms.unwrap_or(0),
        peak_mb: peak_kb as f64 / 1024.0,
        launches,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    // RUST_LOG shows the engine's and chromiumoxide's logs (every DevTools message at trace).
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    println!(
        "bench/orders: {} orders across {} accounts ({} product lines each), concurrency {}, on {} cores, in {}",
        args.orders,
        args.accounts.min(args.orders),
        args.products,
        args.concurrency,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        cartwright_engine::browser::find_executable(args.chromium.as_deref())?.display()
    );
    let engine = run(
        "engine",
        args.orders,
        args.accounts,
        args.concurrency,
        args.products,
        false,
        args.chromium.as_deref(),
    )
    .await?;
    engine.print();
    if args.baseline_orders > 0 {
        let baseline = run(
            "baseline",
            args.baseline_orders,
            args.baseline_orders,
            3,
            args.products,
            true,
            args.chromium.as_deref(),
        )
        .await?;
        baseline.print();
        println!(
            "ratio     {:.1}× the baseline's orders per minute",
            engine.per_minute() / baseline.per_minute()
        );
    }
    Ok(())
}
