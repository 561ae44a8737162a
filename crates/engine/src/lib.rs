//! Cartwright's automation engine: storefront profiles, the browser pool, the flow runner,
//! order runs with their at-most-once rule, sign-in tests, and the event stream.

mod batches;
pub mod browser;
mod engine;
pub mod events;
pub mod flow;
pub mod net;
pub mod order;
pub mod policy;
pub mod profile;
pub mod ratelimit;
mod rewards;
mod workers;

pub use batches::BatchError;
pub use engine::{Engine, EngineConfig};
pub use events::{EventBus, EventFilter};
pub use order::SESSION_CHECK_JOB;
