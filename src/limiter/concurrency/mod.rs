//! `ConcurrencyLimiter`: at most N holders per key, with permits released on
//! drop and leases that expire if their holder dies.

mod detached;
mod limiter;
mod permit;
mod waiters;

pub use limiter::{Acquire, ConcurrencyLimiter};
pub use permit::Permit;
