//! Shipping addresses used at checkout. At most one is the default.

use crate::ids::AddressId;
use crate::patch::Patch;
use crate::values::{Phone, Postcode, Text};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The address type storefront checkouts ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    /// Home.
    #[default]
    Home,
    /// Work.
    Work,
    /// Anything else.
    Other,
}

impl AddressKind {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressKind::Home => "home",
            AddressKind::Work => "work",
            AddressKind::Other => "other",
        }
    }
}

impl FromStr for AddressKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "home" => Ok(AddressKind::Home),
            "work" => Ok(AddressKind::Work),
            "other" => Ok(AddressKind::Other),
            _ => Err(format!("unknown address kind {s:?}")),
        }
    }
}

/// An address as submitted.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAddress {
    /// Operator's name for it (`Mumbai office`).
    #[serde(default)]
    pub label: Option<Text>,
    /// Recipient.
    pub full_name: Text,
    /// Flat, house or building.
    pub line1: Text,
    /// Street or area.
    #[serde(default)]
    pub street: Option<Text>,
    /// Nearby landmark.
    #[serde(default)]
    pub landmark: Option<Text>,
    /// Postal code.
    pub postcode: Postcode,
    /// City.
    pub city: Text,
    /// State.
    pub state: Text,
    /// Recipient's phone.
    pub phone: Phone,
    /// Home, work or other.
    #[serde(default)]
    pub kind: AddressKind,
    /// Make it the default (the previous default stops being one).
    #[serde(default)]
    pub is_default: bool,
}

/// A partial update of an address. Absent fields are kept; `null` clears an optional one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AddressPatch {
    /// New label, or `null`.
    #[schema(value_type = Option<String>)]
    pub label: Patch<Text>,
    /// New recipient.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub full_name: Option<Text>,
    /// New flat/house line.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub line1: Option<Text>,
    /// New street, or `null`.
    #[schema(value_type = Option<String>)]
    pub street: Patch<Text>,
    /// New landmark, or `null`.
    #[schema(value_type = Option<String>)]
    pub landmark: Patch<Text>,
    /// New postal code.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub postcode: Option<Postcode>,
    /// New city.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub city: Option<Text>,
    /// New state.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub state: Option<Text>,
    /// New phone.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub phone: Option<Phone>,
    /// New kind.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub kind: Option<AddressKind>,
    /// `true` makes it the default; `false` leaves no default if it was one.
    #[serde(default, deserialize_with = "crate::patch::not_null")]
    pub is_default: Option<bool>,
}

/// An address as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Address {
    /// Identifier.
    pub id: AddressId,
    /// Operator's name for it.
    pub label: Option<Text>,
    /// Recipient.
    pub full_name: Text,
    /// Flat, house or building.
    pub line1: Text,
    /// Street or area.
    pub street: Option<Text>,
    /// Nearby landmark.
    pub landmark: Option<Text>,
    /// Postal code.
    pub postcode: Postcode,
    /// City.
    pub city: Text,
    /// State.
    pub state: Text,
    /// Recipient's phone.
    pub phone: Phone,
    /// Home, work or other.
    pub kind: AddressKind,
    /// Whether batches use it when none is named.
    pub is_default: bool,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}
