//! Token bucket: `refill` tokens are added every `interval`, up to `capacity`.

use super::contract::{check_cost, clamp_time, Algorithm, Outcome};
use super::divisor::Divisor;
use super::limits;
use super::{Adjustment, Tier};
use crate::{ConfigError, Decision, Error, IntoMillis};

/// A bucket of `capacity` tokens; a call takes `cost` tokens or is denied.
/// Refills are discrete: every full `interval` after the bucket was last
/// refilled, or last full, adds `refill` tokens (never above `capacity`).
/// So a token taken from a full bucket at `t` is back at `t + interval`,
/// not at some earlier phase boundary. A key without state starts with
/// `initial` tokens (default: `capacity`), its interval counted from its
/// first call.
///
/// With `initial == capacity` a full bucket is exactly a new key, so its
/// state is dropped (TTL 0). With `initial < capacity` it is not: waiting
/// must never make things worse, so a bucket is remembered, whatever it was
/// asked (a denial included: its retry time must hold), until it has been
/// full for as long as a new key takes to fill from `initial` (its warm-up).
/// Only a key idle longer than that starts over at `initial`, as a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    capacity: u64,
    refill: Divisor,
    interval: Divisor,
    initial: u64,
    /// Under a [`Tier`]: the limiter's own bucket, which a state must be
    /// kept for (see [`Base::keep_until`]).
    base: Option<Base>,
}

/// The numbers of the limiter's own bucket, kept by a tier's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Base {
    capacity: u64,
    refill: Divisor,
    initial: u64,
}

impl Base {
    /// Until when `state` must be kept: until it would be full in the
    /// limiter's own bucket, plus that bucket's warm-up. Every tier refills
    /// at least as fast and a new key starts at no more than this bucket's
    /// initial tokens, so by then a new key would give no tier more than
    /// the state would.
    fn keep_until(&self, state: TokenBucketState, interval: &Divisor, now_ms: u64) -> u64 {
        let full_at = match state.tokens >= self.capacity {
            true => now_ms,
            false => {
                let steps = self.refill.div_ceil(self.capacity - state.tokens);
                (state.refilled_at_ms + steps * interval.get()).max(now_ms)
            }
        };
        full_at + self.refill.div_ceil(self.capacity - self.initial) * interval.get()
    }
}

/// Per-key state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucketState {
    /// Tokens in the bucket as of `refilled_at_ms`.
    pub tokens: u64,
    /// Time of the last refill step (the phase of future refills).
    pub refilled_at_ms: u64,
}

impl TokenBucket {
    /// A full bucket of `capacity`, adding `refill` tokens every `interval`,
    /// e.g. `TokenBucket::new(10, 1, "1 s")`.
    pub fn new(capacity: u64, refill: u64, interval: impl IntoMillis) -> Result<Self, ConfigError> {
        let capacity = limits::nonzero("capacity", capacity)?;
        let refill = limits::nonzero("refill", refill)?;
        limits::not_above("refill", refill, "capacity", capacity)?;
        let interval_ms = limits::span("interval", interval.into_millis()?)?;
        // Refilling from empty takes ceil(capacity / refill) intervals; that
        // time must stay exact in Lua.
        limits::exact_product("capacity × interval", capacity, interval_ms)?;
        Ok(Self {
            capacity,
            refill: Divisor::new(refill),
            interval: Divisor::new(interval_ms),
            initial: capacity,
            base: None,
        })
    }

    /// Starts keys without state at `initial` tokens instead of full.
    pub fn with_initial(mut self, initial: u64) -> Result<Self, ConfigError> {
        limits::not_above("initial tokens", initial, "capacity", self.capacity)?;
        self.initial = initial;
        Ok(self)
    }

    /// Bucket size.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Tokens added per interval (for the Lua twin's arguments).
    pub(crate) fn refill(&self) -> u64 {
        self.refill.get()
    }

    /// The refill interval in milliseconds.
    pub(crate) fn interval_ms(&self) -> u64 {
        self.interval.get()
    }

    /// Tokens a key without state starts with.
    pub(crate) fn initial(&self) -> u64 {
        self.initial
    }

    /// Refill intervals needed to gain `tokens` more.
    fn intervals_for(&self, tokens: u64) -> u64 {
        self.refill.div_ceil(tokens)
    }

    /// When `s` is full, if nothing is drawn from it.
    fn full_at(&self, s: TokenBucketState) -> u64 {
        s.refilled_at_ms + self.intervals_for(self.capacity - s.tokens) * self.interval.get()
    }

    /// How long a full bucket is remembered: what a new key takes to fill
    /// from `initial` (0 when it starts full).
    fn warm_up_ms(&self) -> u64 {
        self.intervals_for(self.capacity - self.initial) * self.interval.get()
    }

    /// The bucket as of `now_ms`, with every refill due by then applied.
    fn refilled(&self, state: Option<TokenBucketState>, now_ms: u64) -> TokenBucketState {
        let Some(mut s) = state else {
            return TokenBucketState {
                tokens: self.initial,
                refilled_at_ms: now_ms,
            };
        };
        // A clock behind `refilled_at_ms` adds nothing.
        let steps = self.interval.div(now_ms.saturating_sub(s.refilled_at_ms));
        if steps >= self.intervals_for(self.capacity - s.tokens) {
            // A full bucket has no refill pending: its interval clock starts
            // again when it is next drawn from, exactly as for a new key.
            s.tokens = self.capacity;
            s.refilled_at_ms = s.refilled_at_ms.max(now_ms);
        } else {
            s.tokens += steps * self.refill.get();
            s.refilled_at_ms += steps * self.interval.get();
        }
        s
    }
}

impl Algorithm for TokenBucket {
    type State = TokenBucketState;

    fn limit(&self) -> u64 {
        self.capacity
    }

    fn kind(&self) -> super::Kind {
        super::Kind::TokenBucket
    }

    fn key_space(&self) -> String {
        format!("{}:{}", self.kind().code(), self.interval_ms())
    }

    fn config_args(&self) -> Vec<u64> {
        let mut args = vec![
            self.capacity(),
            self.refill(),
            self.interval_ms(),
            self.initial(),
        ];
        if let Some(base) = self.base {
            args.extend([base.capacity, base.refill.get(), base.initial]);
        }
        args
    }

    fn tiered(&self, tier: &Tier) -> Result<Self, ConfigError> {
        let base = self.base.unwrap_or(Base {
            capacity: self.capacity,
            refill: self.refill,
            initial: self.initial,
        });
        let capacity = tier.limit_value().unwrap_or(base.capacity);
        let refill = tier.refill_value().unwrap_or(base.refill.get());
        // More than the capacity per interval fills it as well as the
        // capacity does.
        let interval = std::time::Duration::from_millis(self.interval_ms());
        let mut bucket = Self::new(capacity, refill.min(capacity), interval)?
            .with_initial(base.initial.min(capacity))?;
        limits::not_above(
            "the limiter's refill",
            base.refill.get(),
            "a tier's refill",
            refill,
        )?;
        let own = (bucket.capacity, bucket.refill, bucket.initial);
        if own != (base.capacity, base.refill, base.initial) {
            bucket.base = Some(base);
        }
        Ok(bucket)
    }

    fn adjust(
        &self,
        state: &mut Option<TokenBucketState>,
        now_ms: u64,
        adjustment: Adjustment,
    ) -> Outcome {
        let now = clamp_time(now_ms);
        let stored = state.map(|mut s| {
            s.tokens = s.tokens.min(self.capacity);
            s
        });
        let mut s = self.refilled(stored, now);
        // Usage is what the bucket lacks: a refund fills, a penalty drains.
        s.tokens = self.capacity - adjustment.apply(self.capacity - s.tokens, self.capacity);
        *state = Some(s);
        self.outcome(state, now_ms, 0)
    }

    #[inline]
    fn decide(
        &self,
        state: &mut Option<TokenBucketState>,
        now_ms: u64,
        cost: u64,
    ) -> Result<Outcome, Error> {
        check_cost(cost, self.capacity)?;
        Ok(self.outcome(state, now_ms, cost))
    }
}

impl TokenBucket {
    /// A call of `cost` (already checked against the limit) at `now_ms`.
    #[inline]
    fn outcome(&self, state: &mut Option<TokenBucketState>, now_ms: u64, cost: u64) -> Outcome {
        let now_ms = clamp_time(now_ms);
        // A bucket filled under a larger tier holds no more than this one's
        // capacity; a draw stores that, a denial or a read changes nothing.
        let stored = state.map(|mut s| {
            s.tokens = s.tokens.min(self.capacity);
            s
        });
        // A stored bucket is never full (only a draw is stored): when it
        // fills, if nothing is drawn meanwhile.
        let stored_full_at = stored.map(|s| self.full_at(s));
        let mut s = self.refilled(stored, now_ms);

        let allowed = s.tokens >= cost;
        let retry_after_ms = if allowed {
            0
        } else {
            let wait = self.intervals_for(cost - s.tokens) * self.interval.get();
            s.refilled_at_ms + wait - now_ms
        };
        if allowed {
            s.tokens -= cost;
        }
        // Only an admission changes a bucket: a denial or a read is a pure
        // read, so a copy of the state decides later calls exactly. But a
        // fresh key whose `initial` is below capacity must be remembered
        // whatever it was asked, or its refills never start.
        let drawn = allowed && cost > 0;
        if drawn || (state.is_none() && s.tokens < self.capacity) {
            *state = Some(s);
        }
        let full_at = if s.tokens == self.capacity {
            now_ms
        } else {
            self.full_at(s).max(now_ms)
        };
        // Kept until full for the warm-up span: counted from when a stored
        // bucket filled (a read does not move it), else from `full_at`.
        let filled_at = match stored_full_at {
            Some(at) if !drawn && s.tokens == self.capacity => at.min(now_ms),
            _ => full_at,
        };
        let mut keep_until = filled_at.saturating_add(self.warm_up_ms());
        if let (Some(base), Some(kept)) = (self.base, *state) {
            keep_until = keep_until.max(base.keep_until(kept, &self.interval, now_ms));
        }
        let decision = Decision {
            allowed,
            limit: self.capacity,
            remaining: s.tokens,
            reset_ms: full_at,
            retry_after_ms,
            reason: None,
        };
        Outcome {
            decision,
            ttl_ms: keep_until.saturating_sub(now_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(alg: &TokenBucket, s: &mut Option<TokenBucketState>, now: u64, cost: u64) -> Decision {
        alg.decide(s, now, cost).unwrap().decision
    }

    #[test]
    fn drains_then_refills_in_steps() {
        let alg = TokenBucket::new(3, 1, "1 s").unwrap();
        let mut s = None;
        for left in [2, 1, 0] {
            let d = run(&alg, &mut s, 10, 1);
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        let d = run(&alg, &mut s, 500, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 1010 - 500);
        assert_eq!(d.reset_ms, 3010);
        assert!(!run(&alg, &mut s, 1009, 1).allowed);
        assert!(run(&alg, &mut s, 1010, 1).allowed);
        // 2.5 intervals later: two more tokens, phase kept at 1010 + 2000.
        let d = run(&alg, &mut s, 3510, 0);
        assert_eq!(d.remaining, 2);
        assert_eq!(d.reset_ms, 4010);
    }

    #[test]
    fn refill_amount_and_cost_above_one() {
        let alg = TokenBucket::new(10, 4, "100ms").unwrap();
        let mut s = None;
        assert!(run(&alg, &mut s, 0, 10).allowed);
        let d = run(&alg, &mut s, 50, 9);
        assert!(!d.allowed);
        assert_eq!(
            d.retry_after_ms,
            300 - 50,
            "9 tokens need ceil(9/4) = 3 refills"
        );
        let d = run(&alg, &mut s, 250, 0);
        assert_eq!(d.remaining, 8);
        let d = run(&alg, &mut s, 1000, 0);
        assert_eq!(d.remaining, 10, "capped at capacity");
    }

    #[test]
    fn initial_tokens() {
        let alg = TokenBucket::new(5, 1, "1 s")
            .unwrap()
            .with_initial(0)
            .unwrap();
        let mut s = None;
        let d = run(&alg, &mut s, 0, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 1000);
        assert_eq!(d.reset_ms, 5000);
        assert!(run(&alg, &mut s, 1000, 1).allowed);
        assert!(TokenBucket::new(5, 1, "1 s")
            .unwrap()
            .with_initial(6)
            .is_err());
    }

    #[test]
    fn clock_going_back_mints_nothing() {
        let alg = TokenBucket::new(2, 1, "1 s").unwrap();
        let mut s = None;
        run(&alg, &mut s, 10_000, 2);
        let d = run(&alg, &mut s, 0, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 11_000);
        assert!(!run(&alg, &mut s, 10_999, 1).allowed);
    }

    #[test]
    fn long_idle_gap_does_not_overflow() {
        let alg = TokenBucket::new(u64::from(u32::MAX), 1, "1ms").unwrap();
        let mut s = None;
        run(&alg, &mut s, 0, 5);
        let d = run(&alg, &mut s, u64::MAX, 0);
        assert_eq!(d.remaining, u64::from(u32::MAX));
    }

    #[test]
    fn ttl_until_full() {
        let alg = TokenBucket::new(4, 2, "1 s").unwrap();
        let mut s = None;
        assert_eq!(alg.decide(&mut s, 0, 3).unwrap().ttl_ms, 2000);
        assert_eq!(alg.decide(&mut None, 0, 0).unwrap().ttl_ms, 0);
    }

    #[test]
    fn ttl_is_exactly_until_full_at_real_timestamps() {
        // 10 tokens, 1 back every second: 3 taken are back 3 s later, and
        // the state is kept exactly that long, not a millisecond more.
        let alg = TokenBucket::new(10, 1, "1 s").unwrap();
        let now = 1_700_000_000_123;
        let mut s = None;
        let o = alg.decide(&mut s, now, 3).unwrap();
        assert_eq!((o.ttl_ms, o.decision.reset_ms), (3000, now + 3000));
        let o = alg.decide(&mut s, now + 1500, 0).unwrap();
        assert_eq!((o.ttl_ms, o.decision.remaining), (1500, 8));
    }

    #[test]
    fn a_read_of_a_new_full_key_leaves_no_state() {
        let alg = TokenBucket::new(3, 1, "1 s").unwrap();
        let mut s = None;
        let o = alg.decide(&mut s, 1_700_000_000_000, 0).unwrap();
        assert_eq!((o.decision.remaining, o.ttl_ms), (3, 0));
        assert_eq!(s, None, "a new full bucket is no state at all");
    }

    #[test]
    fn invalid_configs_are_rejected() {
        assert!(matches!(
            TokenBucket::new(5, 6, "1 s"),
            Err(ConfigError::Exceeds { what: "refill", .. })
        ));
        assert_eq!(
            TokenBucket::new(0, 1, "1 s"),
            Err(ConfigError::Zero { what: "capacity" })
        );
        assert_eq!(
            TokenBucket::new(1, 0, "1 s"),
            Err(ConfigError::Zero { what: "refill" })
        );
        assert_eq!(
            TokenBucket::new(1, 1, "0ms"),
            Err(ConfigError::ZeroDuration { what: "interval" })
        );
        assert_eq!(
            TokenBucket::new(1, 1, "1 s")
                .unwrap()
                .decide(&mut None, 0, 2),
            Err(Error::CostExceedsLimit { cost: 2, limit: 1 })
        );
    }

    #[test]
    fn a_tier_keeps_a_state_until_it_would_be_full_in_the_limiters_own_bucket() {
        let own = TokenBucket::new(10, 1, "1 s")
            .unwrap()
            .with_initial(5)
            .unwrap();
        let fast = own.tiered(&Tier::refill(10)).unwrap();
        let mut s = Some(TokenBucketState {
            tokens: 4,
            refilled_at_ms: 0,
        });
        // A second later the fast refill sees a full bucket, kept for its
        // own warm-up (until 2 s); the limiter's bucket needs 6 more
        // seconds to fill and then its 5 s warm-up: kept until 11 s.
        let outcome = fast.decide(&mut s, 1_000, 0).unwrap();
        assert_eq!(outcome.decision.remaining, 10);
        assert_eq!(outcome.ttl_ms, 11_000 - 1_000);
    }
}
