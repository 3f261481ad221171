//! What every rate-limiting algorithm provides.

use super::{Adjustment, Kind, QuotaGrant, QuotaRefund, StateKind, Tier};
use crate::{ConfigError, Decision, Error};

/// A decision and how long the state that produced it must be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The answer for this call.
    pub decision: Decision,
    /// Milliseconds from now after which the state no longer affects any
    /// decision and may be dropped (0: drop it now).
    pub ttl_ms: u64,
}

/// A rate-limiting algorithm: a pure function of its configuration, the
/// previous state, the current time and the cost.
///
/// `decide` never reads a clock and performs no I/O: time is an argument, so
/// the same inputs always give the same outputs, in Rust and in the Lua twin
/// of each algorithm. The state is updated in place (`None` when the key has
/// no state yet or its state was dropped) so the hot path does not allocate.
///
/// Contract shared by all implementations:
/// - `cost == 0` is a read: always allowed, consumes nothing;
/// - `cost > max_cost()` is [`Error::CostExceedsLimit`] and leaves the state
///   untouched, since no amount of waiting would admit it;
/// - a clock that goes backwards never admits more than the latest time seen
///   would have.
///
/// Every algorithm has a Lua twin, picked by its [`kind`](Self::kind) and
/// given its [`config_args`](Self::config_args), so any store can run it.
pub trait Algorithm {
    /// The per-key state.
    type State: StateKind + Clone + std::fmt::Debug + PartialEq + Send + 'static;

    /// The limit reported in decisions.
    fn limit(&self) -> u64;

    /// Which algorithm this is.
    fn kind(&self) -> Kind;

    /// The configuration as numbers, in the order the Lua twin takes them
    /// (from its `ARGV[4]` on).
    fn config_args(&self) -> Vec<u64>;

    /// The part of a state's key naming the algorithm and its time base,
    /// e.g. `fw:60000`: limiters share a key's state only when they read
    /// it alike (the same algorithm over the same window, interval or
    /// emission interval), whatever their limits.
    fn key_space(&self) -> String;

    /// This algorithm with `tier`'s numbers in place of its own: the same
    /// kind and time base, so it decides on the same states (see [`Tier`]
    /// for what a change means). A tier that makes no valid configuration
    /// is an error, as the constructors' are.
    fn tiered(&self, tier: &Tier) -> Result<Self, ConfigError>
    where
        Self: Sized;

    /// Decides one call of `cost` units at `now_ms`.
    fn decide(
        &self,
        state: &mut Option<Self::State>,
        now_ms: u64,
        cost: u64,
    ) -> Result<Outcome, Error>;

    /// Applies `adjustment` to the state at `now_ms` (a refund gives units
    /// back, a penalty charges more: see [`Adjustment`]), then answers what
    /// is left as a read (`cost` 0) would. Never an error: a refund beyond
    /// what was used gives back what was used, a penalty beyond the limit
    /// charges up to it.
    fn adjust(
        &self,
        state: &mut Option<Self::State>,
        now_ms: u64,
        adjustment: Adjustment,
    ) -> Outcome;

    /// Whether [`decide_leased`](Self::decide_leased) takes quota leases:
    /// true for the counted windows (fixed and sliding).
    fn leases_quota(&self) -> bool {
        false
    }

    /// Decides a call of `cost` like [`decide`](Self::decide), after giving
    /// `refund` back to its window (if that window still counts), and when
    /// the call is admitted takes up to `want` units in all, as many as the
    /// window has left: the grant holds those beyond `cost`. The decision's
    /// `remaining` is what the window has left after the grant.
    ///
    /// Algorithms that do not lease decide as usual and grant nothing (a
    /// refund then returns nothing: units are only ever under-spent).
    fn decide_leased(
        &self,
        state: &mut Option<Self::State>,
        now_ms: u64,
        cost: u64,
        want: u64,
        refund: Option<QuotaRefund>,
    ) -> Result<(Outcome, Option<QuotaGrant>), Error> {
        let _ = (want, refund);
        Ok((self.decide(state, now_ms, cost)?, None))
    }
}

pub use super::twin::MAX_TIME_MS;

/// Clamps a caller-supplied time so arithmetic on it cannot overflow.
#[inline]
pub(crate) fn clamp_time(now_ms: u64) -> u64 {
    now_ms.min(MAX_TIME_MS)
}

/// Rejects a cost that can never be admitted.
pub(crate) fn check_cost(cost: u64, limit: u64) -> Result<(), Error> {
    if cost > limit {
        Err(Error::CostExceedsLimit { cost, limit })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{FixedWindow, Gcra, SlidingLog, SlidingWindow, TokenBucket};

    #[test]
    fn only_the_counted_windows_lease_quota() {
        assert!(FixedWindow::new(5, "1 s").unwrap().leases_quota());
        assert!(SlidingWindow::new(5, "1 s").unwrap().leases_quota());
        assert!(!SlidingLog::new(5, "1 s").unwrap().leases_quota());
        assert!(!TokenBucket::new(5, 1, "1 s").unwrap().leases_quota());
        assert!(!Gcra::new(5, "1 s").unwrap().leases_quota());
    }

    #[test]
    fn others_decide_a_leased_call_as_usual_and_grant_nothing() {
        let alg = Gcra::new(5, "1 s").unwrap();
        let (mut leased, mut plain) = (None, None);
        let refund = QuotaRefund {
            units: 2,
            window_start_ms: 0,
        };
        let (outcome, grant) = alg
            .decide_leased(&mut leased, 1_000, 1, 5, Some(refund))
            .unwrap();
        assert_eq!(grant, None);
        assert_eq!(outcome, alg.decide(&mut plain, 1_000, 1).unwrap());
        assert_eq!(leased, plain);
    }
}
