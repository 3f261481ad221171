//! Limiters: an algorithm, a store and a clock put together.

mod concurrency;
mod failure;
mod metrics;
mod multi;
pub(crate) mod quota_book;
pub(crate) mod rate;
pub(crate) mod wait;

pub use concurrency::{Acquire, ConcurrencyLimiter, Permit};
pub use failure::{FailurePolicy, FAIL_CLOSED_RETRY_MS};
pub use metrics::Metrics;
pub use multi::MultiLimiter;
pub use rate::{Limiter, DEFAULT_PREFIX};
pub use wait::WaitOutcome;
