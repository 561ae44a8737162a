//! The Threads flavour: the same catalogue, customers and orders behind pages built the way
//! hosted-checkout shops build them. Forms post and redirect (no script needed), a product
//! has sizes and a quantity field, the discount code is typed on the first of three checkout
//! pages (information, shipping, payment), shipping is chosen and priced, payment is cash on
//! delivery or a card, the order history is a table, and the loyalty API answers in a shape
//! of its own. Signed-out visitors are redirected to the login page.

use crate::model::{Address, Paise, Shipping, ShopData, ShopError, rupees};
use crate::session::Visit;
use crate::{Confirmation, Shop, lock};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Form, Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The order history's path: the page `history_error_rate` makes fail.
pub const HISTORY: &str = "/account";

pub fn router() -> Router<Arc<Shop>> {
    Router::new()
        .route("/", get(home))
        .route("/collections/all", get(home))
        .route("/products/{slug}", get(product))
        .route("/cart", get(cart))
        .route("/cart/add", axum::routing::post(add))
        .route("/cart/change", get(change))
        .route(
            "/checkouts/information",
            get(information).post(save_information),
        )
        .route("/checkouts/discount", axum::routing::post(discount))
        .route("/checkouts/shipping", get(shipping).post(save_shipping))
        .route("/checkouts/payment", get(payment).post(complete))
        .route("/orders/{number}", get(thanks))
        .route(HISTORY, get(account))
        .route("/account/login", get(login_form).post(login))
        .route("/account/logout", get(logout))
        .route("/apps/loyalty/api/customer", get(loyalty))
}

fn render(t: &impl Template, status: StatusCode) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("template error: {e}"),
        )
            .into_response(),
    }
}

/// Who is signed in, or the redirect to the login page that brings them back to `path`.
fn customer(visit: &Visit, path: &str) -> Result<u32, Response> {
    match visit {
        Visit::Customer { customer, .. } => Ok(*customer),
        _ => Err(Redirect::to(&format!("/account/login?return_to={path}")).into_response()),
    }
}

fn signed_in(visit: &Visit) -> bool {
    matches!(visit, Visit::Customer { .. })
}

fn units(data: &ShopData, visit: &Visit) -> u32 {
    match visit {
        Visit::Customer { customer, .. } => data.cart(*customer).lines.iter().map(|l| l.qty).sum(),
        _ => 0,
    }
}

#[derive(Template)]
#[template(path = "threads/message.html")]
struct MessagePage<'a> {
    title: &'a str,
    cart_units: u32,
    signed_in: bool,
    heading: &'a str,
    text: &'a str,
    back: &'a str,
}

fn refused(data: &ShopData, visit: &Visit, status: StatusCode, text: &str, back: &str) -> Response {
    render(
        &MessagePage {
            title: "Sorry",
            cart_units: units(data, visit),
            signed_in: signed_in(visit),
            heading: "Sorry",
            text,
            back,
        },
        status,
    )
}

fn shop_error(data: &ShopData, visit: &Visit, e: &ShopError, back: &str) -> Response {
    let status = match e {
        ShopError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    refused(data, visit, status, &e.to_string(), back)
}

struct ProductItem {
    slug: String,
    name: String,
    price: String,
}

#[derive(Template)]
#[template(path = "threads/home.html")]
struct HomePage<'a> {
    title: &'a str,
    cart_units: u32,
    signed_in: bool,
    products: Vec<ProductItem>,
}

async fn home(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    let data = lock(&shop.data);
    let products = data
        .products
        .iter()
        .map(|p| ProductItem {
            slug: p.slug.clone(),
            name: p.name.clone(),
            price: rupees(p.price),
        })
        .collect();
    render(
        &HomePage {
            title: "All products",
            cart_units: units(&data, &visit),
            signed_in: signed_in(&visit),
            products,
        },
        StatusCode::OK,
    )
}

struct ProductInfo {
    id: u32,
    name: String,
    price: String,
    sizes: Vec<String>,
    in_stock: bool,
}

#[derive(Template)]
#[template(path = "threads/product.html")]
struct ProductPage<'a> {
    title: &'a str,
    cart_units: u32,
    signed_in: bool,
    p: ProductInfo,
    chosen: Option<String>,
}

#[derive(Deserialize)]
struct VariantQuery {
    variant: Option<String>,
}

async fn product(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Path(slug): Path<String>,
    Query(q): Query<VariantQuery>,
) -> Response {
    let data = lock(&shop.data);
    let Some(p) = data.product_by_slug(&slug) else {
        return refused(
            &data,
            &visit,
            StatusCode::NOT_FOUND,
            "No such product.",
            "/",
        );
    };
    let p = ProductInfo {
        id: p.id,
        name: p.name.clone(),
        price: rupees(p.price),
        sizes: p.sizes.clone(),
        in_stock: p.stock > 0,
    };
    render(
        &ProductPage {
            title: &p.name.clone(),
            cart_units: units(&data, &visit),
            signed_in: signed_in(&visit),
            p,
            chosen: q.variant,
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
struct AddForm {
    id: u32,
    variant: Option<String>,
    quantity: Option<String>,
}

async fn add(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Form(form): Form<AddForm>,
) -> Response {
    let customer = match customer(&visit, "/cart") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut data = lock(&shop.data);
    let back = data
        .product(form.id)
        .map_or_else(|| "/".to_owned(), |p| format!("/products/{}", p.slug));
    let qty = match form.quantity.as_deref().map(str::trim) {
        None | Some("") => 1,
        Some(q) => match q.parse::<u32>() {
            Ok(q) => q,
            Err(_) => {
                return refused(
                    &data,
                    &visit,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Quantity must be a whole number",
                    &back,
                );
            }
        },
    };
    let variant = form
        .variant
        .filter(|v| !v.is_empty())
        .or_else(|| data.product(form.id).and_then(|p| p.sizes.first().cloned()));
    match data.add_units(customer, form.id, variant.as_deref(), qty) {
        Ok(()) => Redirect::to("/cart").into_response(),
        Err(e) => shop_error(&data, &visit, &e, &back),
    }
}

struct CartRow {
    index: usize,
    slug: String,
    name: String,
    variant: String,
    qty: u32,
    total: String,
}

#[derive(Template)]
#[template(path = "threads/cart.html")]
struct CartPage<'a> {
    title: &'a str,
    cart_units: u32,
    signed_in: bool,
    lines: Vec<CartRow>,
    subtotal: String,
}

async fn cart(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    let customer = match customer(&visit, "/cart") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let data = lock(&shop.data);
    let lines = data
        .cart(customer)
        .lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let p = data.product(l.product)?;
            Some(CartRow {
                index: i + 1,
                slug: p.slug.clone(),
                name: p.name.clone(),
                variant: l.variant.clone().unwrap_or_default(),
                qty: l.qty,
                total: rupees(p.price * Paise::from(l.qty)),
            })
        })
        .collect();
    let t = data.totals(customer);
    render(
        &CartPage {
            title: "Your cart",
            cart_units: t.units,
            signed_in: true,
            lines,
            subtotal: rupees(t.mrp - t.mrp_discount),
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
struct ChangeQuery {
    line: usize,
    quantity: u32,
}

/// `GET /cart/change?line=N&quantity=0`: the Remove link (only removal is offered).
async fn change(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Query(q): Query<ChangeQuery>,
) -> Response {
    let customer = match customer(&visit, "/cart") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut data = lock(&shop.data);
    if q.quantity != 0 {
        return refused(
            &data,
            &visit,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Only removing a line is supported",
            "/cart",
        );
    }
    match data.remove_at(customer, q.line) {
        Ok(()) => Redirect::to("/cart").into_response(),
        Err(e) => shop_error(&data, &visit, &e, "/cart"),
    }
}

/// The order summary every checkout page shows.
struct Summary {
    subtotal: String,
    discount: Option<String>,
    coupon: Option<String>,
    shipping: String,
    total: String,
}

fn summary(data: &ShopData, customer: u32) -> Summary {
    let shipping = data.checkouts.get(&customer).and_then(|c| c.shipping);
    let t = data.totals_shipped(customer, Some(shipping.unwrap_or(Shipping::Standard)));
    Summary {
        subtotal: rupees(t.mrp - t.mrp_discount),
        discount: (t.coupon_discount > 0).then(|| rupees(t.coupon_discount)),
        coupon: data.cart(customer).coupon,
        shipping: match shipping {
            None => "Calculated at next step".into(),
            Some(_) if t.shipping == 0 => "Free".into(),
            Some(_) => rupees(t.shipping),
        },
        total: rupees(t.total),
    }
}

#[derive(Default)]
struct AddressForm {
    first_name: String,
    last_name: String,
    line1: String,
    street: String,
    pincode: String,
    city: String,
    phone: String,
}

#[derive(Template)]
#[template(path = "threads/information.html")]
struct InformationPage<'a> {
    title: &'a str,
    cart_units: u32,
    signed_in: bool,
    error: Option<String>,
    email: String,
    a: AddressForm,
    s: Summary,
}

fn information_page(
    data: &ShopData,
    customer: u32,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let email = data
        .customer(customer)
        .map(|c| c.email.clone())
        .unwrap_or_default();
    let a = data
        .checkouts
        .get(&customer)
        .and_then(|c| c.address_id)
        .and_then(|id| data.addresses(customer).iter().find(|a| a.id == id))
        .map(|a| {
            let (first, last) = a.full_name.rsplit_once(' ').unwrap_or((&a.full_name, ""));
            AddressForm {
                first_name: first.into(),
                last_name: last.into(),
                line1: a.line1.clone(),
                street: a.street.clone(),
                pincode: a.pincode.clone(),
                city: a.city.clone(),
                phone: a.phone.clone(),
            }
        })
        .unwrap_or_default();
    render(
        &InformationPage {
            title: "Information",
            cart_units: data.totals(customer).units,
            signed_in: true,
            error,
            email,
            a,
            s: summary(data, customer),
        },
        status,
    )
}

/// A checkout page of an empty cart goes back to the cart.
fn empty_cart(data: &ShopData, customer: u32) -> Option<Response> {
    data.cart(customer)
        .lines
        .is_empty()
        .then(|| Redirect::to("/cart").into_response())
}

async fn information(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
) -> Response {
    let customer = match customer(&visit, "/checkouts/information") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let data = lock(&shop.data);
    if let Some(r) = empty_cart(&data, customer) {
        return r;
    }
    information_page(&data, customer, None, StatusCode::OK)
}

#[derive(Deserialize)]
struct InformationForm {
    first_name: String,
    last_name: String,
    address1: String,
    #[serde(default)]
    address2: String,
    zip: String,
    phone: String,
}

async fn save_information(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Form(form): Form<InformationForm>,
) -> Response {
    let customer = match customer(&visit, "/checkouts/information") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut data = lock(&shop.data);
    if let Some(r) = empty_cart(&data, customer) {
        return r;
    }
    if form.first_name.trim().is_empty() || form.last_name.trim().is_empty() {
        return information_page(
            &data,
            customer,
            Some("Enter a first name and a last name".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let address = Address {
        id: 0,
        full_name: format!("{} {}", form.first_name.trim(), form.last_name.trim()),
        line1: form.address1,
        // The second address line is optional here; the shop's model wants a street.
        street: if form.address2.trim().is_empty() {
            "-".into()
        } else {
            form.address2
        },
        landmark: String::new(),
        pincode: form.zip.trim().to_owned(),
        // City and state come from the PIN code, whatever was typed.
        city: String::new(),
        state: String::new(),
        phone: form.phone,
        kind: "Home".into(),
    };
    match data.add_address(customer, address) {
        Ok(a) => {
            data.checkouts.entry(customer).or_default().address_id = Some(a.id);
            Redirect::to("/checkouts/shipping").into_response()
        }
        Err(e) => information_page(
            &data,
            customer,
            Some(e.to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    }
}

#[derive(Deserialize)]
struct DiscountForm {
    code: String,
}

async fn discount(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Form(form): Form<DiscountForm>,
) -> Response {
    let customer = match customer(&visit, "/checkouts/information") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut data = lock(&shop.data);
    match data.apply_coupon(customer, form.code.trim()) {
        Ok(()) => Redirect::to("/checkouts/information").into_response(),
        Err(ShopError::NotFound(_)) => information_page(
            &data,
            customer,
            Some("Enter a valid discount code".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(e) => information_page(
            &data,
            customer,
            Some(e.to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    }
}

/// The address the information page saved, or the redirect back to it.
fn ship_to(data: &ShopData, customer: u32) -> Result<String, Response> {
    data.checkouts
        .get(&customer)
        .and_then(|c| c.address_id)
        .and_then(|id| data.addresses(customer).iter().find(|a| a.id == id))
        .map(|a| format!("{}, {}, {} {}", a.full_name, a.line1, a.city, a.pincode))
        .ok_or_else(|| Redirect::to("/checkouts/information").into_response())
}

#[derive(Template)]
#[template(path = "threads/shipping.html")]
struct ShippingPage<'a> {
    title: &'a str,
    cart_units: u32,
    signed_in: bool,
    ship_to: String,
    express: bool,
    express_fee: String,
    s: Summary,
}

async fn shipping(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    let customer = match customer(&visit, "/checkouts/shipping") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let data = lock(&shop.data);
    if let Some(r) = empty_cart(&data, customer) {
        return r;
    }
    let ship_to = match ship_to(&data, customer) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let express = data.checkouts.get(&customer).and_then(|c| c.shipping) == Some(Shipping::Express);
    render(
        &ShippingPage {
            title: "Shipping",
            cart_units: data.totals(customer).units,
            signed_in: true,
            ship_to,
            express,
            express_fee: rupees(Shipping::Express.fee()),
            s: summary(&data, customer),
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
struct ShippingForm {
    shipping: String,
}

async fn save_shipping(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Form(form): Form<ShippingForm>,
) -> Response {
    let customer = match customer(&visit, "/checkouts/shipping") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut data = lock(&shop.data);
    let method = match form.shipping.as_str() {
        "standard" => Shipping::Standard,
        "express" => Shipping::Express,
        _ => {
            return refused(
                &data,
                &visit,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Choose a shipping method",
                "/checkouts/shipping",
            );
        }
    };
    data.checkouts.entry(customer).or_default().shipping = Some(method);
    Redirect::to("/checkouts/payment").into_response()
}

#[derive(Template)]
#[template(path = "threads/payment.html")]
struct PaymentPage<'a> {
    title: &'a str,
    cart_units: u32,
    signed_in: bool,
    error: Option<String>,
    ship_to: String,
    method: &'a str,
    s: Summary,
}

fn payment_page(data: &ShopData, customer: u32, error: Option<String>) -> Response {
    let ship_to = match ship_to(data, customer) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(method) = data.checkouts.get(&customer).and_then(|c| c.shipping) else {
        return Redirect::to("/checkouts/shipping").into_response();
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(
        &PaymentPage {
            title: "Payment",
            cart_units: data.totals(customer).units,
            signed_in: true,
            error,
            ship_to,
            method: match method {
                Shipping::Standard => "Standard shipping",
                Shipping::Express => "Express shipping",
            },
            s: summary(data, customer),
        },
        status,
    )
}

async fn payment(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    let customer = match customer(&visit, "/checkouts/payment") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let data = lock(&shop.data);
    if let Some(r) = empty_cart(&data, customer) {
        return r;
    }
    payment_page(&data, customer, None)
}

#[derive(Deserialize)]
struct PaymentForm {
    payment: String,
    #[serde(default)]
    card_number: String,
}

/// `POST /checkouts/payment`: places the order (cash on delivery only; a card is refused,
/// its number never kept).
async fn complete(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Form(form): Form<PaymentForm>,
) -> Response {
    let customer = match customer(&visit, "/checkouts/payment") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let faults = shop.faults();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut data = lock(&shop.data);
    if form.payment != "cod" {
        let why = if form.card_number.trim().is_empty() {
            "Enter a card number"
        } else {
            "Your card was declined"
        };
        return payment_page(&data, customer, Some(why.into()));
    }
    let checkout = data.checkouts.get(&customer).cloned().unwrap_or_default();
    let (Some(address_id), Some(method)) = (checkout.address_id, checkout.shipping) else {
        return Redirect::to("/checkouts/information").into_response();
    };
    if let Some(slug) = &faults.sell_out_at_checkout {
        data.sell_out_if_in_cart(customer, slug);
    }
    match data.place_order(customer, address_id, "cod", Some(method), now) {
        Ok(_) if faults.confirmation == Confirmation::Lost => (
            StatusCode::BAD_GATEWAY,
            "Something went wrong while placing your order. Please check your account before trying again.",
        )
            .into_response(),
        Ok(order) => Redirect::to(&format!("/orders/{}", order.number)).into_response(),
        Err(e) => payment_page(&data, customer, Some(e.to_string())),
    }
}

#[derive(Template)]
#[template(path = "threads/thanks.html")]
struct ThanksPage<'a> {
    title: &'a str,
    cart_units: u32,
    signed_in: bool,
    first_name: String,
    number: String,
    s: Summary,
}

async fn thanks(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Path(number): Path<String>,
) -> Response {
    if let Some(r) = shop
        .confirmation_fault("Something went wrong. Please check your account.")
        .await
    {
        return r;
    }
    let customer = match customer(&visit, &format!("/orders/{number}")) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let data = lock(&shop.data);
    let Some(order) = data
        .orders
        .iter()
        .find(|o| o.number == number && o.customer == customer)
    else {
        return refused(
            &data,
            &visit,
            StatusCode::NOT_FOUND,
            "No such order.",
            HISTORY,
        );
    };
    let t = order.totals;
    render(
        &ThanksPage {
            title: "Thank you",
            cart_units: units(&data, &visit),
            signed_in: true,
            first_name: data
                .customer(customer)
                .map(|c| c.first_name.clone())
                .unwrap_or_default(),
            number: order.number.clone(),
            s: Summary {
                subtotal: rupees(t.mrp - t.mrp_discount),
                discount: (t.coupon_discount > 0).then(|| rupees(t.coupon_discount)),
                coupon: order.coupon.clone(),
                shipping: if t.shipping == 0 {
                    "Free".into()
                } else {
                    rupees(t.shipping)
                },
                total: rupees(t.total),
            },
        },
        StatusCode::OK,
    )
}

struct HistoryRow {
    number: String,
    date: String,
    total: String,
}

#[derive(Template)]
#[template(path = "threads/account.html")]
struct AccountPage<'a> {
    title: &'a str,
    cart_units: u32,
    signed_in: bool,
    name: String,
    orders: Vec<HistoryRow>,
}

async fn account(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    let customer = match customer(&visit, HISTORY) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let lag = std::time::Duration::from_millis(shop.faults().history_lag_ms);
    let data = lock(&shop.data);
    let orders = data
        .history(customer, lag)
        .into_iter()
        .map(|o| {
            let date = time::OffsetDateTime::from_unix_timestamp(o.placed_at)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            HistoryRow {
                number: o.number.clone(),
                date: format!("{} {} {}", date.month(), date.day(), date.year()),
                total: rupees(o.totals.total),
            }
        })
        .collect();
    render(
        &AccountPage {
            title: "Account",
            cart_units: units(&data, &visit),
            signed_in: true,
            name: data
                .customer(customer)
                .map(|c| format!("{} {}", c.first_name, c.last_name))
                .unwrap_or_default(),
            orders,
        },
        StatusCode::OK,
    )
}

#[derive(Template)]
#[template(path = "threads/login.html")]
struct LoginPage<'a> {
    title: &'a str,
    cart_units: u32,
    signed_in: bool,
    error: Option<&'a str>,
    return_to: String,
}

#[derive(Deserialize)]
struct ReturnTo {
    return_to: Option<String>,
}

/// Only a path on this site: never a redirect elsewhere.
fn local(path: Option<String>) -> String {
    path.filter(|p| p.starts_with('/') && !p.starts_with("//") && !p.contains('\\'))
        .unwrap_or_else(|| HISTORY.to_owned())
}

async fn login_form(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Query(q): Query<ReturnTo>,
) -> Response {
    let data = lock(&shop.data);
    render(
        &LoginPage {
            title: "Log in",
            cart_units: units(&data, &visit),
            signed_in: false,
            error: None,
            return_to: local(q.return_to),
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    return_to: Option<String>,
}

async fn login(State(shop): State<Arc<Shop>>, Form(form): Form<LoginForm>) -> Response {
    let customer = lock(&shop.data)
        .customer_by_email(&form.email)
        .map(|c| c.id);
    let Some(id) = customer.filter(|_| form.password == crate::CUSTOMER_PASSWORD) else {
        return render(
            &LoginPage {
                title: "Log in",
                cart_units: 0,
                signed_in: false,
                error: Some("Incorrect email or password."),
                return_to: local(form.return_to),
            },
            StatusCode::UNAUTHORIZED,
        );
    };
    let mut sessions = lock(&shop.sessions);
    let value = sessions.issue(id);
    let mut r = Redirect::to(&local(form.return_to)).into_response();
    if let Ok(v) = HeaderValue::from_str(&sessions.set_cookie(&value)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    if let Visit::Customer { sid, .. } = &visit {
        lock(&shop.sessions).end(sid);
    }
    Redirect::to("/").into_response()
}

/// The loyalty app's API: `{"ok": true, "customer": {"loyalty": {"balance": N, "vip_tier":
/// {"title": "Gold"}}}}`; 401 `{"ok": false}` without a session.
async fn loyalty(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    let data = lock(&shop.data);
    let c = match &visit {
        Visit::Customer { customer, .. } => data.customer(*customer),
        _ => None,
    };
    match c {
        Some(c) => Json(json!({
            "ok": true,
            "customer": {
                "email": c.email,
                "loyalty": {"balance": c.points, "vip_tier": {"title": c.tier}},
            },
        }))
        .into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"ok": false, "error": "not signed in"})),
        )
            .into_response(),
    }
}
