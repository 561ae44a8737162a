//! The `cartwright` binary itself: configuration errors, creating an admin from standard
//! input, serving, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs a command off the async runtime; its output.
async fn output(mut cmd: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn cartwright(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cartwright"));
    cmd.current_dir(dir)
        .env_remove("CARTWRIGHT_DATABASE_URL")
        .env("CARTWRIGHT_DATA_DIR", dir.join("data"))
        // The demo shops of these tests listen on 127.0.0.1.
        .env("CARTWRIGHT_ALLOW_INTERNAL_ADDRESSES", "true");
    cmd
}

#[test]
fn a_bad_setting_stops_the_start_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = cartwright(dir.path())
        .env("CARTWRIGHT_LISTEN", "nowhere")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listen") && err.contains("CARTWRIGHT_LISTEN"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("cartwright.toml"),
        "token_ttl = \"a fortnight\"\n",
    )
    .unwrap();
    let out = cartwright(dir.path()).arg("serve").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("token_ttl") && err.contains("cartwright.toml"),
        "{err}"
    );
}

#[tokio::test]
async fn admin_from_stdin_then_serve_then_stop_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut create = cartwright(dir.path())
        .args([
            "admin",
            "create",
            "--username",
            "boss",
            "--email",
            "boss@example.com",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    create
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long password\n")
        .unwrap();
    let out = create.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("created admin boss"));

    // A password that is too short is refused before anything is written.
    let mut weak = cartwright(dir.path())
        .args(["admin", "create", "--username", "weak"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    weak.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let out = weak.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("password"));

    let mut server = cartwright(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = server.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addr = None;
    let mut json_lines = 0;
    while addr.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server prints its address");
        json_lines += usize::from(line.starts_with('{'));
        addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned);
    }
    assert!(json_lines > 0, "--log-format json logs JSON lines");
    let addr = addr.unwrap();
    let login = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "boss", "password": "a long password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    use std::os::unix::fs::PermissionsExt;
    let mode = dir
        .path()
        .join("data/secret.key")
        .metadata()
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the key file is private");

    let pid = server.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server stops on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "a clean exit on SIGTERM: {status:?}");
}

/// `cartwright rewards` and `cartwright run` against the demo shop, through the binary: their
/// exit codes, summaries and what they leave behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewards_and_run_commands_do_their_work_and_say_so() {
    let s = crate::helpers::ShopApp::spawn(|_| {}).await;
    let app = &s.app;
    let sku = app.get("/api/v1/products?in_stock=true", &app.admin).await;
    let sku = sku.ok(200)["items"][0]["sku"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let command = |args: &[&str]| {
        let mut cmd = cartwright(dir.path());
        cmd.env("CARTWRIGHT_DATABASE_URL", &app.database_url)
            .env("CARTWRIGHT_SECRET_KEY", &app.secret_key)
            .env("RUST_LOG", "warn")
            .args(args);
        cmd
    };

    let csv = dir.path().join("points.csv");
    let out = output(command(&[
        "rewards",
        "--profile",
        "demo",
        "--accounts",
        "1-5",
        "--csv",
        csv.to_str().unwrap(),
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("finished 5 of 5 checked: 5 ok, 0 logged out, 0 failed"),
        "{stdout}"
    );
    let written = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(written.lines().count(), 6, "{written}");

    let bad = output(command(&["rewards", "--accounts", "9999-10000"])).await;
    assert_eq!(bad.status.code(), Some(64), "a usage error");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("accounts"));

    let out = output(command(&[
        "run",
        "--accounts",
        "1-2",
        "--product",
        &sku,
        "--max-total",
        "5000",
        "--concurrency",
        "2",
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 placed, 0 failed"), "{stdout}");
    assert_eq!(s.shop.shop.orders().len(), 2);

    // Confirmations that fail: the orders are found in the history, and the summary says which.
    s.shop.shop.set_faults(cartwright_demo_shop::Faults {
        confirmation: cartwright_demo_shop::Confirmation::Error,
        ..Default::default()
    });
    let out = output(command(&[
        "run",
        "--accounts",
        "3",
        "--product",
        &sku,
        "--max-total",
        "5000",
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "1 placed order(s) had no confirmation and were found in the storefront's order history"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("settled from the order history"),
        "{stdout}"
    );
    assert_eq!(s.shop.shop.orders().len(), 3);
}

/// `profile rehearse` runs an order's phases in Chromium up to the final click and writes
/// what each step matched; the shop's own order list proves nothing was placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehearsal_stops_before_the_final_click_and_reports_every_step() {
    let s = crate::helpers::ShopApp::spawn(|_| {}).await;
    let app = &s.app;
    let sku = app.get("/api/v1/products?in_stock=true", &app.admin).await;
    let sku = sku.ok(200)["items"][0]["sku"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("report");
    let rehearse = |max_total: &str| {
        let mut cmd = cartwright(dir.path());
        cmd.env("CARTWRIGHT_DATABASE_URL", &app.database_url)
            .env("CARTWRIGHT_SECRET_KEY", &app.secret_key)
            .env("RUST_LOG", "warn")
            .args([
                "profile",
                "rehearse",
                "--accounts",
                "3",
                "--product",
                &format!("{sku}:2"),
                "--max-total",
                max_total,
                "--out",
                out_dir.to_str().unwrap(),
            ]);
        cmd
    };
    let out = output(rehearse("5000")).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("no order was placed"), "{stdout}");
    assert!(s.shop.shop.orders().is_empty(), "the shop lists no order");
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    for phase in [
        "check_login",
        "clear_cart",
        "add_item",
        "read_total",
        "set_address",
        "choose_payment",
    ] {
        assert!(
            report.contains(&format!("| {phase} |")),
            "{phase} is in the report"
        );
    }
    assert!(!report.contains("| place |"), "the final click is not");
    assert!(
        report.contains("add_to_bag"),
        "the selectors used are named"
    );
    assert!(report.contains("```html"), "with what they matched");
    let shots = std::fs::read_dir(&out_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".png")
        })
        .count();
    assert!(shots > 10, "a screenshot per step: {shots}");

    // A cap below the cart: the rehearsal stops where a run would, and says why.
    let out = output(rehearse("1")).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("above the batch's cap"), "{stdout}");
    assert!(s.shop.shop.orders().is_empty());
}

#[tokio::test]
async fn stock_is_imported_from_a_file_with_its_report() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        cartwright(dir.path())
            .arg("migrate")
            .status()
            .unwrap()
            .success()
    );
    let settings = cartwright::Settings {
        data_dir: dir.path().join("data"),
        ..cartwright::Settings::default()
    };
    let key = cartwright::secret_key(&settings).unwrap();
    let store = cartwright::open_store(&settings, &key).await.unwrap();
    store
        .create_digital_product(
            &serde_json::from_value(serde_json::json!({
                "sku": "VOUCHER-10", "name": "Voucher", "kind": "code", "message": "{{item.code}}"
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    store.close().await;
    let file = dir.path().join("codes.txt");
    std::fs::write(&file, "V10-AAAA-1111\nV10-BBBB-2222\nV10-AAAA-1111\n").unwrap();
    let import = |dry: bool| {
        let mut cmd = cartwright(dir.path());
        cmd.args(["stock", "import", "--product", "VOUCHER-10"])
            .arg(&file);
        if dry {
            cmd.arg("--dry-run");
        }
        cmd.output().unwrap()
    };
    let out = import(true);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dry run: would have 2 imported"), "{text}");
    let out = import(false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "a duplicate line: {text}");
    assert!(
        text.contains("line 3: duplicate in file V10-…-1111"),
        "{text}"
    );
    assert!(
        text.contains("2 imported, 1 duplicates, 0 not items; 2 available now"),
        "{text}"
    );
    assert!(!text.contains("AAAA-1111"), "never shown whole");
    let out = import(false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 imported, 3 duplicates"), "{text}");
    let missing = cartwright(dir.path())
        .args(["stock", "import", "--product", "NOPE"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("no digital product has the SKU \"NOPE\"")
    );
}

#[test]
fn config_prints_the_settings_as_toml_with_its_secrets_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let key = "ab".repeat(32);
    let out = cartwright(dir.path())
        .env("CARTWRIGHT_SECRET_KEY", &key)
        .env(
            "CARTWRIGHT_DATABASE_URL",
            "postgres://cart:hunter2@db.example:5432/cartwright",
        )
        .env("CARTWRIGHT_WORKERS", "3")
        .arg("config")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What it prints is a cartwright.toml: it reads back.
    let settings: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(settings["workers"].as_integer(), Some(3));
    assert_eq!(settings["secret_key"].as_str(), Some("***"));
    let url = settings["database_url"].as_str().unwrap();
    assert!(
        url.contains("db.example") && !url.contains("hunter2"),
        "{url}"
    );
    assert!(!text.contains(&key) && !text.contains("hunter2"), "{text}");
    assert!(settings.contains_key("listen") && settings.contains_key("token_ttl"));
}

/// What a batch needs, from the command line: a storefront whose profile loads, products
/// (one by one, or from a CSV checked whole first), an address; wrong values named by flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storefronts_products_and_addresses_are_added_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = cartwright(dir.path());
        cmd.env("RUST_LOG", "warn").args(args);
        output(cmd)
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let storefront = |profile: &'static str| {
        let mut cmd = cartwright(dir.path());
        cmd.env("RUST_LOG", "warn").args([
            "storefront",
            "add",
            "--slug",
            "threads",
            "--name",
            "Demo Threads",
            "--profile",
            profile,
            "--base-url",
            "http://127.0.0.1:8091/",
        ]);
        output(cmd)
    };
    // A shop on this machine is refused unless the install allows it.
    let mut cmd = cartwright(dir.path());
    cmd.env("RUST_LOG", "warn")
        .env("CARTWRIGHT_ALLOW_INTERNAL_ADDRESSES", "false")
        .args([
            "storefront",
            "add",
            "--slug",
            "inside",
            "--name",
            "Inside",
            "--profile",
            "threads",
            "--base-url",
            "http://127.0.0.1:8091/",
        ]);
    let inside = output(cmd).await;
    assert_eq!(inside.status.code(), Some(64), "{}", text(&inside));
    assert!(
        text(&inside).contains("--base-url") && text(&inside).contains("allow_internal_addresses"),
        "{}",
        text(&inside)
    );
    let typo = storefront("thread").await;
    assert_eq!(typo.status.code(), Some(64), "{}", text(&typo));
    assert!(text(&typo).contains("--profile"), "{}", text(&typo));
    let added = storefront("threads").await;
    assert!(added.status.success(), "{}", text(&added));

    let elsewhere = run(&[
        "product",
        "add",
        "--name",
        "Tee",
        "--url",
        "https://elsewhere.example/products/tee",
    ])
    .await;
    assert_eq!(elsewhere.status.code(), Some(64), "{}", text(&elsewhere));
    assert!(text(&elsewhere).contains("--url"), "{}", text(&elsewhere));
    let one = run(&[
        "product",
        "add",
        "--name",
        "Tee",
        "--url",
        "http://127.0.0.1:8091/products/tee",
        "--variant",
        "Mini",
        "--price",
        "499",
    ])
    .await;
    assert!(one.status.success(), "{}", text(&one));
    assert!(text(&one).contains("Tee (Mini)"), "{}", text(&one));

    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "name,url,variant,price\nTee,http://127.0.0.1:8091/products/tee,Large,499\nCap,http://127.0.0.1:8091/products/cap,,not a price\n",
    )
    .unwrap();
    let refused = run(&["product", "import", bad.to_str().unwrap()]).await;
    assert_eq!(refused.status.code(), Some(64), "{}", text(&refused));
    assert!(
        text(&refused).contains("line 3, column price"),
        "{}",
        text(&refused)
    );
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "name,url,variant\nTee,http://127.0.0.1:8091/products/tee,Large\nTee,http://127.0.0.1:8091/products/tee,Mini\nCap,http://127.0.0.1:8091/products/cap,\n",
    )
    .unwrap();
    let imported = run(&["product", "import", good.to_str().unwrap()]).await;
    assert_eq!(imported.status.code(), Some(2), "{}", text(&imported));
    assert!(
        text(&imported).contains("2 products added, 1 already in the catalogue"),
        "the file's bad row added nothing, and Tee (Mini) was there: {}",
        text(&imported)
    );

    let address = run(&[
        "address",
        "add",
        "--full-name",
        "Asha Rao",
        "--line1",
        "Flat 4",
        "--postcode",
        "400050",
        "--city",
        "Mumbai",
        "--state",
        "Maharashtra",
        "--phone",
        "9820012345",
        "--default",
    ])
    .await;
    assert!(address.status.success(), "{}", text(&address));
    assert!(
        text(&address).contains("(the default)"),
        "{}",
        text(&address)
    );
    let wrong = run(&[
        "address",
        "add",
        "--full-name",
        "Asha",
        "--line1",
        "Flat 4",
        "--postcode",
        "12",
        "--city",
        "Mumbai",
        "--state",
        "MH",
        "--phone",
        "9820012345",
    ])
    .await;
    assert_eq!(wrong.status.code(), Some(64), "{}", text(&wrong));
    assert!(text(&wrong).contains("--postcode"), "{}", text(&wrong));
}
