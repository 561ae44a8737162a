//! The API, end to end: a real server on a real port over a fresh database (SQLite by
//! default, PostgreSQL when `CARTWRIGHT_TEST_DATABASE_URL` is set), driven over HTTP.

#![allow(clippy::unwrap_used)] // test helpers may panic: that is how a test fails

mod accounts;
mod assistant;
mod auth;
mod batches;
mod catalog;
mod channels;
mod cli;
mod contract;
mod cookies;
mod crash;
mod demo;
mod goods;
mod helpers;
mod import_export;
mod operators;
mod rewards;
mod scale;
mod selection;
mod streams;
mod system;
