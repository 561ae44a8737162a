//! Exactly once: 200 paid orders for a product with 150 items, claimed by many claimers at
//! once, get 150 distinct items; the 50 left wait for stock, and complete when it comes.
//! Duplicates are never imported. Batches of claims that overlap (every claimer tries every
//! delivery, many in one transaction) hand each item out once. On SQLite, or on PostgreSQL when
//! `CARTWRIGHT_TEST_DATABASE_URL` names a server.

#![allow(clippy::unwrap_used)]

use cartwright_core::digital::{NewDigitalProduct, ProductKind, StockItem};
use cartwright_core::ids::{DeliveryId, DigitalProductId, MarketOrderId};
use cartwright_core::market::{
    Buyer, IncomingLine, IncomingOrder, MarketOrderState, Reported, Source,
};
use cartwright_core::values::Text;
use cartwright_store::{Claim, NewConnection, Store};
use std::collections::HashSet;

async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = cartwright_store::testing::store(dir.path(), "goods")
        .await
        .unwrap();
    (store, dir)
}

fn keys(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("KEY-{i:05}-{:08X}\n", i * 7919))
        .collect()
}

fn paid(number: usize) -> IncomingOrder {
    IncomingOrder {
        marketplace: "shopee".into(),
        shop_id: "1001".into(),
        external_id: format!("2612070{number:05}"),
        buyer: Buyer {
            name: Some(format!("buyer{number}")),
            id: Some(number.to_string()),
            email: None,
        },
        lines: vec![IncomingLine {
            item_id: "555".into(),
            model_id: String::new(),
            seller_sku: String::new(),
            name: "Game key".into(),
            quantity: 1,
            unit_price_minor: Some(1_500_000),
        }],
        total_minor: Some(1_500_000),
        currency: Some("IDR".into()),
        payment_method: Some("ShopeePay".into()),
        status: Reported::Paid,
        updated_at: time::OffsetDateTime::now_utc(),
    }
}

/// Lists `product` on a connected shop and takes `n` paid orders for one unit each.
async fn sell(store: &Store, product: DigitalProductId, n: usize) -> Vec<MarketOrderId> {
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
        .create_listing(connection.id, "555", "", "", product, 1)
        .await
        .unwrap();
    let mut orders = Vec::new();
    for number in 0..n {
        let o = store
            .ingest_order(&paid(number), Source::Api, None)
            .await
            .unwrap();
        assert_eq!(o.state, MarketOrderState::Paid);
        orders.push(o.order_id);
    }
    orders
}

fn game_key(low_stock: u32) -> NewDigitalProduct {
    NewDigitalProduct {
        sku: Text::parse("GAME-KEY").unwrap(),
        name: Text::parse("Game key").unwrap(),
        kind: ProductKind::Code,
        message: "Hi {{buyer.name}}, your key is {{item.code}}".into(),
        content: None,
        low_stock,
        page: Default::default(),
    }
}

/// Claims every waiting delivery of these orders from `claimers` tasks at once; returns the
/// deliveries that got items, with them, and those short of stock.
async fn claim_all(
    store: &Store,
    orders: &[MarketOrderId],
    claimers: usize,
) -> (Vec<(DeliveryId, Vec<StockItem>)>, Vec<DeliveryId>) {
    let deliveries: Vec<DeliveryId> = store
        .deliveries_of_orders(orders)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(deliveries));
    let tasks: Vec<_> = (0..claimers)
        .map(|_| {
            let (store, queue) = (store.clone(), queue.clone());
            tokio::spawn(async move {
                let (mut got, mut short) = (Vec::new(), Vec::new());
                loop {
                    let Some(id) = queue.lock().unwrap().pop() else {
                        return (got, short);
                    };
                    loop {
                        match store.claim_delivery(id).await.unwrap() {
                            Claim::Claimed(items) => {
                                got.push((id, items));
                                break;
                            }
                            Claim::Short { .. } => {
                                short.push(id);
                                break;
                            }
                            Claim::Busy => tokio::task::yield_now().await,
                            other => panic!("{other:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    let (mut got, mut short) = (Vec::new(), Vec::new());
    for t in futures::future::join_all(tasks).await {
        let (g, s) = t.unwrap();
        got.extend(g);
        short.extend(s);
    }
    (got, short)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_orders_for_a_hundred_and_fifty_items_each_get_one_item_once() {
    let (store, _dir) = store().await;
    let product = store.create_digital_product(&game_key(10)).await.unwrap();
    // Imported with duplicates in the file and against stock: reported, not imported.
    let first = store
        .import_stock(product.id, &keys(0, 100), false)
        .await
        .unwrap();
    assert_eq!(first.imported, 100);
    let dry = store
        .import_stock(
            product.id,
            &format!("{}{}", keys(90, 60), keys(149, 1)),
            true,
        )
        .await
        .unwrap();
    assert_eq!((dry.applied, dry.imported, dry.duplicates), (false, 50, 11));
    assert_eq!(dry.stock.available, 100, "a dry run writes nothing");
    let second = store
        .import_stock(
            product.id,
            &format!("{}{}", keys(90, 60), keys(149, 1)),
            false,
        )
        .await
        .unwrap();
    assert_eq!((second.imported, second.duplicates), (50, 11));
    assert!(
        second
            .lines
            .iter()
            .any(|l| l.outcome == "duplicate_in_stock")
    );
    assert!(
        second
            .lines
            .iter()
            .any(|l| l.outcome == "duplicate_in_file")
    );
    assert!(
        !serde_json::to_string(&second)
            .unwrap()
            .contains("KEY-00090"),
        "never shown whole"
    );
    assert_eq!(second.stock.available, 150);

    let orders = sell(&store, product.id, 200).await;
    // The same order told again, by another path, is the same order.
    let again = store
        .ingest_order(&paid(7), Source::Poll, None)
        .await
        .unwrap();
    assert!(!again.created && !again.changed);

    let (got, short) = claim_all(&store, &orders, 8).await;
    assert_eq!((got.len(), short.len()), (150, 50));
    let codes: HashSet<String> = got
        .iter()
        .flat_map(|(_, items)| items.iter().map(|i| format!("{i:?}")))
        .collect();
    assert_eq!(codes.len(), 150, "150 distinct items, none twice");
    assert!(got.iter().all(|(_, items)| items.len() == 1));
    let counts = store.digital_product(product.id).await.unwrap().stock;
    assert_eq!((counts.available, counts.reserved), (0, 150));
    // A delivery is claimed once: again, it is not waiting.
    assert!(matches!(
        store.claim_delivery(got[0].0).await.unwrap(),
        Claim::NotWaiting(_)
    ));
    for (id, _) in &got {
        assert!(
            store
                .confirm_delivery(*id, "page", "your key", None)
                .await
                .unwrap()
        );
        assert!(
            !store
                .confirm_delivery(*id, "page", "again", None)
                .await
                .unwrap(),
            "confirmed once"
        );
    }
    for id in &short {
        store
            .delivery_needs_attention(*id, "not enough stock", None)
            .await
            .unwrap();
    }
    let states = store.market_order_counts().await.unwrap();
    assert!(
        states.contains(&(MarketOrderState::Delivered, 150)),
        "{states:?}"
    );
    assert!(
        states.contains(&(MarketOrderState::NeedsAttention, 50)),
        "{states:?}"
    );

    // Stock arrives: the 50 waiting complete, with new items.
    store
        .import_stock(product.id, &keys(1000, 50), false)
        .await
        .unwrap();
    let waiting = store.orders_waiting_for(product.id).await.unwrap();
    assert_eq!(waiting.len(), 50);
    let (got_later, short_later) = claim_all(&store, &waiting, 4).await;
    assert_eq!((got_later.len(), short_later.len()), (50, 0));
    for (id, _) in &got_later {
        assert!(
            store
                .confirm_delivery(*id, "page", "your key", None)
                .await
                .unwrap()
        );
    }
    let all: HashSet<String> = got
        .iter()
        .chain(&got_later)
        .flat_map(|(_, items)| items.iter().map(|i| format!("{i:?}")))
        .collect();
    assert_eq!(all.len(), 200);
    let states = store.market_order_counts().await.unwrap();
    assert_eq!(states, vec![(MarketOrderState::Delivered, 200)]);
    let counts = store.digital_product(product.id).await.unwrap().stock;
    assert_eq!((counts.available, counts.delivered), (0, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_batches_of_claims_hand_each_item_to_one_delivery_once() {
    let (store, _dir) = store().await;
    let product = store.create_digital_product(&game_key(0)).await.unwrap();
    store
        .import_stock(product.id, &keys(0, 100), false)
        .await
        .unwrap();
    let orders = sell(&store, product.id, 120).await;
    let deliveries: Vec<DeliveryId> = store
        .deliveries_of_orders(&orders)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    // Six claimers, each trying every delivery in its own order, eleven to a transaction;
    // those that meet claimed rows try again.
    let tasks: Vec<_> = (0..6usize)
        .map(|claimer| {
            let store = store.clone();
            let mut mine = deliveries.clone();
            mine.rotate_left(claimer * 17);
            if claimer % 2 == 1 {
                mine.reverse();
            }
            tokio::spawn(async move {
                let mut got = Vec::new();
                while !mine.is_empty() {
                    let mut again = Vec::new();
                    for batch in mine.chunks(11) {
                        let handed = store
                            .claim_and_prepare_many(batch, |id, items| {
                                format!("delivery {id}: {items:?}")
                            })
                            .await
                            .unwrap();
                        assert_eq!(handed.len(), batch.len());
                        for h in handed {
                            match h.claim {
                                Claim::Claimed(items) => {
                                    assert_eq!(
                                        h.prepared,
                                        Some(cartwright_store::Prepared::Delivered),
                                        "no channel: the page confirms it"
                                    );
                                    got.push((h.id, items));
                                }
                                Claim::Busy => again.push(h.id),
                                Claim::Short { .. } | Claim::NotWaiting(_) => {
                                    assert!(h.prepared.is_none())
                                }
                                Claim::NoProduct => panic!("every line has its product"),
                            }
                        }
                    }
                    mine = again;
                    tokio::task::yield_now().await;
                }
                got
            })
        })
        .collect();
    let mut got = Vec::new();
    for t in futures::future::join_all(tasks).await {
        got.extend(t.unwrap());
    }
    assert_eq!(
        got.len(),
        100,
        "as many deliveries claimed as there are items"
    );
    let claimed: HashSet<DeliveryId> = got.iter().map(|(id, _)| *id).collect();
    assert_eq!(claimed.len(), 100, "no delivery claimed twice");
    assert!(got.iter().all(|(_, items)| items.len() == 1));
    let codes: HashSet<String> = got
        .iter()
        .flat_map(|(_, items)| items.iter().map(|i| format!("{i:?}")))
        .collect();
    assert_eq!(codes.len(), 100, "no item given twice");
    let counts = store.digital_product(product.id).await.unwrap().stock;
    assert_eq!(
        (counts.available, counts.reserved, counts.delivered),
        (0, 0, 100)
    );
    // Each delivered page shows the message written from its own items.
    let (id, items) = &got[0];
    let token = store.delivery_token(*id).await.unwrap();
    let page = store.delivery_page(&token, false).await.unwrap().unwrap();
    assert_eq!(page.message.unwrap(), format!("delivery {id}: {items:?}"));
    let states = store.market_order_counts().await.unwrap();
    assert!(
        states.contains(&(MarketOrderState::Delivered, 100)),
        "{states:?}"
    );
    let left: usize = store
        .deliveries_of_orders(&orders)
        .await
        .unwrap()
        .iter()
        .filter(|d| d.state == cartwright_core::digital::DeliveryState::Waiting)
        .count();
    assert_eq!(left, 20, "the rest wait for stock, holding nothing");
}
