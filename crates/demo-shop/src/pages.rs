//! The storefront's pages, server-rendered; `static/shop.js` makes them interactive.

use crate::model::{Address, Customer, Order, Paise, Product, ShopData, Totals, rupees};
use crate::session::{COOKIE, Visit};
use crate::{Classes, Shop, lock};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Form, Router};
use serde::Deserialize;
use std::sync::Arc;

pub fn router() -> Router<Arc<Shop>> {
    Router::new()
        .route("/", get(home))
        .route("/products", get(catalog))
        .route("/p/{slug}", get(product))
        .route("/login", get(login_form).post(login))
        .route("/logout", get(logout))
        .route("/cart", get(cart))
        .route("/checkout", get(checkout))
        .route("/order-confirmation/{number}", get(confirmation))
        .route("/profile/orders", get(orders))
        .route("/profile/address", get(addresses))
        .route("/profile/details", get(details))
}

/// The parts every page shares.
pub struct Layout<'a> {
    pub c: &'a Classes,
    pub title: String,
    pub first_name: Option<String>,
    pub bag_units: u32,
}

fn layout<'a>(shop: &'a Shop, data: &ShopData, visit: &Visit, title: &str) -> Layout<'a> {
    let customer = match visit {
        Visit::Customer { customer, .. } => Some(*customer),
        _ => None,
    };
    Layout {
        c: &shop.classes,
        title: title.to_owned(),
        first_name: customer
            .and_then(|id| data.customer(id))
            .map(|c| c.first_name.clone()),
        bag_units: customer.map_or(0, |id| data.totals(id).units),
    }
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

pub struct ProductView {
    pub slug: String,
    pub name: String,
    pub brand: String,
    pub category: String,
    pub price: String,
    pub mrp: String,
    pub off: i64,
    pub in_stock: bool,
    pub colour: String,
}

impl From<&Product> for ProductView {
    fn from(p: &Product) -> Self {
        Self {
            slug: p.slug.clone(),
            name: p.name.clone(),
            brand: p.brand.clone(),
            category: p.category.clone(),
            price: rupees(p.price),
            mrp: rupees(p.mrp),
            off: if p.mrp > 0 {
                (p.mrp - p.price) * 100 / p.mrp
            } else {
                0
            },
            in_stock: p.stock > 0,
            colour: p.colour.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    l: Layout<'a>,
    heading: &'static str,
    products: Vec<ProductView>,
}

async fn home(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    let data = lock(&shop.data);
    let products = data
        .products
        .iter()
        .take(8)
        .map(ProductView::from)
        .collect();
    render(&HomePage {
        l: layout(&shop, &data, &visit, "Beauty, delivered"),
        heading: "New this week",
        products,
    })
}

#[derive(Deserialize)]
struct CatalogQuery {
    category: Option<String>,
}

async fn catalog(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Query(q): Query<CatalogQuery>,
) -> Response {
    let data = lock(&shop.data);
    let products = data
        .products
        .iter()
        .filter(|p| {
            q.category
                .as_deref()
                .is_none_or(|c| p.category.eq_ignore_ascii_case(c))
        })
        .map(ProductView::from)
        .collect();
    render(&HomePage {
        l: layout(&shop, &data, &visit, "Shop"),
        heading: "All products",
        products,
    })
}

#[derive(Template)]
#[template(path = "product.html")]
struct ProductPage<'a> {
    l: Layout<'a>,
    p: ProductView,
}

async fn product(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Path(slug): Path<String>,
) -> Response {
    let data = lock(&shop.data);
    match data.product_by_slug(&slug) {
        Some(p) => {
            let p = ProductView::from(p);
            let mut page = render(&ProductPage {
                l: layout(&shop, &data, &visit, &p.name.clone()),
                p,
            });
            // Recently viewed, the way many shops keep it: a cookie whose name holds brackets,
            // which browsers accept and a strict cookie parser does not.
            if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
                "recent[{}]=1; Path=/; Max-Age=2592000",
                slug.chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect::<String>()
            )) {
                page.headers_mut().append(axum::http::header::SET_COOKIE, v);
            }
            page
        }
        None => message(
            &shop,
            &data,
            &visit,
            StatusCode::NOT_FOUND,
            "Not found",
            "This product does not exist.",
            None,
        ),
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    l: Layout<'a>,
    heading: &'a str,
    text: &'a str,
    link: Option<(&'a str, &'a str)>,
}

fn message(
    shop: &Shop,
    data: &ShopData,
    visit: &Visit,
    status: StatusCode,
    heading: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Response {
    let mut r = render(&MessagePage {
        l: layout(shop, data, visit, heading),
        heading,
        text,
        link,
    });
    *r.status_mut() = status;
    r
}

/// The page a signed-out visitor gets where an account is needed, as single-page shops do:
/// a 200 with a Login prompt.
fn please_log_in(shop: &Shop, data: &ShopData, visit: &Visit) -> Response {
    message(
        shop,
        data,
        visit,
        StatusCode::OK,
        "Login to continue",
        "Please log in to see this page.",
        Some(("/login", "Login")),
    )
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    l: Layout<'a>,
    error: Option<&'a str>,
}

async fn login_form(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    let data = lock(&shop.data);
    render(&LoginPage {
        l: layout(&shop, &data, &visit, "Login"),
        error: None,
    })
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

/// Every seeded customer signs in with this password on the login page.
pub const CUSTOMER_PASSWORD: &str = "demo";

async fn login(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Form(form): Form<LoginForm>,
) -> Response {
    let customer = lock(&shop.data)
        .customer_by_email(&form.email)
        .map(|c| c.id);
    match customer.filter(|_| form.password == CUSTOMER_PASSWORD) {
        Some(id) => {
            let mut sessions = lock(&shop.sessions);
            let value = sessions.issue(id);
            let mut r = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&sessions.set_cookie(&value)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        None => {
            let data = lock(&shop.data);
            let mut r = render(&LoginPage {
                l: layout(&shop, &data, &visit, "Login"),
                error: Some("Wrong email or password"),
            });
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
    }
}

async fn logout(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    if let Visit::Customer { sid, .. } = &visit {
        lock(&shop.sessions).end(sid);
    }
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("f.session=; Path=/; Max-Age=0"),
    );
    let _ = COOKIE;
    r
}

pub struct LineView {
    pub product: u32,
    pub slug: String,
    pub name: String,
    pub qty: u32,
    pub price: String,
    pub mrp: String,
    pub colour: String,
}

pub struct TotalsView {
    pub mrp: String,
    pub mrp_discount: String,
    pub coupon_discount: String,
    pub shipping: String,
    pub total: String,
    pub total_paise: Paise,
    pub units: u32,
}

impl From<Totals> for TotalsView {
    fn from(t: Totals) -> Self {
        Self {
            mrp: rupees(t.mrp),
            mrp_discount: rupees(t.mrp_discount),
            coupon_discount: rupees(t.coupon_discount),
            shipping: if t.shipping == 0 {
                "Free".into()
            } else {
                rupees(t.shipping)
            },
            total: rupees(t.total),
            total_paise: t.total,
            units: t.units,
        }
    }
}

pub struct CouponView {
    pub code: String,
    pub title: String,
    pub eligible: bool,
    pub why: String,
}

fn lines(data: &ShopData, customer: u32) -> Vec<LineView> {
    data.cart(customer)
        .lines
        .iter()
        .filter_map(|l| {
            let p = data.product(l.product)?;
            Some(LineView {
                product: p.id,
                slug: p.slug.clone(),
                name: p.name.clone(),
                qty: l.qty,
                price: rupees(p.price * i64::from(l.qty)),
                mrp: rupees(p.mrp * i64::from(l.qty)),
                colour: p.colour.clone(),
            })
        })
        .collect()
}

#[derive(Template)]
#[template(path = "cart.html")]
struct CartPage<'a> {
    l: Layout<'a>,
    lines: Vec<LineView>,
    coupon: Option<String>,
    totals: TotalsView,
    coupons: Vec<CouponView>,
}

#[derive(Template)]
#[template(path = "cart_body.html")]
struct CartBody<'a> {
    l: Layout<'a>,
    lines: Vec<LineView>,
    coupon: Option<String>,
    totals: TotalsView,
    coupons: Vec<CouponView>,
}

#[derive(Deserialize)]
struct CartQuery {
    fragment: Option<u8>,
}

async fn cart(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Query(q): Query<CartQuery>,
) -> Response {
    let data = lock(&shop.data);
    let Visit::Customer { customer, .. } = visit else {
        return please_log_in(&shop, &data, &visit);
    };
    let totals = data.totals(customer);
    let subtotal = totals.mrp - totals.mrp_discount;
    let coupons = data
        .coupons
        .iter()
        .map(|c| CouponView {
            code: c.code.clone(),
            title: c.title.clone(),
            eligible: c.discount(subtotal).is_some(),
            why: format!(
                "Add items worth {} more",
                rupees((c.min_total - subtotal).max(0))
            ),
        })
        .collect();
    let l = layout(&shop, &data, &visit, "My Bag");
    let (lines, coupon, totals) = (
        lines(&data, customer),
        data.cart(customer).coupon,
        TotalsView::from(totals),
    );
    if q.fragment.is_some() {
        render(&CartBody {
            l,
            lines,
            coupon,
            totals,
            coupons,
        })
    } else {
        render(&CartPage {
            l,
            lines,
            coupon,
            totals,
            coupons,
        })
    }
}

#[derive(Template)]
#[template(path = "checkout.html")]
struct CheckoutPage<'a> {
    l: Layout<'a>,
    addresses: Vec<Address>,
    lines: Vec<LineView>,
    totals: TotalsView,
}

async fn checkout(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    let data = lock(&shop.data);
    let Visit::Customer { customer, .. } = visit else {
        return please_log_in(&shop, &data, &visit);
    };
    if data.cart(customer).lines.is_empty() {
        return message(
            &shop,
            &data,
            &visit,
            StatusCode::OK,
            "Your bag is empty",
            "Add something first.",
            Some(("/products", "Shop")),
        );
    }
    render(&CheckoutPage {
        l: layout(&shop, &data, &visit, "Checkout"),
        addresses: data.addresses(customer).to_vec(),
        lines: lines(&data, customer),
        totals: data.totals(customer).into(),
    })
}

#[derive(Template)]
#[template(path = "confirmation.html")]
struct ConfirmationPage<'a> {
    l: Layout<'a>,
    number: String,
    total: String,
}

async fn confirmation(
    State(shop): State<Arc<Shop>>,
    Extension(visit): Extension<Visit>,
    Path(number): Path<String>,
) -> Response {
    if let Some(r) = shop
        .confirmation_fault("Something went wrong. Please check My Orders.")
        .await
    {
        return r;
    }
    let data = lock(&shop.data);
    let Visit::Customer { customer, .. } = visit else {
        return please_log_in(&shop, &data, &visit);
    };
    match data
        .orders
        .iter()
        .find(|o| o.number == number && o.customer == customer)
    {
        Some(order) => render(&ConfirmationPage {
            l: layout(&shop, &data, &visit, "Order placed"),
            number: order.number.clone(),
            total: rupees(order.totals.total),
        }),
        None => message(
            &shop,
            &data,
            &visit,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such order.",
            None,
        ),
    }
}

pub struct OrderView {
    pub number: String,
    pub date: String,
    pub items: u32,
    pub total: String,
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> Self {
        let date = time::OffsetDateTime::from_unix_timestamp(o.placed_at)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Self {
            number: o.number.clone(),
            date: format!("{} {} {}", date.day(), date.month(), date.year()),
            items: o.lines.iter().map(|l| l.qty).sum(),
            total: rupees(o.totals.total),
        }
    }
}

#[derive(Template)]
#[template(path = "orders.html")]
struct OrdersPage<'a> {
    l: Layout<'a>,
    orders: Vec<OrderView>,
}

async fn orders(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    let data = lock(&shop.data);
    let Visit::Customer { customer, .. } = visit else {
        return please_log_in(&shop, &data, &visit);
    };
    let lag = std::time::Duration::from_millis(shop.faults().history_lag_ms);
    let orders = data
        .history(customer, lag)
        .into_iter()
        .map(OrderView::from)
        .collect();
    render(&OrdersPage {
        l: layout(&shop, &data, &visit, "My Orders"),
        orders,
    })
}

#[derive(Template)]
#[template(path = "addresses.html")]
struct AddressesPage<'a> {
    l: Layout<'a>,
    addresses: Vec<Address>,
}

async fn addresses(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    let data = lock(&shop.data);
    let Visit::Customer { customer, .. } = visit else {
        return please_log_in(&shop, &data, &visit);
    };
    render(&AddressesPage {
        l: layout(&shop, &data, &visit, "Saved Addresses"),
        addresses: data.addresses(customer).to_vec(),
    })
}

#[derive(Template)]
#[template(path = "details.html")]
struct DetailsPage<'a> {
    l: Layout<'a>,
    customer: Customer,
}

async fn details(State(shop): State<Arc<Shop>>, Extension(visit): Extension<Visit>) -> Response {
    let data = lock(&shop.data);
    let customer = match &visit {
        Visit::Customer { customer, .. } => data.customer(*customer).cloned(),
        _ => None,
    };
    match customer {
        Some(customer) => render(&DetailsPage {
            l: layout(&shop, &data, &visit, "Profile Details"),
            customer,
        }),
        None => please_log_in(&shop, &data, &visit),
    }
}
