//! Products and addresses: lists, and forms to add, change and delete them, with the API's
//! validation errors beside their fields.

use super::api::{Api, Body};
use super::error::UiError;
use super::form::{Errors, FormData, Values, number, without_nulls};
use super::parts::{Choice, storefront_choices};
use super::session::{Posted, Session};
use super::view::{Chrome, Pager, money_opt, query};
use crate::state::AppState;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cartwright_core::address::Address;
use cartwright_core::catalog::Product;
use cartwright_core::ids::{AddressId, ProductId, StorefrontId};
use cartwright_core::operator::Permission;
use cartwright_store::{PageRequest, ProductFilter};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

const PRODUCT_FIELDS: &[&str] = &[
    "storefront_id",
    "name",
    "url",
    "variant",
    "sku",
    "price",
    "brand",
    "category",
    "image_url",
];
const ADDRESS_FIELDS: &[&str] = &[
    "label",
    "full_name",
    "line1",
    "street",
    "landmark",
    "postcode",
    "city",
    "state",
    "phone",
    "kind",
];

/// A product as a row of the list.
pub struct ProductRow {
    /// Its id.
    pub id: ProductId,
    /// Name.
    pub name: String,
    /// Storefront.
    pub storefront: String,
    /// SKU.
    pub sku: String,
    /// Price.
    pub price: String,
    /// Brand.
    pub brand: String,
    /// In stock.
    pub in_stock: bool,
    /// Its page.
    pub url: String,
}

#[derive(Deserialize)]
pub struct ProductQuery {
    #[serde(default)]
    q: String,
    page: Option<u32>,
    #[serde(default)]
    notice: String,
}

#[derive(Template)]
#[template(path = "ui/products.html")]
struct ProductsPage {
    l: Chrome,
    q: String,
    rows: Vec<ProductRow>,
    pager: Pager,
    notice: String,
}

fn notice(code: &str, what: &str) -> String {
    match code {
        "created" => format!("{what} added."),
        "updated" => format!("{what} saved."),
        "deleted" => format!("{what} deleted."),
        _ => String::new(),
    }
}

/// `GET /products`.
pub async fn products(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ProductQuery>,
) -> Result<Html<String>, UiError> {
    let page_no = q.page.unwrap_or(1).max(1);
    let filter = ProductFilter {
        text: Some(q.q.trim().to_owned()).filter(|t| !t.is_empty()),
        ..Default::default()
    };
    let list = state
        .store
        .products(&filter, PageRequest::number(page_no, 50)?)
        .await?;
    let names: HashMap<StorefrontId, String> = state
        .store
        .storefronts()
        .await?
        .into_iter()
        .map(|s| (s.id, s.name.to_string()))
        .collect();
    let rows = list
        .items
        .iter()
        .map(|p| ProductRow {
            id: p.id,
            name: match &p.variant {
                Some(v) => format!("{} · {v}", p.name),
                None => p.name.to_string(),
            },
            storefront: names.get(&p.storefront_id).cloned().unwrap_or_default(),
            sku: p.sku.as_ref().map_or(String::new(), |s| s.to_string()),
            price: money_opt(p.price.map(|m| m.minor())),
            brand: p.brand.as_ref().map_or(String::new(), |s| s.to_string()),
            in_stock: p.in_stock,
            url: p.url.to_string(),
        })
        .collect();
    let page = ProductsPage {
        l: session.chrome("Products", "products"),
        pager: Pager::new(page_no, 50, list.total, query(&[("q", q.q.as_str())])),
        q: q.q,
        rows,
        notice: notice(&q.notice, "Product"),
    };
    Ok(Html(page.render()?))
}

#[derive(Template)]
#[template(path = "ui/product_form.html")]
struct ProductForm {
    l: Chrome,
    id: Option<ProductId>,
    v: Values,
    e: Errors,
    storefronts: Vec<Choice>,
}

async fn product_form(
    state: &AppState,
    session: &Session,
    id: Option<ProductId>,
    v: Values,
    e: Errors,
) -> Result<Response, UiError> {
    let status = e.status();
    let page = ProductForm {
        l: session.chrome(
            if id.is_some() {
                "Edit product"
            } else {
                "New product"
            },
            "products",
        ),
        id,
        v,
        e,
        storefronts: storefront_choices(state).await?,
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// `GET /products/new`.
pub async fn product_new(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let mut v = Values::default();
    v.set("in_stock", "on");
    product_form(&state, &session, None, v, Errors::default()).await
}

fn product_values(p: &Product) -> Values {
    let mut v = Values::default();
    v.set("storefront_id", p.storefront_id.to_string());
    v.set("name", p.name.to_string());
    v.set("url", p.url.to_string());
    let opt = |t: &Option<cartwright_core::values::Text>| {
        t.as_ref().map_or(String::new(), |t| t.to_string())
    };
    v.set("variant", opt(&p.variant));
    v.set("sku", opt(&p.sku));
    v.set("brand", opt(&p.brand));
    v.set("category", opt(&p.category));
    v.set("price", p.price.map_or(String::new(), |m| m.to_string()));
    v.set(
        "image_url",
        p.image_url
            .as_ref()
            .map_or(String::new(), |u| u.to_string()),
    );
    if p.in_stock {
        v.set("in_stock", "on");
    }
    v
}

/// `GET /products/{id}`: the edit form.
pub async fn product_edit(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
) -> Result<Response, UiError> {
    let product = state.store.product(ProductId(id)).await?;
    product_form(
        &state,
        &session,
        Some(product.id),
        product_values(&product),
        Errors::default(),
    )
    .await
}

fn product_json(form: &FormData) -> Value {
    json!({
        "name": form.text("name"),
        "url": form.text("url"),
        "variant": form.text("variant"),
        "sku": form.text("sku"),
        "price": form.text("price"),
        "brand": form.text("brand"),
        "category": form.text("category"),
        "in_stock": form.checked("in_stock"),
        "image_url": form.text("image_url"),
    })
}

/// Sends a form to the API and goes to `done` when it is accepted; otherwise the form again,
/// with the API's errors beside their fields.
async fn submit(
    api: &Api,
    session: &Session,
    method: Method,
    path: &str,
    body: Value,
    fields: &[&str],
) -> Result<Result<Value, Errors>, UiError> {
    let reply = api.submit(session, method, path, Body::Json(body)).await?;
    Ok(reply.map_err(|failure| Errors::from_failure(&failure, fields)))
}

/// `POST /products/new`.
pub async fn product_create(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let mut body = product_json(&form);
    body["storefront_id"] = number(form.get("storefront_id"));
    let body = without_nulls(body);
    match submit(
        &api,
        &session,
        Method::POST,
        "/api/v1/products",
        body,
        PRODUCT_FIELDS,
    )
    .await?
    {
        Ok(_) => Ok(Redirect::to("/products?notice=created").into_response()),
        Err(errors) => product_form(&state, &session, None, form.values(), errors).await,
    }
}

/// `POST /products/{id}`: saves the edit form.
pub async fn product_update(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let path = format!("/api/v1/products/{id}");
    let body = product_json(&form);
    match submit(&api, &session, Method::PATCH, &path, body, PRODUCT_FIELDS).await? {
        Ok(_) => Ok(Redirect::to("/products?notice=updated").into_response()),
        Err(errors) => {
            product_form(&state, &session, Some(ProductId(id)), form.values(), errors).await
        }
    }
}

async fn delete(
    api: &Api,
    session: &Session,
    path: &str,
    done: &str,
) -> Result<Result<Response, Errors>, UiError> {
    session.require(Permission::Operate)?;
    let reply = api
        .submit(session, Method::DELETE, path, Body::Empty)
        .await?;
    Ok(match reply {
        Ok(_) => Ok(Redirect::to(done).into_response()),
        Err(failure) => Err(Errors::summary(failure.message)),
    })
}

/// `POST /products/{id}/delete`.
pub async fn product_delete(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, .. }: Posted,
) -> Result<Response, UiError> {
    let path = format!("/api/v1/products/{id}");
    match delete(&api, &session, &path, "/products?notice=deleted").await? {
        Ok(done) => Ok(done),
        Err(errors) => {
            let product = state.store.product(ProductId(id)).await?;
            product_form(
                &state,
                &session,
                Some(product.id),
                product_values(&product),
                errors,
            )
            .await
        }
    }
}

/// An address as a card of the list.
pub struct AddressCard {
    /// Its id.
    pub id: AddressId,
    /// Its label.
    pub label: String,
    /// The lines as printed.
    pub lines: Vec<String>,
    /// Whether it is the default.
    pub is_default: bool,
}

impl From<&Address> for AddressCard {
    fn from(a: &Address) -> Self {
        let mut lines = vec![a.full_name.to_string(), a.line1.to_string()];
        lines.extend(a.street.as_ref().map(|s| s.to_string()));
        lines.extend(a.landmark.as_ref().map(|s| format!("Near {s}")));
        lines.push(format!("{} {}, {}", a.city, a.postcode, a.state));
        lines.push(format!("Phone {}", a.phone));
        Self {
            id: a.id,
            label: a
                .label
                .as_ref()
                .map_or_else(|| a.full_name.to_string(), |l| l.to_string()),
            lines,
            is_default: a.is_default,
        }
    }
}

#[derive(Template)]
#[template(path = "ui/addresses.html")]
struct AddressesPage {
    l: Chrome,
    cards: Vec<AddressCard>,
    notice: String,
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    #[serde(default)]
    notice: String,
}

/// `GET /addresses`.
pub async fn addresses(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<NoticeQuery>,
) -> Result<Html<String>, UiError> {
    let page = AddressesPage {
        l: session.chrome("Addresses", "addresses"),
        cards: state
            .store
            .addresses()
            .await?
            .iter()
            .map(AddressCard::from)
            .collect(),
        notice: notice(&q.notice, "Address"),
    };
    Ok(Html(page.render()?))
}

#[derive(Template)]
#[template(path = "ui/address_form.html")]
struct AddressForm {
    l: Chrome,
    id: Option<AddressId>,
    v: Values,
    e: Errors,
}

fn address_form(
    session: &Session,
    id: Option<AddressId>,
    v: Values,
    e: Errors,
) -> Result<Response, UiError> {
    let status = e.status();
    let page = AddressForm {
        l: session.chrome(
            if id.is_some() {
                "Edit address"
            } else {
                "New address"
            },
            "addresses",
        ),
        id,
        v,
        e,
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// `GET /addresses/new`.
pub async fn address_new(session: Session) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let mut v = Values::default();
    v.set("kind", "home");
    address_form(&session, None, v, Errors::default())
}

fn address_values(a: &Address) -> Values {
    let mut v = Values::default();
    let opt = |t: &Option<cartwright_core::values::Text>| {
        t.as_ref().map_or(String::new(), |t| t.to_string())
    };
    v.set("label", opt(&a.label));
    v.set("full_name", a.full_name.to_string());
    v.set("line1", a.line1.to_string());
    v.set("street", opt(&a.street));
    v.set("landmark", opt(&a.landmark));
    v.set("postcode", a.postcode.to_string());
    v.set("city", a.city.to_string());
    v.set("state", a.state.to_string());
    v.set("phone", a.phone.to_string());
    v.set("kind", a.kind.as_str());
    if a.is_default {
        v.set("is_default", "on");
    }
    v
}

/// `GET /addresses/{id}`: the edit form.
pub async fn address_edit(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
) -> Result<Response, UiError> {
    let address = state.store.address(AddressId(id)).await?;
    address_form(
        &session,
        Some(address.id),
        address_values(&address),
        Errors::default(),
    )
}

fn address_json(form: &FormData) -> Value {
    let mut body = json!({"is_default": form.checked("is_default")});
    for field in ADDRESS_FIELDS {
        body[*field] = form.text(field);
    }
    body
}

/// `POST /addresses/new`.
pub async fn address_create(
    Extension(api): Extension<Arc<Api>>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let body = without_nulls(address_json(&form));
    match submit(
        &api,
        &session,
        Method::POST,
        "/api/v1/addresses",
        body,
        ADDRESS_FIELDS,
    )
    .await?
    {
        Ok(_) => Ok(Redirect::to("/addresses?notice=created").into_response()),
        Err(errors) => address_form(&session, None, form.values(), errors),
    }
}

/// `POST /addresses/{id}`: saves the edit form. Unticking "default" keeps the default here
/// (one address is always the default); ticking it on another moves it.
pub async fn address_update(
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let mut body = address_json(&form);
    if !form.checked("is_default")
        && let Some(map) = body.as_object_mut()
    {
        map.remove("is_default");
    }
    let path = format!("/api/v1/addresses/{id}");
    match submit(&api, &session, Method::PATCH, &path, body, ADDRESS_FIELDS).await? {
        Ok(_) => Ok(Redirect::to("/addresses?notice=updated").into_response()),
        Err(errors) => address_form(&session, Some(AddressId(id)), form.values(), errors),
    }
}

/// `POST /addresses/{id}/delete`.
pub async fn address_delete(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, .. }: Posted,
) -> Result<Response, UiError> {
    let path = format!("/api/v1/addresses/{id}");
    match delete(&api, &session, &path, "/addresses?notice=deleted").await? {
        Ok(done) => Ok(done),
        Err(errors) => {
            let address = state.store.address(AddressId(id)).await?;
            address_form(&session, Some(address.id), address_values(&address), errors)
        }
    }
}

/// This module's pages.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/products", get(products))
        .route("/products/new", get(product_new).post(product_create))
        .route("/products/{id}", get(product_edit).post(product_update))
        .route("/products/{id}/delete", post(product_delete))
        .route("/addresses", get(addresses))
        .route("/addresses/new", get(address_new).post(address_create))
        .route("/addresses/{id}", get(address_edit).post(address_update))
        .route("/addresses/{id}/delete", post(address_delete))
}
