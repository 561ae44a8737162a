//! Which accounts a batch or a rewards check covers: a range of positions (the old app's
//! "users 1–50"), explicit ids, or a tag. One type, used by previews, batches and checks.

use crate::Invalid;
use crate::ids::{AccountId, StorefrontId};
use crate::values::Tag;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Largest range one selection may span.
pub const MAX_SPAN: u32 = 100_000;
/// Most explicit ids one selection may list.
pub const MAX_IDS: usize = 10_000;

/// Positions `from..=to`, 1-based, counting a storefront's accounts in the order they were added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PositionRange {
    /// First position, from 1.
    pub from: u32,
    /// Last position, included.
    pub to: u32,
}

/// A selection as submitted: a storefront and exactly one of `range`, `ids` or `tag`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectionRequest {
    /// Storefront whose accounts are selected.
    pub storefront_id: StorefrontId,
    /// Positions in the order accounts were added (`{"from":1,"to":50}`).
    #[serde(default)]
    pub range: Option<PositionRange>,
    /// Explicit account ids.
    #[serde(default)]
    pub ids: Option<Vec<AccountId>>,
    /// Every account carrying this tag.
    #[serde(default)]
    pub tag: Option<Tag>,
}

/// How accounts are picked, once validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum SelectBy {
    /// Positions `from..=to`.
    Range {
        /// First position, from 1.
        from: u32,
        /// Last position, included.
        to: u32,
    },
    /// These ids, in this order.
    Ids {
        /// Account ids, without duplicates.
        ids: Vec<AccountId>,
    },
    /// Accounts with this tag.
    Tag {
        /// The tag.
        tag: Tag,
    },
}

/// A validated selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountSelection {
    /// Storefront whose accounts are selected.
    pub storefront_id: StorefrontId,
    /// How they are picked.
    pub by: SelectBy,
}

impl SelectBy {
    /// Parses the command-line forms: `1-50`, `7` (one position), `ids:3,9,12`, `tag:vip`.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        if let Some(tag) = s.strip_prefix("tag:") {
            let tag = Tag::parse(tag).map_err(|m| Invalid::new("tag", m))?;
            return Ok(SelectBy::Tag { tag });
        }
        if let Some(list) = s.strip_prefix("ids:") {
            let ids = list
                .split(',')
                .map(|id| id.trim().parse::<i64>().map(AccountId))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| Invalid::new("ids", "must be account ids separated by commas"))?;
            return Self::ids(ids);
        }
        let bad = || {
            Invalid::new(
                "range",
                "must be positions like 1-50, tag:NAME or ids:1,2,3",
            )
        };
        let (from, to) = match s.split_once('-') {
            Some((a, b)) => (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            ),
            None => {
                let n = s.parse().map_err(|_| bad())?;
                (n, n)
            }
        };
        Self::range(PositionRange { from, to })
    }

    /// Checks a range: starts at 1 or later, does not run backwards, spans at most [`MAX_SPAN`].
    pub fn range(r: PositionRange) -> Result<Self, Invalid> {
        if r.from == 0 {
            return Err(Invalid::new("range.from", "positions start at 1"));
        }
        if r.to < r.from {
            return Err(Invalid::new(
                "range.to",
                "must not be smaller than range.from",
            ));
        }
        if r.to - r.from >= MAX_SPAN {
            return Err(Invalid::new(
                "range",
                format!("must span at most {MAX_SPAN} accounts"),
            ));
        }
        Ok(SelectBy::Range {
            from: r.from,
            to: r.to,
        })
    }

    /// Checks an id list: not empty, at most [`MAX_IDS`], duplicates dropped (first kept).
    pub fn ids(ids: Vec<AccountId>) -> Result<Self, Invalid> {
        if ids.is_empty() {
            return Err(Invalid::new("ids", "must list at least one account"));
        }
        if let Some(i) = ids.iter().position(|id| id.get() < 1) {
            return Err(Invalid::new(format!("ids[{i}]"), "account ids start at 1"));
        }
        if ids.len() > MAX_IDS {
            return Err(Invalid::new(
                "ids",
                format!("must list at most {MAX_IDS} accounts"),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        let ids = ids.into_iter().filter(|id| seen.insert(*id)).collect();
        Ok(SelectBy::Ids { ids })
    }
}

impl SelectionRequest {
    /// Validates: exactly one way of picking, each checked.
    pub fn validate(self) -> Result<AccountSelection, Invalid> {
        let by = match (self.range, self.ids, self.tag) {
            (Some(r), None, None) => SelectBy::range(r)?,
            (None, Some(ids), None) => SelectBy::ids(ids)?,
            (None, None, Some(tag)) => SelectBy::Tag { tag },
            (None, None, None) => {
                return Err(Invalid::new("range", "give one of range, ids or tag"));
            }
            _ => return Err(Invalid::new("range", "give only one of range, ids or tag")),
        };
        Ok(AccountSelection {
            storefront_id: self.storefront_id,
            by,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_forms() {
        assert_eq!(
            SelectBy::parse("1-50").unwrap(),
            SelectBy::Range { from: 1, to: 50 }
        );
        assert_eq!(
            SelectBy::parse("7").unwrap(),
            SelectBy::Range { from: 7, to: 7 }
        );
        assert_eq!(
            SelectBy::parse("ids:3, 9,3").unwrap(),
            SelectBy::Ids {
                ids: vec![AccountId(3), AccountId(9)]
            }
        );
        assert!(
            matches!(SelectBy::parse("tag:VIP").unwrap(), SelectBy::Tag { tag } if tag.as_str() == "vip")
        );
        assert_eq!(SelectBy::parse("0-5").unwrap_err().field, "range.from");
        assert_eq!(SelectBy::parse("9-5").unwrap_err().field, "range.to");
        assert!(SelectBy::parse("a-b").is_err());
        assert!(SelectBy::parse("ids:").is_err());
    }

    #[test]
    fn exactly_one_way() {
        let req = |json: &str| {
            serde_json::from_str::<SelectionRequest>(json)
                .unwrap()
                .validate()
        };
        assert!(req(r#"{"storefront_id":1,"range":{"from":1,"to":2}}"#).is_ok());
        assert!(req(r#"{"storefront_id":1}"#).is_err());
        assert!(req(r#"{"storefront_id":1,"tag":"x","ids":[1]}"#).is_err());
        assert_eq!(
            req(r#"{"storefront_id":1,"ids":[]}"#).unwrap_err().field,
            "ids"
        );
    }
}
