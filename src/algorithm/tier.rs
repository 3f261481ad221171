//! A call's own limit: a user's plan applied to a limiter's state.

use crate::ConfigError;

/// Numbers that replace a limiter's own for one call, on the same state as
/// every other call of that algorithm and time base (see
/// [`Limiter::limit_under`](crate::Limiter::limit_under)): a user moved
/// between plans keeps what they already used.
///
/// What a change means, so that a move never gives a burst for free:
/// - **fixed and sliding windows, the sliding log** count usage: the usage
///   already made counts against the new limit. Lowered below it, nothing
///   more is admitted until enough of it leaves the window; raised, the
///   rest of the new limit is there at once, as for anyone on that plan.
/// - **GCRA** (the limit is its burst; its rate stays, since the state
///   counts in units of `1 / rate`): its debt counts against the new burst.
/// - **a token bucket** (the limit is its capacity, and a tier may refill
///   faster) keeps tokens: a smaller bucket holds no more than its capacity
///   (a draw from it leaves at most that; the rest is gone), a larger one
///   mints none: it fills at its refill rate, and a new key starts with the
///   limiter's own initial tokens whatever its tier. A bucket is remembered
///   until it would be full at the limiter's own capacity and refill (which
///   is why a tier may not refill slower), so forgetting it never gives a
///   tier more than keeping it would.
///
/// No sequence of changes admits more in any span than the most generous
/// of the plans used would have on its own (property tests per algorithm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tier {
    limit: Option<u64>,
    refill: Option<u64>,
}

impl Tier {
    /// A call limited to `limit`: a window's or a log's limit, a token
    /// bucket's capacity, GCRA's burst.
    pub fn limit(limit: u64) -> Self {
        Self {
            limit: Some(limit),
            refill: None,
        }
    }

    /// A token bucket refilling `refill` tokens per interval, its capacity
    /// the limiter's own.
    pub fn refill(refill: u64) -> Self {
        Self {
            limit: None,
            refill: Some(refill),
        }
    }

    /// Also (token buckets only) `refill` tokens per interval.
    pub fn with_refill(mut self, refill: u64) -> Self {
        self.refill = Some(refill);
        self
    }

    /// A tier setting what it is given (the bindings' calls).
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn of(limit: Option<u64>, refill: Option<u64>) -> Self {
        Self { limit, refill }
    }

    /// The limit this tier sets, if it sets one.
    pub fn limit_value(&self) -> Option<u64> {
        self.limit
    }

    /// The refill this tier sets, if it sets one.
    pub fn refill_value(&self) -> Option<u64> {
        self.refill
    }

    /// The limit of an algorithm that takes no refill: `own` unless the
    /// tier sets one; an error naming `algorithm` if it sets a refill.
    pub(crate) fn counted_limit(
        &self,
        own: u64,
        algorithm: &'static str,
    ) -> Result<u64, ConfigError> {
        match self.refill {
            Some(_) => Err(ConfigError::NotFor {
                what: "refill",
                algorithm,
            }),
            None => Ok(self.limit.unwrap_or(own)),
        }
    }
}
