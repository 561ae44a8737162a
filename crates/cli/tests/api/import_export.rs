use crate::helpers::TestApp;
use base64::Engine;
use cartwright_core::ids::AccountId;
use serde_json::json;

const CSV: &str = "label,name,email,phone,tags,active,points\n\
acct-1,Asha,asha@example.com,9800000001,vip;north,yes,120\n\
acct-2,Bela,bela@example.com,,north,,\n\
acct-3,Chitra,,9800000003,,no,\n";

#[tokio::test]
async fn import_creates_then_updates_by_email_else_phone() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    let url = format!("/api/v1/accounts/import?storefront_id={sf}");
    let r = app
        .post_raw(&url, &app.operator, "text/csv", CSV.as_bytes())
        .await;
    let report = r.ok(200);
    assert_eq!(report["applied"], true);
    assert_eq!(report["created"], 3);
    assert_eq!(report["updated"], 0);
    assert_eq!(report["ignored_columns"], json!(["points"]));
    let list = app
        .get(&format!("/api/v1/accounts?storefront_id={sf}"), &app.viewer)
        .await
        .ok(200)
        .clone();
    assert_eq!(list["total"], 3);
    assert_eq!(list["items"][0]["tags"], json!(["north", "vip"]));
    assert_eq!(list["items"][2]["active"], false);

    // Asha matched by email gets a new phone; Chitra matched by phone gets an email; Dev is new.
    let again = "email,phone,name\nasha@example.com,9800000009,Asha R\nchitra@example.com,9800000003,\ndev@example.com,,Dev\n";
    let r = app
        .post_raw(&url, &app.operator, "text/csv", again.as_bytes())
        .await;
    let report = r.ok(200);
    assert_eq!(
        (report["created"].as_i64(), report["updated"].as_i64()),
        (Some(1), Some(2))
    );
    let list = app
        .get(&format!("/api/v1/accounts?storefront_id={sf}"), &app.viewer)
        .await
        .ok(200)
        .clone();
    assert_eq!(list["total"], 4);
    assert_eq!(list["items"][0]["phone"], "9800000009");
    assert_eq!(list["items"][0]["name"], "Asha R");
    assert_eq!(
        list["items"][0]["label"], "acct-1",
        "empty cells keep stored values"
    );
    assert_eq!(list["items"][2]["email"], "chitra@example.com");
    assert_eq!(list["items"][2]["name"], "Chitra");
}

#[tokio::test]
async fn bad_rows_stop_the_import_unless_skipped() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    app.account(sf, "owner@example.com", json!({"phone": "9811111111"}))
        .await;
    app.account(sf, "other@example.com", json!({"phone": "9822222222"}))
        .await;
    let file = "email,phone,active\n\
                good@example.com,,\n\
                not-an-email,,\n\
                owner@example.com,9822222222,\n\
                ,,\n\
                good2@example.com,,perhaps\n\
                good@example.com,,\n";
    let url = format!("/api/v1/accounts/import?storefront_id={sf}");
    let r = app
        .post_raw(&url, &app.operator, "text/csv", file.as_bytes())
        .await;
    assert_eq!(r.error(422, "invalid_rows").as_deref(), Some("file"));
    let errors: Vec<(i64, String)> = r.json["report"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_i64().unwrap(),
                e["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            (3, "email".into()),
            (4, "phone".into()),
            (6, "active".into()),
            (7, "email".into())
        ],
        "every problem with its line: bad email, a phone owned by another account, a bad flag, a repeated email"
    );
    assert_eq!(r.json["report"]["applied"], false);
    assert_eq!(app.count("/api/v1/accounts").await, 2, "nothing applied");

    let r = app
        .post_raw(
            &format!("{url}&on_error=skip&dry_run=true"),
            &app.operator,
            "text/csv",
            file.as_bytes(),
        )
        .await;
    assert_eq!(r.ok(200)["applied"], false);
    assert_eq!(r.json["created"], 1);
    assert_eq!(
        app.count("/api/v1/accounts").await,
        2,
        "a dry run changes nothing"
    );

    let r = app
        .post_raw(
            &format!("{url}&on_error=skip"),
            &app.operator,
            "text/csv",
            file.as_bytes(),
        )
        .await;
    let report = r.ok(200);
    assert_eq!(report["applied"], true);
    assert_eq!(report["created"], 1);
    assert_eq!(report["rejected"], 4);
    assert_eq!(app.count("/api/v1/accounts").await, 3);
    let owner = app
        .get("/api/v1/accounts?q=owner", &app.viewer)
        .await
        .ok(200)
        .clone();
    assert_eq!(
        owner["items"][0]["phone"], "9811111111",
        "the rejected row changed nothing"
    );
}

#[tokio::test]
async fn import_file_problems() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    let url = format!("/api/v1/accounts/import?storefront_id={sf}");
    let r = app
        .post_raw(&url, &app.operator, "text/csv", b"name,points\nx,1\n")
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("file"));
    let r = app
        .post_raw(&url, &app.operator, "text/csv", b"email,email\n")
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("file"));
    let r = app
        .post_raw(
            "/api/v1/accounts/import?storefront_id=999",
            &app.operator,
            "text/csv",
            b"email\na@example.com\n",
        )
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("storefront_id"));
    let r = app
        .post_raw(
            "/api/v1/accounts/import",
            &app.operator,
            "text/csv",
            b"email\na@example.com\n",
        )
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("storefront_id"));
    let r = app
        .post_raw(
            &format!("{url}&on_error=ignore"),
            &app.operator,
            "text/csv",
            b"email\na@example.com\n",
        )
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("on_error"));
    app.post_raw(&url, &app.viewer, "text/csv", b"email\na@example.com\n")
        .await
        .error(403, "forbidden");
    assert_eq!(app.count("/api/v1/accounts").await, 0);
}

#[tokio::test]
async fn imported_cookies_are_sealed() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    let file = "email,cookies\na@example.com,\"[{\"\"name\"\":\"\"f.session\"\",\"\"value\"\":\"\"s%3Asecret\"\",\"\"sameSite\"\":\"\"lax\"\"}]\"\nb@example.com,sid=plain\n";
    let r = app
        .post_raw(
            &format!("/api/v1/accounts/import?storefront_id={sf}"),
            &app.operator,
            "text/csv",
            file.as_bytes(),
        )
        .await;
    assert_eq!(r.ok(200)["created"], 2);
    let list = app
        .get("/api/v1/accounts", &app.viewer)
        .await
        .ok(200)
        .clone();
    assert_eq!(
        list["items"][0]["session"]["cookies"][0]["name"],
        "f.session"
    );
    assert_eq!(
        list["items"][1]["session"]["cookies"][0]["domain"],
        "shop.example.com"
    );
    let id = list["items"][0]["id"].as_i64().unwrap();
    let jar = app
        .store()
        .account_cookies(AccountId(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(jar.cookies()[0].value, "s%3Asecret");
}

#[tokio::test]
async fn exports_round_trip_without_cookies() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    app.post_raw(
        &format!("/api/v1/accounts/import?storefront_id={sf}"),
        &app.operator,
        "text/csv",
        CSV.as_bytes(),
    )
    .await
    .ok(200);
    let r = app
        .get(
            &format!("/api/v1/accounts/export?storefront_id={sf}&tag=north"),
            &app.viewer,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        r.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("accounts.csv")
    );
    let text = r.text();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "id,label,name,email,phone,tags,active,session_status,points,tier,last_checked_at,created_at"
    );
    assert!(
        lines
            .next()
            .unwrap()
            .contains(",acct-1,Asha,asha@example.com,9800000001,north;vip,true,unknown,")
    );
    assert_eq!(lines.count(), 1);

    let r = app
        .get(
            "/api/v1/accounts/export?format=json&active=false",
            &app.viewer,
        )
        .await;
    assert_eq!(r.ok(200).as_array().unwrap().len(), 1);
    app.get("/api/v1/accounts/export?format=xml", &app.viewer)
        .await
        .error(422, "invalid");
    app.get("/api/v1/accounts/export?page=2", &app.viewer)
        .await
        .error(422, "invalid");

    // What was exported imports again into another storefront unchanged.
    let other = app.storefront("other").await;
    let r = app
        .post_raw(
            &format!("/api/v1/accounts/import?storefront_id={other}"),
            &app.operator,
            "text/csv",
            text.as_bytes(),
        )
        .await;
    assert_eq!(r.ok(200)["created"], 2);
}

#[tokio::test]
async fn backups_restore_accounts_with_cookies_elsewhere() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    let id = app
        .account(
            sf,
            "a@example.com",
            json!({"tags": ["vip"], "phone": "9800000001"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    app.put_raw(
        &format!("/api/v1/accounts/{id}/cookies"),
        &app.operator,
        "text/plain",
        "f.session=s%3Akeepme",
    )
    .await
    .ok(200);

    app.post(
        "/api/v1/accounts/backup",
        &app.operator,
        json!({"passphrase": "a long passphrase"}),
    )
    .await
    .error(403, "forbidden");
    let r = app
        .post(
            "/api/v1/accounts/backup",
            &app.admin,
            json!({"passphrase": "short"}),
        )
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("passphrase"));
    let r = app
        .post(
            "/api/v1/accounts/backup",
            &app.admin,
            json!({"passphrase": "a long passphrase"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    assert!(
        !r.body.windows(6).any(|w| w == b"keepme"),
        "the backup is encrypted"
    );
    let backup = base64::engine::general_purpose::STANDARD.encode(&r.body);

    // Restore on a different install (another key, another database).
    let other = TestApp::spawn().await;
    let r = other
        .post(
            "/api/v1/accounts/restore",
            &other.admin,
            json!({"passphrase": "the wrong passphrase", "backup": backup}),
        )
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("passphrase"));
    let r = other
        .post(
            "/api/v1/accounts/restore",
            &other.admin,
            json!({"passphrase": "a long passphrase", "backup": "bm90IGEgYmFja3Vw"}),
        )
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("backup"));
    assert_eq!(other.count("/api/v1/accounts").await, 0);
    let r = other
        .post(
            "/api/v1/accounts/restore",
            &other.admin,
            json!({"passphrase": "a long passphrase", "backup": backup}),
        )
        .await;
    let summary = r.ok(200);
    assert_eq!(summary["storefronts_created"], 1);
    assert_eq!(summary["accounts_created"], 1);
    let restored = other.get("/api/v1/accounts", &other.admin).await.ok(200)["items"][0].clone();
    assert_eq!(restored["email"], "a@example.com");
    assert_eq!(restored["tags"], json!(["vip"]));
    let jar = other
        .store()
        .account_cookies(AccountId(restored["id"].as_i64().unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(jar.cookies()[0].value, "s%3Akeepme");
    // Restoring twice updates rather than duplicates.
    let r = other
        .post(
            "/api/v1/accounts/restore",
            &other.admin,
            json!({"passphrase": "a long passphrase", "backup": backup}),
        )
        .await;
    assert_eq!(r.ok(200)["accounts_updated"], 1);
    assert_eq!(other.count("/api/v1/accounts").await, 1);
}

#[tokio::test]
async fn exports_defuse_spreadsheet_formulas() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    app.account(
        sf,
        "f@example.com",
        json!({"label": "=HYPERLINK(\"http://evil\")", "name": "@SUM(A1)"}),
    )
    .await;
    app.account(sf, "g@example.com", json!({"phone": "+91 98111 11111"}))
        .await;
    // The tier comes from the storefront's rewards answer: another site's text.
    app.exec_sql("UPDATE accounts SET tier = '=cmd|'' /C calc''!A0' WHERE email = 'g@example.com'")
        .await;
    let text = app.get("/api/v1/accounts/export", &app.viewer).await.text();
    assert!(text.contains("'=HYPERLINK"), "{text}");
    assert!(text.contains("'@SUM(A1)"), "{text}");
    assert!(text.contains("'=cmd|"), "every cell, the tier too: {text}");
    assert!(text.contains("'+919811111111"), "{text}");
    // The quote is the export's own: read back, the values are what they were.
    let r = app
        .post_raw(
            &format!("/api/v1/accounts/import?storefront_id={sf}"),
            &app.operator,
            "text/csv",
            text.as_bytes(),
        )
        .await;
    assert_eq!(r.ok(200)["created"], 0, "{}", r.text());
    let list = app
        .get(&format!("/api/v1/accounts?storefront_id={sf}"), &app.viewer)
        .await;
    let items = list.ok(200)["items"].as_array().unwrap().clone();
    assert!(
        items
            .iter()
            .any(|a| a["label"] == "=HYPERLINK(\"http://evil\")"),
        "{items:?}"
    );
    assert!(
        items.iter().any(|a| a["phone"] == "+919811111111"),
        "{items:?}"
    );
}

#[tokio::test]
async fn a_failed_restore_changes_nothing() {
    let app = TestApp::spawn().await;
    let first = app.storefront("aaa").await;
    app.account(first, "x@example.com", json!({})).await;
    let second = app.storefront("bbb").await;
    app.account(second, "e1@example.com", json!({"phone": "9811111111"}))
        .await;
    let r = app
        .post(
            "/api/v1/accounts/backup",
            &app.admin,
            json!({"passphrase": "a long passphrase"}),
        )
        .await;
    let backup = base64::engine::general_purpose::STANDARD.encode(&r.body);

    // On the other install, e1's email and phone belong to two different accounts.
    let other = TestApp::spawn().await;
    let bbb = other.storefront("bbb").await;
    other.account(bbb, "e1@example.com", json!({})).await;
    other
        .account(bbb, "z@example.com", json!({"phone": "9811111111"}))
        .await;
    let r = other
        .post(
            "/api/v1/accounts/restore",
            &other.admin,
            json!({"passphrase": "a long passphrase", "backup": backup}),
        )
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("backup"));
    assert_eq!(
        other
            .get("/api/v1/storefronts", &other.admin)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len(),
        1,
        "storefront aaa was not created"
    );
    assert_eq!(other.count("/api/v1/accounts").await, 2);
}
