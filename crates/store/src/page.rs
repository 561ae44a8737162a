//! Pages of results: by number (offset; to jump anywhere) or after a cursor from the previous
//! page (keyset; as cheap on the last page as on the first, and stable while rows are added).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cartwright_core::Invalid;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A page of results.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    /// The rows on this page.
    pub items: Vec<T>,
    /// Rows matching the filter on all pages.
    pub total: i64,
    /// This page's number, from 1, when it was asked for by number.
    pub page: Option<u32>,
    /// Rows per page.
    pub per_page: u32,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq)]
pub enum PageStart {
    /// Page number, from 1.
    Number(u32),
    /// Just after the row a cursor names.
    After(Cursor),
}

/// A checked page request.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    /// Where the page starts.
    pub start: PageStart,
    /// Rows per page.
    pub per_page: u32,
}

impl PageRequest {
    /// Largest page size.
    pub const MAX_PER_PAGE: u32 = 500;

    /// Page `page` (from 1) of `per_page` rows (1 to [`PageRequest::MAX_PER_PAGE`]).
    pub fn number(page: u32, per_page: u32) -> Result<Self, Invalid> {
        if page == 0 {
            return Err(Invalid::new("page", "pages count from 1"));
        }
        if page > i32::MAX as u32 {
            return Err(Invalid::new(
                "page",
                format!("must be at most {}", i32::MAX),
            ));
        }
        Ok(Self {
            start: PageStart::Number(page),
            per_page: Self::check_size(per_page)?,
        })
    }

    /// The page after `cursor`, of `per_page` rows.
    pub fn after(cursor: &str, per_page: u32) -> Result<Self, Invalid> {
        Ok(Self {
            start: PageStart::After(Cursor::decode(cursor)?),
            per_page: Self::check_size(per_page)?,
        })
    }

    fn check_size(per_page: u32) -> Result<u32, Invalid> {
        if per_page == 0 || per_page > Self::MAX_PER_PAGE {
            return Err(Invalid::new(
                "per_page",
                format!("must be between 1 and {}", Self::MAX_PER_PAGE),
            ));
        }
        Ok(per_page)
    }

    /// Rows to skip, for page numbers.
    pub(crate) fn offset(&self) -> Option<i64> {
        match self.start {
            PageStart::Number(page) => Some(i64::from(page - 1) * i64::from(self.per_page)),
            PageStart::After(_) => None,
        }
    }

    pub(crate) fn page_of<T>(&self, items: Vec<T>, total: i64, next: Option<Cursor>) -> Page<T> {
        let full = items.len() == self.per_page as usize;
        Page {
            items,
            total,
            page: match self.start {
                PageStart::Number(n) => Some(n),
                PageStart::After(_) => None,
            },
            per_page: self.per_page,
            next_cursor: next.filter(|_| full).map(|c| c.encode()),
        }
    }
}

/// A position just after one row of a sorted list: the sort it belongs to, that row's sort
/// value, and its id (the tie-breaker). Opaque to clients: base64url JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Sort name (`id`, `points`, …).
    #[serde(rename = "s")]
    pub sort: String,
    /// Descending?
    #[serde(rename = "d")]
    pub descending: bool,
    /// The row's sort value; `None` when it was NULL.
    #[serde(rename = "v")]
    pub value: Option<CursorValue>,
    /// The row's id.
    #[serde(rename = "i")]
    pub id: i64,
}

/// A sort value inside a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CursorValue {
    /// A number.
    Int(i64),
    /// Text, or a timestamp in RFC 3339.
    Text(String),
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(text: &str) -> Result<Self, Invalid> {
        URL_SAFE_NO_PAD
            .decode(text.trim())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| Invalid::new("cursor", "is not a cursor this list gave out"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = Cursor {
            sort: "points".into(),
            descending: true,
            value: Some(CursorValue::Int(7)),
            id: 9,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("not base64!").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode(b"{}")).is_err());
        assert_eq!(PageRequest::number(0, 5).unwrap_err().field, "page");
        assert_eq!(PageRequest::number(1, 501).unwrap_err().field, "per_page");
    }
}
