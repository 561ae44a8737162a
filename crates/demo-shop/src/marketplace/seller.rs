//! The seller centre's pages: sign-in, order cards, a buyer chat per order.

use super::MarketOrder;
use crate::Shop;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use std::sync::Arc;

const COOKIE: &str = "SPC_SC_SESSION";

pub fn router() -> Router<Arc<Shop>> {
    Router::new()
        .route("/seller/login", get(login_form).post(login))
        .route("/seller/orders", get(orders))
        .route("/seller/orders/{sn}/chat", get(chat).post(reply))
}

fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("template error: {e}"),
        )
            .into_response(),
    }
}

fn session(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::COOKIE)?
        .to_str()
        .ok()?
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix(COOKIE)?.strip_prefix('='))
}

#[derive(Template)]
#[template(path = "seller/login.html")]
struct LoginPage {
    error: bool,
}

async fn login_form() -> Response {
    render(&LoginPage { error: false })
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(State(shop): State<Arc<Shop>>, Form(form): Form<LoginForm>) -> Response {
    let config = shop.market.config();
    if form.username != config.seller_username || form.password != config.seller_password {
        let mut r = render(&LoginPage { error: true });
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    }
    let token = shop.market.seller_session();
    let mut r = Redirect::to("/seller/orders").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/seller; HttpOnly; SameSite=Lax"
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub struct Card {
    pub sn: String,
    pub buyer: String,
    pub items: Vec<String>,
    pub total: String,
    pub status: &'static str,
    pub label: &'static str,
    pub unread: usize,
}

fn rupiah(n: i64) -> String {
    format!("Rp{}", crate::model::group_thousands(n, '.'))
}

fn card(o: &MarketOrder, indonesian: bool) -> Card {
    Card {
        sn: o.order_sn.clone(),
        buyer: o.buyer_username.clone(),
        items: o
            .items
            .iter()
            .map(|i| format!("{} × {}", i.name, i.qty))
            .collect(),
        total: rupiah(o.total()),
        status: o.status.as_str(),
        label: o.status.label(indonesian),
        unread: o.messages.iter().filter(|m| m.from == "buyer").count(),
    }
}

#[derive(Template)]
#[template(path = "seller/orders.html")]
struct OrdersPage {
    cards: Vec<Card>,
    indonesian: bool,
}

#[derive(Deserialize)]
struct Lang {
    lang: Option<String>,
}

async fn orders(
    State(shop): State<Arc<Shop>>,
    headers: HeaderMap,
    Query(q): Query<Lang>,
) -> Response {
    if !shop.market.is_seller(session(&headers)) {
        return Redirect::to("/seller/login").into_response();
    }
    let indonesian = q.lang.as_deref() == Some("id");
    let mut cards: Vec<Card> = shop
        .market
        .orders()
        .iter()
        .map(|o| card(o, indonesian))
        .collect();
    cards.reverse();
    render(&OrdersPage { cards, indonesian })
}

#[derive(Template)]
#[template(path = "seller/chat.html")]
struct ChatPage {
    card: Card,
    messages: Vec<(String, String)>,
}

async fn chat(
    State(shop): State<Arc<Shop>>,
    headers: HeaderMap,
    Path(sn): Path<String>,
) -> Response {
    if !shop.market.is_seller(session(&headers)) {
        return Redirect::to("/seller/login").into_response();
    }
    let Some(order) = shop.market.orders().into_iter().find(|o| o.order_sn == sn) else {
        return (StatusCode::NOT_FOUND, "No such order").into_response();
    };
    let messages = order
        .messages
        .iter()
        .map(|m| (m.from.to_owned(), m.text.clone()))
        .collect();
    render(&ChatPage {
        card: card(&order, false),
        messages,
    })
}

#[derive(Deserialize)]
struct Reply {
    text: String,
}

async fn reply(
    State(shop): State<Arc<Shop>>,
    headers: HeaderMap,
    Path(sn): Path<String>,
    Form(form): Form<Reply>,
) -> Response {
    if !shop.market.is_seller(session(&headers)) {
        return Redirect::to("/seller/login").into_response();
    }
    if form.text.trim().is_empty() || shop.market.seller_says(&sn, form.text.trim()).is_none() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Nothing to send, or no such order",
        )
            .into_response();
    }
    Redirect::to(&format!("/seller/orders/{sn}/chat")).into_response()
}
