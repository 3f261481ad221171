//! Redis Cluster: hash slots, the slot map, and routing with failover.

#[cfg(not(edgelimit_gateway_client = "redis-rs-cluster"))]
mod map;
#[cfg(edgelimit_gateway_client = "redis-rs-cluster")]
mod redis_rs;
#[cfg(not(edgelimit_gateway_client = "redis-rs-cluster"))]
mod route;
#[cfg_attr(edgelimit_gateway_client = "redis-rs-cluster", allow(dead_code))]
mod slot;

// redis-rs' cluster client, for comparison only (see Cargo.toml).
#[cfg(edgelimit_gateway_client = "redis-rs-cluster")]
pub use redis_rs::{Cluster, NodeHealth};
#[cfg(not(edgelimit_gateway_client = "redis-rs-cluster"))]
pub use route::{Cluster, NodeHealth};
pub use slot::{slot, SLOTS};
