//! The engine against the demo shop, in real Chromium.
#![allow(clippy::unwrap_used)]

mod control;
mod flow;
mod kit;
mod moves;
mod orders;
mod placing;
mod pool;
mod recovery;
mod rewards;
mod threads;
