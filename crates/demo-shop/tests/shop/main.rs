//! The demo shop, end to end: over HTTP for its pages, API, faults and inspection; over the
//! Open Platform API and pushes for the seller centre; and in real headless Chromium for a whole
//! purchase clicked through by hand-written steps.

#![allow(clippy::unwrap_used)] // test helpers may panic: that is how a test fails

mod browser;
mod kit;
mod marketplace;
mod storefront;
