//! How the REST store talks to its backend.

use std::time::Duration;

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

/// Timeouts and retries of the REST store.
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
}

impl Default for RestOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            retries: 2,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            time: TimeSource::Redis,
        }
    }
}
