//! Deterministic sample data: the same seed gives the same customers, products, coupons and
//! marketplace orders, so tests and demos can name them.

use crate::model::{Coupon, CouponKind, Customer, Product, ShopData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FIRST: &[&str] = &[
    "Aarav", "Asha", "Bela", "Chitra", "Dev", "Diya", "Esha", "Farhan", "Gauri", "Harsh", "Isha",
    "Jai", "Kavya", "Kabir", "Lata", "Meera", "Nikhil", "Neha", "Om", "Priya", "Rahul", "Riya",
    "Sanya", "Tara", "Uday", "Vani", "Varun", "Yash", "Zoya", "Anika",
];
const LAST: &[&str] = &[
    "Sharma", "Iyer", "Khan", "Patel", "Reddy", "Nair", "Gupta", "Das", "Mehta", "Rao", "Singh",
    "Joshi",
];
const TIERS: &[&str] = &["Silver", "Gold", "Platinum"];

const PRODUCTS: &[(&str, &str, &str, i64)] = &[
    ("Velvet Matte Lipstick", "Kay Beauty", "Lips", 799),
    ("Hydrating Lip Gloss", "Kay Beauty", "Lips", 549),
    ("Long Wear Kajal", "Lakme", "Eyes", 299),
    ("Volume Mascara", "Maybelline", "Eyes", 649),
    ("Nude Eyeshadow Palette", "Huda Beauty", "Eyes", 2499),
    ("Dewy Skin Tint", "Swiss Beauty", "Face", 899),
    ("Matte Compact Powder", "Lakme", "Face", 425),
    ("Vitamin C Serum", "Minimalist", "Skin", 699),
    ("Hyaluronic Moisturiser", "Cetaphil", "Skin", 1099),
    ("Sunscreen SPF 50", "La Roche-Posay", "Skin", 1650),
    ("Gentle Face Wash", "CeraVe", "Skin", 499),
    ("Niacinamide Toner", "The Ordinary", "Skin", 950),
    ("Argan Hair Oil", "Moroccanoil", "Hair", 1850),
    ("Repair Shampoo", "L'Oreal Paris", "Hair", 399),
    ("Smoothing Conditioner", "L'Oreal Paris", "Hair", 429),
    ("Rose Eau de Parfum", "Kama Ayurveda", "Fragrance", 2950),
    ("Citrus Body Mist", "Bath & Body Works", "Fragrance", 1299),
    ("Gel Nail Polish", "Nykaa", "Nails", 249),
    ("Cuticle Oil", "Nykaa", "Nails", 199),
    ("Makeup Brush Set", "Vega", "Tools", 1199),
    ("Beauty Blender", "Real Techniques", "Tools", 599),
    ("Charcoal Sheet Mask", "Garnier", "Skin", 99),
    ("Lip Balm Trio", "Nivea", "Lips", 349),
    ("Brow Gel", "Benefit", "Eyes", 1990),
];

const COLOURS: &[&str] = &[
    "#e11d48", "#f97316", "#a855f7", "#0ea5e9", "#10b981", "#eab308", "#ec4899", "#64748b",
];

/// The sizes every product comes in on the Threads flavour's pages.
pub const SIZES: [&str; 3] = ["Regular", "Mini", "Large"];

/// The seeded shop data: `customers` customers, 24 products (two out of stock), five coupons.
pub fn shop(seed: u64, customers: usize) -> ShopData {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = ShopData::default();
    for i in 0..customers {
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        let id = i as u32 + 1;
        data.customers.push(Customer {
            id,
            first_name: first.into(),
            last_name: last.into(),
            email: format!(
                "{}.{}{:02}@demo-shop.test",
                first.to_lowercase(),
                last.to_lowercase(),
                id
            ),
            phone: format!("9{:09}", 800_000_000 + u64::from(id) * 7_919 % 100_000_000),
            points: rng.random_range(0..5_000),
            tier: TIERS[rng.random_range(0..TIERS.len())].into(),
        });
    }
    for (i, (name, brand, category, mrp)) in PRODUCTS.iter().enumerate() {
        let mrp = mrp * 100;
        let off = [0, 5, 10, 15, 20, 25][rng.random_range(0..6)];
        let price = (mrp * (100 - off) / 100) / 100 * 100;
        data.products.push(Product {
            id: i as u32 + 1,
            slug: name
                .to_lowercase()
                .replace(['\'', '&'], "")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join("-"),
            name: (*name).into(),
            brand: (*brand).into(),
            category: (*category).into(),
            mrp,
            price,
            // Two products are out of stock from the start.
            stock: if i == 4 || i == 15 {
                0
            } else {
                rng.random_range(200..1_000)
            },
            colour: COLOURS[i % COLOURS.len()].into(),
            sizes: SIZES.iter().map(|s| (*s).into()).collect(),
        });
    }
    data.coupons = vec![
        Coupon {
            code: "WELCOME10".into(),
            title: "10% off, up to ₹150".into(),
            min_total: 499_00,
            kind: CouponKind::Percent {
                pct: 10,
                max: 150_00,
            },
        },
        Coupon {
            code: "FLAT100".into(),
            title: "Flat ₹100 off on ₹999 and above".into(),
            min_total: 999_00,
            kind: CouponKind::Flat(100_00),
        },
        Coupon {
            code: "GLOW15".into(),
            title: "15% off, up to ₹300, on ₹1,499 and above".into(),
            min_total: 1_499_00,
            kind: CouponKind::Percent {
                pct: 15,
                max: 300_00,
            },
        },
        Coupon {
            code: "BIG500".into(),
            title: "Flat ₹500 off on ₹4,999 and above".into(),
            min_total: 4_999_00,
            kind: CouponKind::Flat(500_00),
        },
        Coupon {
            code: "TRY50".into(),
            title: "Flat ₹50 off".into(),
            min_total: 0,
            kind: CouponKind::Flat(50_00),
        },
    ];
    data
}

/// A short deterministic tag for `name` under `seed`: the "build hash" of class names.
pub fn hash_tag(seed: u64, name: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (0..5)
        .map(|i| ALPHABET[((h >> (i * 6)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_shop() {
        let a = shop(7, 5);
        let b = shop(7, 5);
        assert_eq!(a.customers[3].email, b.customers[3].email);
        assert_eq!(a.products[2].price, b.products[2].price);
        assert_ne!(shop(8, 5).customers[0].email, a.customers[0].email);
        assert_eq!(a.products.iter().filter(|p| p.stock == 0).count(), 2);
        assert!(a.products.iter().all(|p| p.price <= p.mrp && p.price > 0));
        assert_eq!(hash_tag(1, "primary").len(), 5);
        assert_ne!(hash_tag(1, "primary"), hash_tag(2, "primary"));
    }
}
