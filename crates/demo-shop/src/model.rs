//! The shop's data and its rules: customers, products, carts, coupons, addresses, orders.
//! Plain data and functions, no HTTP; the pages and the API call these.

use std::collections::HashMap;

/// An amount in paise.
pub type Paise = i64;

/// A storefront customer.
#[derive(Debug, Clone)]
pub struct Customer {
    /// Identifier.
    pub id: u32,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Sign-in email.
    pub email: String,
    /// Phone, ten digits.
    pub phone: String,
    /// Reward points available.
    pub points: i64,
    /// Reward tier name.
    pub tier: String,
}

/// A product on sale.
#[derive(Debug, Clone)]
pub struct Product {
    /// Identifier.
    pub id: u32,
    /// URL part: the page is `/p/{slug}`.
    pub slug: String,
    /// Name.
    pub name: String,
    /// Brand.
    pub brand: String,
    /// Category.
    pub category: String,
    /// Maximum retail price.
    pub mrp: Paise,
    /// Selling price.
    pub price: Paise,
    /// Units in stock; 0 means out of stock.
    pub stock: u32,
    /// Colour of its placeholder picture.
    pub colour: String,
    /// The sizes it comes in (the Threads flavour's variants), first the default.
    pub sizes: Vec<String>,
}

/// A coupon.
#[derive(Debug, Clone)]
pub struct Coupon {
    /// Code, e.g. `WELCOME10`.
    pub code: String,
    /// What it gives, for people.
    pub title: String,
    /// Smallest cart value it applies to.
    pub min_total: Paise,
    /// Percent off (with a cap) or a flat amount.
    pub kind: CouponKind,
}

/// How a coupon lowers a total.
#[derive(Debug, Clone, Copy)]
pub enum CouponKind {
    /// `pct` percent, at most `max`.
    Percent { pct: i64, max: Paise },
    /// A flat amount.
    Flat(Paise),
}

impl Coupon {
    /// The discount on a cart worth `subtotal`, or `None` when the coupon does not apply.
    pub fn discount(&self, subtotal: Paise) -> Option<Paise> {
        if subtotal < self.min_total {
            return None;
        }
        Some(match self.kind {
            CouponKind::Percent { pct, max } => (subtotal * pct / 100).min(max),
            CouponKind::Flat(amount) => amount.min(subtotal),
        })
    }
}

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartLine {
    /// The product.
    pub product: u32,
    /// Units.
    pub qty: u32,
    /// The size chosen, when the page asks for one.
    pub variant: Option<String>,
}

/// A customer's cart.
#[derive(Debug, Clone, Default)]
pub struct Cart {
    /// Lines in the order they were added.
    pub lines: Vec<CartLine>,
    /// Applied coupon code.
    pub coupon: Option<String>,
}

/// A saved shipping address.
#[derive(Debug, Clone)]
pub struct Address {
    /// Identifier.
    pub id: u32,
    /// Recipient.
    pub full_name: String,
    /// Flat, house, building.
    pub line1: String,
    /// Street or area.
    pub street: String,
    /// Landmark.
    pub landmark: String,
    /// Six-digit PIN code.
    pub pincode: String,
    /// City.
    pub city: String,
    /// State.
    pub state: String,
    /// Phone.
    pub phone: String,
    /// `Home`, `Work` or `Other`.
    pub kind: String,
}

/// A placed order.
#[derive(Debug, Clone)]
pub struct Order {
    /// The order number customers see, e.g. `DS26112200042`.
    pub number: String,
    /// Who placed it.
    pub customer: u32,
    /// What was bought.
    pub lines: Vec<OrderLine>,
    /// The cart's totals when it was placed.
    pub totals: Totals,
    /// Coupon applied.
    pub coupon: Option<String>,
    /// Where it goes.
    pub address: Address,
    /// `cod`.
    pub payment: String,
    /// Unix seconds.
    pub placed_at: i64,
    /// When, on this process's clock: the history may list it only some time after.
    pub placed: std::time::Instant,
}

/// One line of a placed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    /// The product.
    pub product: u32,
    /// Units.
    pub qty: u32,
    /// Unit price.
    pub price: Paise,
    /// The size, when one was chosen.
    pub variant: Option<String>,
}

/// The checkout of the Threads flavour, page by page: the address the first page saved and
/// the shipping the second chose.
#[derive(Debug, Clone, Default)]
pub struct Checkout {
    /// The address entered on the information page.
    pub address_id: Option<u32>,
    /// The shipping method chosen on the shipping page.
    pub shipping: Option<Shipping>,
}

/// A shipping method of the Threads flavour's checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shipping {
    /// Free, 3 to 5 days.
    Standard,
    /// Paid, 1 to 2 days.
    Express,
}

impl Shipping {
    /// Its fee.
    pub fn fee(self) -> Paise {
        match self {
            Shipping::Standard => 0,
            Shipping::Express => EXPRESS_FEE,
        }
    }
}

/// The Threads flavour's express shipping fee.
pub const EXPRESS_FEE: Paise = 149_00;

/// What a cart adds up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Sum of MRPs.
    pub mrp: Paise,
    /// MRP minus selling prices.
    pub mrp_discount: Paise,
    /// Coupon discount.
    pub coupon_discount: Paise,
    /// Delivery fee.
    pub shipping: Paise,
    /// To pay.
    pub total: Paise,
    /// Units in the cart.
    pub units: u32,
}

/// Why a shop action was refused, in the words the page shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShopError {
    /// No such product, line, address, coupon or order.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The product cannot be bought now.
    #[error("Sorry, {0} is out of stock")]
    OutOfStock(String),
    /// The coupon does not apply to this cart.
    #[error("This coupon needs a cart of at least {0}")]
    CouponNotApplicable(String),
    /// Checkout with nothing to buy.
    #[error("Your bag is empty")]
    EmptyCart,
    /// A form field is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// Free delivery from this cart value; below it a fee applies.
pub const FREE_SHIPPING_FROM: Paise = 499_00;
/// The delivery fee below [`FREE_SHIPPING_FROM`].
pub const SHIPPING_FEE: Paise = 49_00;
/// Most units of one product per cart.
pub const MAX_QTY: u32 = 10;

/// All mutable shop data.
#[derive(Debug, Default)]
pub struct ShopData {
    /// Customers by id (index = id - 1).
    pub customers: Vec<Customer>,
    /// Products by id (index = id - 1).
    pub products: Vec<Product>,
    /// Coupons on offer.
    pub coupons: Vec<Coupon>,
    /// Carts by customer.
    pub carts: HashMap<u32, Cart>,
    /// Saved addresses by customer.
    pub addresses: HashMap<u32, Vec<Address>>,
    /// Every order placed, oldest first.
    pub orders: Vec<Order>,
    /// Next address id.
    pub next_address: u32,
    /// Next order sequence number.
    pub next_order: u32,
    /// Checkouts in progress (the Threads flavour) by customer.
    pub checkouts: HashMap<u32, Checkout>,
}

/// Writes `n` with a separator between groups of three digits: `1,299`.
pub fn group_thousands(n: i64, separator: char) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(separator);
        }
        out.push(ch);
    }
    out
}

/// Formats paise the way the shop's pages do: `₹1,299` or `₹1,299.50`.
pub fn rupees(p: Paise) -> String {
    let whole = group_thousands(p / 100, ',');
    if p % 100 == 0 {
        format!("₹{whole}")
    } else {
        format!("₹{whole}.{:02}", p % 100)
    }
}

impl ShopData {
    /// A customer by id.
    pub fn customer(&self, id: u32) -> Option<&Customer> {
        self.customers.get(id.checked_sub(1)? as usize)
    }

    /// A customer by email.
    pub fn customer_by_email(&self, email: &str) -> Option<&Customer> {
        self.customers
            .iter()
            .find(|c| c.email.eq_ignore_ascii_case(email))
    }

    /// A product by id.
    pub fn product(&self, id: u32) -> Option<&Product> {
        self.products.get(id.checked_sub(1)? as usize)
    }

    /// A product by slug.
    pub fn product_by_slug(&self, slug: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.slug == slug)
    }

    fn product_mut(&mut self, id: u32) -> Result<&mut Product, ShopError> {
        id.checked_sub(1)
            .and_then(|i| self.products.get_mut(i as usize))
            .ok_or(ShopError::NotFound("product"))
    }

    /// The customer's cart (empty when none).
    pub fn cart(&self, customer: u32) -> Cart {
        self.carts.get(&customer).cloned().unwrap_or_default()
    }

    /// Adds one unit of a product.
    pub fn add_to_cart(&mut self, customer: u32, product: u32) -> Result<(), ShopError> {
        self.add_units(customer, product, None, 1)
    }

    /// Adds `qty` units of a product in a size (a line per product and size).
    pub fn add_units(
        &mut self,
        customer: u32,
        product: u32,
        variant: Option<&str>,
        qty: u32,
    ) -> Result<(), ShopError> {
        let p = self.product_mut(product)?;
        if p.stock == 0 {
            return Err(ShopError::OutOfStock(p.name.clone()));
        }
        if let Some(v) = variant
            && !p.sizes.iter().any(|s| s == v)
        {
            return Err(ShopError::Invalid(format!("{} has no size {v}", p.name)));
        }
        if qty == 0 {
            return Err(ShopError::Invalid("Quantity must be at least 1".into()));
        }
        let name = p.name.clone();
        let limit = MAX_QTY.min(p.stock);
        let cart = self.carts.entry(customer).or_default();
        let held: u32 = cart
            .lines
            .iter()
            .filter(|l| l.product == product)
            .map(|l| l.qty)
            .sum();
        if held + qty > limit {
            return Err(ShopError::Invalid(format!(
                "You can buy at most {limit} of {name}"
            )));
        }
        let variant = variant.map(str::to_owned);
        match cart
            .lines
            .iter_mut()
            .find(|l| l.product == product && l.variant == variant)
        {
            Some(line) => line.qty += qty,
            None => cart.lines.push(CartLine {
                product,
                qty,
                variant,
            }),
        }
        self.drop_stale_coupon(customer);
        Ok(())
    }

    /// Removes the cart's `index`-th line (from 1), as a cart page's "Remove" link does.
    pub fn remove_at(&mut self, customer: u32, index: usize) -> Result<(), ShopError> {
        let cart = self.carts.entry(customer).or_default();
        if index == 0 || index > cart.lines.len() {
            return Err(ShopError::NotFound("cart line"));
        }
        cart.lines.remove(index - 1);
        self.drop_stale_coupon(customer);
        Ok(())
    }

    /// Changes a line's quantity by `delta` (±1); a line at zero is removed.
    pub fn change_qty(&mut self, customer: u32, product: u32, delta: i32) -> Result<(), ShopError> {
        let stock = self
            .product(product)
            .ok_or(ShopError::NotFound("product"))?
            .stock;
        let cart = self.carts.entry(customer).or_default();
        let idx = cart
            .lines
            .iter()
            .position(|l| l.product == product)
            .ok_or(ShopError::NotFound("cart line"))?;
        let line = &mut cart.lines[idx];
        let qty = i64::from(line.qty) + i64::from(delta);
        if qty > i64::from(MAX_QTY.min(stock.max(line.qty))) {
            return Err(ShopError::Invalid("No more units available".into()));
        }
        if qty <= 0 {
            cart.lines.remove(idx);
        } else {
            line.qty = qty as u32;
        }
        self.drop_stale_coupon(customer);
        Ok(())
    }

    /// Removes a line.
    pub fn remove_line(&mut self, customer: u32, product: u32) -> Result<(), ShopError> {
        let cart = self.carts.entry(customer).or_default();
        let before = cart.lines.len();
        cart.lines.retain(|l| l.product != product);
        if cart.lines.len() == before {
            return Err(ShopError::NotFound("cart line"));
        }
        self.drop_stale_coupon(customer);
        Ok(())
    }

    /// Applies a coupon to the cart.
    pub fn apply_coupon(&mut self, customer: u32, code: &str) -> Result<(), ShopError> {
        let coupon = self
            .coupons
            .iter()
            .find(|c| c.code.eq_ignore_ascii_case(code))
            .ok_or(ShopError::NotFound("coupon"))?;
        let subtotal = self.subtotal(customer);
        if coupon.discount(subtotal).is_none() {
            return Err(ShopError::CouponNotApplicable(rupees(coupon.min_total)));
        }
        let code = coupon.code.clone();
        self.carts.entry(customer).or_default().coupon = Some(code);
        Ok(())
    }

    /// Removes the applied coupon.
    pub fn remove_coupon(&mut self, customer: u32) {
        if let Some(cart) = self.carts.get_mut(&customer) {
            cart.coupon = None;
        }
    }

    fn drop_stale_coupon(&mut self, customer: u32) {
        let subtotal = self.subtotal(customer);
        let stale = self
            .carts
            .get(&customer)
            .and_then(|c| c.coupon.as_ref())
            .and_then(|code| self.coupons.iter().find(|c| &c.code == code))
            .is_some_and(|c| c.discount(subtotal).is_none());
        if stale {
            self.remove_coupon(customer);
        }
    }

    fn subtotal(&self, customer: u32) -> Paise {
        self.cart(customer)
            .lines
            .iter()
            .filter_map(|l| self.product(l.product).map(|p| p.price * i64::from(l.qty)))
            .sum()
    }

    /// What the customer's cart adds up to.
    pub fn totals(&self, customer: u32) -> Totals {
        self.totals_shipped(customer, None)
    }

    /// What the cart adds up to with a chosen shipping method (the shop's own fee rule
    /// when none).
    pub fn totals_shipped(&self, customer: u32, shipping: Option<Shipping>) -> Totals {
        let cart = self.cart(customer);
        let mut t = Totals::default();
        for line in &cart.lines {
            if let Some(p) = self.product(line.product) {
                t.mrp += p.mrp * i64::from(line.qty);
                t.mrp_discount += (p.mrp - p.price) * i64::from(line.qty);
                t.units += line.qty;
            }
        }
        let subtotal = t.mrp - t.mrp_discount;
        t.coupon_discount = cart
            .coupon
            .as_ref()
            .and_then(|code| self.coupons.iter().find(|c| &c.code == code))
            .and_then(|c| c.discount(subtotal))
            .unwrap_or(0);
        let after_coupon = subtotal - t.coupon_discount;
        t.shipping = match shipping {
            _ if t.units == 0 => 0,
            Some(method) => method.fee(),
            None if after_coupon >= FREE_SHIPPING_FROM => 0,
            None => SHIPPING_FEE,
        };
        t.total = after_coupon + t.shipping;
        t
    }

    /// The customer's saved addresses.
    pub fn addresses(&self, customer: u32) -> &[Address] {
        self.addresses.get(&customer).map_or(&[], Vec::as_slice)
    }

    /// Saves an address; fields are checked like the real form does.
    pub fn add_address(&mut self, customer: u32, mut a: Address) -> Result<Address, ShopError> {
        for (value, what) in [
            (&a.full_name, "full name"),
            (&a.line1, "flat / house"),
            (&a.street, "street / area"),
        ] {
            if value.trim().is_empty() {
                return Err(ShopError::Invalid(format!("Please enter the {what}")));
            }
        }
        if a.pincode.len() != 6 || !a.pincode.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ShopError::Invalid(
                "Please enter a valid 6-digit pincode".into(),
            ));
        }
        let digits = a.phone.chars().filter(char::is_ascii_digit).count();
        if !(10..=13).contains(&digits) {
            return Err(ShopError::Invalid(
                "Please enter a valid phone number".into(),
            ));
        }
        if a.city.is_empty() || a.state.is_empty() {
            let (city, state) = pincode_place(&a.pincode)
                .ok_or_else(|| ShopError::Invalid("We do not deliver to this pincode".into()))?;
            a.city = city.into();
            a.state = state.into();
        }
        self.next_address += 1;
        a.id = self.next_address;
        self.addresses.entry(customer).or_default().push(a.clone());
        Ok(a)
    }

    /// Deletes a saved address.
    pub fn delete_address(&mut self, customer: u32, id: u32) -> Result<(), ShopError> {
        let list = self.addresses.entry(customer).or_default();
        let before = list.len();
        list.retain(|a| a.id != id);
        if list.len() == before {
            Err(ShopError::NotFound("address"))
        } else {
            Ok(())
        }
    }

    /// Places the cart as an order: checks stock, takes it, empties the cart.
    pub fn place_order(
        &mut self,
        customer: u32,
        address_id: u32,
        payment: &str,
        shipping: Option<Shipping>,
        now: i64,
    ) -> Result<Order, ShopError> {
        if payment != "cod" {
            return Err(ShopError::Invalid("Please choose a payment method".into()));
        }
        let address = self
            .addresses(customer)
            .iter()
            .find(|a| a.id == address_id)
            .cloned()
            .ok_or(ShopError::NotFound("address"))?;
        let cart = self.cart(customer);
        if cart.lines.is_empty() {
            return Err(ShopError::EmptyCart);
        }
        for line in &cart.lines {
            let p = self
                .product(line.product)
                .ok_or(ShopError::NotFound("product"))?;
            if p.stock < line.qty {
                return Err(ShopError::OutOfStock(p.name.clone()));
            }
        }
        let totals = self.totals_shipped(customer, shipping);
        let mut lines = Vec::with_capacity(cart.lines.len());
        for line in &cart.lines {
            let p = self.product_mut(line.product)?;
            p.stock -= line.qty;
            lines.push(OrderLine {
                product: line.product,
                qty: line.qty,
                price: p.price,
                variant: line.variant.clone(),
            });
        }
        self.next_order += 1;
        let date = time::OffsetDateTime::from_unix_timestamp(now)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let number = format!(
            "DS{:02}{:02}{:02}{:05}",
            date.year() % 100,
            u8::from(date.month()),
            date.day(),
            self.next_order
        );
        let order = Order {
            number,
            customer,
            lines,
            totals,
            coupon: cart.coupon.clone(),
            address,
            payment: payment.into(),
            placed_at: now,
            placed: std::time::Instant::now(),
        };
        self.orders.push(order.clone());
        self.carts.remove(&customer);
        self.checkouts.remove(&customer);
        Ok(order)
    }

    /// Sells `slug` out when it is in the customer's cart: a product that sells out while this
    /// shopper was checking out (the `sell_out_at_checkout` fault).
    pub fn sell_out_if_in_cart(&mut self, customer: u32, slug: &str) {
        let in_cart = self
            .product_by_slug(slug)
            .map(|p| p.id)
            .is_some_and(|pid| self.cart(customer).lines.iter().any(|l| l.product == pid));
        if in_cart && let Some(p) = self.products.iter_mut().find(|p| p.slug == slug) {
            p.stock = 0;
        }
    }

    /// The customer's orders, newest first, as the history lists them: an order appears
    /// there `lag` after it was placed.
    pub fn history(&self, customer: u32, lag: std::time::Duration) -> Vec<&Order> {
        self.orders
            .iter()
            .rev()
            .filter(|o| o.customer == customer && o.placed.elapsed() >= lag)
            .collect()
    }
}

/// City and state for a PIN code, as the checkout's lookup answers.
pub fn pincode_place(pincode: &str) -> Option<(&'static str, &'static str)> {
    if pincode.len() != 6 || !pincode.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match &pincode[..3] {
        "400" => ("Mumbai", "Maharashtra"),
        "411" => ("Pune", "Maharashtra"),
        "110" => ("New Delhi", "Delhi"),
        "560" => ("Bengaluru", "Karnataka"),
        "600" => ("Chennai", "Tamil Nadu"),
        "700" => ("Kolkata", "West Bengal"),
        "500" => ("Hyderabad", "Telangana"),
        "380" => ("Ahmedabad", "Gujarat"),
        "302" => ("Jaipur", "Rajasthan"),
        "226" => ("Lucknow", "Uttar Pradesh"),
        _ => match &pincode[..1] {
            "0" => return None,
            "1" => ("Chandigarh", "Punjab"),
            "2" => ("Kanpur", "Uttar Pradesh"),
            "3" => ("Surat", "Gujarat"),
            "4" => ("Nagpur", "Maharashtra"),
            "5" => ("Visakhapatnam", "Andhra Pradesh"),
            "6" => ("Kochi", "Kerala"),
            "7" => ("Bhubaneswar", "Odisha"),
            _ => ("Patna", "Bihar"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn shop() -> ShopData {
        let mut s = ShopData::default();
        for (i, (price, stock)) in [(300_00, 5), (800_00, 1), (150_00, 0)]
            .into_iter()
            .enumerate()
        {
            s.products.push(Product {
                id: i as u32 + 1,
                slug: format!("p{i}"),
                name: format!("Product {i}"),
                brand: "B".into(),
                category: "C".into(),
                mrp: price + 100_00,
                price,
                stock,
                colour: "#000".into(),
                sizes: vec!["Regular".into(), "Mini".into()],
            });
        }
        s.coupons.push(Coupon {
            code: "FLAT100".into(),
            title: "₹100 off".into(),
            min_total: 999_00,
            kind: CouponKind::Flat(100_00),
        });
        s.coupons.push(Coupon {
            code: "TEN".into(),
            title: "10% off".into(),
            min_total: 0,
            kind: CouponKind::Percent {
                pct: 10,
                max: 50_00,
            },
        });
        s
    }

    fn address() -> Address {
        Address {
            id: 0,
            full_name: "Asha".into(),
            line1: "Flat 4".into(),
            street: "MG Road".into(),
            landmark: String::new(),
            pincode: "560001".into(),
            city: String::new(),
            state: String::new(),
            phone: "9800000000".into(),
            kind: "Home".into(),
        }
    }

    #[test]
    fn cart_totals_coupons_and_shipping() {
        let mut s = shop();
        s.add_to_cart(1, 1).unwrap();
        assert_eq!(
            s.totals(1),
            Totals {
                mrp: 400_00,
                mrp_discount: 100_00,
                coupon_discount: 0,
                shipping: 49_00,
                total: 349_00,
                units: 1
            }
        );
        assert!(matches!(
            s.apply_coupon(1, "FLAT100"),
            Err(ShopError::CouponNotApplicable(_))
        ));
        s.apply_coupon(1, "ten").unwrap();
        assert_eq!(s.totals(1).coupon_discount, 30_00);
        s.add_to_cart(1, 2).unwrap();
        s.add_to_cart(1, 1).unwrap();
        let t = s.totals(1);
        assert_eq!(
            (t.mrp, t.coupon_discount, t.shipping, t.total),
            (1_700_00, 50_00, 0, 1_350_00)
        );
        assert!(matches!(s.add_to_cart(1, 3), Err(ShopError::OutOfStock(_))));
        assert!(
            s.add_to_cart(1, 2).is_err(),
            "only one unit of product 2 is in stock"
        );
        s.change_qty(1, 1, -1).unwrap();
        s.change_qty(1, 1, -1).unwrap();
        assert_eq!(
            s.cart(1).lines,
            [CartLine {
                product: 2,
                qty: 1,
                variant: None
            }]
        );
        s.remove_line(1, 2).unwrap();
        assert_eq!(s.totals(1), Totals::default());
    }

    #[test]
    fn orders_take_stock_and_empty_the_cart() {
        let mut s = shop();
        let a = s.add_address(1, address()).unwrap();
        assert_eq!(
            (a.city.as_str(), a.state.as_str()),
            ("Bengaluru", "Karnataka")
        );
        assert!(matches!(
            s.place_order(1, a.id, "cod", None, 0),
            Err(ShopError::EmptyCart)
        ));
        s.add_to_cart(1, 2).unwrap();
        assert!(s.place_order(1, a.id, "card", None, 0).is_err());
        let order = s.place_order(1, a.id, "cod", None, 1_795_300_000).unwrap();
        assert_eq!(order.number, "DS26112100001");
        assert_eq!(s.product(2).unwrap().stock, 0);
        assert!(s.cart(1).lines.is_empty());
        assert_eq!(s.history(1, Duration::ZERO).len(), 1);
        assert!(s.history(2, Duration::ZERO).is_empty());
        assert!(
            s.history(1, Duration::from_secs(60)).is_empty(),
            "a lagging history does not list it yet"
        );
    }

    #[test]
    fn address_form_checks() {
        let mut s = shop();
        let mut bad = address();
        bad.pincode = "12345".into();
        assert!(s.add_address(1, bad).is_err());
        let mut bad = address();
        bad.line1 = " ".into();
        assert!(s.add_address(1, bad).is_err());
        let a = s.add_address(1, address()).unwrap();
        s.delete_address(1, a.id).unwrap();
        assert!(s.delete_address(1, a.id).is_err());
        assert_eq!(rupees(129_950), "₹1,299.50");
        assert_eq!(rupees(100_000_00), "₹100,000");
    }
}
