//! Where limiter state lives.

mod async_contract;
mod contract;
mod memory;
mod multi;
pub(crate) mod redis_rest;
#[doc(hidden)]
pub use redis_rest::fuzzing;

pub use async_contract::AsyncStore;
pub use contract::{
    key_prefix, Adjust, Answer, Consume, ConsumeQuota, Key, LeaseStep, Peek, QuotaDecision, Remote,
    Store, Transition, SEMAPHORE,
};
pub use memory::{MemoryStore, DEFAULT_MAX_BYTES, DEFAULT_MAX_KEYS};
pub use multi::{key_prefixes, ConsumeAll, KeysTransition};
#[cfg(not(target_arch = "wasm32"))]
pub use redis_rest::{AsyncRedisRestStore, RedisRestStore};
pub use redis_rest::{Batching, Grouping, RestOptions, TimeSource, DEFAULT_DENY_CACHE};
