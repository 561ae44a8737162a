//! Cartwright's automation engine: storefront profiles, the browser pool, the flow runner,
//! order batches with their at-most-once rule, rewards checks, and the event stream.

pub mod profile;
