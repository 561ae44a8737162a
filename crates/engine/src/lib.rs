//! Cartwright's automation engine: storefront profiles, the browser pool, the flow runner,
//! order runs with their at-most-once rule, sign-in tests, and the event stream.

pub mod browser;
mod engine;
pub mod events;
pub mod flow;
pub mod order;
pub mod profile;
pub mod ratelimit;
mod rewards;

pub use engine::{Engine, EngineConfig, SESSION_CHECK_JOB};
pub use events::{EventBus, EventFilter};
