//! The demo profile's phases, one by one, in Chromium.

use crate::kit::*;
use cartwright_engine::flow::Flow;
use cartwright_engine::profile::Phase;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_profile_places_an_order_step_by_step() {
    let shop = shop(|_| {}).await;
    let profile = demo_profile();
    let pool = pool();
    let session = pool
        .session(options(vec![session_cookie(&shop, 1)]))
        .await
        .unwrap();
    let log = Lines::default();
    let product = &shop.shop.products()[0];
    let context = json!({
        "account": {"id": 1},
        "address": {"full_name": "Asha Rao", "phone": "9876543210", "line1": "Flat 4", "street": "Linking Road",
                    "landmark": "Near the sea", "postcode": "400050", "kind_label": "Home"},
        "payment": {"label": "Cash on Delivery"},
    });
    let base = url::Url::parse(&shop.url()).unwrap();
    let mut flow = Flow::new(&session, &profile, base, context, &log);
    let started = std::time::Instant::now();
    for phase in [Phase::CheckLogin, Phase::ClearCart] {
        flow.phase(phase).await.unwrap_or_else(|e| panic!("{e}"));
    }
    flow.set(
        "line",
        json!({"url": format!("/p/{}", product.slug), "quantity": 2}),
    );
    flow.phase(Phase::AddItem)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    flow.phase(Phase::ReadTotal)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let total = flow.var("total").and_then(|v| v.as_f64()).unwrap();
    assert!(total > 0.0);
    for phase in [
        Phase::SetAddress,
        Phase::ChoosePayment,
        Phase::Place,
        Phase::Confirm,
    ] {
        flow.phase(phase).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let number = flow
        .var("order_number")
        .and_then(|v| v.as_str())
        .unwrap()
        .to_owned();
    flow.phase(Phase::FindInHistory)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let history = flow.var("history").unwrap().as_array().unwrap().clone();
    eprintln!("placed {number} in {:?}", started.elapsed());
    assert!(history.iter().any(|h| h == &json!(number)), "{history:?}");
    let orders = shop.shop.orders();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].number, number);
    assert_eq!(orders[0].customer, 1);
    assert_eq!(orders[0].lines[0].1, 2);
    session.close().await;
    pool.shutdown().await;
}
