//! Digital goods: what a seller sells (a unique item per unit, the same content for every
//! buyer, or a text filled in per order), the stock of unique items, the message a delivery
//! sends, and a delivery's life. No I/O: the store keeps them, the commerce crate moves them.

use crate::Invalid;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

/// How a product's goods are made for each unit sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProductKind {
    /// One unique item from stock per unit: a licence key or voucher code.
    Code,
    /// One unique item from stock per unit: an account's login, password and notes.
    Credential,
    /// The same content (a link, a file's address, a text) for every buyer.
    Shared,
    /// A text filled in for each order from its variables.
    Template,
}

impl ProductKind {
    /// Every kind.
    pub const ALL: [ProductKind; 4] = [
        ProductKind::Code,
        ProductKind::Credential,
        ProductKind::Shared,
        ProductKind::Template,
    ];

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProductKind::Code => "code",
            ProductKind::Credential => "credential",
            ProductKind::Shared => "shared",
            ProductKind::Template => "template",
        }
    }

    /// Whether each unit takes a unique item from stock.
    pub fn uses_stock(self) -> bool {
        matches!(self, ProductKind::Code | ProductKind::Credential)
    }

    /// The variables a delivery message of this kind may use.
    pub fn variables(self) -> &'static [&'static str] {
        const COMMON: [&str; 8] = [
            "buyer.name",
            "buyer.id",
            "order.number",
            "order.marketplace",
            "product.name",
            "product.sku",
            "units",
            "delivery.link",
        ];
        match self {
            ProductKind::Code => &[
                "buyer.name",
                "buyer.id",
                "order.number",
                "order.marketplace",
                "product.name",
                "product.sku",
                "units",
                "delivery.link",
                "item.code",
                "items",
            ],
            ProductKind::Credential => &[
                "buyer.name",
                "buyer.id",
                "order.number",
                "order.marketplace",
                "product.name",
                "product.sku",
                "units",
                "delivery.link",
                "item.login",
                "item.password",
                "item.notes",
                "items",
            ],
            ProductKind::Shared => &[
                "buyer.name",
                "buyer.id",
                "order.number",
                "order.marketplace",
                "product.name",
                "product.sku",
                "units",
                "delivery.link",
                "content",
            ],
            ProductKind::Template => &COMMON,
        }
    }
}

impl FromStr for ProductKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ProductKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("unknown product kind {s:?}: code, credential, shared or template")
            })
    }
}

/// A delivery message: text with `{{variables}}`, checked against what its product's kind
/// offers when it is saved, so that a typo is refused then and not at a buyer's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct MessageTemplate(String);

impl MessageTemplate {
    /// Checks `text` for `kind`: every `{{ name }}` must be one of the kind's variables, every
    /// `{{` closed; at most 4,000 characters. The error names the first unknown variable.
    pub fn parse(text: &str, kind: ProductKind) -> Result<Self, Invalid> {
        if text.trim().is_empty() {
            return Err(Invalid::new("message", "must not be empty"));
        }
        if text.chars().count() > 4_000 {
            return Err(Invalid::new("message", "must be at most 4,000 characters"));
        }
        for name in placeholders(text)? {
            if !kind.variables().contains(&name.as_str()) {
                return Err(Invalid::new(
                    "message",
                    format!(
                        "{{{{{name}}}}} is not a variable of a {} product; these are: {}",
                        kind.as_str(),
                        kind.variables().join(", ")
                    ),
                ));
            }
        }
        Ok(MessageTemplate(text.to_owned()))
    }

    /// A template read back from storage: checked when it was saved.
    pub fn from_stored(text: String) -> Self {
        MessageTemplate(text)
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Fills the variables in from `value` (unknown ones stay empty: the template was checked
    /// when saved).
    pub fn render(&self, value: impl Fn(&str) -> Option<String>) -> String {
        let mut out = String::with_capacity(self.0.len() + 64);
        let mut rest = self.0.as_str();
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find("}}") {
                Some(end) => {
                    out.push_str(&value(after[..end].trim()).unwrap_or_default());
                    rest = &after[end + 2..];
                }
                None => {
                    out.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// The variable names a text uses, in order.
fn placeholders(text: &str) -> Result<Vec<String>, Invalid> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(Invalid::new(
                "message",
                "has a {{ that is not closed with }}",
            ));
        };
        names.push(after[..end].trim().to_owned());
        rest = &after[end + 2..];
    }
    Ok(names)
}

/// A digital product to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDigitalProduct {
    /// The seller's SKU: listings and imports name the product by it.
    pub sku: crate::values::Text,
    /// Its name, as buyers see it.
    pub name: crate::values::Text,
    /// How its goods are made.
    pub kind: ProductKind,
    /// The delivery message, with `{{variables}}` of its kind.
    pub message: String,
    /// A shared product's content: the link, or the text every buyer gets.
    #[serde(default)]
    pub content: Option<String>,
    /// Below this many available items, a low-stock alert (0: none).
    #[serde(default)]
    pub low_stock: u32,
    /// How the buyer's delivery page behaves.
    #[serde(default)]
    pub page: PageRules,
}

/// How a product's delivery pages behave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageRules {
    /// The page stops showing the goods this many days after they went out (never when
    /// absent).
    #[serde(default)]
    pub expires_after_days: Option<u32>,
    /// The goods show once: the buyer presses a button to reveal them (a link preview or a
    /// crawler opening the page does not), and later visits say when they were revealed.
    #[serde(default)]
    pub reveal_once: bool,
}

impl PageRules {
    fn check(&self) -> Result<(), Invalid> {
        match self.expires_after_days {
            Some(d) if !(1..=3_650).contains(&d) => Err(Invalid::new(
                "page.expires_after_days",
                "must be between 1 and 3,650 days (leave it out for a page that never expires)",
            )),
            _ => Ok(()),
        }
    }
}

impl NewDigitalProduct {
    /// Checks the whole product: its message against its kind, its content against its kind.
    pub fn check(&self) -> Result<MessageTemplate, Invalid> {
        let message = MessageTemplate::parse(&self.message, self.kind)?;
        self.page.check()?;
        match (self.kind, self.content.as_deref().map(str::trim)) {
            (ProductKind::Shared, None | Some("")) => Err(Invalid::new(
                "content",
                "a shared product needs its content: the link or text every buyer gets",
            )),
            (ProductKind::Shared, Some(c)) if c.chars().count() > 20_000 => {
                Err(Invalid::new("content", "must be at most 20,000 characters"))
            }
            (ProductKind::Shared, Some(_)) => Ok(message),
            (kind, Some(c)) if !c.is_empty() => Err(Invalid::new(
                "content",
                format!(
                    "only a shared product has content; a {} product's goods come from {}",
                    kind.as_str(),
                    if kind.uses_stock() {
                        "its stock"
                    } else {
                        "its message"
                    }
                ),
            )),
            _ => Ok(message),
        }
    }
}

/// How many items of a product's stock are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StockCounts {
    /// Ready to be sold.
    pub available: i64,
    /// Claimed by a delivery that has not gone out yet.
    pub reserved: i64,
    /// Sent to a buyer.
    pub delivered: i64,
    /// Taken back after a refund: never sold again.
    pub revoked: i64,
}

/// A digital product as stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DigitalProduct {
    /// Identifier.
    pub id: crate::ids::DigitalProductId,
    /// The seller's SKU.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// How its goods are made.
    pub kind: ProductKind,
    /// The delivery message.
    pub message: MessageTemplate,
    /// Whether it has shared content (never shown in lists).
    pub has_content: bool,
    /// The low-stock threshold.
    pub low_stock: u32,
    /// How its delivery pages behave.
    pub page: PageRules,
    /// Its stock, when it has one.
    pub stock: StockCounts,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

impl DigitalProduct {
    /// Whether its available stock is at or under its threshold.
    pub fn low(&self) -> bool {
        self.kind.uses_stock()
            && self.low_stock > 0
            && self.stock.available <= i64::from(self.low_stock)
    }
}

/// One unique item of stock, as imported and as delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum StockItem {
    /// A key or code.
    Code {
        /// The key.
        code: String,
    },
    /// An account's credentials.
    Credential {
        /// The sign-in name.
        login: String,
        /// The password.
        password: String,
        /// Anything else the buyer needs.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        notes: String,
    },
}

impl StockItem {
    /// What makes two items the same item, for finding duplicates: the code, or the login
    /// (an account is sold once, whatever its password), trimmed, case kept.
    pub fn identity(&self) -> String {
        match self {
            StockItem::Code { code } => format!("code:{}", code.trim()),
            StockItem::Credential { login, .. } => format!("login:{}", login.trim()),
        }
    }

    /// The item as lists show it: never whole. `ABCD-…-WXYZ` for a code; the login's first
    /// and last characters for a credential.
    pub fn masked(&self) -> String {
        match self {
            StockItem::Code { code } => mask(code.trim()),
            StockItem::Credential { login, .. } => format!("{} · ••••", mask(login.trim())),
        }
    }
}

/// The ends of a secret, its middle hidden: four characters each side when it is long enough
/// to keep most of it hidden, fewer otherwise.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let keep = match chars.len() {
        0..=5 => 0,
        6..=11 => 2,
        _ => 4,
    };
    if keep == 0 {
        return "•".repeat(chars.len().clamp(3, 8));
    }
    let head: String = chars[..keep].iter().collect();
    let tail: String = chars[chars.len() - keep..].iter().collect();
    let separators: &[char] = &['-', ' ', '_', '.'];
    format!(
        "{}-…-{}",
        head.trim_end_matches(separators),
        tail.trim_start_matches(separators)
    )
}

/// What importing a list of items found on one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ImportLine {
    /// The line (from 1).
    pub line: usize,
    /// `ok`, `duplicate_in_file`, `duplicate_in_stock` or `invalid`.
    pub outcome: &'static str,
    /// Why it was not imported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The item, masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
}

/// Items read from an import, with their line numbers, and what was not imported line by line.
#[derive(Debug, Clone, Default)]
pub struct StockRead {
    /// The items, each with its line (from 1).
    pub items: Vec<(usize, StockItem)>,
    /// Lines that were not items, or repeat an earlier one.
    pub report: Vec<ImportLine>,
}

/// Reads items to import for a product of `kind`: one code a line (blank lines and lines
/// starting with `#` skipped), or for credentials `login,password[,notes]` (CSV, a header
/// `login,password,notes` allowed). Returns the items with their line numbers, and a report
/// line for every line that was not an item or repeats an earlier one in the same text.
pub fn read_stock(text: &str, kind: ProductKind) -> Result<StockRead, Invalid> {
    if !kind.uses_stock() {
        return Err(Invalid::new(
            "product",
            format!("a {} product has no stock of unique items", kind.as_str()),
        ));
    }
    let mut items = Vec::new();
    let mut report = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim().trim_start_matches('\u{feff}');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let item = match kind {
            ProductKind::Code => {
                if trimmed.chars().any(char::is_control) || trimmed.chars().count() > 500 {
                    Err("a code is one line of at most 500 characters".to_owned())
                } else {
                    Ok(StockItem::Code {
                        code: trimmed.to_owned(),
                    })
                }
            }
            _ => {
                if line == 1 && trimmed.to_lowercase().starts_with("login,") {
                    continue;
                }
                credential(trimmed)
            }
        };
        match item {
            Err(message) => report.push(ImportLine {
                line,
                outcome: "invalid",
                message: Some(message),
                item: None,
            }),
            Ok(item) if !seen.insert(item.identity()) => report.push(ImportLine {
                line,
                outcome: "duplicate_in_file",
                message: Some("the same item is on an earlier line".into()),
                item: Some(item.masked()),
            }),
            Ok(item) => items.push((line, item)),
        }
    }
    Ok(StockRead { items, report })
}

fn credential(line: &str) -> Result<StockItem, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    let record = reader
        .records()
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| "not a line of login,password[,notes]".to_owned())?;
    let field = |i: usize| record.get(i).map(str::trim).unwrap_or_default().to_owned();
    let (login, password, notes) = (field(0), field(1), field(2));
    if login.is_empty() || password.is_empty() || record.len() > 3 {
        return Err("must be login,password and optional notes".into());
    }
    Ok(StockItem::Credential {
        login,
        password,
        notes,
    })
}

/// Where a delivery stands. Stock moves with it: an item is `reserved` for a delivery that
/// claimed it, `delivered` once a channel confirmed, `revoked` after a refund (never sold
/// again), back to `available` only when a delivery released it before it went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Paid, waiting for its goods (stock short, or not claimed yet).
    Waiting,
    /// Its goods are claimed (reserved) and its message is being sent.
    Sending,
    /// A channel confirmed that its goods reached the buyer.
    Delivered,
    /// Cancelled before anything went out: its items went back to stock.
    Released,
    /// Refunded after it went out: its items are revoked.
    Revoked,
}

impl DeliveryState {
    /// Every state.
    pub const ALL: [DeliveryState; 5] = [
        DeliveryState::Waiting,
        DeliveryState::Sending,
        DeliveryState::Delivered,
        DeliveryState::Released,
        DeliveryState::Revoked,
    ];

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Waiting => "waiting",
            DeliveryState::Sending => "sending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Released => "released",
            DeliveryState::Revoked => "revoked",
        }
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        DeliveryState::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown delivery state {s:?}"))
    }
}

/// Every move a delivery can make, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryMove {
    /// Its goods are claimed from stock (all of them, or none): the one place items are taken.
    Claim,
    /// A channel confirmed.
    Confirm,
    /// Cancelled before anything went out: items back to stock.
    Release,
    /// Refunded: what went out is revoked, what did not goes back.
    Revoke,
}

impl DeliveryMove {
    /// Every move.
    pub const ALL: [DeliveryMove; 4] = [
        DeliveryMove::Claim,
        DeliveryMove::Confirm,
        DeliveryMove::Release,
        DeliveryMove::Revoke,
    ];

    /// The states the move may start from.
    pub fn from(self) -> &'static [DeliveryState] {
        use DeliveryState::*;
        match self {
            DeliveryMove::Claim => &[Waiting],
            DeliveryMove::Confirm => &[Sending],
            DeliveryMove::Release => &[Waiting, Sending],
            DeliveryMove::Revoke => &[Delivered],
        }
    }

    /// The state the move leads to.
    pub fn to(self) -> DeliveryState {
        match self {
            DeliveryMove::Claim => DeliveryState::Sending,
            DeliveryMove::Confirm => DeliveryState::Delivered,
            DeliveryMove::Release => DeliveryState::Released,
            DeliveryMove::Revoke => DeliveryState::Revoked,
        }
    }

    /// The source states as an SQL list, for `WHERE state IN (…)`.
    pub fn from_sql(self) -> String {
        self.from()
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_may_use_only_its_kinds_variables() {
        let t = MessageTemplate::parse(
            "Hi {{buyer.name}}, your key: {{ item.code }}",
            ProductKind::Code,
        )
        .unwrap();
        let filled = t.render(|v| match v {
            "buyer.name" => Some("Ayu".into()),
            "item.code" => Some("ABCD-1234".into()),
            _ => None,
        });
        assert_eq!(filled, "Hi Ayu, your key: ABCD-1234");
        let e = MessageTemplate::parse("Login {{item.login}}", ProductKind::Code).unwrap_err();
        assert_eq!(e.field, "message");
        assert!(
            e.message.contains("{{item.login}} is not a variable"),
            "{}",
            e.message
        );
        assert!(MessageTemplate::parse("{{buyer.name", ProductKind::Template).is_err());
        assert!(MessageTemplate::parse("  ", ProductKind::Template).is_err());
    }

    #[test]
    fn stock_is_read_line_by_line_with_duplicates_reported_and_shown_masked() {
        let StockRead { items, report } = read_stock(
            "AAAA-1111-BBBB\n\n# a comment\nAAAA-1111-BBBB\nCCCC-2222-DDDD\n",
            ProductKind::Code,
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].0, 5, "line numbers as in the file");
        assert_eq!(report.len(), 1);
        assert_eq!(
            (report[0].line, report[0].outcome),
            (4, "duplicate_in_file")
        );
        assert_eq!(report[0].item.as_deref(), Some("AAAA-…-BBBB"));
        let StockRead { items, report } = read_stock(
            "login,password,notes\nayu@mail.test,s3cret,\"2FA off, region ID\"\nbad-line\n",
            ProductKind::Credential,
        )
        .unwrap();
        assert_eq!(items.len(), 1);
        assert!(
            matches!(&items[0].1, StockItem::Credential { notes, .. } if notes == "2FA off, region ID")
        );
        assert_eq!((report[0].line, report[0].outcome), (3, "invalid"));
        assert!(read_stock("x", ProductKind::Shared).is_err());
        assert_eq!(mask("abc"), "•••");
        assert_eq!(mask("KEY-123"), "KE-…-23");
        assert_eq!(mask("V10-AAAA-1111"), "V10-…-1111");
    }

    #[test]
    fn an_item_is_claimed_once_and_goes_back_only_before_it_went_out() {
        use DeliveryState::*;
        let can = |from: DeliveryState, to: DeliveryState| {
            DeliveryMove::ALL
                .iter()
                .any(|m| m.from().contains(&from) && m.to() == to)
        };
        assert!(can(Waiting, Sending) && can(Sending, Delivered));
        assert!(
            !can(Delivered, Released),
            "what went out is revoked, never returned"
        );
        assert!(can(Delivered, Revoked));
        assert!(!can(Sending, Waiting) && !can(Delivered, Sending));
    }
}
