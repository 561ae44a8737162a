//! Cartwright's domain: identifiers, values that can only exist when valid, and the rules that
//! do not need a database or a network. Every other crate builds on these types, so a value that
//! reached the store or the engine has already been checked once, here.

pub mod account;
pub mod account_csv;
pub mod address;
pub mod batch;
pub mod catalog;
pub mod channel;
pub mod cookies;
pub mod digital;
pub mod error;
pub mod faq;
pub mod ids;
pub mod market;
pub mod money;
pub mod operator;
pub mod order;
pub mod patch;
pub mod placing;
pub mod rewards;
pub mod selection;
pub mod storefront;
pub mod values;

pub use error::{Invalid, Invalids};
