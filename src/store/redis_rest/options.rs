//! How the REST store talks to its backend.

use std::time::Duration;

pub use super::batch::Grouping;

/// Whose clock a decision uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeSource {
    /// Redis's `TIME`, read inside the script (the default): one clock for
    /// every client, whatever their own clocks say. In a Cloudflare Worker
    /// `Date.now()` only advances between I/O, so this is the exact choice.
    #[default]
    Redis,
    /// The limiter's clock, passed as an argument (tests inject time this
    /// way; also for backends without `TIME`).
    Caller,
}

/// Timeouts, retries, time source and the local deny cache of the REST
/// stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestOptions {
    /// Longest wait for one HTTP request.
    pub timeout: Duration,
    /// Further attempts after a transient failure, when retrying is safe:
    /// always for reads and lease operations (idempotent), and for
    /// consuming decisions only when the request surely did not arrive.
    pub retries: u32,
    /// First retry delay; doubles per attempt, with full jitter.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Whose clock decides.
    pub time: TimeSource,
    /// Ids whose denial is remembered locally (0: none). After Redis denies
    /// a call, the state it returned answers further calls on that id
    /// without a request for as long as the core proves they would be
    /// denied; a call that could be admitted always goes to Redis. Other
    /// clients can only use more of the limit, so a local denial is always
    /// one Redis would give (a `reset` made elsewhere is seen once the
    /// remembered denial runs out).
    pub deny_cache: usize,
}

/// Ids [`RestOptions::default`] remembers denials for.
pub const DEFAULT_DENY_CACHE: usize = 10_000;

impl Default for RestOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            retries: 2,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            time: TimeSource::Redis,
            deny_cache: DEFAULT_DENY_CACHE,
        }
    }
}

/// How the async store lets concurrent calls share HTTP requests.
///
/// A call that finds fewer than `max_in_flight` requests in flight goes out
/// at once (after `window`), together with every call already waiting;
/// calls arriving while the limit of requests is in flight wait and go out
/// together in one `/pipeline` request when one comes back. Each call keeps
/// its own answer, error, NOSCRIPT recovery and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Most requests in flight at once (at least 1). 1 batches the most; a
    /// few let a slow request not hold up the rest.
    pub max_in_flight: usize,
    /// Most calls in one request (at least 1; 1 turns batching off).
    pub max_calls: usize,
    /// How long the first call of a batch waits for company (default 0:
    /// only calls already waiting join it, so no call is delayed while the
    /// store is idle).
    pub window: Duration,
    /// How a batch's script calls travel: one call of the batch script (the
    /// default: one command for Redis and the gateway, and for Upstash's
    /// per-command billing), or one EVALSHA each in a `/pipeline`.
    pub grouping: Grouping,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            max_in_flight: 4,
            max_calls: 128,
            window: Duration::ZERO,
            grouping: Grouping::Script,
        }
    }
}

impl Batching {
    /// One request per call, as the blocking store sends them.
    pub const OFF: Self = Self {
        max_in_flight: usize::MAX,
        max_calls: 1,
        window: Duration::ZERO,
        grouping: Grouping::Pipeline,
    };
}
