//! The engine against the demo shop, in real Chromium.
#![allow(clippy::unwrap_used)]

mod control;
mod flow;
mod kit;
mod orders;
mod pool;
mod recovery;
mod rewards;
