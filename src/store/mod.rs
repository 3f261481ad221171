//! Where limiter state lives.

mod contract;
mod memory;
pub(crate) mod redis_rest;

pub use contract::{Consume, Key, LeaseStep, Peek, Remote, Store, Transition};
pub use memory::MemoryStore;
#[cfg(not(target_arch = "wasm32"))]
pub use redis_rest::RedisRestStore;
pub use redis_rest::{RestOptions, TimeSource};
