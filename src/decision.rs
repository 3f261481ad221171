//! The answer to one limiter call.

/// What the limiter decided for one call. A denial is a `Decision` with
/// `allowed == false`, never an error.
///
/// Times are absolute milliseconds on the limiter's clock (Unix epoch
/// milliseconds with the default clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    /// Whether the call was admitted (and its cost consumed).
    pub allowed: bool,
    /// The most the limiter admits at once: the window limit, bucket
    /// capacity, burst, or number of leases.
    pub limit: u64,
    /// Units that could still be admitted right now, after this call.
    pub remaining: u64,
    /// When the limiter is back to its full `limit` if nothing more is
    /// admitted (equal to now when it already is).
    pub reset_ms: u64,
    /// For a denial, the least time to wait before the same cost can be
    /// admitted (at least 1); 0 when allowed. Exact for every algorithm but
    /// the concurrency limiter, where a holder may release sooner.
    pub retry_after_ms: u64,
    /// Why the decision was not made by the algorithm, if it was not.
    pub reason: Option<Reason>,
}

/// Why a decision was not made by the algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The store failed (unreachable, timed out…) and the limiter's
    /// [`FailurePolicy`](crate::FailurePolicy) decided instead: `allowed`
    /// says whether it failed open or closed.
    StoreFailure,
    /// The id is on the limiter's deny list ([`AccessList`](crate::AccessList)):
    /// denied with `remaining` 0, and `reset_ms` and `retry_after_ms` at
    /// `u64::MAX` (never, as far as the limiter knows). No store was asked.
    DenyList,
    /// The id is on the limiter's allow list: admitted with `remaining` at
    /// the limit, nothing counted. No store was asked.
    AllowList,
    /// The id was denied earlier and is blocked for a while (see
    /// [`AllOf::with_block`](crate::algorithm::AllOf::with_block)): denied
    /// with `remaining` 0 and `retry_after_ms` no sooner than the block's
    /// end, whatever the limits would say. A read (cost 0) is still
    /// admitted, with `remaining` 0.
    Blocked,
}

impl Decision {
    /// The absolute time at which a denied call could be admitted, given the
    /// time `now_ms` at which this decision was made.
    pub fn retry_at_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.retry_after_ms)
    }

    /// Units in use right now: `limit - remaining`.
    pub fn used(&self) -> u64 {
        self.limit.saturating_sub(self.remaining)
    }
}
