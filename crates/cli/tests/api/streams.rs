//! Live event streams stay under the rules that opened them: a credential that stops passing
//! ends its streams, a browser page of another origin cannot open the WebSocket, each caller
//! holds a bounded number, a final batch ends its stream, and stopping the server ends all.

use crate::helpers::*;
use futures::StreamExt;
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Reads the server-sent events of `response` until it ends (or 60 s pass): every frame's
/// event name and data.
async fn read_to_end(mut response: reqwest::Response) -> Vec<(String, String)> {
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) => break,
            Ok(Err(e)) => panic!("the stream failed: {e}"),
            Err(_) => panic!("the stream did not end: {buffer}"),
        }
    }
    buffer
        .split("\n\n")
        .filter_map(|frame| {
            let event = frame.lines().find_map(|l| l.strip_prefix("event:"))?;
            let data = frame
                .lines()
                .find_map(|l| l.strip_prefix("data:"))
                .unwrap_or("");
            Some((event.trim().to_owned(), data.trim().to_owned()))
        })
        .collect()
}

/// The server-sent events of `batch`, opened with `token`.
async fn events(app: &TestApp, batch: i64, token: &str) -> reqwest::Response {
    app.http
        .get(format!("{}/api/v1/batches/{batch}/events", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// A shop-backed app with no workers, so a batch stays queued until stopped.
async fn queued_batch(s: &ShopApp) -> i64 {
    let product = s.product(0).await;
    s.app
        .post(
            "/api/v1/batches",
            &s.app.operator,
            json!({
                "accounts": {"storefront_id": s.storefront, "range": {"from": 1, "to": 2}},
                "lines": [{"product_id": product, "quantity": 1}],
                "max_total": 100_000,
            }),
        )
        .await
        .ok(201)["id"]
        .as_i64()
        .unwrap()
}

fn socket_request(
    app: &TestApp,
    token: &str,
    origin: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = format!(
        "{}/api/v1/ws/events?access_token={token}",
        app.base.replace("http", "ws")
    )
    .into_client_request()
    .unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    request
}

fn refused_status(e: tokio_tungstenite::tungstenite::Error) -> u16 {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(r) => r.status().as_u16(),
        e => panic!("not an HTTP refusal: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_batch_sends_its_events_then_an_end_and_closes() {
    let s = ShopApp::spawn_with(|_| {}, |settings| settings.workers = 0).await;
    let batch = queued_batch(&s).await;
    let app = &s.app;
    let sse = events(app, batch, &app.viewer).await;
    assert_eq!(sse.status(), 200);
    app.call(
        reqwest::Method::POST,
        &format!("/api/v1/batches/{batch}/stop"),
        Some(&app.operator),
        Body::None,
    )
    .await
    .ok(200);
    let frames = read_to_end(sse).await;
    let (last, data) = frames.last().expect("frames");
    assert_eq!(last, "end", "{frames:?}");
    assert_eq!(data, r#"{"state":"stopped"}"#);
    assert!(
        frames[..frames.len() - 1].iter().all(|(e, _)| e == "event"),
        "{frames:?}"
    );
    // A stream opened on the final batch sends its backlog and ends at once.
    let again = events(app, batch, &app.viewer).await;
    let frames_again = read_to_end(again).await;
    assert_eq!(frames_again, frames);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_their_sign_in_does_and_when_the_server_stops() {
    let mut s = ShopApp::spawn_with(|_| {}, |settings| settings.workers = 0).await;
    let batch = queued_batch(&s).await;
    let app = &s.app;
    let session = app.login("viewer", PASSWORD).await;

    // A WebSocket and an event stream on one sign-in; signing out ends both.
    let (mut socket, _) = tokio_tungstenite::connect_async(socket_request(app, &session, None))
        .await
        .unwrap();
    let sse = events(app, batch, &session).await;
    app.call(
        reqwest::Method::POST,
        "/api/v1/auth/logout",
        Some(&session),
        Body::None,
    )
    .await
    .ok(204);
    let frames = read_to_end(sse).await;
    assert!(
        frames.iter().all(|(e, _)| e == "event"),
        "cut off, not ended as final: {frames:?}"
    );
    let closed = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
    assert!(closed.is_ok(), "the WebSocket closed");

    // With streams open, the server stops (it used to wait for them forever).
    let (_socket, _) = tokio_tungstenite::connect_async(socket_request(app, &app.viewer, None))
        .await
        .unwrap();
    let sse = events(app, batch, &app.viewer).await;
    let reading = tokio::spawn(read_to_end(sse));
    let stopped = tokio::time::timeout(Duration::from_secs(60), s.app.stop()).await;
    assert!(stopped.is_ok(), "the server stopped with streams open");
    stopped.unwrap().unwrap();
    reading.await.unwrap();
}

#[tokio::test]
async fn the_websocket_refuses_other_origins_and_each_caller_has_a_limit() {
    let app = TestApp::spawn().await;
    let own = app.base.clone();
    let other_port = format!("http://127.0.0.1:{}", 1);
    for origin in ["http://evil.example", other_port.as_str(), "null"] {
        let e = tokio_tungstenite::connect_async(socket_request(&app, &app.viewer, Some(origin)))
            .await
            .unwrap_err();
        assert_eq!(refused_status(e), 403, "{origin}");
    }
    let mut open = Vec::new();
    for _ in 0..16 {
        let (socket, _) =
            tokio_tungstenite::connect_async(socket_request(&app, &app.viewer, Some(&own)))
                .await
                .unwrap();
        open.push(socket);
    }
    let e = tokio_tungstenite::connect_async(socket_request(&app, &app.viewer, Some(&own)))
        .await
        .unwrap_err();
    assert_eq!(refused_status(e), 429, "the 17th of one caller");
    // Another caller is not held back by it.
    let (socket, _) = tokio_tungstenite::connect_async(socket_request(&app, &app.admin, None))
        .await
        .unwrap();
    drop(socket);
    // Closing one frees its place.
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio_tungstenite::connect_async(socket_request(&app, &app.viewer, None)).await {
            Ok(_) => break,
            Err(e) => assert_eq!(refused_status(e), 429),
        }
        assert!(std::time::Instant::now() < deadline, "the place was freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Not a WebSocket request: the error envelope, not plain text.
    let r = app.get("/api/v1/ws/events", &app.viewer).await;
    r.error(400, "bad_request");
}
