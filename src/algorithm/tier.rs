//! A call's own limit: a user's plan applied to a limiter's state.

/// A limit that replaces a limiter's own for one call, on the same state as
/// every other call of that algorithm and time base (see
/// [`Limiter::limit_under`](crate::Limiter::limit_under)): a user moved
/// between plans keeps what they already used.
///
/// Every algorithm that takes one counts usage, and a change of limit
/// counts the usage already made against the new limit:
/// - **fixed and sliding windows, the sliding log**: lowered below the
///   usage, nothing more is admitted until enough of it leaves the window;
///   raised, the rest of the new limit is available at once, as it would
///   be to anyone on that plan.
/// - **GCRA** (the limit is its burst; the rate stays, since the state
///   counts in units of `1 / rate`): the debt (how far its theoretical
///   arrival time is ahead) counts against the new burst.
///
/// So no sequence of changes admits more in any span than the most
/// generous of the limits used would have on its own (a property test per
/// algorithm). A token bucket takes none ([`ConfigError::NotFor`]): its
/// state is its tokens, kept until the bucket is full, so a bucket kept for
/// a small tier would be forgotten, and start full, long before a larger
/// tier's would have filled.
///
/// [`ConfigError::NotFor`]: crate::ConfigError::NotFor
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    limit: u64,
}

impl Tier {
    /// A call limited to `limit`: a window's or a log's limit, GCRA's burst.
    pub fn limit(limit: u64) -> Self {
        Self { limit }
    }

    /// The limit this tier sets.
    pub fn limit_value(&self) -> u64 {
        self.limit
    }
}
