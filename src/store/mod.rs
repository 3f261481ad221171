//! Where limiter state lives.

mod contract;
mod memory;

pub use contract::{Consume, Key, LeaseStep, Store, Transition};
pub use memory::MemoryStore;
