//! Exactly-once delivery through real workers: 200 paid orders for a product with 150 items,
//! delivered by three nodes' workers (one dies mid-run and its jobs are rescued): 150 orders
//! delivered with 150 distinct items, 50 waiting for stock; 50 items imported and the 50
//! complete by themselves. SQLite, or PostgreSQL when `CARTWRIGHT_TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used)]

use cartwright_commerce::{Commerce, CommerceConfig, DeliveryHandler};
use cartwright_core::digital::{DeliveryState, NewDigitalProduct, ProductKind};
use cartwright_core::market::{
    Buyer, IncomingLine, IncomingOrder, MarketOrderState, Reported, Source,
};
use cartwright_core::values::Text;
use cartwright_jobs::{Handler, RunningWorkers, Timing, Workers};
use cartwright_store::{DELIVERY_JOB, NewConnection, Store};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn keys(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("GIFT-{i:05}-{:06X}\n", i * 104_729))
        .collect()
}

fn paid(number: usize) -> IncomingOrder {
    IncomingOrder {
        marketplace: "shopee".into(),
        shop_id: "1001".into(),
        external_id: format!("261207A{number:05}"),
        buyer: Buyer {
            name: Some(format!("buyer{number}")),
            id: Some(number.to_string()),
            email: None,
        },
        lines: vec![IncomingLine {
            item_id: "777".into(),
            model_id: String::new(),
            seller_sku: String::new(),
            name: "Gift card".into(),
            quantity: 1,
            unit_price_minor: Some(5_000_000),
        }],
        total_minor: Some(5_000_000),
        currency: Some("IDR".into()),
        payment_method: Some("ShopeePay".into()),
        status: Reported::Paid,
        updated_at: time::OffsetDateTime::now_utc(),
    }
}

fn node(store: &Store, commerce: &Arc<Commerce>, name: &str) -> RunningWorkers {
    let handler: Arc<dyn Handler> = Arc::new(DeliveryHandler::new(commerce.clone()));
    Workers::new(store.clone(), name)
        .timing(Timing {
            idle_poll: Duration::from_millis(50),
            heartbeat: Duration::from_millis(200),
            stale_after: Duration::from_secs(2),
        })
        .lane("goods", 4, vec![(DELIVERY_JOB, handler)])
        .start()
}

async fn wait(store: &Store, what: &str, want: &[(MarketOrderState, i64)]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut counts = store.market_order_counts().await.unwrap();
        counts.sort_by_key(|(s, _)| s.as_str());
        let mut want = want.to_vec();
        want.sort_by_key(|(s, _)| s.as_str());
        if counts == want {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {counts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stock_alerts(store: &Store) -> usize {
    let events = store
        .events(&cartwright_store::EventQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    events
        .iter()
        .filter(|e| e.phase.as_deref() == Some("stock") && e.message.contains("GIFT-50K"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paid_orders_get_their_goods_once_from_many_workers_and_wait_for_stock() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = cartwright_store::testing::store(dir.path(), "commerce")
        .await
        .unwrap();
    let commerce = Commerce::new(
        store.clone(),
        CommerceConfig {
            public_url: "https://goods.example".into(),
        },
    );
    let product = store
        .create_digital_product(&NewDigitalProduct {
            sku: Text::parse("GIFT-50K").unwrap(),
            name: Text::parse("Gift card 50K").unwrap(),
            kind: ProductKind::Code,
            message: "Hi {{buyer.name}}! Code: {{item.code}} (order {{order.number}}). Page: {{delivery.link}}".into(),
            content: None,
            low_stock: 5,
            page: Default::default(),
        })
        .await
        .unwrap();
    store
        .import_stock(product.id, &keys(0, 150), false)
        .await
        .unwrap();
    let connection = store
        .create_connection(&NewConnection {
            marketplace: "shopee".into(),
            name: "Shop".into(),
            shop_id: "1001".into(),
            base_url: "https://partner.example".into(),
            partner_id: "42".into(),
            partner_key: "k".into(),
            access_token: "t".into(),
            refresh_token: None,
        })
        .await
        .unwrap();
    store
        .create_listing(connection.id, "777", "", "", product.id, 1)
        .await
        .unwrap();

    let nodes = ["one", "two", "three"].map(|n| node(&store, &commerce, n));
    let [doomed, two, three] = nodes;
    let mut doomed = Some(doomed);
    let mut orders = Vec::new();
    for n in 0..200 {
        orders.push(
            store
                .ingest_order(&paid(n), Source::Push, None)
                .await
                .unwrap()
                .order_id,
        );
        if n == 60
            && let Some(node) = doomed.take()
        {
            // One node dies mid-run: its claimed jobs wait for their lease to run out, and
            // are rescued by the others.
            node.abandon().await;
        }
    }
    wait(
        &store,
        "150 delivered and 50 waiting for stock",
        &[
            (MarketOrderState::Delivered, 150),
            (MarketOrderState::NeedsAttention, 50),
        ],
    )
    .await;
    let mut items = HashSet::new();
    let mut delivered = 0;
    for o in &orders {
        for d in store.deliveries_of(*o).await.unwrap() {
            if d.state == DeliveryState::Delivered {
                delivered += 1;
                let got = store.delivery_items(d.id).await.unwrap();
                assert_eq!(got.len(), 1, "one item per unit");
                items.insert(format!("{:?}", got[0]));
            } else {
                assert_eq!(d.state, DeliveryState::Waiting);
                assert!(d.attention.as_deref().unwrap().contains("not enough stock"));
            }
        }
    }
    assert_eq!(
        (delivered, items.len()),
        (150, 150),
        "150 distinct items, none twice"
    );
    let stock = store.digital_product(product.id).await.unwrap().stock;
    assert_eq!(
        (stock.available, stock.delivered, stock.reserved),
        (0, 150, 0)
    );
    assert_eq!(
        stock_alerts(&store).await,
        1,
        "one low-stock alert per crossing"
    );

    // Stock arrives: the 50 complete by themselves once their deliveries are queued.
    store
        .import_stock(product.id, &keys(5_000, 50), false)
        .await
        .unwrap();
    // A job deferred while other batches held the stock may still be queued and claim a
    // new item first: at most the 50 are still waiting, and all 200 end delivered below.
    let waiting = store.orders_waiting_for(product.id).await.unwrap();
    assert!(
        !waiting.is_empty() && waiting.len() <= 50,
        "{} waiting",
        waiting.len()
    );
    store.queue_deliveries(&waiting).await.unwrap();
    wait(
        &store,
        "all 200 delivered",
        &[(MarketOrderState::Delivered, 200)],
    )
    .await;
    let mut all = HashSet::new();
    for o in &orders {
        for d in store.deliveries_of(*o).await.unwrap() {
            all.extend(
                store
                    .delivery_items(d.id)
                    .await
                    .unwrap()
                    .iter()
                    .map(|i| format!("{i:?}")),
            );
        }
    }
    assert_eq!(all.len(), 200);
    assert_eq!(
        stock_alerts(&store).await,
        2,
        "stock rose and fell again: a second alert"
    );
    two.shutdown(Duration::from_secs(2)).await;
    three.shutdown(Duration::from_secs(2)).await;
}
