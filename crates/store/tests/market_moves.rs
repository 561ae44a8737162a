//! The marketplace-order and delivery state machines in `core` are the ones the store
//! enforces: every operation the store offers, applied in every order of three to an order of
//! one line and to an order of two lines (one short of stock), moves orders and deliveries only
//! as core allows; and every move core names is one some operation makes. On SQLite, or on
//! PostgreSQL when `CARTWRIGHT_TEST_DATABASE_URL` names a server.

#![allow(clippy::unwrap_used)]

use cartwright_core::channel::NewChannel;
use cartwright_core::digital::{DeliveryMove, DeliveryState, NewDigitalProduct, ProductKind};
use cartwright_core::ids::MarketOrderId;
use cartwright_core::market::{
    Buyer, IncomingLine, IncomingOrder, MarketMove, MarketOrderState, Reported, Source,
};
use cartwright_core::values::Text;
use cartwright_store::{Actor, NewConnection, Store};
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone, Copy)]
enum Op {
    Report(Reported),
    Claim,
    Prepare,
    ClaimAndPrepare,
    NeedAttention,
    SendOk,
    SendRefused,
    Resend,
}

const OPS: [Op; 11] = [
    Op::Report(Reported::Unpaid),
    Op::Report(Reported::Paid),
    Op::Report(Reported::Cancelled),
    Op::Report(Reported::Refunded),
    Op::Claim,
    Op::Prepare,
    Op::ClaimAndPrepare,
    Op::NeedAttention,
    Op::SendOk,
    Op::SendRefused,
    Op::Resend,
];

fn order(n: usize, status: Reported, at: i64, lines: usize) -> IncomingOrder {
    IncomingOrder {
        marketplace: "shopee".into(),
        shop_id: "7".into(),
        external_id: format!("261207M{n:06}"),
        buyer: Buyer {
            name: Some("Ayu".into()),
            id: None,
            email: None,
        },
        lines: ["GOOD", "SHORT"][..lines]
            .iter()
            .map(|sku| IncomingLine {
                item_id: String::new(),
                model_id: String::new(),
                seller_sku: (*sku).into(),
                name: (*sku).into(),
                quantity: 1,
                unit_price_minor: None,
            })
            .collect(),
        total_minor: None,
        currency: None,
        payment_method: None,
        status,
        updated_at: time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(at),
    }
}

type States = (
    Option<MarketOrderState>,
    BTreeMap<i64, (DeliveryState, bool)>,
);

async fn states(store: &Store, id: Option<MarketOrderId>) -> States {
    let Some(id) = id else {
        return (None, BTreeMap::new());
    };
    let o = store.market_order(id).await.unwrap();
    let d = store
        .deliveries_of(id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id.get(), (d.state, d.attention.is_some())))
        .collect();
    (Some(o.state), d)
}

struct World {
    store: Store,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = cartwright_store::testing::store(dir.path(), "moves")
        .await
        .unwrap();
    let product = |sku: &str| NewDigitalProduct {
        sku: Text::parse(sku).unwrap(),
        name: Text::parse(sku).unwrap(),
        kind: ProductKind::Code,
        message: "Code: {{item.code}}".into(),
        content: None,
        low_stock: 0,
        page: Default::default(),
    };
    let good = store
        .create_digital_product(&product("GOOD"))
        .await
        .unwrap();
    let short = store
        .create_digital_product(&product("SHORT"))
        .await
        .unwrap();
    let keys: String = (0..6_000).map(|i| format!("MOVE-{i:06}\n")).collect();
    store.import_stock(good.id, &keys, false).await.unwrap();
    let connection = store
        .create_connection(&NewConnection {
            marketplace: "shopee".into(),
            name: "Shop".into(),
            shop_id: "7".into(),
            base_url: "https://partner.example".into(),
            partner_id: "1".into(),
            partner_key: "k".into(),
            access_token: "t".into(),
            refresh_token: None,
        })
        .await
        .unwrap();
    for (sku, p) in [("GOOD", good.id), ("SHORT", short.id)] {
        store
            .create_listing(connection.id, "", "", sku, p, 1)
            .await
            .unwrap();
    }
    World { store, _dir: dir }
}

/// Applies `op` to order `n` (created by the first report); errors the store answers with
/// (a refusal, a delivery in the wrong state) are fine: only the moves are checked.
async fn apply(
    w: &World,
    n: usize,
    lines: usize,
    op: Op,
    clock: &mut i64,
    id: &mut Option<MarketOrderId>,
) {
    let store = &w.store;
    let actor = Actor {
        id: None,
        name: "test".into(),
    };
    match op {
        Op::Report(status) => {
            *clock += 10;
            let r = store
                .ingest_order(&order(n, status, *clock, lines), Source::Api, None)
                .await
                .unwrap();
            *id = Some(r.order_id);
        }
        _ => {
            let Some(order) = *id else { return };
            for d in store.deliveries_of(order).await.unwrap() {
                match op {
                    Op::Claim => {
                        let _ = store.claim_delivery(d.id).await.unwrap();
                    }
                    Op::Prepare => {
                        let _ = store.prepare_delivery(d.id, "the message").await.unwrap();
                    }
                    Op::ClaimAndPrepare => {
                        let _ = store
                            .claim_and_prepare(d.id, |_| "the message".into())
                            .await
                            .unwrap();
                    }
                    Op::NeedAttention => {
                        store
                            .delivery_needs_attention(d.id, "not enough stock", None)
                            .await
                            .unwrap();
                    }
                    Op::SendOk | Op::SendRefused => {
                        for s in store.sends_of(d.id).await.unwrap() {
                            if matches!(op, Op::SendOk) {
                                store.send_succeeded(s.id, Some("200")).await.unwrap();
                            } else {
                                store
                                    .send_failed(s.id, "refused", Some("400"), true)
                                    .await
                                    .unwrap();
                            }
                        }
                    }
                    Op::Resend => {
                        let _ = store.resend_delivery(d.id, "again", &actor).await;
                    }
                    Op::Report(_) => unreachable!(),
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_and_deliveries_move_only_as_core_allows_and_every_move_is_made() {
    let w = world().await;
    // A webhook channel, so sends exist to succeed or fail.
    let hook: NewChannel = serde_json::from_value(serde_json::json!({
        "kind": "webhook", "name": "hook", "url": "https://hook.example/x", "secret": "0123456789abcdef-key"
    }))
    .unwrap();
    w.store.create_channel(&hook).await.unwrap();
    let mut seen_orders = HashSet::new();
    let mut seen_deliveries = HashSet::new();
    let mut n = 0;
    // Orders of one and two lines that start paid, three operations each; orders that start
    // unpaid, two.
    let mut scenarios: Vec<(usize, Reported, Vec<Op>)> = Vec::new();
    for (lines, first, depth) in [
        (1, Reported::Paid, 3),
        (2, Reported::Paid, 3),
        (1, Reported::Unpaid, 2),
    ] {
        let mut seqs: Vec<Vec<Op>> = vec![Vec::new()];
        for _ in 0..depth {
            seqs = seqs
                .into_iter()
                .flat_map(|s| {
                    OPS.iter().map(move |op| {
                        let mut s = s.clone();
                        s.push(*op);
                        s
                    })
                })
                .collect();
        }
        scenarios.extend(seqs.into_iter().map(|s| (lines, first, s)));
    }
    for (lines, first, ops) in scenarios {
        n += 1;
        let (mut clock, mut id) = (0, None);
        for op in std::iter::once(Op::Report(first)).chain(ops) {
            let before = states(&w.store, id).await;
            apply(&w, n, lines, op, &mut clock, &mut id).await;
            let after = states(&w.store, id).await;
            if let (Some(from), Some(to)) = (before.0, after.0)
                && from != to
            {
                assert!(
                    from.can_move_to(to),
                    "{op:?} moved an order {from} → {to}, which core does not allow"
                );
                seen_orders.insert((from, to));
            }
            for (d, (to, _)) in &after.1 {
                if let Some((from, _)) = before.1.get(d)
                    && from != to
                {
                    assert!(
                        DeliveryMove::ALL
                            .iter()
                            .any(|m| m.from().contains(from) && m.to() == *to),
                        "{op:?} moved a delivery {from} → {to}, which core does not allow"
                    );
                    seen_deliveries.insert((*from, *to));
                }
            }
        }
    }
    for m in MarketMove::ALL {
        assert!(
            seen_orders
                .iter()
                .any(|(from, to)| *to == m.to() && m.from().contains(from)),
            "no operation makes {m:?} (seen: {seen_orders:?})"
        );
    }
    for m in DeliveryMove::ALL {
        assert!(
            seen_deliveries
                .iter()
                .any(|(from, to)| *to == m.to() && m.from().contains(from)),
            "no operation makes {m:?} (seen: {seen_deliveries:?})"
        );
    }
}
