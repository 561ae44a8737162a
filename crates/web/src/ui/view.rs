//! What every page shares (the chrome: title, navigation, who is signed in) and the way values
//! are written on pages.

use time::OffsetDateTime;

/// The frame around every page.
pub struct Chrome {
    /// The page title.
    pub title: String,
    /// Which navigation entry is current.
    pub section: &'static str,
    /// Who is signed in ("" on the sign-in page).
    pub username: String,
    /// Their role.
    pub role: &'static str,
    /// Whether they may change data and run things.
    pub can_operate: bool,
    /// Whether they manage operators and tokens.
    pub can_admin: bool,
    /// The token forms carry.
    pub csrf: String,
    /// The stylesheet URL.
    pub stylesheet: &'static str,
    /// The script URL.
    pub script: &'static str,
}

impl Chrome {
    /// The chrome of the sign-in page.
    pub fn anonymous(title: &str, csrf: String) -> Self {
        Self {
            title: title.to_owned(),
            section: "",
            username: String::new(),
            role: "",
            can_operate: false,
            can_admin: false,
            csrf,
            stylesheet: super::assets::stylesheet(),
            script: super::assets::script(),
        }
    }

    /// Whether `section` is the current one (for `aria-current`).
    pub fn is(&self, section: &str) -> bool {
        self.section == section
    }
}

/// A moment as operators read it: `2026-11-22 14:05` (UTC).
pub fn when(at: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

/// An optional moment, or a dash.
pub fn when_opt(at: Option<OffsetDateTime>) -> String {
    at.map_or_else(|| "—".to_owned(), when)
}

/// An amount in minor units as `1,234.50`.
pub fn money(minor: i64) -> String {
    cartwright_core::money::show_minor(minor)
}

/// An optional amount, or a dash.
pub fn money_opt(minor: Option<i64>) -> String {
    minor.map_or_else(|| "—".to_owned(), money)
}

/// A count with thousands separators.
pub fn count(n: i64) -> String {
    let text = money(n * 100);
    text.trim_end_matches(".00").to_owned()
}

/// Milliseconds as `2.4 s` or `1 min 5 s`.
pub fn duration_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// Page links for a list: the current page, how many there are, and the query without `page`.
pub struct Pager {
    /// This page, from 1.
    pub page: u32,
    /// Pages in all (at least 1).
    pub pages: u32,
    /// Rows in all.
    pub total: i64,
    /// The list's query string without `page`, ending in `&` when not empty.
    pub base: String,
}

impl Pager {
    /// A pager for `total` rows at `per_page` a page.
    pub fn new(page: u32, per_page: u32, total: i64, base: String) -> Self {
        let per = i64::from(per_page.max(1));
        let pages = u32::try_from((total + per - 1) / per)
            .unwrap_or(u32::MAX)
            .max(1);
        Self {
            page,
            pages,
            total,
            base,
        }
    }

    /// Whether there is a page before this one.
    pub fn has_prev(&self) -> bool {
        self.page > 1
    }

    /// Whether there is a page after this one.
    pub fn has_next(&self) -> bool {
        self.page < self.pages
    }

    /// The link to page `n`.
    pub fn link(&self, n: &u32) -> String {
        format!("?{}page={n}", self.base)
    }

    /// The previous page's link.
    pub fn prev(&self) -> String {
        self.link(&self.page.saturating_sub(1).max(1))
    }

    /// The next page's link.
    pub fn next(&self) -> String {
        self.link(&(self.page + 1).min(self.pages))
    }
}

/// A query string from pairs, leaving out empty values, ending in `&` when not empty.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            out.append_pair(k, v);
        }
    }
    let mut text = out.finish();
    if !text.is_empty() {
        text.push('&');
    }
    text
}

/// A page's status: 422 when it shows a refused form's error, else 200.
pub fn form_status(error: &str) -> axum::http::StatusCode {
    if error.is_empty() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_counts_are_grouped() {
        assert_eq!(money(123_456_789), "1,234,567.89");
        assert_eq!(money(5), "0.05");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(0), "0");
        assert_eq!(duration_ms(65_000), "1 min 5 s");
    }

    #[test]
    fn pager_counts_pages() {
        let p = Pager::new(2, 50, 101, "q=a&".into());
        assert_eq!(p.pages, 3);
        assert_eq!(p.next(), "?q=a&page=3");
        assert_eq!(Pager::new(1, 50, 0, String::new()).pages, 1);
    }
}
