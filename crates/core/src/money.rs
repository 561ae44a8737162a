//! Amounts of money, kept as whole minor units (paise, cents) so that sums and caps are exact.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use utoipa::ToSchema;

/// A non-negative amount in minor units. In JSON it is a decimal number (`499.5`) or string
/// (`"499.50"`) with at most two decimals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, ToSchema)]
#[schema(value_type = f64, example = 499.5, minimum = 0)]
pub struct Money(i64);

impl Money {
    /// Largest accepted amount in major units; far above any cart, far below overflow.
    pub const MAX_MAJOR: i64 = 1_000_000_000;

    /// An amount from minor units (e.g. paise).
    pub fn from_minor(minor: i64) -> Result<Self, String> {
        if minor < 0 {
            return Err("must not be negative".into());
        }
        if minor > Self::MAX_MAJOR * 100 {
            return Err(format!("must be at most {}", Self::MAX_MAJOR));
        }
        Ok(Self(minor))
    }

    /// The amount in minor units.
    pub fn minor(self) -> i64 {
        self.0
    }

    /// Parses `"1,299.50"`, `"₹ 499"`, `"499.5"`: the way prices appear on pages and in sheets.
    /// Currency symbols, spaces and thousands separators are ignored; more than two decimals
    /// are rejected rather than rounded.
    pub fn parse(s: &str) -> Result<Self, String> {
        const BAD: &str = "must be an amount like 499 or 499.50";
        let mut t = s.trim();
        for symbol in [
            "rs.", "rs", "inr", "\u{20b9}", "$", "usd", "\u{20ac}", "eur", "\u{a3}",
        ] {
            if t.get(..symbol.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(symbol))
            {
                t = t[symbol.len()..].trim_start();
                break;
            }
        }
        let cleaned: String = t
            .chars()
            .filter(|c| !matches!(c, ',' | ' ' | '\u{a0}'))
            .collect();
        if cleaned.starts_with('-') {
            return Err("must not be negative".into());
        }
        if cleaned.is_empty() || !cleaned.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(BAD.into());
        }
        let (whole, frac) = match cleaned.split_once('.') {
            Some((w, f)) => (w, f),
            None => (cleaned.as_str(), ""),
        };
        if frac.len() > 2 || frac.contains('.') {
            return Err(BAD.into());
        }
        if whole.is_empty() && frac.is_empty() {
            return Err(BAD.into());
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| BAD)?
        };
        if whole > Self::MAX_MAJOR {
            return Err(format!("must be at most {}", Self::MAX_MAJOR));
        }
        let frac_minor: i64 = match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().map_err(|_| BAD)? * 10,
            _ => frac.parse().map_err(|_| BAD)?,
        };
        Self::from_minor(whole * 100 + frac_minor)
    }

    fn from_f64(v: f64) -> Result<Self, String> {
        if !v.is_finite() {
            return Err("must be a finite number".into());
        }
        if v < 0.0 {
            return Err("must not be negative".into());
        }
        if v > Self::MAX_MAJOR as f64 {
            return Err(format!("must be at most {}", Self::MAX_MAJOR));
        }
        let minor = (v * 100.0).round();
        if (v * 100.0 - minor).abs() > 1e-6 {
            return Err("must have at most two decimals".into());
        }
        Self::from_minor(minor as i64)
    }

    /// The amount in major units, for display and JSON.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }

    /// The first amount in a page's text, exact to the cent: `₹1,299.50`, `Rs. 449`,
    /// `Total: ₹ 2,00,000.`, `-₹50` (a sign is not part of the amount: a discount printed
    /// `-₹50` is 50). Grouping commas in any position are ignored; `None` when there is no
    /// amount, or one with more than two decimals.
    pub fn from_page(text: &str) -> Option<Self> {
        let start = text.find(|c: char| c.is_ascii_digit())?;
        let number: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '.')
            .filter(|c| *c != ',')
            .collect();
        Self::parse(number.trim_end_matches('.')).ok()
    }

    /// Grouped for people: `1,299.50`.
    pub fn grouped(self) -> String {
        show_minor(self.0)
    }
}

/// An amount in minor units, possibly negative (a difference), grouped for people:
/// `-1,299.50`. The one way amounts are written on pages, in reports and in logs.
pub fn show_minor(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let whole = (abs / 100).to_string();
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{sign}{grouped}.{:02}", abs % 100)
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let parsed = match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("must be an amount (a number or a string like \"499.50\")")
        })? {
            Raw::Number(v) => Money::from_f64(v),
            Raw::Text(s) => Money::parse(&s),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_page_and_sheet_formats() {
        assert_eq!(Money::parse("₹ 1,299.50").unwrap().minor(), 129_950);
        assert_eq!(Money::parse("499").unwrap().minor(), 49_900);
        assert_eq!(Money::parse("499.5").unwrap().minor(), 49_950);
        assert_eq!(Money::parse("Rs. 20").unwrap().minor(), 2_000);
        assert_eq!(Money::parse(".5").unwrap().minor(), 50);
        for bad in ["", "abc", "1.234", "-5", "1.2.3", "12e5"] {
            assert!(Money::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn amounts_are_read_off_pages_exactly_and_shown_grouped() {
        let page = |t| Money::from_page(t).map(Money::minor);
        assert_eq!(page("₹1,299.50"), Some(129_950));
        assert_eq!(page("Rs. 449"), Some(44_900));
        assert_eq!(page("- ₹50"), Some(5_000));
        assert_eq!(page("Total: ₹ 2,00,000."), Some(20_000_000));
        assert_eq!(page("0.1 + 0.2"), Some(10));
        assert_eq!(page("free"), None);
        assert_eq!(page("1.005"), None, "never rounded");
        assert_eq!(show_minor(123_456_789), "1,234,567.89");
        assert_eq!(show_minor(-5), "-0.05");
        assert_eq!(Money::from_minor(99_900).unwrap().grouped(), "999.00");
    }

    #[test]
    fn json_numbers_are_exact_to_the_cent() {
        let m: Money = serde_json::from_str("499.9").unwrap();
        assert_eq!(m.minor(), 49_990);
        assert_eq!(serde_json::to_string(&m).unwrap(), "499.9");
        assert!(serde_json::from_str::<Money>("0.001").is_err());
        assert!(serde_json::from_str::<Money>("-1").is_err());
        assert!(serde_json::from_str::<Money>("true").is_err());
        assert_eq!(Money::from_minor(105).unwrap().to_string(), "1.05");
    }
}
