//! `bench/demo-shop`: the demo shop must never be what limits a benchmark. Prints requests/s
//! and latency on a simple page (the home page, signed out) and on the rewards API (each
//! connection signed in as its own customer), at 64 connections.

use cartwright_bench::{LoadReport, load};
use cartwright_demo_shop::ShopConfig;
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONNECTIONS: usize = 64;

fn print(what: &str, seconds: u64, r: &LoadReport) {
    println!(
        "demo-shop bench: {what}, {CONNECTIONS} connections, {seconds}s: {:.0} requests/s, \
         p50 {:.2} ms, p99 {:.2} ms, {} errors of {}",
        r.rate(),
        r.percentile_ms(50.0),
        r.percentile_ms(99.0),
        r.errors,
        r.requests
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    // Sessions are not rotated here: the load generator does not keep refreshed cookies.
    let config = ShopConfig {
        customers: CONNECTIONS,
        rotate_every: 0,
        ..ShopConfig::default()
    };
    let shop = cartwright_demo_shop::start("127.0.0.1:0".parse()?, config).await?;
    let (warmup, duration) = (Duration::from_secs(2), Duration::from_secs(seconds));

    let page = load(shop.addr, CONNECTIONS, warmup, duration, |_| {
        (vec![], Box::new(|_: &[u8]| "/".to_owned()))
    })
    .await?;
    print("GET / (home page, signed out)", seconds, &page);

    let cookies: Vec<String> = (1..=CONNECTIONS as u32)
        .filter_map(|id| shop.shop.sign_in(id))
        .collect();
    let rewards = load(shop.addr, CONNECTIONS, warmup, duration, |c| {
        let headers = vec![(
            "cookie",
            format!("f.session={}", cookies[c % cookies.len()]),
        )];
        (
            headers,
            Box::new(|_: &[u8]| "/ext/reward-engine/application/api/v1.0/user/account".to_owned()),
        )
    })
    .await?;
    print("GET rewards API (signed in)", seconds, &rewards);
    shop.stop().await?;
    Ok(())
}
