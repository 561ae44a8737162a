//! The cart checked against the batch before the final click: a storefront is paid only for
//! exactly the lines the batch asked for. A clear-cart step that failed quietly, an add that
//! counted twice or a line left from another session would otherwise be paid for; the cap
//! alone catches only carts dear enough to pass it.

use super::RunLog;
use crate::flow::{Failure, Flow, FlowError};
use crate::profile::{CartKey, Phase, Profile};
use cartwright_core::order::{ErrorClass, Level};
use serde_json::Value;
use std::collections::BTreeMap;

/// Reads the cart as the profile's `[cart]` says and fails the run unless it holds exactly
/// the batch's `lines` (each product once per key, with the batch's quantity, nothing else).
/// A wrong cart is tried again in a fresh run only when `cleared` (the batch empties the
/// cart first); otherwise another run would add to it, so a person looks.
pub(super) async fn verify(
    flow: &mut Flow<'_>,
    profile: &Profile,
    lines: &[Value],
    base: &url::Url,
    cleared: bool,
    log: &RunLog,
) -> Result<(), FlowError> {
    let Some(cart) = &profile.cart else {
        return Err(Failure::new(
            ErrorClass::Profile,
            "the profile has no [cart] section: an order is placed only for a cart checked against the batch",
        )
        .into());
    };
    flow.unset("cart_products");
    flow.unset("cart_quantities");
    flow.unset("cart_variants");
    flow.steps(Some(Phase::ReadTotal), &cart.read, "cart.read.")
        .await?;
    let list = |name: &str| -> Vec<String> {
        flow.var(name)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (products, quantities) = (list("cart_products"), list("cart_quantities"));
    let variants = flow
        .var("cart_variants")
        .is_some()
        .then(|| list("cart_variants"));
    let asked = asked(cart.key, base, lines).map_err(|e| Failure::new(ErrorClass::Profile, e))?;
    let held = held(
        cart.key,
        base,
        &products,
        &quantities,
        variants.as_deref(),
        &asked,
    )
    .map_err(|e| Failure::new(ErrorClass::Profile, e))?;
    let wrong = differences(&asked, &held);
    if !wrong.is_empty() {
        let class = if cleared {
            ErrorClass::Transient
        } else {
            ErrorClass::Business
        };
        return Err(Failure::new(
            class,
            format!(
                "the cart is not what the batch asks, so the order was not placed: {}",
                wrong.join("; ")
            ),
        )
        .into());
    }
    let shown: Vec<String> = held.iter().map(|(k, q)| format!("{k} × {q}")).collect();
    log.say(
        Level::Info,
        format!("the cart holds what the batch asks: {}", shown.join(", ")),
    );
    Ok(())
}

/// A product key as compared: a URL by its path (no trailing slash), any other key by its
/// words, case folded.
fn normalise(key: CartKey, base: &url::Url, raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    match key {
        CartKey::Url => {
            let url = base
                .join(raw)
                .map_err(|e| format!("the cart's product link {raw:?} is not a URL: {e}"))?;
            let path = url.path().trim_end_matches('/');
            Ok(if path.is_empty() { "/" } else { path }.to_owned())
        }
        CartKey::Sku | CartKey::Name => Ok(raw
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()),
    }
}

/// A product key with its variant, as compared: `/p/tee [mini]` (brackets, so that a name
/// key cannot pass for another product's name with its variant).
fn with_variant(key: &str, variant: &str) -> String {
    let variant = variant.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{key} [{}]", variant.to_lowercase())
}

/// What the batch asks for: each product key (with its variant, when it has one) with its
/// quantity.
fn asked(key: CartKey, base: &url::Url, lines: &[Value]) -> Result<BTreeMap<String, u64>, String> {
    let mut asked = BTreeMap::new();
    for line in lines {
        let name = line["name"].as_str().unwrap_or("a product");
        let Some(raw) = line[key.as_str()].as_str() else {
            return Err(format!(
                "the profile compares cart lines by {}, and {name} has none",
                key.as_str()
            ));
        };
        let quantity = line["quantity"].as_u64().unwrap_or(0);
        let mut product = normalise(key, base, raw)?;
        if let Some(variant) = line["variant"].as_str() {
            product = with_variant(&product, variant);
        }
        *asked.entry(product).or_default() += quantity;
    }
    Ok(asked)
}

/// What the cart holds, read as lists in page order: product keys, quantities and, when the
/// profile reads them, variants. A line's variant counts when the batch names one for that
/// product; a batch line without a variant takes the product in whatever variant the page
/// chose.
fn held(
    key: CartKey,
    base: &url::Url,
    products: &[String],
    quantities: &[String],
    variants: Option<&[String]>,
    asked: &BTreeMap<String, u64>,
) -> Result<BTreeMap<String, u64>, String> {
    if products.len() != quantities.len() {
        return Err(format!(
            "the cart read {} product keys but {} quantities: [cart] must read one of each per line",
            products.len(),
            quantities.len()
        ));
    }
    if let Some(variants) = variants
        && variants.len() != products.len()
    {
        return Err(format!(
            "the cart read {} product keys but {} variants: [cart] must read one of each per line",
            products.len(),
            variants.len()
        ));
    }
    let mut held = BTreeMap::new();
    for (i, (product, quantity)) in products.iter().zip(quantities).enumerate() {
        let quantity: u64 = quantity.trim().parse().map_err(|_| {
            format!(
                "the cart's quantity {quantity:?} is not a whole number (a `pattern` on its extract can pick the number out)"
            )
        })?;
        let mut product = normalise(key, base, product)?;
        if let Some(variant) = variants.and_then(|v| v.get(i)) {
            let exact = with_variant(&product, variant);
            if asked.contains_key(&exact) || !asked.contains_key(&product) {
                product = exact;
            }
        }
        *held.entry(product).or_default() += quantity;
    }
    Ok(held)
}

/// Each way the cart differs from what was asked, in words; empty when it is the same.
fn differences(asked: &BTreeMap<String, u64>, held: &BTreeMap<String, u64>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (key, want) in asked {
        match held.get(key) {
            None => wrong.push(format!("{key} × {want} is not in the cart")),
            Some(have) if have != want => {
                wrong.push(format!("{key}: {have} in the cart, {want} asked"));
            }
            Some(_) => {}
        }
    }
    for (key, have) in held {
        if !asked.contains_key(key) {
            wrong.push(format!(
                "{key} × {have} is in the cart but not in the batch"
            ));
        }
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> url::Url {
        url::Url::parse("https://shop.example/").unwrap()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_cart_matches_only_the_lines_asked_with_their_quantities() {
        let lines = [
            json!({"url": "https://shop.example/p/rose-lip/", "quantity": 2, "name": "Rose lip"}),
            json!({"url": "https://shop.example/p/kohl", "quantity": 1, "name": "Kohl"}),
        ];
        let asked = asked(CartKey::Url, &base(), &lines).unwrap();
        let same = held(
            CartKey::Url,
            &base(),
            &strings(&["/p/kohl", "/p/rose-lip"]),
            &strings(&["1", " 2 "]),
            None,
            &asked,
        )
        .unwrap();
        assert!(differences(&asked, &same).is_empty());
        // A line split in two counts as its sum.
        let split = held(
            CartKey::Url,
            &base(),
            &strings(&["/p/rose-lip", "/p/kohl", "/p/rose-lip"]),
            &strings(&["1", "1", "1"]),
            None,
            &asked,
        )
        .unwrap();
        assert!(differences(&asked, &split).is_empty());
        let wrong = held(
            CartKey::Url,
            &base(),
            &strings(&["/p/rose-lip", "/p/serum"]),
            &strings(&["4", "1"]),
            None,
            &asked,
        )
        .unwrap();
        assert_eq!(
            differences(&asked, &wrong),
            [
                "/p/kohl × 1 is not in the cart",
                "/p/rose-lip: 4 in the cart, 2 asked",
                "/p/serum × 1 is in the cart but not in the batch",
            ]
        );
        let empty = held(CartKey::Url, &base(), &[], &[], None, &asked).unwrap();
        assert_eq!(differences(&asked, &empty).len(), 2);
    }

    #[test]
    fn variants_count_when_the_batch_names_them() {
        let lines = [
            json!({"url": "https://shop.example/products/tee", "quantity": 1, "name": "Tee", "variant": "Mini"}),
            json!({"url": "https://shop.example/products/tee", "quantity": 2, "name": "Tee", "variant": "Large"}),
            json!({"url": "https://shop.example/products/cap", "quantity": 1, "name": "Cap", "variant": null}),
        ];
        let asked = asked(CartKey::Url, &base(), &lines).unwrap();
        let cart = |variants: &[&str]| {
            held(
                CartKey::Url,
                &base(),
                &strings(&[
                    "/products/tee?variant=Mini",
                    "/products/tee?variant=Large",
                    "/products/cap",
                ]),
                &strings(&["1", "2", "1"]),
                Some(&strings(variants)),
                &asked,
            )
            .unwrap()
        };
        assert!(differences(&asked, &cart(&["Mini", " large ", "Regular"])).is_empty());
        assert_eq!(
            differences(&asked, &cart(&["Large", "Mini", "Regular"])),
            [
                "/products/tee [large]: 1 in the cart, 2 asked",
                "/products/tee [mini]: 2 in the cart, 1 asked",
            ]
        );
    }

    #[test]
    fn keys_and_quantities_that_cannot_be_compared_are_profile_errors() {
        let none = BTreeMap::new();
        let by_sku = [
            json!({"url": "https://shop.example/p/a", "quantity": 1, "sku": null, "name": "Kohl"}),
        ];
        assert!(
            asked(CartKey::Sku, &base(), &by_sku)
                .unwrap_err()
                .contains("by sku, and Kohl has none")
        );
        assert!(
            held(CartKey::Url, &base(), &strings(&["/p/a"]), &[], None, &none)
                .unwrap_err()
                .contains("1 product keys but 0 quantities")
        );
        assert!(
            held(
                CartKey::Url,
                &base(),
                &strings(&["/p/a"]),
                &strings(&["Qty 2"]),
                None,
                &none
            )
            .unwrap_err()
            .contains("\"Qty 2\" is not a whole number")
        );
        let names = held(
            CartKey::Name,
            &base(),
            &strings(&["  Rose   LIP "]),
            &strings(&["1"]),
            None,
            &none,
        )
        .unwrap();
        assert_eq!(names.keys().next().map(String::as_str), Some("rose lip"));
    }
}
