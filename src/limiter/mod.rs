//! Limiters: an algorithm, a store and a clock put together.

mod concurrency;
pub(crate) mod random;
mod rate;
mod wait;

pub use concurrency::{Acquire, ConcurrencyLimiter, Permit};
pub use rate::{Limiter, DEFAULT_PREFIX};
pub use wait::WaitOutcome;
