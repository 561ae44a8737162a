//! The API answers as its OpenAPI document says: every operation of the served document is
//! called without a credential, as a viewer and as an admin, with path ids that exist, do not
//! exist and do not parse, with and without query values, and with bodies that are empty,
//! of the wrong shape, malformed or of the wrong type. No answer is a 5xx, every status is one
//! the operation documents, every JSON success fits its documented schema, and every error is
//! the one envelope.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

/// One request to try.
struct Try {
    method: Method,
    path: String,
    token: Option<String>,
    body: Option<(&'static str, Vec<u8>)>,
}

fn paths_with(template: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map_or(rest.len(), |e| start + e + 1);
        out.push_str(value);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_as_documented() {
    let app = TestApp::spawn_with(|s| s.workers = 0).await;
    let sf = app.storefront("shop").await;
    app.account(sf, "a@example.com", json!({})).await;
    let doc = app
        .http
        .get(format!("{}/api/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    let doc: Value = doc.json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    let mut requests = 0;
    let mut bodies_checked = 0;
    let mut problems: Vec<String> = Vec::new();
    for (template, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let documented: Vec<String> = op["responses"]
                .as_object()
                .map(|r| r.keys().cloned().collect())
                .unwrap_or_default();
            // Signing out (or everywhere else) would end the very tokens this test uses.
            let ends_tokens = template.ends_with("/auth/logout")
                || (template.ends_with("/auth/sessions") && method == Method::DELETE);
            operations += 1;
            let has_query = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            let query_names: Vec<String> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "query" && p["name"] != "access_token")
                        .filter_map(|p| p["name"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let has_body = op.get("requestBody").is_some();
            let mut tries = Vec::new();
            let viewer = app.login("viewer", PASSWORD).await;
            let admin = app.login("admin", PASSWORD).await;
            let tokens = [None, Some(viewer), (!ends_tokens).then_some(admin.clone())];
            for token in tokens.iter() {
                if token.is_none() && ends_tokens {
                    continue;
                }
                for id in ["1", "999999", "abc", "0", "-3"] {
                    let path = paths_with(template, id);
                    let mut queries = vec![String::new()];
                    if has_query {
                        for name in &query_names {
                            queries.push(format!("?{name}=x"));
                            queries.push(format!("?{name}=-1"));
                            queries.push(format!("?{name}=2147483648"));
                        }
                        queries.push("?unknown_parameter=1".into());
                    }
                    let bodies: Vec<Option<(&'static str, Vec<u8>)>> = if has_body {
                        vec![
                            None,
                            Some(("application/json", b"{}".to_vec())),
                            Some(("application/json", b"[null,null]".to_vec())),
                            Some(("application/json", b"{\"x\":".to_vec())),
                            Some(("application/json", b"\"text\"".to_vec())),
                            Some(("text/plain", b"hello".to_vec())),
                        ]
                    } else {
                        vec![None]
                    };
                    // Ids: every variant once; queries and bodies on the first id only.
                    let (queries, bodies) = if id == "1" {
                        (queries, bodies)
                    } else {
                        (vec![String::new()], vec![bodies[0].clone()])
                    };
                    for q in &queries {
                        for b in &bodies {
                            tries.push(Try {
                                method: method.clone(),
                                path: format!("{path}{q}"),
                                token: token.clone(),
                                body: b.clone(),
                            });
                        }
                    }
                    if !template.contains('{') {
                        break;
                    }
                }
            }
            for t in tries {
                requests += 1;
                let mut req = app
                    .http
                    .request(t.method.clone(), format!("{}{}", app.base, t.path));
                if let Some(token) = &t.token {
                    req = req.bearer_auth(token);
                }
                if let Some((kind, bytes)) = &t.body {
                    req = req.header("content-type", *kind).body(bytes.clone());
                }
                let who = if t.token.is_some() {
                    "signed in"
                } else {
                    "anonymous"
                };
                let r = match tokio::time::timeout(std::time::Duration::from_secs(20), req.send())
                    .await
                {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => {
                        problems.push(format!("{} {} ({who}): {e}", t.method, t.path));
                        continue;
                    }
                    Err(_) => {
                        problems.push(format!("{} {} ({who}): no answer", t.method, t.path));
                        continue;
                    }
                };
                let status = r.status().as_u16();
                let is_stream = r
                    .headers()
                    .get("content-type")
                    .is_some_and(|c| c.to_str().unwrap_or("").starts_with("text/event-stream"));
                let body = if is_stream {
                    Vec::new()
                } else {
                    r.bytes().await.unwrap_or_default().to_vec()
                };
                let label = format!("{} {} ({who}) → {status}", t.method, t.path);
                if status >= 500 {
                    problems.push(format!("{label}: {}", String::from_utf8_lossy(&body)));
                    continue;
                }
                if !documented
                    .iter()
                    .any(|d| d == &status.to_string() || d == "default")
                {
                    problems.push(format!(
                        "{label} is not documented ({documented:?}): {}",
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(160)
                            .collect::<String>()
                    ));
                }
                if (200..300).contains(&status)
                    && let Some(schema) =
                        op["responses"][status.to_string()]["content"]["application/json"]
                            .get("schema")
                    && !body.is_empty()
                {
                    bodies_checked += 1;
                    match serde_json::from_slice::<Value>(&body) {
                        Ok(value) => {
                            if let Err(e) = fits(&doc, schema, &value, "body") {
                                problems.push(format!("{label}: {e}"));
                            }
                        }
                        Err(e) => problems.push(format!("{label}: not JSON: {e}")),
                    }
                }
                if status >= 400 {
                    let envelope: Option<Value> = serde_json::from_slice(&body).ok();
                    let ok = envelope.as_ref().is_some_and(|e| {
                        e["error"]["code"].is_string() && e["error"]["message"].is_string()
                    });
                    if !ok {
                        problems.push(format!(
                            "{label}: not the error envelope: {}",
                            String::from_utf8_lossy(&body)
                                .chars()
                                .take(160)
                                .collect::<String>()
                        ));
                    }
                }
            }
        }
    }
    assert!(operations > 60, "{operations} operations in the document");
    assert!(
        bodies_checked > 50,
        "{bodies_checked} successful answers checked"
    );
    eprintln!(
        "{operations} operations, {requests} requests, {bodies_checked} successes checked against their schema"
    );
    assert!(
        problems.is_empty(),
        "{} of {requests} requests:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[tokio::test]
async fn bad_values_are_named_in_words_and_refusals_say_why() {
    let app = TestApp::spawn_with(|s| {
        s.workers = 0;
        s.max_batch_orders = 3;
    })
    .await;
    let message = |r: &Resp| r.json["error"]["message"].as_str().unwrap_or("").to_owned();

    let r = app.get("/api/v1/accounts?page=-1", &app.viewer).await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("page"));
    assert_eq!(message(&r), "must be a whole number of 0 or more");
    let r = app
        .get("/api/v1/accounts?page=2147483648", &app.viewer)
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("page"));

    let r = app
        .post(
            "/api/v1/operators",
            &app.admin,
            json!({"username": "x", "password": "long enough", "role": "viewer", "colour": 1}),
        )
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("colour"));
    assert!(
        message(&r).starts_with("is not a known field; expected one of `username`"),
        "{}",
        message(&r)
    );

    let sf = app.storefront("shop").await;
    let account = app.account(sf, "a@example.com", json!({})).await;
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/accounts/{}", account["id"]),
            Some(&app.operator),
            Body::Raw("application/json", b"[null, null]".to_vec()),
        )
        .await;
    r.error(422, "invalid");
    assert!(
        message(&r).contains("must be a JSON object"),
        "{}",
        message(&r)
    );

    let r = app
        .post(
            "/api/v1/accounts/selection",
            &app.viewer,
            json!({"storefront_id": sf, "ids": [0]}),
        )
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("ids[0]"));

    let r = app.get("/api/v1/accounts/abc", &app.viewer).await;
    r.error(400, "bad_request");
    assert!(message(&r).contains("`abc`"), "{}", message(&r));

    // An admin does not delete themselves mid-request.
    let me = app.get("/api/v1/auth/me", &app.admin).await.ok(200)["operator"]["id"]
        .as_i64()
        .unwrap();
    app.post(
        "/api/v1/operators",
        &app.admin,
        json!({"username": "second", "password": PASSWORD, "role": "admin"}),
    )
    .await
    .ok(201);
    let r = app
        .delete(&format!("/api/v1/operators/{me}"), &app.admin)
        .await;
    assert_eq!(r.error(409, "refused").as_deref(), Some("id"));
    app.get("/api/v1/auth/me", &app.admin).await.ok(200);

    // A batch bigger than the configured cap is refused whole, saying the cap.
    for n in 2..=4 {
        app.account(sf, &format!("a{n}@example.com"), json!({}))
            .await;
    }
    let product = app
        .post(
            "/api/v1/products",
            &app.operator,
            json!({"storefront_id": sf, "name": "Lipstick", "url": "https://shop.example.com/p/1", "price": "100"}),
        )
        .await;
    let product = product.ok(201)["id"].as_i64().unwrap();
    app.post(
        "/api/v1/addresses",
        &app.operator,
        json!({"full_name": "Asha", "line1": "Flat 4, Sea View", "street": "Linking Road", "postcode": "400050",
               "city": "Mumbai", "state": "Maharashtra", "phone": "+91 98200 00000", "is_default": true}),
    )
    .await
    .ok(201);
    let r = app
        .post(
            "/api/v1/batches",
            &app.operator,
            json!({"accounts": {"storefront_id": sf, "range": {"from": 1, "to": 4}},
                   "lines": [{"product_id": product, "quantity": 1}], "max_total": 100_000}),
        )
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("accounts"));
    assert!(
        message(&r).contains("4 orders") && message(&r).contains("at most 3"),
        "{}",
        message(&r)
    );
    assert_eq!(app.count("/api/v1/batches").await, 0, "nothing was written");
}

/// Whether `value` fits `schema` (an OpenAPI 3.1 schema of `doc`): types, required
/// properties, items, enums and the branches of oneOf/anyOf/allOf, recursively. Formats and
/// lengths are not checked. Returns where it does not fit.
fn fits(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or_default();
        return fits(doc, &doc["components"]["schemas"][name], value, at);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(branches) = schema[key].as_array() {
            if branches.iter().any(|b| fits(doc, b, value, at).is_ok()) {
                return Ok(());
            }
            return Err(format!("{at}: fits none of its {key} branches: {value}"));
        }
    }
    if let Some(all) = schema["allOf"].as_array() {
        for b in all {
            fits(doc, b, value, at)?;
        }
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {options:?}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let ok = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        if !ok {
            return Err(format!(
                "{at}: a {actual} where the document says {types:?}"
            ));
        }
    }
    if let Value::Object(fields) = value {
        if let Some(required) = schema["required"].as_array() {
            for r in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(r) {
                    return Err(format!("{at}: the required `{r}` is missing"));
                }
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, v) in fields {
                if let Some(s) = properties.get(name) {
                    fits(doc, s, v, &format!("{at}.{name}"))?;
                }
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            fits(doc, item, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

#[test]
fn the_schema_check_finds_what_does_not_fit() {
    let doc = json!({"components": {"schemas": {"Item": {
        "type": "object", "required": ["id"],
        "properties": {"id": {"type": "integer"}, "name": {"type": ["string", "null"]},
                       "kind": {"type": "string", "enum": ["a", "b"]}}}}}});
    let list = json!({"type": "array", "items": {"$ref": "#/components/schemas/Item"}});
    assert!(
        fits(
            &doc,
            &list,
            &json!([{"id": 1, "name": null, "kind": "a"}]),
            "body"
        )
        .is_ok()
    );
    for bad in [
        json!([{"name": "x"}]),
        json!([{"id": "1"}]),
        json!([{"id": 1, "kind": "c"}]),
        json!({"id": 1}),
    ] {
        assert!(fits(&doc, &list, &bad, "body").is_err(), "{bad}");
    }
}
