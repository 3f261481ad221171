//! # edgelimit
//!
//! Exact rate limiting with a pure algorithm core: fixed window, sliding
//! window, sliding log, token bucket, GCRA and a concurrency limiter, each a
//! pure function of `(config, state, now_ms, cost)`. The same core runs
//! natively and in WebAssembly; state lives in memory or in Redis.
//!
//! ## Quick start
//!
//! ```
//! use edgelimit::{Limiter, SlidingWindow};
//!
//! // 10 requests per sliding 10-second window, state in memory.
//! let limiter = Limiter::new(SlidingWindow::new(10, "10 s")?);
//!
//! let decision = limiter.limit("203.0.113.7")?;
//! if decision.allowed {
//!     println!("ok, {} left", decision.remaining);
//! } else {
//!     println!("slow down: retry in {} ms", decision.retry_after_ms);
//! }
//!
//! // A call may cost more than one unit; cost 0 only reads.
//! let decision = limiter.limit_with_cost("203.0.113.7", 3)?;
//! assert_eq!(decision.remaining, 6);
//! assert_eq!(limiter.remaining("203.0.113.7")?.remaining, 6);
//!
//! // A cost that can never fit is an error, not an endless wait.
//! assert!(limiter.limit_with_cost("203.0.113.7", 11).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Design
//!
//! - [`algorithm`]: the pure core. No clock, no I/O. A denial is a
//!   [`Decision`] with `allowed == false`; errors ([`Error`]) are for costs
//!   that can never be admitted and for backend failures.
//! - [`store`]: where state lives. [`MemoryStore`] is sharded, expires idle
//!   keys and bounds the number of keys.
//! - [`Limiter`] and [`ConcurrencyLimiter`] combine an algorithm, a store, a
//!   [`Clock`] and a key prefix.
//! - Configurations are validated when built, so an invalid quota cannot
//!   exist; durations are typed ([`std::time::Duration`]) or strings like
//!   `"10 s"`, `"1m"`, `"250ms"`, `"1 h"`, `"1d"`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod access;
pub mod algorithm;
pub mod clock;
mod decision;
mod duration;
mod error;
#[cfg(all(feature = "tower", not(target_arch = "wasm32")))]
pub mod http;
mod limiter;
mod random;
pub mod scripts;
pub mod store;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use access::{AccessList, Listed};
pub use algorithm::{
    Algorithm, AnyAlgorithm, Concurrency, FixedWindow, Gcra, SlidingLog, SlidingWindow, Tier,
    TokenBucket,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use decision::{Decision, Reason};
pub use duration::{parse_millis, IntoMillis};
pub use error::{ConfigError, DurationError, Error, StoreError, DEFAULT_MAX_ID_BYTES};
pub use limiter::{
    Acquire, ConcurrencyLimiter, FailurePolicy, Limiter, Metrics, MultiLimiter, Permit,
    WaitOutcome, DEFAULT_PREFIX, FAIL_CLOSED_RETRY_MS,
};
pub use store::{MemoryStore, Store};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
