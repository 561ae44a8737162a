use crate::helpers::TestApp;
use cartwright::demo::{DEMO_PASSWORD, DEMO_USERNAME, ensure_admin};

#[tokio::test]
async fn the_demo_admin_is_created_once() {
    let dir = tempfile::tempdir().unwrap();
    let settings = cartwright::Settings {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let server = cartwright::demo::start(&settings).await.unwrap();
    assert!(
        !ensure_admin(&server.store).await.unwrap(),
        "an operator exists: nothing to create"
    );
    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{}/api/v1/auth/login", server.addr))
        .json(&serde_json::json!({"username": DEMO_USERNAME, "password": DEMO_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        dir.path().join("cartwright.db").exists(),
        "the demo runs on SQLite in its data dir"
    );
    assert!(dir.path().join("secret.key").exists());
    server.stop().await.unwrap();

    // Existing installs keep their operators.
    let app = TestApp::spawn().await;
    assert!(!ensure_admin(app.store()).await.unwrap());
}
