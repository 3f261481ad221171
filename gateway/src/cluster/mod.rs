//! Redis Cluster: hash slots, the slot map, and routing with failover.

mod map;
mod route;
mod slot;

pub use route::{Cluster, NodeHealth};
pub use slot::{slot, SLOTS};
