//! The dashboard over plain HTTP: sessions, CSRF on every form, roles, sign-out, error pages.

use crate::helpers::{PASSWORD, ShopApp, TestApp};
use reqwest::StatusCode;
use reqwest::redirect::Policy;

/// A browser-like client: keeps cookies, does not follow redirects (so tests see them).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// The CSRF token in a page's forms.
fn csrf(html: &str) -> String {
    let start = html
        .find(r#"name="_csrf" value=""#)
        .expect("a form with a CSRF field")
        + r#"name="_csrf" value=""#.len();
    html[start..].split('"').next().unwrap().to_owned()
}

async fn page(http: &reqwest::Client, url: String) -> (StatusCode, String) {
    let r = http.get(url).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// Signs in through the form; returns the client and a page's CSRF token.
async fn signed_in(app: &TestApp, username: &str) -> (reqwest::Client, String) {
    let http = client();
    let (_, login) = page(&http, format!("{}/login", app.base)).await;
    let r = http
        .post(format!("{}/login", app.base))
        .form(&[
            ("_csrf", csrf(&login).as_str()),
            ("username", username),
            ("password", PASSWORD),
            ("next", "/accounts"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/accounts");
    let cookie = header(&r, "set-cookie").to_owned();
    assert!(
        cookie.starts_with("cw_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let (status, html) = page(&http, format!("{}/products", app.base)).await;
    assert_eq!(status, StatusCode::OK);
    let token = csrf(&html);
    (http, token)
}

#[tokio::test]
async fn signing_in_needs_the_forms_own_token_and_the_right_password() {
    let app = TestApp::spawn().await;
    let http = client();
    let r = http
        .get(format!("{}/accounts?q=a", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=%2Faccounts%3Fq%3Da");

    // A sign-in posted from elsewhere (no token from our form) is refused.
    let r = http
        .post(format!("{}/login", app.base))
        .form(&[("username", "admin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let (_, login) = page(&http, format!("{}/login", app.base)).await;
    let r = http
        .post(format!("{}/login", app.base))
        .form(&[
            ("_csrf", csrf(&login).as_str()),
            ("username", "admin"),
            ("password", "wrong password"),
            ("next", "https://evil.example.com/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Wrong username or password")
    );

    // After signing in, `next` only leads to this site.
    let (_, login) = page(&http, format!("{}/login", app.base)).await;
    let r = http
        .post(format!("{}/login", app.base))
        .form(&[
            ("_csrf", csrf(&login).as_str()),
            ("username", "admin"),
            ("password", PASSWORD),
            // Sent as `/%09/evil.example`: a browser drops the tab and reads `//evil.example`.
            ("next", "/\t/evil.example.com/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/");
    assert!(!header(&r, "set-cookie").contains("Secure"));

    // Behind a TLS proxy, the cookies are marked Secure.
    let https = client();
    let r = https
        .get(format!("{}/login", app.base))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(header(&r, "set-cookie").ends_with("; Secure"));
    let login = r.text().await.unwrap();
    let r = https
        .post(format!("{}/login", app.base))
        .header("x-forwarded-proto", "https")
        .form(&[
            ("_csrf", csrf(&login).as_str()),
            ("username", "admin"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = header(&r, "set-cookie").to_owned();
    assert!(
        session.starts_with("cw_session=") && session.ends_with("; Secure"),
        "{session}"
    );
}

#[tokio::test]
async fn every_form_needs_the_sessions_csrf_token() {
    let app = TestApp::spawn().await;
    let storefront = app.storefront("csrf").await;
    let (http, token) = signed_in(&app, "operator").await;
    let product = |csrf: &str| {
        vec![
            ("_csrf".to_owned(), csrf.to_owned()),
            ("storefront_id".to_owned(), storefront.to_string()),
            ("name".to_owned(), "Balm".to_owned()),
            (
                "url".to_owned(),
                "https://csrf.example.com/p/balm".to_owned(),
            ),
            ("in_stock".to_owned(), "on".to_owned()),
        ]
    };
    for bad in ["", "0123456789abcdef0123456789abcdef"] {
        let r = http
            .post(format!("{}/products/new", app.base))
            .form(&product(bad))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "token {bad:?}");
        assert!(r.text().await.unwrap().contains("expired"));
    }
    // Another operator's token does not fit this session.
    let (_, other) = signed_in(&app, "admin").await;
    assert_ne!(other, token);
    let r = http
        .post(format!("{}/products/new", app.base))
        .form(&product(&other))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.count("/api/v1/products").await,
        0,
        "nothing was written"
    );

    let r = http
        .post(format!("{}/products/new", app.base))
        .form(&product(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.count("/api/v1/products").await, 1);

    // The live preview (fetch) sends it as a header.
    let preview = [
        ("storefront_id", storefront.to_string()),
        ("select_by", "range".into()),
        ("from", "1".into()),
        ("to", "5".into()),
    ];
    let r = http
        .post(format!("{}/accounts/preview", app.base))
        .form(&preview)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = http
        .post(format!("{}/accounts/preview", app.base))
        .header("x-csrf-token", &token)
        .form(&preview)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("selected"));

    // The session cookie reads the API (downloads, event streams) but never changes it.
    let r = http
        .get(format!("{}/api/v1/products", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http
        .post(format!("{}/api/v1/storefronts", app.base))
        .json(&serde_json::json!({"slug": "x", "name": "x", "profile": "demo", "base_url": "https://x.example.com/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_viewer_reads_but_every_change_is_refused() {
    let app = TestApp::spawn().await;
    let storefront = app.storefront("roles").await;
    let (http, token) = signed_in(&app, "viewer").await;
    for path in [
        "/",
        "/accounts",
        "/products",
        "/addresses",
        "/batches",
        "/settings",
    ] {
        let (status, html) = page(&http, format!("{}{path}", app.base)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            !html.contains(r#"href="/batches/new""#),
            "{path} offers a new batch"
        );
    }
    for path in [
        "/batches/new",
        "/products/new",
        "/addresses/new",
        "/accounts/import",
        "/settings/operators",
        "/settings/tokens",
    ] {
        let (status, html) = page(&http, format!("{}{path}", app.base)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(html.contains("Not allowed"), "{path}: {html}");
    }
    let posts = [
        "/products/new",
        "/addresses/new",
        "/batches/new",
        "/accounts/import",
        "/settings/tokens",
        "/settings/operators",
    ];
    for path in posts {
        let r = http
            .post(format!("{}{path}", app.base))
            .form(&[
                ("_csrf", token.as_str()),
                ("storefront_id", &storefront.to_string()),
                ("name", "x"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(app.count("/api/v1/products").await, 0);

    // An operator may operate but not administer.
    let (http, token) = signed_in(&app, "operator").await;
    let (status, _) = page(&http, format!("{}/settings/tokens", app.base)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let r = http
        .post(format!("{}/settings/tokens", app.base))
        .form(&[
            ("_csrf", token.as_str()),
            ("name", "x"),
            ("scope_read", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn signing_out_ends_the_session_and_a_role_change_applies_at_once() {
    let app = TestApp::spawn().await;
    let (http, token) = signed_in(&app, "operator").await;
    let r = http
        .post(format!("{}/logout", app.base))
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login");
    assert!(header(&r, "set-cookie").starts_with("cw_session=;"));
    let r = http.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login");

    // An admin demotes a signed-in operator: their next form is refused as a viewer's.
    let (http, token) = signed_in(&app, "operator").await;
    let (admin, admin_token) = signed_in(&app, "admin").await;
    let id = app
        .get("/api/v1/operators", &app.admin)
        .await
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["username"] == "operator")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let r = admin
        .post(format!("{}/settings/operators/{id}", app.base))
        .form(&[("_csrf", admin_token.as_str()), ("role", "viewer")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The role change ended the old sign-in: back to the sign-in page.
    let r = http
        .post(format!("{}/addresses/new", app.base))
        .form(&[("_csrf", token.as_str()), ("full_name", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(header(&r, "location").starts_with("/login"));
}

#[tokio::test]
async fn missing_pages_are_html_for_people_and_json_for_the_api() {
    let app = TestApp::spawn().await;
    let (http, _) = signed_in(&app, "viewer").await;
    for path in [
        "/no-such-page",
        "/batches/424242",
        "/accounts/424242",
        "/orders/424242",
    ] {
        let r = http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(header(&r, "content-type").starts_with("text/html"));
    }
    let r = http
        .get(format!("{}/api/v1/nothing", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    // Pages run only their own scripts and are never framed elsewhere.
    let r = http.get(format!("{}/", app.base)).send().await.unwrap();
    let csp = header(&r, "content-security-policy");
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));

    // Assets: long-lived under their versioned URL.
    let (_, html) = page(&http, format!("{}/", app.base)).await;
    let css = html
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with("app.css"))
        .unwrap()
        .to_owned();
    let r = http.get(format!("{}{css}", app.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(&r, "cache-control").contains("immutable"));
}

#[tokio::test]
async fn tokens_are_shown_once_and_revoked_and_profiles_are_validated_from_forms() {
    let app = TestApp::spawn().await;
    let (http, token) = signed_in(&app, "admin").await;
    let r = http
        .post(format!("{}/settings/tokens", app.base))
        .form(&[
            ("_csrf", token.as_str()),
            ("name", "script"),
            ("scope_read", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    let start = html.find("cwt_").expect("the secret on the page");
    let secret: String = html[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    assert_eq!(app.get("/api/v1/products", &secret).await.status, 200);
    let (_, list) = page(&http, format!("{}/settings/tokens", app.base)).await;
    assert!(!list.contains(&secret), "the secret is shown once");
    let id = app.get("/api/v1/tokens", &app.admin).await.json[0]["id"]
        .as_i64()
        .unwrap();
    let r = http
        .post(format!("{}/settings/tokens/{id}/revoke", app.base))
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get("/api/v1/products", &secret).await.status, 401);

    // A pasted profile is checked, its problems named by line; a good one passes.
    let r = http
        .post(format!("{}/settings/profiles/validate", app.base))
        .form(&[
            ("_csrf", token.as_str()),
            ("name", "broken"),
            (
                "profile",
                "[site]\nname = \"Broken\"\nrate_limit = \"fast\"\n",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("broken.toml"));
    let good = include_str!("../../../../profiles/demo.toml");
    let r = http
        .post(format!("{}/settings/profiles/validate", app.base))
        .form(&[
            ("_csrf", token.as_str()),
            ("name", "copy"),
            ("profile", good),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("The profile is valid"));
}

#[tokio::test]
async fn products_and_addresses_are_edited_and_deleted_from_their_forms() {
    let app = TestApp::spawn().await;
    let storefront = app.storefront("edits").await;
    let (http, token) = signed_in(&app, "operator").await;
    let product = app
        .post(
            "/api/v1/products",
            &app.operator,
            serde_json::json!({"storefront_id": storefront, "name": "Balm", "url": "https://edits.example.com/p/balm"}),
        )
        .await
        .ok(201)["id"]
        .as_i64()
        .unwrap();
    let (status, form) = page(&http, format!("{}/products/{product}", app.base)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(form.contains(r#"value="Balm""#));
    // An emptied required field is refused beside it; nothing changes.
    let r = http
        .post(format!("{}/products/{product}", app.base))
        .form(&[
            ("_csrf", token.as_str()),
            ("name", ""),
            ("url", "https://edits.example.com/p/balm"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains(r#"id="name-error""#));
    let r = http
        .post(format!("{}/products/{product}", app.base))
        .form(&[
            ("_csrf", token.as_str()),
            ("name", "Lip Balm"),
            ("url", "https://edits.example.com/p/balm"),
            ("price", "1,299.50"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let p = app
        .get(&format!("/api/v1/products/{product}"), &app.admin)
        .await;
    assert_eq!(p.json["name"], "Lip Balm");
    assert_eq!(p.json["price"], 1299.5);
    let r = http
        .post(format!("{}/products/{product}/delete", app.base))
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.count("/api/v1/products").await, 0);

    // Two addresses; ticking "default" on the second moves the default there.
    let address = |label: &'static str| {
        [
            ("_csrf", token.clone()),
            ("label", label.to_owned()),
            ("full_name", "Ira Das".to_owned()),
            ("line1", "Studio 9".to_owned()),
            ("postcode", "411001".to_owned()),
            ("city", "Pune".to_owned()),
            ("state", "Maharashtra".to_owned()),
            ("phone", "9820099999".to_owned()),
            ("kind", "work".to_owned()),
        ]
    };
    for label in ["First", "Second"] {
        let r = http
            .post(format!("{}/addresses/new", app.base))
            .form(&address(label))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
    let list = app.get("/api/v1/addresses", &app.admin).await.json.clone();
    let second = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["label"] == "Second")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let mut edit = address("Second").to_vec();
    edit.push(("is_default", "on".to_owned()));
    let r = http
        .post(format!("{}/addresses/{second}", app.base))
        .form(&edit)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let list = app.get("/api/v1/addresses", &app.admin).await.json.clone();
    assert_eq!(list[0]["label"], "Second");
    assert_eq!(list[0]["is_default"], true);
    assert_eq!(list[1]["is_default"], false);
    let r = http
        .post(format!("{}/addresses/{second}/delete", app.base))
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.get("/api/v1/addresses", &app.admin)
            .await
            .json
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// A response header's value as text; the test fails when it is missing.
fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("a text header")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolved_order_stands_out_and_is_settled_from_its_page() {
    let s = ShopApp::spawn(|_| {}).await;
    let (batch, order) = s.unresolved_order().await;
    let base = &s.app.base;
    let (viewer, _) = signed_in(&s.app, "viewer").await;
    let (_, html) = page(&viewer, format!("{base}/orders/{order}")).await;
    assert!(html.contains("Needs a person"), "the evidence is shown");
    assert!(
        !html.contains("id=\"resolve-form\""),
        "a viewer cannot settle it"
    );

    let (http, _) = signed_in(&s.app, "operator").await;
    let (_, overview) = page(&http, format!("{base}/")).await;
    assert!(
        overview.contains("id=\"unsettled\"") && overview.contains(&format!("/orders/{order}\"")),
        "the overview leads to it"
    );
    let (_, batch_page) = page(&http, format!("{base}/batches/{batch}")).await;
    assert!(batch_page.contains("id=\"unresolved-alert\""));
    let (_, html) = page(&http, format!("{base}/orders/{order}")).await;
    assert!(html.contains("id=\"resolve-form\""));
    let number = s.shop.shop.orders()[0].number.clone();
    let r = http
        .post(format!("{base}/orders/{order}/resolve"))
        .form(&[
            ("_csrf", csrf(&html).as_str()),
            ("outcome", "placed"),
            ("order_number", number.as_str()),
            ("note", "found it in the shop"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        format!("/batches/{batch}").as_str()
    );
    let (_, batch_page) = page(&http, format!("{base}/batches/{batch}")).await;
    assert!(!batch_page.contains("id=\"unresolved-alert\""));
    let (_, html) = page(&http, format!("{base}/orders/{order}")).await;
    assert!(
        html.contains(&number) && html.contains("found it in the shop"),
        "{html}"
    );
    assert!(!html.contains("id=\"resolve-form\""), "settled once");
}

/// The session token a sign-in or password change set (`cw_session=…`).
fn session_token(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("cw_session="))
        .and_then(|c| c.split(';').next())
        .filter(|t| !t.is_empty())
        .expect("a session cookie")
        .to_owned()
}

#[tokio::test]
async fn my_page_lists_my_sign_ins_changes_my_password_and_signing_out_ends_the_token() {
    let app = TestApp::spawn().await;
    let http = client();
    let (_, login) = page(&http, format!("{}/login", app.base)).await;
    let r = http
        .post(format!("{}/login", app.base))
        .header("user-agent", "Test browser 1.0")
        .form(&[
            ("_csrf", csrf(&login).as_str()),
            ("username", "operator"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let first = session_token(&r);
    let (status, me) = page(&http, format!("{}/me", app.base)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        me.contains("Test browser 1.0") && me.contains("this browser"),
        "{me}"
    );
    assert!(
        me.contains("Sign out everywhere else"),
        "the fixture's sign-in is listed too"
    );
    let token = csrf(&me);

    let change = async |current: &str, new: &str, repeat: &str| {
        http.post(format!("{}/me/password", app.base))
            .form(&[
                ("_csrf", token.as_str()),
                ("current_password", current),
                ("new_password", new),
                ("repeat_password", repeat),
            ])
            .send()
            .await
            .unwrap()
    };
    let r = change(PASSWORD, "a brand new secret", "a brand new secrte").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Does not match the new password.")
    );
    let r = change("not it", "a brand new secret", "a brand new secret").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Is not the password in use")
    );
    let r = change(PASSWORD, "a brand new secret", "a brand new secret").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/me?changed=1");
    let second = session_token(&r);
    assert_ne!(first, second);
    // The old token is void (the fixture's too); this browser goes on with the new one.
    app.get("/api/v1/auth/me", &first)
        .await
        .error(401, "unauthorized");
    app.get("/api/v1/auth/me", &app.operator)
        .await
        .error(401, "unauthorized");
    let (status, me) = page(&http, format!("{}/me?changed=1", app.base)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(me.contains("Password changed."), "{me}");
    assert!(
        !me.contains("Sign out everywhere else"),
        "only this sign-in is left"
    );

    // Signing out ends the token on the server, not only the cookie in this browser.
    let r = http
        .post(format!("{}/logout", app.base))
        .form(&[("_csrf", csrf(&me).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    app.get("/api/v1/auth/me", &second)
        .await
        .error(401, "unauthorized");
}
