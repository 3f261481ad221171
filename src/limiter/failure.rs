//! What a limiter answers when its store fails.

use crate::decision::Reason;
use crate::Decision;

/// How long a fail-closed denial asks callers to wait before trying again.
pub const FAIL_CLOSED_RETRY_MS: u64 = 1_000;

/// What a [`Limiter`](crate::Limiter) answers when its store fails
/// (unreachable, timed out, unavailable…): after the store's own retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Return the error: the caller decides (the default).
    #[default]
    Error,
    /// Allow the call: availability over strictness. The decision is marked
    /// `reason: Some(Reason::StoreFailure)`.
    Open,
    /// Deny the call, asking to retry in [`FAIL_CLOSED_RETRY_MS`]:
    /// strictness over availability. Marked likewise.
    Closed,
}

impl FailurePolicy {
    /// The decision standing in for the store's. Nothing is known of the
    /// key's usage, so `remaining` is 0 either way.
    pub(crate) fn decide(self, limit: u64, now_ms: u64) -> Decision {
        let allowed = self != Self::Closed;
        Decision {
            allowed,
            limit,
            remaining: 0,
            reset_ms: now_ms,
            retry_after_ms: if allowed { 0 } else { FAIL_CLOSED_RETRY_MS },
            reason: Some(Reason::StoreFailure),
        }
    }
}
