//! The pure algorithm core: no clock, no I/O, no allocation on the hot path.

mod adjust;
mod all_of;
mod any;
mod concurrency;
mod contract;
mod divisor;
mod fixed_window;
mod gcra;
mod kind;
pub mod limits;
mod quota;
mod sliding_log;
mod sliding_window;
mod state;
mod tier;
mod token_bucket;
mod twin;

pub use adjust::Adjustment;
pub use all_of::{combine, AllOf, AllOutcome, BlockState, MultiDecision, MAX_LIMITS};
pub use any::AnyAlgorithm;
pub use concurrency::{Concurrency, ConcurrencyState, Lease, LeaseOp, LeaseOutcome, Ticket};
pub(crate) use contract::check_cost;
pub use contract::{Algorithm, Outcome, MAX_TIME_MS};
pub use fixed_window::{FixedWindow, FixedWindowState};
pub use gcra::{Gcra, GcraState};
pub use kind::Kind;
pub use quota::{QuotaGrant, QuotaRefund};
pub use sliding_log::{LogEntry, SlidingLog, SlidingLogState};
pub use sliding_window::{SlidingWindow, SlidingWindowState};
pub use state::{AnyState, StateKind};
pub use tier::Tier;
pub use token_bucket::{TokenBucket, TokenBucketState};
pub(crate) use twin::MAX_LOG_ENTRIES_IN_REPLY;
